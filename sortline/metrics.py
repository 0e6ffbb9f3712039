"""Small thread-safe helpers of the real-time loop: latency quantiles and a
one-slot frame mailbox that drops (and counts) rather than queues."""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


class LatencyWindow:
    """The last ``size`` samples in milliseconds; quantiles on demand."""

    def __init__(self, size: int = 4096) -> None:
        self._samples: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()
        self.count = 0

    def add(self, ms: float) -> None:
        with self._lock:
            self._samples.append(ms)
            self.count += 1

    def quantiles_ms(self) -> dict[str, float | None]:
        with self._lock:
            data = np.fromiter(self._samples, dtype=np.float64)
        if data.size == 0:
            return {"p50": None, "p99": None, "max": None}
        p50, p99 = np.percentile(data, [50, 99])
        return {"p50": round(float(p50), 3), "p99": round(float(p99), 3), "max": float(data.max())}


class Mailbox(Generic[T]):
    """One slot between a producer and the real-time loop.

    ``put`` never blocks: an item still waiting is replaced and counted as
    dropped (a late frame is dropped, never queued without bound).
    """

    def __init__(self) -> None:
        self._item: T | None = None
        self._cond = threading.Condition()
        self.dropped = 0
        self._closed = False

    def put(self, item: T) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify()

    def get(self, timeout_s: float) -> T | None:
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout_s)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
