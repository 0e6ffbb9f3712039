"""The register map against independent Modbus implementations from Debian:
``mbpoll`` and a small libmodbus client compiled here (tests/plc/interop/)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from plc import regmap as rm
from sim.vplc.core import PlcCore
from sim.vplc.server import VirtualPlcServer

TICK = 0x12345678
pytestmark = pytest.mark.debian


@pytest.fixture
def plc() -> Iterator[tuple[PlcCore, int]]:
    core = PlcCore(80, watchdog_ms=5000, clock=time.monotonic)
    core.advance(TICK, 2500.0, 0.0)
    with VirtualPlcServer(core) as server:
        yield core, server.port


def mbpoll(port: int, *args: str, values: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    cmd = ["mbpoll", "-m", "tcp", "-a", "1", "-0", "-1", "-q", "-o", "2", "-p", str(port),
           *args, "127.0.0.1", *values]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)


def polled(out: str) -> list[int]:
    """mbpoll's '[addr]: value' lines -> values."""
    return [int(line.split()[-1]) for line in out.splitlines() if line.startswith("[")]


needs_mbpoll = pytest.mark.skipif(
    shutil.which("mbpoll") is None, reason="Debian mbpoll not installed"
)


@needs_mbpoll
def test_mbpoll_reads_the_fixed_input_registers(plc: tuple[PlcCore, int]) -> None:
    _, port = plc
    r = mbpoll(port, "-t", "3", "-r", "0", "-c", "4")
    assert r.returncode == 0, r.stderr
    assert polled(r.stdout) == [TICK >> 16, TICK & 0xFFFF, 2500, rm.PackMLState.EXECUTE]
    r32 = mbpoll(port, "-t", "3:int", "-B", "-r", "0", "-c", "1")  # 32-bit, high word first
    assert r32.returncode == 0, r32.stderr
    assert polled(r32.stdout) == [TICK]


@needs_mbpoll
def test_mbpoll_writes_heartbeat_and_a_pulse(plc: tuple[PlcCore, int]) -> None:
    core, port = plc
    assert mbpoll(port, "-t", "4", "-r", "0", values=("17",)).returncode == 0
    assert core.heartbeat_age_s() is not None
    assert polled(mbpoll(port, "-t", "3", "-r", str(rm.reg("heartbeat_echo").address)).stdout) == [
        17
    ]
    words = rm.pack_records([1], [0], [3], [4], [TICK + 10], [TICK + 50])
    r = mbpoll(port, "-t", "4", "-r", str(rm.slot_address(1)), values=tuple(map(str, words)))
    assert r.returncode == 0, r.stderr
    assert core.acked_seq == 1 and core.pending() == 1
    ack = polled(mbpoll(port, "-t", "4", "-r", str(rm.HR_ACK_BASE), "-c", "6").stdout)
    assert ack[0] == 1 and ack[5] == rm.SlotResult.ACCEPTED


