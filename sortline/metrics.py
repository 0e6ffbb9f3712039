"""Latency quantiles of the real-time loop (thread-safe)."""

from __future__ import annotations

import threading
from collections import deque

import numpy as np


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
