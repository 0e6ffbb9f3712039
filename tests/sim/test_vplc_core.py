"""PlcCore (the virtual PLC's logic) without sockets: pulse execution at exact
ticks, validation of ring writes, watchdog, E-stop, belt stop, PackML commands."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.ticks import wrap_tick
from core.types import Pulses
from plc import regmap as rm
from plc.regmap import ExcCode, FaultBit, PackMLCommand, PackMLState, RejectReason, SlotResult
from sim.vplc.core import PlcCore

SPEED = 2500.0  # mm/s
TICKS_S = 25_000.0  # at 0.1 mm/tick


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def make(start: int = 1000, **kw: object) -> PlcCore:
    core = PlcCore(80, n_diverters=2, **kw)  # type: ignore[arg-type]
    core.advance(start, SPEED, 0.0)
    return core


def write(core: PlcCore, seq0: int, rows: list[tuple[int, int, int, int, int]]) -> ExcCode | None:
    """Records from ``seq0`` on, split where the ring wraps (as the bridge does)."""
    room = rm.RING_SLOTS - seq0 % rm.RING_SLOTS
    head, tail = rows[:room], rows[room:]
    seqs = [rm.seq_add(seq0, i) for i in range(len(head))]
    code = core.write_holding(
        rm.slot_address(seq0), rm.pack_records(seqs, *zip(*head, strict=True))
    )
    if code is not None or not tail:
        return code
    return write(core, rm.seq_add(seq0, len(head)), tail)


def heartbeat(core: PlcCore, value: int) -> None:
    assert core.write_holding(rm.HR_HEARTBEAT, [value]) is None


def run(core: PlcCore, ticks: range, t0: float = 0.0) -> list[np.ndarray]:
    """Advance one tick at a time; the valve state after each step."""
    out = []
    for t in ticks:
        core.advance(wrap_tick(t), SPEED, t0 + (t - ticks.start) / TICKS_S)
        out.append(core.valves_open())
    return out


@pytest.mark.parametrize("start", [1000, (1 << 32) - 30])  # across the 32-bit wrap
@pytest.mark.parametrize(("on", "off"), [(5, 6), (5, 25), (0, 40)])
def test_valves_open_exactly_while_on_le_tick_lt_off(start: int, on: int, off: int) -> None:
    core = make(start)
    assert write(core, 1, [(0, 10, 12, wrap_tick(start + on), wrap_tick(start + off))]) is None
    states = run(core, range(start, start + 50))
    for i, state in enumerate(states):
        assert state[10:13].all() == (on <= i < off), i
        assert not state[:10].any() and not state[13:].any()


def test_completed_runs_are_returned_once_with_their_ticks() -> None:
    core = make(1000)
    write(core, 1, [(0, 1, 2, 1010, 1020), (1, 0, 0, 1005, 1030)])
    got = [core.advance(t, SPEED, t / TICKS_S) for t in (1009, 1019, 1020, 1025, 1030, 1040)]
    sizes = [len(g) for g in got]
    assert sizes == [0, 0, 1, 0, 1, 0]
    assert (got[2].on_tick[0], got[2].off_tick[0], got[2].track_id[0]) == (1010, 1020, 1)
    assert (got[4].actuator[0], got[4].track_id[0]) == (1, 2)
    assert core.counters["executed"] == 2
    assert core.cycles[1] == core.cycles[2] == 1 and core.cycles.sum() == 2


def test_a_run_jumped_over_in_one_step_still_completes_with_its_ticks() -> None:
    core = make(1000)
    write(core, 1, [(0, 4, 4, 1002, 1003)])
    done = core.advance(2000, SPEED, 0.04)
    assert (len(done), done.on_tick[0], done.off_tick[0]) == (1, 1002, 1003)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ((0, 5, 4, 1100, 1200), RejectReason.BAD_VALVES),  # first > last
        ((0, 0, 80, 1100, 1200), RejectReason.BAD_VALVES),  # past the bar
        ((3, 0, 0, 1100, 1200), RejectReason.BAD_ACTUATOR),  # only 2 flaps
        ((1, 0, 1, 1100, 1200), RejectReason.BAD_VALVES),  # flaps have no valves
        ((0, 1, 1, 1200, 1100), RejectReason.BAD_TICKS),  # off before on
        ((0, 1, 1, 1200, 1200), RejectReason.BAD_TICKS),  # zero length
    ],
)
def test_malformed_records_refuse_the_whole_write(
    row: tuple[int, ...], reason: RejectReason
) -> None:
    core = make(1000)
    good = (0, 1, 1, 1100, 1200)
    assert write(core, 1, [good, row]) is ExcCode.ILLEGAL_VALUE  # type: ignore[list-item]
    assert core.acked_seq == 0 and core.pending() == 0  # nothing applied
    assert core.last_reject == (2, reason)
    assert core.counters["malformed"] == 1
    assert core.faults & FaultBit.MALFORMED


@pytest.mark.parametrize(
    ("address", "n_words", "code"),
    [
        (rm.HR_RING_BASE + 3, 8, ExcCode.ILLEGAL_ADDRESS),  # not on a record boundary
        (rm.slot_address(1), 7, ExcCode.ILLEGAL_VALUE),  # not whole records
        (rm.HR_ACK_BASE, 1, ExcCode.ILLEGAL_ADDRESS),  # read-only
        (rm.HR_RING_BASE + 250, 8, ExcCode.ILLEGAL_ADDRESS),  # runs off the ring
        (rm.HR_CONTROL_WORDS, 1, ExcCode.ILLEGAL_ADDRESS),  # unmapped
    ],
)
def test_bad_write_addresses(address: int, n_words: int, code: ExcCode) -> None:
    core = make()
    assert core.write_holding(address, [0] * n_words) is code


def test_records_must_be_in_sequence_and_in_their_slot() -> None:
    core = make(1000)
    assert write(core, 2, [(0, 1, 1, 1100, 1200)]) is ExcCode.ILLEGAL_VALUE  # gap
    words = rm.pack_records([1], [0], [1], [1], [1100], [1200])
    assert core.write_holding(rm.slot_address(5), words) is ExcCode.ILLEGAL_VALUE  # wrong slot
    assert core.last_reject[1] is RejectReason.BAD_SEQUENCE
    assert write(core, 1, [(0, 1, 1, 1100, 1200)]) is None
    assert core.acked_seq == 1


def test_a_retried_write_is_harmless() -> None:
    core = make(1000)
    rows = [(0, 1, 1, 1100, 1200), (0, 2, 2, 1100, 1200)]
    assert write(core, 1, rows) is None
    assert write(core, 1, rows) is None  # same records again: already taken
    assert write(core, 1, [*rows, (0, 3, 3, 1100, 1200)]) is None  # retry plus one new
    assert core.acked_seq == 3 and core.pending() == 3


def test_sequence_wraps_at_16_bits() -> None:
    core = make(0)
    seq, tick = 1, 0
    for _ in range(2100):  # 2100 * 32 > 65536 records
        rows = [(0, 0, 0, tick + 10, tick + 11)] * 32
        assert write(core, seq, rows) is None
        seq = rm.seq_add(seq, 32)
        tick += 20
        assert len(core.advance(tick, SPEED, 0.0)) == 32
    assert core.acked_seq == rm.seq_add(seq, -1) and core.pending() == 0


def test_late_record_is_taken_but_not_executed() -> None:
    core = make(1000)
    assert write(core, 1, [(0, 1, 1, 999, 1200), (0, 2, 2, 1000, 1200)]) is None
    assert core.counters["late"] == 1 and core.pending() == 1
    ack = core.read_holding(rm.HR_ACK_BASE, rm.HR_ACK_WORDS)
    assert isinstance(ack, list)
    assert ack[0] == 2 and ack[4 + 1] == SlotResult.LATE and ack[4 + 2] == SlotResult.ACCEPTED


def test_watchdog_de_energises_within_its_timeout() -> None:
    clock = Clock()
    core = make(1000, watchdog_ms=100, clock=clock)
    heartbeat(core, 1)
    write(core, 1, [(0, 0, 79, 1000, 9000)])
    tick = 1000
    for step in range(60):  # 5 ms steps, heartbeat stops after 50 ms
        clock.t = step * 0.005
        if clock.t <= 0.05:
            heartbeat(core, 2 + step)
        tick += 125
        done = core.advance(tick, SPEED, clock.t)
        if clock.t <= 0.05 + 0.1:
            assert core.valves_open().all(), clock.t
        if not core.valves_open().any():
            break
    assert clock.t <= 0.05 + 0.1 + 0.005 + 1e-9
    assert (len(done), done.off_tick[0]) == (1, tick)  # cut where it stood
    assert core.state is PackMLState.HELD and core.faults & FaultBit.WATCHDOG
    assert core.counters["watchdog_trips"] == 1
    assert write(core, 2, [(0, 0, 0, tick + 10, tick + 20)]) is None
    assert core.counters["not_ready"] == 1 and core.pending() == 0
    heartbeat(core, 999)  # link back: Held clears by itself, the fault stays latched
    core.advance(tick, SPEED, clock.t)
    assert core.state is PackMLState.EXECUTE and core.faults & FaultBit.WATCHDOG
    assert core.write_holding(rm.HR_COMMAND, [PackMLCommand.RESET]) is None
    assert core.faults == 0


def test_a_repeated_heartbeat_value_does_not_feed_the_watchdog() -> None:
    clock = Clock()
    core = make(1000, watchdog_ms=50, clock=clock)
    for step in range(20):
        clock.t = step * 0.01
        heartbeat(core, 7)
        core.advance(1000, SPEED, clock.t)
    assert core.state is PackMLState.HELD


def test_estop_aborts_until_reset_and_start() -> None:
    core = make(1000)
    write(core, 1, [(0, 3, 3, 1000, 5000), (0, 4, 4, 3000, 5000)])
    core.advance(1500, SPEED, 0.02)
    core.set_estop(True)
    done = core.advance(1600, SPEED, 0.024)
    assert core.state is PackMLState.ABORTED and not core.valves_open().any()
    assert (len(done), done.off_tick[0]) == (1, 1500)  # cut at the E-stop; the other never ran
    assert core.counters["cut"] == 2
    cmds = [PackMLCommand.RESET, PackMLCommand.START]
    for cmd in cmds:  # E-stop still active: stays Aborted
        core.write_holding(rm.HR_COMMAND, [cmd])
    assert core.state is PackMLState.ABORTED
    core.set_estop(False)
    core.advance(1700, SPEED, 0.03)
    assert core.state is PackMLState.ABORTED  # latched
    core.write_holding(rm.HR_COMMAND, [PackMLCommand.RESET])
    assert core.state is PackMLState.IDLE and core.faults == 0
    core.write_holding(rm.HR_COMMAND, [PackMLCommand.START])
    assert core.state is PackMLState.EXECUTE


def test_belt_stop_suspends_and_restart_resumes() -> None:
    core = make(1000)
    write(core, 1, [(0, 1, 1, 1010, 1100), (0, 2, 2, 1200, 1300)])
    core.advance(1050, SPEED, 0.01)
    done = core.advance(1050, 0.0, 0.02)  # belt stops mid-pulse
    assert core.state is PackMLState.SUSPENDED
    assert (len(done), done.off_tick[0]) == (1, 1050) and not core.valves_open().any()
    assert write(core, 3, [(0, 3, 3, 1250, 1260)]) is None  # still taking records
    core.advance(1050, SPEED, 0.5)
    assert core.state is PackMLState.EXECUTE
    done = core.advance(1300, SPEED, 0.6)
    assert sorted(done.track_id.tolist()) == [2, 3]


@pytest.mark.parametrize(
    ("cmds", "state"),
    [
        ([PackMLCommand.STOP], PackMLState.STOPPED),
        ([PackMLCommand.STOP, PackMLCommand.RESET], PackMLState.IDLE),
        ([PackMLCommand.STOP, PackMLCommand.RESET, PackMLCommand.START], PackMLState.EXECUTE),
        ([PackMLCommand.HOLD], PackMLState.HELD),
        ([PackMLCommand.HOLD, PackMLCommand.UNHOLD], PackMLState.EXECUTE),
        ([PackMLCommand.SUSPEND], PackMLState.SUSPENDED),
        ([PackMLCommand.ABORT], PackMLState.ABORTED),
        ([PackMLCommand.ABORT, PackMLCommand.CLEAR], PackMLState.STOPPED),
        ([PackMLCommand.START], PackMLState.EXECUTE),  # not valid in Execute: ignored
    ],
)
def test_packml_commands(cmds: list[PackMLCommand], state: PackMLState) -> None:
    core = make(1000)
    write(core, 1, [(0, 1, 1, 1100, 1200)])
    for cmd in cmds:
        assert core.write_holding(rm.HR_COMMAND, [int(cmd)]) is None
    assert core.state is state
    if state not in (PackMLState.EXECUTE, PackMLState.SUSPENDED):
        assert core.pending() == 0


@pytest.mark.parametrize(("address", "values"), [(rm.HR_COMMAND, [42]), (rm.HR_WATCHDOG_MS, [5])])
def test_bad_control_values(address: int, values: list[int]) -> None:
    core = make()
    assert core.write_holding(address, values) is ExcCode.ILLEGAL_VALUE
    assert core.last_reject[1] is RejectReason.BAD_VALUE


def test_input_registers_report_the_state() -> None:
    core = make(0x12345678)
    heartbeat(core, 41)
    write(core, 1, [(0, 17, 18, 0x12345678, 0x12345690)])
    words = core.read_input(0, rm.IR_STATUS_WORDS)
    assert isinstance(words, list)
    assert rm.unpack_u32(words[0], words[1]) == 0x12345678
    assert words[rm.IR_SPEED] == 2500 and words[rm.IR_STATE] == PackMLState.EXECUTE
    assert words[rm.reg("heartbeat_echo").address] == 41
    assert words[rm.IR_N_VALVES] == 80 and words[rm.IR_BOOT_ID] == core.boot_id
    valves = rm.unpack_bits(words[rm.IR_VALVES_OPEN : rm.IR_VALVES_OPEN + 16], 80)
    assert valves.nonzero()[0].tolist() == [17, 18]
    assert core.read_input(rm.IR_VALVE_CYCLES_BASE, 160) is not None
    assert core.read_input(rm.IR_VALVE_CYCLES_BASE + 160, 1) is ExcCode.ILLEGAL_ADDRESS
    assert core.read_input(rm.IR_STATUS_WORDS, 1) is ExcCode.ILLEGAL_ADDRESS


def test_plant_and_modbus_threads_together() -> None:
    core = make(0)
    stop = threading.Event()
    completed: list[int] = []

    def plant() -> None:
        tick = 0
        while not stop.is_set():
            tick += 5
            completed.append(len(core.advance(wrap_tick(tick), SPEED, tick / TICKS_S)))
            core.valves_open()

    th = threading.Thread(target=plant)
    th.start()
    seq, sent = 1, 0
    try:
        while sent < 600:
            state = core.read_input(0, 2)
            assert isinstance(state, list)
            now = rm.unpack_u32(*state)
            rows = [
                (0, k, k, wrap_tick(now + 500 + k), wrap_tick(now + 520 + k)) for k in range(10)
            ]
            assert write(core, seq, rows) is None
            seq, sent = rm.seq_add(seq, 10), sent + 10
    finally:
        stop.set()
        th.join(10)
    completed.append(len(core.advance(wrap_tick(now + 10_000), SPEED, 1e3)))  # flush the rest
    c = core.counters
    assert c["executed"] + c["late"] == sent and core.pending() == 0  # none lost or doubled
    assert sum(completed) == c["executed"]


def test_a_full_table_refuses_more_pulses() -> None:
    core = make(0)
    seq = 1
    while core.pending() < rm.MAX_PENDING:
        n = min(15, rm.MAX_PENDING - core.pending())
        assert write(core, seq, [(0, 1, 1, 1000, 2000)] * n) is None
        seq = rm.seq_add(seq, n)
    assert write(core, seq, [(0, 1, 1, 1000, 2000)] * 2) is None
    assert core.pending() == rm.MAX_PENDING and core.counters["not_ready"] == 2
    assert core.last_reject == (rm.seq_add(seq, 1), RejectReason.TABLE_FULL)
    assert len(core.advance(2000, SPEED, 0.1)) == rm.MAX_PENDING  # and they all run


def naive_open(rows: list[tuple[int, int, int, int, int]], tick: int, n: int) -> np.ndarray:
    """The slow twin: valve v is open iff some run covers v and on <= tick < off."""
    out = np.zeros(n, dtype=bool)
    for act, first, last, on, off in rows:
        for v in range(first, last + 1):
            if act == 0 and on <= tick < off:
                out[v] = True
    return out


pulse_rows = st.lists(
    st.tuples(
        st.just(0), st.integers(0, 15), st.integers(0, 15), st.integers(1, 200), st.integers(1, 60)
    ).map(lambda r: (0, min(r[1], r[2]), max(r[1], r[2]), r[3], r[3] + r[4])),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(rows=pulse_rows, steps=st.lists(st.integers(1, 6), min_size=1, max_size=80),
       base=st.sampled_from([0, (1 << 32) - 100]))  # fmt: skip
def test_execution_matches_the_naive_twin(
    rows: list[tuple[int, int, int, int, int]], steps: list[int], base: int
) -> None:
    core = PlcCore(16)
    core.advance(base, SPEED, 0.0)
    wrapped = [
        (a, f, la, wrap_tick(base + on), wrap_tick(base + off)) for a, f, la, on, off in rows
    ]
    if rows:
        assert write(core, 1, wrapped) is None
    tick, done = 0, []
    for step in steps:
        tick += step
        done.append(core.advance(wrap_tick(base + tick), SPEED, tick / TICKS_S))
        assert np.array_equal(core.valves_open(), naive_open(rows, tick, 16)), tick
    runs = Pulses.concat(done)
    want = sorted(w for w, r in zip(wrapped, rows, strict=True) if r[4] <= tick)
    got = sorted(zip(runs.actuator.tolist(), runs.first_valve.tolist(), runs.last_valve.tolist(),
                     runs.on_tick.tolist(), runs.off_tick.tolist(), strict=True))  # fmt: skip
    assert got == want