@needs_mbpoll
def test_mbpoll_sets_the_trigger_and_reads_its_latches(plc: tuple[PlcCore, int]) -> None:
    core, port = plc
    hr3 = str(rm.HR_TRIGGER_EVERY)
    assert mbpoll(port, "-t", "4", "-r", hr3, values=("1000",)).returncode == 0
    assert polled(mbpoll(port, "-t", "4", "-r", hr3).stdout) == [1000]
    first = core.next_trigger_tick()
    assert first == (TICK // 1000 + 1) * 1000
    core.advance(first + 2000, 2500.0, 0.0)  # three triggers
    n = 1 + rm.TRIGGER_SLOTS * rm.TRIGGER_WORDS
    r = mbpoll(port, "-t", "3", "-r", str(rm.IR_TRIGGER_SEQ), "-c", str(n))
    assert r.returncode == 0, r.stderr
    words = polled(r.stdout)
    assert len(words) == n and words[0] == 3
    assert rm.unpack_trigger_latch(words[0], words[1:]) == [
        (1, first), (2, first + 1000), (3, first + 2000)
    ]  # fmt: skip
    slot1 = rm.trigger_latch_address(1)  # [seq, hi, lo] at IR 47-49
    assert polled(mbpoll(port, "-t", "3", "-r", str(slot1), "-c", "1").stdout) == [1]
    r32 = mbpoll(port, "-t", "3:int", "-B", "-r", str(slot1 + 1), "-c", "1")
    assert polled(r32.stdout) == [first]  # high word first


@needs_mbpoll
@pytest.mark.parametrize(
    ("cmd", "result"),
    [(rm.PackMLCommand.START, rm.CommandResult.REFUSED_STATE),  # already in Execute
     (rm.PackMLCommand.HOLD, rm.CommandResult.TAKEN)],
)  # fmt: skip
def test_mbpoll_command_and_its_result(
    plc: tuple[PlcCore, int], cmd: rm.PackMLCommand, result: rm.CommandResult
) -> None:
    core, port = plc
    r = mbpoll(port, "-t", "4", "-r", str(rm.HR_COMMAND), values=(str(int(cmd)),))
    assert r.returncode == 0, r.stderr  # a refusal is a normal reply, not an exception
    r = mbpoll(port, "-t", "3", "-r", str(rm.IR_LAST_COMMAND), "-c", "3")
    assert polled(r.stdout) == [int(cmd), int(result), 1]
    assert core.command_count == 1


@needs_mbpoll
@pytest.mark.parametrize(
    ("args", "values", "message"),
    [
        (("-t", "4", "-r", str(rm.HR_CONTROL_WORDS)), ("1",), "Illegal data address"),
        (("-t", "4", "-r", str(rm.HR_ACK_BASE)), ("1",), "Illegal data address"),
        (("-t", "4", "-r", str(rm.HR_COMMAND)), ("99",), "Illegal data value"),
        (("-t", "4", "-r", str(rm.HR_RING_BASE)), ("1",) * 8, "Illegal data value"),  # wrong slot
        (("-t", "3", "-r", "700", "-c", "1"), (), "Illegal data address"),
    ],
)
def test_mbpoll_gets_exception_replies(
    plc: tuple[PlcCore, int], args: tuple[str, ...], values: tuple[str, ...], message: str
) -> None:
    core, port = plc
    r = mbpoll(port, *args, values=values)
    assert r.returncode != 0 and message in r.stderr, (r.stdout, r.stderr)
    assert core.pending() == 0


@pytest.fixture(scope="module")
def libmodbus_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None or shutil.which("pkg-config") is None:
        pytest.skip("gcc or pkg-config not installed")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libmodbus"],
                           capture_output=True, text=True, check=False)  # fmt: skip
    if flags.returncode != 0:
        pytest.skip("Debian libmodbus-dev not installed")
    exe = tmp_path_factory.mktemp("libmodbus") / "client"
    src = Path(__file__).with_name("interop") / "libmodbus_client.c"
    cmd = ["gcc", "-Wall", "-Werror", "-O1", "-o", str(exe), str(src), *flags.stdout.split()]
    cc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert cc.returncode == 0, cc.stderr
    return exe


def test_libmodbus_client(plc: tuple[PlcCore, int], libmodbus_client: Path) -> None:
    core, port = plc
    r = subprocess.run([str(libmodbus_client), "127.0.0.1", str(port), str(TICK + 1000)],
                       capture_output=True, text=True, timeout=20, check=False)  # fmt: skip
    out = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    assert r.returncode == 0, r.stdout + r.stderr
    assert int(out["ENCODER"]) == TICK and int(out["SPEED"]) == 2500
    assert int(out["STATE"]) == rm.PackMLState.EXECUTE
    assert int(out["HEARTBEAT"]) == 4242
    assert int(out["ACKED_SEQ"]) == 1 and int(out["SLOT1_RESULT"]) == rm.SlotResult.ACCEPTED
    assert (out["IR95_ERRNO"], out["HR101_ERRNO"], out["CMD99_ERRNO"]) == ("2", "2", "3")
    assert out["OVERSIZE_REPLY"] == "84 03"
    assert core.pending() == 1 and core.acked_seq == 1
    core.advance(TICK + 1000, 2500.0, 0.0)
    assert core.valves_open()[10:13].all() and core.valves_open().sum() == 3
