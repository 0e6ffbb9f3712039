"""The virtual PLC's camera trigger (HR 3, IR 43-91) and command results
(IR 92-94), on ``PlcCore`` without sockets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.ticks import TICK_MODULUS, wrap_tick
from plc import regmap as rm
from plc.regmap import CommandResult, ExcCode, PackMLCommand, PackMLState, RejectReason
from sim.vplc.core import PlcCore

WRAP = TICK_MODULUS
SPEED = 2500.0


def set_every(core: PlcCore, n: int) -> None:
    assert core.write_holding(rm.HR_TRIGGER_EVERY, [n]) is None


def latches(core: PlcCore) -> list[tuple[int, int]]:
    """Valid (seq, tick) latches as a controller reads them, oldest first."""
    words = core.read_input(rm.IR_TRIGGER_SEQ, 1 + rm.TRIGGER_SLOTS * rm.TRIGGER_WORDS)
    assert isinstance(words, list)
    return rm.unpack_trigger_latch(words[0], words[1:])


def drive(core: PlcCore, ticks: list[int]) -> list[tuple[int, int]]:
    """Advance through ``ticks``; every latch as it appeared (read after each step)."""
    seen: dict[int, int] = {}
    for t in ticks:
        core.advance(wrap_tick(t), SPEED, 0.0)
        seen.update(latches(core))
    return sorted(seen.items())


def naive_triggers(start: int, n: int, ticks: list[int]) -> list[int]:
    """The slow twin, on unbounded counts: the trigger points the belt reaches,
    first = next multiple of ``n`` after ``start``, then every ``n``; a point is
    reached when the count is at or past it (a backward move reaches nothing)."""
    nxt, out = (start // n + 1) * n, []
    for t in ticks:
        while t >= nxt:
            out.append(nxt % WRAP)
            nxt += n
    return out


CASES = {
    # name: (start, N, ticks the plant steps to, trigger counts expected)
    "exact point": (1000, 100, [1100], [1100]),
    "just before": (1000, 100, [1099], []),
    "several in one advance": (1000, 100, [1350], [1100, 1200, 1300]),
    "one tick at a time": (1000, 100, list(range(1001, 1302)), [1100, 1200, 1300]),
    "start on a multiple": (1000, 250, [1249, 1250, 1500], [1250, 1500]),
    "backward jump": (1000, 100, [1150, 1050, 1190, 1199, 1200], [1100, 1200]),
    "standing belt": (1000, 100, [1000, 1000, 1000], []),
    # first point: the multiple of 100 after 2**32 - 250; then +100 across the wrap
    "across the wrap": (WRAP - 250, 100, [WRAP - 150, WRAP + 60, WRAP + 300],
                        [WRAP - 196, WRAP - 96, WRAP + 4, WRAP + 104, WRAP + 204]),
    "N divides 2**32": (WRAP - 150, 256, [WRAP - 1, WRAP + 600], [WRAP, WRAP + 256, WRAP + 512]),
    "more than the ring": (0, 10, [405], list(range(10, 401, 10))[-rm.TRIGGER_SLOTS :]),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CASES))
def test_trigger_latches_the_exact_counts(name: str) -> None:
    start, n, ticks, want = CASES[name]
    core = PlcCore(8)
    core.advance(wrap_tick(start), SPEED, 0.0)
    set_every(core, n)
    got = drive(core, ticks)
    assert [tick for _seq, tick in got] == [w % WRAP for w in want]
    fired = len(naive_triggers(start, n, ticks))
    assert core.trigger_seq == fired  # every trigger counted, kept in the ring or not
    assert [seq for seq, _ in got] == list(range(fired - len(want) + 1, fired + 1))


def test_next_trigger_tick_is_where_the_plant_steps_to() -> None:
    core = PlcCore(8)
    core.advance(1234, SPEED, 0.0)
    assert core.next_trigger_tick() is None and core.trigger_seq == 0
    set_every(core, 250)
    for k in range(1, 6):
        nxt = core.next_trigger_tick()
        assert nxt == 1250 + (k - 1) * 250
        core.advance(nxt, SPEED, 0.0)
        assert core.trigger_seq == k and latches(core)[-1] == (k, nxt)
    set_every(core, 0)  # off: nothing more, the seq is kept
    assert core.next_trigger_tick() is None
    core.advance(5000, SPEED, 0.0)
    assert core.trigger_seq == 5


@pytest.mark.parametrize(
    ("n0", "at", "n1", "want_next"),
    [(100, 1150, 40, 1160), (100, 1150, 100, 1200), (100, 1150, 0, None), (0, 1150, 7, 1155)],
)
def test_changing_n_restarts_at_the_next_multiple(
    n0: int, at: int, n1: int, want_next: int | None
) -> None:
    core = PlcCore(8)
    core.advance(1000, SPEED, 0.0)
    set_every(core, n0)
    core.advance(at, SPEED, 0.0)
    set_every(core, n1)  # the same value again keeps the phase
    assert core.next_trigger_tick() == want_next
    read = core.read_holding(rm.HR_TRIGGER_EVERY, 1)
    assert read == [n1]


def test_trigger_seq_skips_zero_when_it_wraps() -> None:
    core = PlcCore(8)
    set_every(core, 1)
    core.advance(rm.TRIGGER_SEQ_PERIOD - 2, SPEED, 0.0)
    assert core.trigger_seq == rm.TRIGGER_SEQ_PERIOD - 2
    core.advance(rm.TRIGGER_SEQ_PERIOD + 2, SPEED, 0.0)  # 4 more: 65534, 65535, 1, 2
    assert core.trigger_seq == 2
    got = latches(core)
    assert [s for s, _ in got[-4:]] == [65534, 65535, 1, 2]
    assert [t for _, t in got[-4:]] == [65534, 65535, 65536, 65537]


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(1, 400),
    start=st.sampled_from([0, 5000, WRAP - 3000]),
    steps=st.lists(st.integers(-300, 900), min_size=1, max_size=40),
)
def test_latches_match_the_naive_twin(n: int, start: int, steps: list[int]) -> None:
    core = PlcCore(8)
    core.advance(wrap_tick(start), SPEED, 0.0)
    set_every(core, n)
    ticks, t = [], start
    for step in steps:  # a forward belt with an occasional small step back (encoder jitter)
        t = max(t + step, start)
        ticks.append(t)
    want = naive_triggers(start, n, ticks)
    got = drive(core, ticks)
    assert core.trigger_seq == len(want)
    for seq, tick in got:  # trigger k (1-based) latched the k-th point exactly
        assert tick == want[seq - 1], seq
    seqs = {seq for seq, _ in got}
    assert set(range(len(want) - min(len(want), rm.TRIGGER_SLOTS) + 1, len(want) + 1)) <= seqs


def test_a_bad_trigger_value_is_refused() -> None:
    core = PlcCore(8)
    assert core.write_holding(rm.HR_TRIGGER_EVERY, [70000]) is ExcCode.ILLEGAL_VALUE
    assert core.last_reject[1] is RejectReason.BAD_VALUE and core.next_trigger_tick() is None


def command(core: PlcCore, cmd: PackMLCommand) -> tuple[int, int, int]:
    """Write ``cmd`` (a normal reply, never an exception); IR 92-94 after it."""
    assert core.write_holding(rm.HR_COMMAND, [int(cmd)]) is None
    words = core.read_input(rm.IR_LAST_COMMAND, 3)
    assert isinstance(words, list)
    return words[0], words[1], words[2]


C, R, S = PackMLCommand, CommandResult, PackMLState
COMMAND_CASES = [
    # (setup commands, E-stop open, command, result, state after)
    ([], False, C.START, R.REFUSED_STATE, S.EXECUTE),
    ([C.STOP], False, C.START, R.REFUSED_STATE, S.STOPPED),
    ([C.STOP, C.RESET], False, C.START, R.TAKEN, S.EXECUTE),
    ([], False, C.RESET, R.TAKEN, S.EXECUTE),  # clears latched faults while running
    ([], True, C.RESET, R.REFUSED_ESTOP, S.ABORTED),
    ([], True, C.CLEAR, R.REFUSED_ESTOP, S.ABORTED),
    ([], True, C.START, R.REFUSED_STATE, S.ABORTED),
    ([], True, C.ABORT, R.TAKEN, S.ABORTED),
    ([C.ABORT], False, C.CLEAR, R.TAKEN, S.STOPPED),
    ([], False, C.CLEAR, R.REFUSED_STATE, S.EXECUTE),
    ([C.STOP], False, C.HOLD, R.REFUSED_STATE, S.STOPPED),
    ([], False, C.HOLD, R.TAKEN, S.HELD),
    ([C.HOLD], False, C.UNHOLD, R.TAKEN, S.EXECUTE),
    ([], False, C.SUSPEND, R.TAKEN, S.SUSPENDED),
    ([C.ABORT], False, C.STOP, R.REFUSED_STATE, S.ABORTED),
]  # fmt: skip


@pytest.mark.parametrize(("setup", "estop", "cmd", "result", "state"), COMMAND_CASES)
def test_every_command_is_evaluated_and_reported(
    setup: list[PackMLCommand], estop: bool, cmd: PackMLCommand, result: CommandResult,
    state: PackMLState,
) -> None:  # fmt: skip
    core = PlcCore(8)
    core.advance(1000, SPEED, 0.0)
    for c in setup:
        command(core, c)
    core.set_estop(estop)
    assert command(core, cmd) == (cmd, result, len(setup) + 1)
    assert core.state is state


def test_no_command_reads_as_none_and_zero_is_not_a_command() -> None:
    core = PlcCore(8)
    assert core.read_input(rm.IR_LAST_COMMAND, 3) == [0, 0, 0]
    assert core.write_holding(rm.HR_COMMAND, [0]) is None
    assert core.read_input(rm.IR_LAST_COMMAND, 3) == [0, 0, 0]


def test_command_count_wraps_at_16_bits() -> None:
    core = PlcCore(8)
    core.command_count = 0xFFFF
    assert command(core, C.HOLD)[2] == 0
