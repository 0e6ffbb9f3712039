"""Fault injection into the virtual PLC's belt (``sim.vplc.inject``) and the
PLC's encoder supervision (``PlcCore(encoder_stall_s=...)``), in-process on
the wall clock (short waits)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from plc import regmap as rm
from sim.vplc.core import PlcCore
from sim.vplc.inject import apply
from sim.vplc.server import BeltDriver

SPEED = 2500.0  # mm/s
MM = 0.1  # mm/tick


def _tick(core: PlcCore) -> int:
    w = core.read_input(0, rm.IR_STATUS_WORDS)
    assert isinstance(w, list)
    return rm.unpack_u32(w[rm.IR_ENCODER], w[rm.IR_ENCODER + 1])


def _until(cond: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@pytest.fixture
def belt() -> Iterator[BeltDriver]:
    core = PlcCore(8, clock=time.monotonic, encoder_stall_s=0.1)
    drv = BeltDriver(core, SPEED, MM)
    drv.start()
    yield drv
    drv.stop()


def test_frozen_encoder_suspends_the_plc_and_counting_again_resumes(belt: BeltDriver) -> None:
    core = belt.core
    assert _until(lambda: _tick(core) > 0 and core.state is rm.PackMLState.EXECUTE)
    apply(belt, "/encoder", {"freeze": True})

    def stood() -> bool:  # a step of the driver's thread may be under way
        a = _tick(core)
        time.sleep(0.02)
        return _tick(core) == a

    assert _until(stood)
    t0 = _tick(core)
    assert _until(lambda: core.state is rm.PackMLState.SUSPENDED)
    assert _tick(core) == t0  # the count stood, the speed input still says running
    assert core.counters["encoder_stalls"] == 1
    frozen_s = time.monotonic()
    apply(belt, "/encoder", {"freeze": False})
    assert _until(lambda: core.state is rm.PackMLState.EXECUTE)
    ran_s = time.monotonic() - frozen_s
    assert 0 < _tick(core) - t0 <= (ran_s + 0.05) * SPEED / MM  # on from where it stood


@pytest.mark.parametrize("jump", [50_000, -50_000])
def test_jumps_move_the_count_at_once(belt: BeltDriver, jump: int) -> None:
    assert _until(lambda: _tick(belt.core) > 0)
    before, t0 = _tick(belt.core), time.monotonic()
    apply(belt, "/encoder", {"jump_ticks": jump})

    def step() -> int:
        return (_tick(belt.core) - before + (1 << 31)) % (1 << 32) - (1 << 31)

    assert _until(lambda: abs(step() - jump) < abs(jump) // 2)
    ran = (time.monotonic() - t0 + 0.01) * SPEED / MM
    assert -1 <= step() - jump <= ran
    assert belt.core.state is rm.PackMLState.EXECUTE  # a jump is not a stall


def test_belt_speed_zero_suspends_and_is_no_stall(belt: BeltDriver) -> None:
    apply(belt, "/belt", {"speed_m_s": 0.0})
    assert _until(lambda: belt.core.state is rm.PackMLState.SUSPENDED)
    time.sleep(0.2)  # longer than the stall limit: a stopped belt is no stall
    assert belt.core.state is rm.PackMLState.SUSPENDED
    assert belt.core.counters["encoder_stalls"] == 0


def test_no_supervision_without_a_wall_clock() -> None:
    core = PlcCore(8, encoder_stall_s=0.1)  # stepped simulation: the count stands between frames
    for now in (0.0, 1.0, 2.0):
        core.advance(1000, SPEED, now)
    assert core.state is rm.PackMLState.EXECUTE


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        ("/encoder", {}, "/encoder takes"),
        ("/encoder", {"freeze": 1}, '"freeze" must be true or false'),
        ("/encoder", {"jump_ticks": 1.5}, '"jump_ticks" must be an integer'),
        ("/encoder", {"jump_ticks": 1 << 31}, "|N| < 2**31"),
        ("/encoder", {"speed": 1}, "/encoder takes"),
        ("/belt", {"speed_m_s": -1}, "outside 0..65"),
        ("/belt", {"speed_m_s": True}, "/belt takes"),
        ("/belt", {}, "/belt takes"),
    ],
)
def test_bad_requests_are_one_line_errors(
    belt: BeltDriver, path: str, body: dict[str, object], words: str
) -> None:
    with pytest.raises(ValueError, match=words.replace("*", r"\*").replace("|", r"\|")):
        apply(belt, path, body)
    with pytest.raises(KeyError):
        apply(belt, "/nothing", {})
