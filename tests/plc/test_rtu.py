"""Modbus RTU between the bridge and the virtual PLC through a pseudo-terminal
pair made by Debian ``socat`` (ptys ignore baud rate: no line timing here)."""

from __future__ import annotations

import contextlib
import shutil
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import serial
from pymodbus.framer import FramerRTU

from core.types import Pulses
from plc import regmap as rm
from plc.bridge import BridgeConfig, PlcBridge
from sim.vplc.core import PlcCore
from sim.vplc.server import VirtualPlcServer

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
        (struct.pack(">BHH", 4, rm.IR_STATUS_WORDS, 1), 0x84, 2),  # unmapped
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


class PtyRelay:
    """Copies bytes between two serial ports (one end of each socat pair).
    ``hold(fc, s)``: the next reply with function code ``fc`` from the PLC side
    is held back ``s`` seconds; ``holding`` is set while it is."""

    def __init__(self, plc_side: str, ctrl_side: str) -> None:
        self.a = serial.Serial(plc_side, 115200, timeout=0.005)
        self.b = serial.Serial(ctrl_side, 115200, timeout=0.005)
        self._hold: tuple[int, float] | None = None
        self.holding = threading.Event()
        self.held = 0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._pump, args=(self.b, self.a, False), daemon=True),
            threading.Thread(target=self._pump, args=(self.a, self.b, True), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def hold(self, fc: int, seconds: float) -> None:
        self._hold = (fc, seconds)

    def _pump(self, src: serial.Serial, dst: serial.Serial, replies: bool) -> None:
        while not self._stop.is_set():
            try:
                data = src.read(512)
            except (OSError, serial.SerialException):
                return
            if not data:
                continue
            hold = self._hold
            if replies and hold and len(data) > 1 and data[1] == hold[0]:
                self._hold = None
                self.holding.set()
                time.sleep(hold[1])
                self.held += 1
                self.holding.clear()
            with contextlib.suppress(OSError, serial.SerialException):
                dst.write(data)

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2)
        self.a.close()
        self.b.close()


@pytest.fixture
def relayed_plc(tmp_path: Path) -> Iterator[tuple[PlcCore, str, PtyRelay]]:
    """PLC <-pty pair-> relay <-pty pair-> controller."""
    links = [tmp_path / n for n in ("plc", "relay_a", "relay_b", "ctrl")]
    procs = [
        subprocess.Popen(["socat", f"pty,raw,echo=0,link={x}", f"pty,raw,echo=0,link={y}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for x, y in ((links[0], links[1]), (links[2], links[3]))
    ]  # fmt: skip
    try:
        end = time.monotonic() + 5.0
        while not all(p.exists() for p in links):
            assert time.monotonic() < end, "socat made no pty pairs"
            time.sleep(0.01)
        core = PlcCore(80, watchdog_ms=5000, clock=time.monotonic)
        core.advance(START_TICK, 2500.0, 0.0)
        relay = PtyRelay(str(links[1]), str(links[2]))
        try:
            with VirtualPlcServer(core, serial_port=str(links[0])):
                yield core, str(links[3]), relay
        finally:
            relay.close()
    finally:
        for p in procs:
            p.terminate()
            p.wait(5)


def test_late_rtu_reply_is_never_taken_for_a_later_request(
    relayed_plc: tuple[PlcCore, str, PtyRelay],
) -> None:
    core, port, relay = relayed_plc
    timeout_s = 0.1
    cfg = BridgeConfig(transport="rtu", serial_port=port, timeout_s=timeout_s, retries=0,
                       heartbeat_s=0.01, deadline_lead_ms=0.0,
                       extrapolate_encoder=False)  # fmt: skip
    bridge = PlcBridge(cfg)
    bridge.start()
    try:
        assert bridge.wait_connected(5.0), bridge.snapshot().last_error
        tick = START_TICK
        for k in range(3):
            relay.hold(4, 2.5 * timeout_s)  # a status reply, late by 1.5 timeouts
            assert relay.holding.wait(5.0)
            tick += 1000 * (k + 1)
            core.advance(tick, 2500.0, 0.0)  # the held reply carries the old count
            t_jump = time.monotonic()
            end = t_jump + 6 * timeout_s
            while time.monotonic() < end:
                snap = bridge.snapshot()
                if snap.encoder_t_s > t_jump + 0.002:  # a reading requested after the jump
                    assert snap.encoder_tick == tick, (k, snap.encoder_tick, tick)
                time.sleep(0.002)
            assert bridge.wait_connected(5.0)
        snap = bridge.snapshot()
        assert relay.held == 3 and snap.read_errors >= 3 and snap.connected
        assert f"read IR 0-{rm.IR_STATUS_WORDS - 1}: no valid reply" in snap.last_error
    finally:
        bridge.stop()
