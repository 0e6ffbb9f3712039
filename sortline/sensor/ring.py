"""``RowRing``: the latest sensor rows by encoder count, baseline subtracted.

One writer (the reader thread) and one reader (the frame loop's fusion). The
writer fills slot ``count % capacity`` and then publishes ``count``; a reader
takes ``count`` once and uses only rows ``count - capacity + guard .. count - 1``,
slots the writer will not touch before the reader is done (the guard covers
the rows that can arrive while fusion runs). Nothing is copied per frame.

Baseline: per channel and component, an average that follows the quiet rows
only (a row whose value is within ``gate`` of the baseline moves it by
``alpha`` of the difference): slow drift is tracked and subtracted, a
fragment passing (far above the gate) is not learnt into it.
"""

from __future__ import annotations

import numpy as np

from core.sensor_rows import SensorRows
from core.ticks import tick_diff

__all__ = ["RowRing"]


class RowRing:
    """capacity rows of ``channels``; ``guard``: rows kept out of reach of readers."""

    def __init__(
        self,
        channels: int,
        capacity: int = 4096,
        *,
        gate: float = 25.0,
        alpha: float = 0.02,
        guard: int = 256,
    ) -> None:
        if channels < 1 or capacity < 2 * guard or guard < 1:
            raise ValueError(
                f"RowRing: channels {channels} >= 1 and capacity {capacity} >= 2 x guard "
                f"{guard} >= 2 needed"
            )
        self.channels = channels
        self.capacity = capacity
        self.guard = guard
        self.gate = gate
        self.alpha = alpha
        self.tick = np.zeros(capacity, np.int64)
        self.in_phase = np.zeros((capacity, channels), np.float32)
        self.quadrature = np.zeros((capacity, channels), np.float32)
        self.baseline = np.zeros((2, channels), np.float64)
        self.count = 0  # rows written so far (published last)
        self.last_tick_u32: int | None = None
        self.last_tick = 0  # unwrapped count of the newest row

    # ---- writer -------------------------------------------------------------------------
    def unwrap(self, tick_u32: int) -> int:
        """The unwrapped count nearest the newest row's (the ring's count space)."""
        if self.last_tick_u32 is None:
            return int(tick_u32)
        return self.last_tick + tick_diff(int(tick_u32), self.last_tick_u32)

    def append(self, tick_u32: np.ndarray, in_phase: np.ndarray, quadrature: np.ndarray) -> int:
        """Add rows (oldest first) not older than the newest kept; returns rows added."""
        added = 0
        for k in range(tick_u32.shape[0]):
            t = self.unwrap(int(tick_u32[k]))
            if self.count and t <= self.last_tick:
                continue  # a duplicate or a late row: the ring stays in count order
            raw = np.stack([in_phase[k], quadrature[k]]).astype(np.float64)
            if self.count == 0:
                self.baseline[:] = raw
            d = raw - self.baseline
            quiet = np.abs(d) < self.gate
            self.baseline += np.where(quiet, self.alpha * d, 0.0)
            slot = self.count % self.capacity
            self.tick[slot] = t
            self.in_phase[slot] = d[0]
            self.quadrature[slot] = d[1]
            self.last_tick_u32 = int(tick_u32[k]) % (1 << 32)
            self.last_tick = t
            self.count += 1  # published after the slot is written
            added += 1
        return added

    # ---- readers ------------------------------------------------------------------------
    def window(self) -> tuple[int, int]:
        """(first, end) logical row indices safe to read now."""
        end = self.count
        return max(0, end - self.capacity + self.guard), end

    def rows(self, last: int | None = None) -> SensorRows:
        """A copy of the safe rows (the newest ``last`` of them), for tests and tools."""
        first, end = self.window()
        if last is not None:
            first = max(first, end - last)
        idx = np.arange(first, end) % self.capacity
        return SensorRows(self.tick[idx], self.in_phase[idx], self.quadrature[idx])
