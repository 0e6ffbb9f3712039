"""The bridge's time base over real loopback sockets: camera-trigger latches,
timestamped encoder samples, ``poll_now`` and live line parameters."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from core.types import Pulses
from plc import regmap as rm
from plc.bridge import PlcBridge
from sim.vplc.core import PlcCore
from sim.vplc.server import VirtualPlcServer

from .conftest import START_TICK, Line, make_bridge

SPEED = 2500.0


def pulse(on: int, off: int) -> Pulses:
    return Pulses(actuator=[0], first_valve=[3], last_valve=[3], on_tick=[on], off_tick=[off],
                  track_id=[0], fraction=np.zeros(1, dtype=np.int16))  # fmt: skip


def connected(bridges: list[PlcBridge], port: int, **kw: object) -> PlcBridge:
    bridge = make_bridge(port, **kw)
    bridges.append(bridge)
    assert bridge.wait_connected(5.0), bridge.snapshot().last_error
    return bridge


def step_to_triggers(core: PlcCore, n: int) -> list[tuple[int, int]]:
    """Step the belt exactly to the next ``n`` trigger points, as a plant does;
    the (seq, tick) the PLC latched."""
    out = []
    for _ in range(n):
        tick = core.next_trigger_tick()
        assert tick is not None
        core.advance(tick, SPEED, 0.0)
        out.append((core.trigger_seq, tick))
    return out


def test_bridge_reads_the_latches_the_plc_made(line: Line, bridges: list[PlcBridge]) -> None:
    core = line.core
    bridge = connected(bridges, line.server.port, trigger_every_ticks=100, heartbeat_s=5.0)
    assert core.trigger_every_ticks == 100  # written on connect
    assert core.next_trigger_tick() == START_TICK + 100
    assert len(bridge.trigger_latches()) == 0
    made = []
    for burst in (1, 5, 16, 3):  # up to a full latch ring between two reads
        made += step_to_triggers(core, burst)
        t0 = time.monotonic()
        assert bridge.poll_now(2.0)
        lat = bridge.trigger_latches()
        assert list(zip(lat.seq.tolist(), lat.tick.tolist(), strict=True)) == made
        assert lat.t_read_s[-1] >= t0 and np.all(np.diff(lat.t_read_s) >= 0)
    snap = bridge.snapshot()
    assert snap.trigger_seq == core.trigger_seq == 25 and snap.trigger_latches_missed == 0
    with pytest.raises(ValueError, match="read-only"):
        lat.tick[0] = 0


def test_latches_overwritten_before_a_read_are_counted(
    line: Line, bridges: list[PlcBridge]
) -> None:
    bridge = connected(bridges, line.server.port, trigger_every_ticks=50, heartbeat_s=5.0)
    step_to_triggers(line.core, 2)
    assert bridge.poll_now(2.0)
    made = step_to_triggers(line.core, rm.TRIGGER_SLOTS + 4)  # 4 lost in the PLC's ring
    assert bridge.poll_now(2.0)
    lat = bridge.trigger_latches()
    assert lat.seq.tolist() == [1, 2, *[s for s, _ in made[4:]]]
    assert bridge.snapshot().trigger_latches_missed == 4


def test_latch_seq_is_unwrapped_across_the_16_bit_wrap(
    line: Line, bridges: list[PlcBridge]
) -> None:
    bridge = connected(bridges, line.server.port, trigger_every_ticks=1, heartbeat_s=5.0)
    line.core.advance(START_TICK + rm.TRIGGER_SEQ_PERIOD - 3, SPEED, 0.0)
    assert bridge.poll_now(2.0)
    step_to_triggers(line.core, 6)  # PLC seqs 65533, 65534, 65535, then 1, 2, 3
    assert bridge.poll_now(2.0)
    lat = bridge.trigger_latches()
    assert lat.seq[-6:].tolist() == list(range(65533, 65539))
    assert lat.tick[-1] == START_TICK + rm.TRIGGER_SEQ_PERIOD + 3
    assert bridge.snapshot().trigger_seq == 3


def test_a_restarted_plc_gets_its_trigger_back_and_the_history_restarts(
    bridges: list[PlcBridge],
) -> None:
    core = PlcCore(8, watchdog_ms=5000, clock=time.monotonic)
    core.advance(START_TICK, SPEED, 0.0)
    server = VirtualPlcServer(core)
    server.start()
    port = server.port
    try:
        bridge = connected(bridges, port, trigger_every_ticks=100, reconnect_max_s=0.05)
        step_to_triggers(core, 3)
        assert bridge.poll_now(2.0) and len(bridge.trigger_latches()) == 3
        server.stop()
        core = PlcCore(8, watchdog_ms=5000, clock=time.monotonic)  # power cycle: trigger off
        core.advance(START_TICK + 5000, SPEED, 0.0)
        server = VirtualPlcServer(core, port=port)
        server.start()
        end = time.monotonic() + 5.0
        while core.trigger_every_ticks != 100:
            assert time.monotonic() < end, bridge.snapshot().last_error
            time.sleep(0.01)
        made = step_to_triggers(core, 2)
        assert bridge.poll_now(2.0)
        lat = bridge.trigger_latches()
        assert list(zip(lat.seq.tolist(), lat.tick.tolist(), strict=True)) == made
        samples = bridge.encoder_samples()
        assert samples.tick.min() >= START_TICK + 5000  # no count of the old boot left
    finally:
        server.stop()


def test_encoder_samples_carry_time_and_round_trip(line: Line) -> None:
    bridge = line.bridge
    ticks = [START_TICK + 100 * k for k in range(1, 6)]
    for tick in ticks:
        line.core.advance(tick, SPEED, 0.0)
        t_call = time.monotonic()
        assert bridge.poll_now(2.0)
        s = bridge.encoder_samples()
        assert s.tick[-1] == tick and s.t_s[-1] > t_call
    s = bridge.encoder_samples()
    assert 0 < len(s) <= 256
    assert np.all(np.diff(s.t_s) > 0) and np.all(s.rtt_s > 0) and np.all(s.rtt_s < 0.2)
    assert s.t_s[-1] <= time.monotonic()
    assert set(ticks) <= set(s.tick.tolist())
    assert s.tick.dtype == np.int64 and s.t_s.dtype == s.rtt_s.dtype == np.float64
    assert not s.t_s.flags.writeable


def test_pulse_acknowledgements_add_encoder_samples(line: Line, bridges: list[PlcBridge]) -> None:
    bridge = connected(bridges, line.server.port, heartbeat_s=30.0)  # no status reads now
    time.sleep(0.05)
    n0 = len(bridge.encoder_samples())
    line.core.advance(START_TICK + 7, SPEED, 0.0)
    bridge.submit(pulse(START_TICK + 500, START_TICK + 600))
    assert bridge.flush(2.0)
    s = bridge.encoder_samples()
    assert len(s) == n0 + 1 and s.tick[-1] == START_TICK + 7  # from the FC 23 reply


def test_poll_now_sees_a_change_made_just_before(line: Line, bridges: list[PlcBridge]) -> None:
    bridge = connected(bridges, line.server.port, heartbeat_s=30.0)
    line.core.set_estop(True)
    line.core.advance(START_TICK + 42, 0.0, 0.0)
    assert bridge.poll_now(2.0)
    snap = bridge.snapshot()
    assert snap.estop and snap.state == rm.PackMLState.ABORTED
    assert snap.encoder_tick == START_TICK + 42 and snap.speed_mm_s == 0.0


def test_poll_now_is_false_when_the_plc_is_gone(line: Line) -> None:
    line.server.stop()
    t0 = time.monotonic()
    assert not line.bridge.poll_now(0.3)
    assert time.monotonic() - t0 < 1.0


@pytest.mark.parametrize(
    ("mm_per_tick", "lead_ms", "ahead_ticks", "sent"),
    [
        (0.1, 10.0, 200, False),  # 250 ticks of lead: too close
        (0.2, 10.0, 200, True),  # coarser encoder: 125 ticks
        (0.1, 5.0, 200, True),  # shorter valve delay: 125 ticks
        (0.1, 20.0, 400, False),  # longer valve delay: 500 ticks
        (0.1, 0.0, 1, True),
    ],
)
def test_line_params_decide_what_is_late(
    line: Line, bridges: list[PlcBridge], mm_per_tick: float, lead_ms: float, ahead_ticks: int,
    sent: bool,
) -> None:  # fmt: skip
    bridge = connected(bridges, line.server.port, deadline_lead_ms=10.0)
    bridge.set_line_params(mm_per_tick=mm_per_tick, deadline_lead_ms=lead_ms)
    snap = bridge.snapshot()
    assert (snap.mm_per_tick, snap.deadline_lead_ms, snap.params_version) == (
        mm_per_tick, lead_ms, 1,
    )  # fmt: skip
    bridge.submit(pulse(START_TICK + ahead_ticks, START_TICK + ahead_ticks + 50))
    assert bridge.flush(5.0)
    snap = bridge.snapshot()
    assert (snap.pulses_acked, snap.pulses_late) == ((1, 0) if sent else (0, 1))
    assert line.core.pending() == int(sent)


def test_line_params_set_the_estimate_and_count_versions(
    line: Line, bridges: list[PlcBridge]
) -> None:
    b = connected(bridges, line.server.port, heartbeat_s=30.0)  # no reads during the test
    assert b.snapshot().params_version == 0 and b.snapshot().mm_per_tick == 0.1
    b.set_line_params(mm_per_tick=0.1, deadline_lead_ms=1.0)
    b.set_line_params(mm_per_tick=0.25, deadline_lead_ms=2.0)
    snap = b.snapshot()
    assert (snap.params_version, snap.mm_per_tick, snap.deadline_lead_ms) == (2, 0.25, 2.0)
    # 2.5 m/s over 0.1 s = 250 mm = 1000 ticks at 0.25 mm/tick
    est = b.estimate_tick(snap.encoder_t_s + 0.1)
    assert est is not None and abs(est - (START_TICK + 1000)) <= 1


@pytest.mark.parametrize(
    ("mm_per_tick", "lead_ms"), [(0.0, 1.0), (-0.1, 1.0), (0.1, -1.0), (math.nan, 1.0),
                                 (0.1, math.inf)],
)  # fmt: skip
def test_bad_line_params_are_refused(line: Line, mm_per_tick: float, lead_ms: float) -> None:
    with pytest.raises(ValueError, match="mm_per_tick"):
        line.bridge.set_line_params(mm_per_tick=mm_per_tick, deadline_lead_ms=lead_ms)
    assert line.bridge.snapshot().params_version == 0


def test_request_poll_never_blocks_and_needs_a_running_bridge(line: Line) -> None:
    t0 = time.monotonic()
    for _ in range(100):
        line.bridge.request_poll()
    assert time.monotonic() - t0 < 0.1
    line.bridge.stop()
    with pytest.raises(RuntimeError, match="not running"):
        line.bridge.request_poll()


def test_record_types_check_shapes_and_index_by_mask() -> None:
    from plc.bridge import EncoderSamples, TriggerLatches

    s = EncoderSamples(t_s=[1.0, 2.0, 3.0], tick=[10, 20, 30], rtt_s=[0.001] * 3)
    recent = s[s.t_s > 1.5]
    assert len(recent) == 2 and recent.tick.tolist() == [20, 30] and len(s[:0]) == 0
    with pytest.raises(ValueError, match="tick: 2 rows, want 3"):
        EncoderSamples(t_s=[1.0, 2.0, 3.0], tick=[1, 2], rtt_s=[0.0] * 3)
    lat = TriggerLatches(seq=[1, 2], tick=[100, 200], t_read_s=[0.5, 0.6])
    assert lat[lat.seq == 2].tick.tolist() == [200]
    assert len(TriggerLatches(seq=[], tick=[], t_read_s=[])) == 0
