"""Modbus RTU between the bridge and the virtual PLC through a pseudo-terminal
pair made by Debian ``socat`` (ptys ignore baud rate: no line timing here)."""

from __future__ import annotations

import shutil
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import serial
from pymodbus.framer import FramerRTU

from core.types import Pulses
from plc.bridge import BridgeConfig, PlcBridge
from sim.vplc import VirtualPlcServer
from sim.vplc_core import PlcCore

from .conftest import START_TICK

pytestmark = [
    pytest.mark.debian,
    pytest.mark.skipif(shutil.which("socat") is None, reason="Debian socat not installed"),
]


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[tuple[str, str]]:
    a, b = tmp_path / "plc", tmp_path / "ctrl"
    proc = subprocess.Popen(
        ["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        end = time.monotonic() + 5.0
        while not (a.exists() and b.exists()):
            assert time.monotonic() < end, "socat made no pty pair"
            time.sleep(0.01)
        yield str(a), str(b)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture
def rtu_plc(pty_pair: tuple[str, str]) -> Iterator[tuple[PlcCore, str]]:
    core = PlcCore(80, n_diverters=1, watchdog_ms=5000, clock=time.monotonic)
    core.advance(START_TICK, 2500.0, 0.0)
    with VirtualPlcServer(core, serial_port=pty_pair[0]):
        yield core, pty_pair[1]


def test_pulses_fire_at_their_ticks_over_rtu(rtu_plc: tuple[PlcCore, str]) -> None:
    core, port = rtu_plc
    cfg = BridgeConfig(transport="rtu", serial_port=port, timeout_s=0.2, heartbeat_s=0.02,
                       deadline_lead_ms=0.0, extrapolate_encoder=False)  # fmt: skip
    bridge = PlcBridge(cfg)
    bridge.start()
    try:
        assert bridge.wait_connected(5.0), bridge.snapshot().last_error
        rows = [(0, k, k + 1, START_TICK + 10 * k + 5, START_TICK + 10 * k + 30) for k in range(20)]
        rows.append((1, 0, 0, START_TICK + 7, START_TICK + 9))
        a = np.array(rows)
        bridge.submit(Pulses(actuator=a[:, 0], first_valve=a[:, 1], last_valve=a[:, 2],
                             on_tick=a[:, 3], off_tick=a[:, 4], track_id=np.arange(len(a)),
                             fraction=np.zeros(len(a), dtype=np.int16)))  # fmt: skip
        assert bridge.flush(5.0)
        snap = bridge.snapshot()
        assert snap.pulses_acked == len(rows) and snap.connected
        for tick in range(START_TICK, START_TICK + 240):
            core.advance(tick, 2500.0, 0.0)
            want = np.zeros(80, dtype=bool)
            for act, first, last, on, off in rows:
                if act == 0 and on <= tick < off:
                    want[first : last + 1] = True
            assert np.array_equal(core.valves_open(), want), tick
        assert core.counters["executed"] == len(rows)
        assert wait_heartbeat(core)
    finally:
        bridge.stop()


def wait_heartbeat(core: PlcCore) -> bool:
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        age = core.heartbeat_age_s()
        if age is not None and age < 1.0:
            return True
        time.sleep(0.01)
    return False


def rtu_request(port: str, pdu: bytes, unit: int = 1) -> bytes:
    """One raw RTU request; the reply frame (unit, fc, ...) without its CRC check."""
    body = bytes([unit]) + pdu
    frame = body + struct.pack(">H", FramerRTU.compute_CRC(body))
    with serial.Serial(port, 115200, timeout=1.0) as s:
        s.reset_input_buffer()
        s.write(frame)
        head = s.read(3)
        assert len(head) == 3, "no reply"
        n = 2 if head[1] & 0x80 else head[2] + 2
        rest = s.read(n)
    reply = head + rest
    assert FramerRTU.check_CRC(reply[:-2], struct.unpack(">H", reply[-2:])[0])
    return reply


@pytest.mark.parametrize(
    ("pdu", "reply_fc", "code"),
    [
        (struct.pack(">BHH", 4, 0, 126), 0x84, 3),  # oversize
        (struct.pack(">BHH", 4, 50, 1), 0x84, 2),  # unmapped
        (struct.pack(">BHH", 6, 2, 99), 0x86, 3),  # unknown PackML command
        # (an unknown function code cannot be framed on RTU by pymodbus: no reply)
    ],
)
def test_exception_replies_over_rtu(
    rtu_plc: tuple[PlcCore, str], pdu: bytes, reply_fc: int, code: int
) -> None:
    _, port = rtu_plc
    reply = rtu_request(port, pdu)
    assert (reply[1], reply[2]) == (reply_fc, code), reply.hex()
    ok = rtu_request(port, struct.pack(">BHH", 4, 8, 1))  # n_valves
    assert ok[1:5] == bytes([4, 2, 0, 80])


def test_rtu_needs_a_serial_port() -> None:
    with pytest.raises(ValueError, match="serial_port"):
        BridgeConfig(transport="rtu")
