"""Pulses submitted through the bridge fire exactly between their ticks
(virtual PLC over real loopback sockets; the test drives the encoder)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from core.types import Pulses
from plc import regmap as rm

from .conftest import START_TICK, Line


def pulses(rows: list[tuple[int, int, int, int, int]]) -> Pulses:
    a = np.array(rows, dtype=np.int64).reshape(-1, 5)
    return Pulses(
        actuator=a[:, 0], first_valve=a[:, 1], last_valve=a[:, 2], on_tick=a[:, 3],
        off_tick=a[:, 4], track_id=np.arange(len(a)), fraction=np.zeros(len(a), dtype=np.int16),
    )  # fmt: skip


def expected_open(rows: list[tuple[int, int, int, int, int]], tick: int, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    for act, first, last, on, off in rows:
        if act == 0 and on <= tick < off:
            out[first : last + 1] = True
    return out


T = START_TICK
CASES = {
    "one": [(0, 3, 5, T + 20, T + 60)],
    "overlap": [(0, 0, 9, T + 10, T + 40), (0, 5, 12, T + 30, T + 90)],
    "edges_of_bar": [(0, 0, 0, T + 1, T + 2), (0, 79, 79, T + 5, T + 6)],
    "diverter": [(1, 0, 0, T + 15, T + 50), (0, 40, 41, T + 15, T + 16)],
    "many": [(0, i % 80, i % 80, T + 3 * i + 1, T + 3 * i + 7) for i in range(40)],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_pulse_fires_exactly_between_its_ticks(line: Line, name: str) -> None:
    rows = CASES[name]
    line.bridge.submit(pulses(rows))
    assert line.bridge.flush(5.0)
    snap = line.bridge.snapshot()
    assert snap.pulses_acked == len(rows), snap
    assert snap.pulses_late == snap.pulses_rejected_by_plc == 0
    done = []
    last_off = max(r[4] for r in rows)
    for tick in range(START_TICK, last_off + 2):
        done.append(line.core.advance(tick, 2500.0, tick / 25_000))
        assert np.array_equal(line.core.valves_open(), expected_open(rows, tick, 80)), tick
        want_div = [r[0] == 1 and r[3] <= tick < r[4] for r in rows]
        assert line.core.diverters_on()[0] == any(want_div), tick
    runs = Pulses.concat(done)
    assert len(runs) == len(rows)
    got = sorted(zip(runs.actuator.tolist(), runs.first_valve.tolist(), runs.last_valve.tolist(),
                     runs.on_tick.tolist(), runs.off_tick.tolist(), strict=True))  # fmt: skip
    assert got == sorted(rows)
    assert line.core.counters["executed"] == len(rows)


def test_sequence_numbers_follow_the_ack(line: Line) -> None:
    for k in range(3):
        line.bridge.submit(pulses([(0, k, k, START_TICK + 100 + k, START_TICK + 200)]))
        assert line.bridge.flush(5.0)
    snap = line.bridge.snapshot()
    assert snap.acked_seq == 3 == line.core.acked_seq
    assert snap.pulses_sent == snap.pulses_acked == 3


def test_more_than_a_ring_of_pulses(line: Line) -> None:
    rows = [
        (0, i % 80, i % 80, START_TICK + 10 + i, START_TICK + 20 + i)
        for i in range(3 * rm.RING_SLOTS + 5)
    ]
    line.bridge.submit(pulses(rows))
    assert line.bridge.flush(5.0)
    assert line.bridge.snapshot().pulses_acked == len(rows)
    assert line.core.pending() == len(rows)


def test_bridge_config_from_the_line_config() -> None:
    from plc.bridge import BridgeConfig
    from sortline.config import load_config

    cfg = load_config()
    b = BridgeConfig.from_line_config(cfg.plc, cfg.belt.mm_per_tick, lead_ms=8.0)
    assert (b.transport, b.host, b.port, b.device_id) == ("tcp", "127.0.0.1", 5020, 1)
    assert (b.timeout_s, b.retries, b.heartbeat_s, b.reconnect_max_s) == (0.04, 1, 0.05, 2.0)
    assert (b.deadline_lead_ms, b.mm_per_tick, b.watchdog_ms) == (8.0, 0.1, 300.0)
    assert BridgeConfig.from_line_config(cfg.plc, 0.1, 8.0, port=1234).port == 1234


@pytest.mark.parametrize(
    "kw",
    [{"transport": "udp"}, {"port": 70000}, {"device_id": 0}, {"timeout_s": 0},
     {"mm_per_tick": 0}, {"retries": -1}, {"max_queue": 0}, {"watchdog_ms": 5.0}],
)  # fmt: skip
def test_bad_bridge_config(kw: dict[str, object]) -> None:
    from plc.bridge import BridgeConfig

    with pytest.raises(ValueError, match="BridgeConfig"):
        BridgeConfig(**kw)  # type: ignore[arg-type]


def test_submit_before_start_is_an_error() -> None:
    from plc.bridge import BridgeConfig, PlcBridge

    with pytest.raises(RuntimeError, match="not running"):
        PlcBridge(BridgeConfig()).submit(pulses([(0, 1, 1, 10, 20)]))


def test_plc_counters_and_valve_cycles_in_the_snapshot(line: Line) -> None:
    rows = [(0, 2, 4, T + 5, T + 10), (0, 4, 4, T + 20, T + 30), (0, 79, 79, T + 1, T + 2)]
    line.bridge.submit(pulses(rows))
    assert line.bridge.flush(5.0)
    line.core.advance(T + 50, 2500.0, 0.1)
    end = time.monotonic() + 5.0
    while time.monotonic() < end:
        snap = line.bridge.snapshot()
        if snap.plc_counters.get("pulses_executed") == 3 and snap.valve_cycles[4] == 2:
            break
        time.sleep(0.02)
    assert snap.plc_counters["pulses_executed"] == 3
    assert snap.plc_counters["rejected_late"] == snap.plc_counters["rejected_malformed"] == 0
    assert len(snap.valve_cycles) == 80
    want = [0] * 80
    for v in (2, 3, 4, 4, 79):
        want[v] += 1
    assert list(snap.valve_cycles) == want


def test_pulses_across_the_encoder_wrap_over_the_bridge() -> None:
    from sim.vplc.core import PlcCore
    from sim.vplc.server import VirtualPlcServer

    from .conftest import make_bridge

    base = (1 << 32) - 40
    core = PlcCore(80, watchdog_ms=5000, clock=time.monotonic)
    core.advance(base, 2500.0, 0.0)
    rows = [(0, 1, 2, base + 10, base + 60), (0, 5, 5, base + 45, base + 50)]
    wrapped = [(a, f, la, on % (1 << 32), off % (1 << 32)) for a, f, la, on, off in rows]
    with VirtualPlcServer(core) as server:
        bridge = make_bridge(server.port)
        try:
            assert bridge.wait_connected(5.0)
            bridge.submit(pulses(wrapped))
            assert bridge.flush(5.0) and bridge.snapshot().pulses_acked == 2
        finally:
            bridge.stop()
    for tick in range(base, base + 70):
        core.advance(tick % (1 << 32), 2500.0, 0.0)
        assert np.array_equal(core.valves_open(), expected_open(rows, tick, 80)), tick
    assert core.counters["executed"] == 2


def test_submit_from_several_threads(line: Line) -> None:
    import threading

    def producer(k: int) -> None:
        for i in range(50):
            line.bridge.submit(pulses([(0, k, k, T + 1000 + i, T + 1100 + i)]))

    threads = [threading.Thread(target=producer, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert line.bridge.flush(10.0)
    snap = line.bridge.snapshot()
    assert snap.pulses_submitted == snap.pulses_acked == 200
    assert line.core.pending() == 200 and line.core.acked_seq == 200
