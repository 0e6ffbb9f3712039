"""The ack-latency histogram: bucket semantics as a table, thread safety, and
the bridge timing every acknowledged batch against a virtual PLC."""

from __future__ import annotations

import math
import threading

import pytest

from plc import regmap as rm
from plc.bridge_latency import ACK_BUCKETS_S, LatencyHistogram

from .conftest import START_TICK, Line
from .test_bridge_pulses import pulses

BOUNDS = (0.001, 0.01, 0.1)


@pytest.mark.parametrize(
    ("values", "cumulative"),
    [
        ([], (0, 0, 0, 0)),
        ([0.0], (1, 1, 1, 1)),
        ([0.001], (1, 1, 1, 1)),  # equal to a bound: in that bound's bucket (le)
        ([0.0011], (0, 1, 1, 1)),
        ([0.1, 0.5, 7.0], (0, 0, 1, 3)),
        ([0.0005, 0.005, 0.05, 5.0], (1, 2, 3, 4)),
    ],
)
def test_buckets_are_cumulative_le(values: list[float], cumulative: tuple[int, ...]) -> None:
    h = LatencyHistogram(BOUNDS)
    for v in values:
        h.observe(v)
    snap = h.snapshot()
    assert snap.cumulative == cumulative
    assert snap.count == len(values)
    assert math.isclose(snap.sum_s, sum(values))


@pytest.mark.parametrize("bounds", [(), (0.1, 0.1), (0.2, 0.1), (0.1, math.inf)])
def test_bad_bounds_are_refused(bounds: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="LatencyHistogram"):
        LatencyHistogram(bounds)


def test_observations_from_many_threads_all_count() -> None:
    h = LatencyHistogram(ACK_BUCKETS_S)
    per_thread, n_threads = 5000, 4

    def work() -> None:
        for i in range(per_thread):
            h.observe(i * 1e-4)

    threads = [threading.Thread(target=work) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert h.snapshot().count == per_thread * n_threads


def test_every_acknowledged_batch_is_timed(line: Line) -> None:
    assert line.bridge.ack_latency.snapshot().count == 0
    n_batches = 6
    for i in range(n_batches):  # one record each: one batch per submit
        line.bridge.submit(
            pulses([(0, i, i, START_TICK + 100 + 10 * i, START_TICK + 105 + 10 * i)])
        )
        assert line.bridge.flush(5.0)
    snap = line.bridge.ack_latency.snapshot()
    assert line.bridge.snapshot().pulses_acked == n_batches
    assert snap.count == n_batches
    assert 0 < snap.sum_s < n_batches * 1.0  # loopback: far below a second each


def test_a_large_submit_is_timed_per_batch(line: Line) -> None:
    n = 40  # more than one FC 23 request holds
    rows = [(0, i % 80, i % 80, START_TICK + 3 * i + 1, START_TICK + 3 * i + 2) for i in range(n)]
    line.bridge.submit(pulses(rows))
    assert line.bridge.flush(5.0)
    assert line.bridge.snapshot().pulses_acked == n
    batches = line.bridge.ack_latency.snapshot().count
    assert math.ceil(n / rm.RECORDS_PER_WRITE) <= batches <= n
