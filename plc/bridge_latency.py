"""A fixed-bucket latency histogram, cheap enough for a send path or a frame loop.

``LatencyHistogram.observe`` finds the bucket outside the lock (a bisect over
a dozen bounds) and holds the lock for two additions; ``snapshot`` copies the
counts under it. The bridge times each batch of ring records from its write
request to the acknowledgement that settles it (``PlcBridge.ack_latency``);
sortline times its frames with the same class.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import math
import threading
from collections.abc import Sequence

__all__ = ["ACK_BUCKETS_S", "HistogramSnapshot", "LatencyHistogram"]

# write request -> settling acknowledgement: a loopback round trip is ~1 ms, a
# PLC that takes the records on a later scan adds its scan time (1..20 ms)
ACK_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


@dataclasses.dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    """upper_s: the finite bucket bounds (s, increasing); cumulative: per bound,
    then +Inf, the observations <= it (len(upper_s) + 1, non-decreasing);
    sum_s: their total (s); count: cumulative[-1]."""

    upper_s: tuple[float, ...]
    cumulative: tuple[int, ...]
    sum_s: float

    @property
    def count(self) -> int:
        return self.cumulative[-1]


class LatencyHistogram:
    """Thread-safe counts of durations (s) per bucket ``le`` bound (Prometheus
    semantics: a value equal to a bound falls in that bound's bucket)."""

    def __init__(self, upper_s: Sequence[float]) -> None:
        bounds = tuple(float(b) for b in upper_s)
        if not bounds or any(not math.isfinite(b) for b in bounds):
            raise ValueError("LatencyHistogram: needs finite bucket bounds")
        if any(b >= c for b, c in itertools.pairwise(bounds)):
            raise ValueError("LatencyHistogram: bucket bounds must increase")
        self.upper_s = bounds
        self._counts = [0] * (len(bounds) + 1)  # per bucket, the last one +Inf
        self._sum_s = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        i = bisect.bisect_left(self.upper_s, seconds)
        with self._lock:
            self._counts[i] += 1
            self._sum_s += seconds

    def snapshot(self) -> HistogramSnapshot:
        with self._lock:
            counts = list(self._counts)
            sum_s = self._sum_s
        cumulative, total = [], 0
        for n in counts:
            total += n
            cumulative.append(total)
        return HistogramSnapshot(self.upper_s, tuple(cumulative), sum_s)
