"""How full the belt is, as the camera sees it: the operator's load gauge.

Purity at load is lost to touching fragments (issue 15; ``bench/README.md``,
"what merge rate the targets ask of a segmenter"): two pieces in one segment
go to one bin. Two shares, needing no ground truth, show it live:

- **covered**: the share of the camera's view covered by fragments (sum of
  the segments' areas over the view's area; overlapping pieces count once,
  as seen). Sorters rate their load by it (belt occupancy). On the virtual
  plant (25 mm shred, 2.5 m/s, tuning seed 3002): 0.01 at 50 fragments/s,
  0.04 at 250/s, 0.09 at 500/s, 0.17 at 1,000/s, 0.29 at 2,000/s (the report
  card's purity there, seed 101: 0.92, 0.86, 0.78, 0.70, 0.59); ``crowded``
  0.10, ``default`` 0.02. The ``belt_overfed`` warning (``[alarms]
  overfed_covered_share``, 0.20 by default: beyond the issue's 1,000/s) says
  the line is fed beyond its rating: slow the feeder.
- **merged**: the share of segments vision flags as probable merges
  (``Detections.merged``: larger than the running median and not solid). It
  rises with the load (shred above: 0.05, 0.07, 0.08, 0.13, 0.16) but its
  floor is the material's, not the load's: large ragged single pieces are
  flagged too (``default`` 0.07, ``dirty`` 0.09 on a belt 1 % covered). A
  gauge to watch, not an alarm.

``BeltLoadListener`` (a frame-loop listener: a few additions per cycle)
counts segments and flagged merges since start, and per block of
``window_frames`` frames publishes a ``BeltLoadReading``. A block of fewer
than ``min_segments`` segments is published too (an emptying belt clears the
alarm) but ``judged`` is False: too few to say.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import numpy as np

from sortline.listeners import Cycle

__all__ = ["BeltLoadListener", "BeltLoadReading"]


class BeltLoadReading(NamedTuple):
    merged_share: float  # segments flagged as probable merges / segments, last block
    covered_share: float  # mean share of the view covered by segments, last block
    segments: int  # in the last block
    frames: int  # in the last block
    judged: bool  # the block held at least ``min_segments`` segments


class BeltLoadListener:
    """Segments and flagged merges per frame; ``reading`` per block (None until
    the first full block)."""

    def __init__(self, view_area_mm2: float, window_frames: int, min_segments: int) -> None:
        if view_area_mm2 <= 0 or window_frames < 1 or min_segments < 1:
            raise ValueError(
                f"belt load: view area {view_area_mm2} mm2, window {window_frames} frames and "
                f"min segments {min_segments} must be positive"
            )
        self.view_area_mm2 = float(view_area_mm2)
        self.window_frames = window_frames
        self.min_segments = min_segments
        self.reading: BeltLoadReading | None = None
        self._lock = threading.Lock()  # the totals: the loop writes, the API reads
        self._segments_total = 0
        self._merged_total = 0
        self._frames = self._segments = self._merged = 0
        self._covered = 0.0

    def on_cycle(self, cycle: Cycle) -> None:
        d = cycle.detections
        area = np.asarray(d.area_mm2, dtype=np.float64)
        self.add(len(area), int(np.count_nonzero(d.merged)), float(area[np.isfinite(area)].sum()))

    def add(self, segments: int, merged: int, area_mm2: float) -> None:
        """One frame: its segments, how many are flagged merges, their area."""
        with self._lock:
            self._segments_total += segments
            self._merged_total += merged
        self._frames += 1
        self._segments += segments
        self._merged += merged
        self._covered += min(area_mm2 / self.view_area_mm2, 1.0)
        if self._frames < self.window_frames:
            return
        self.reading = BeltLoadReading(
            merged_share=self._merged / max(self._segments, 1),
            covered_share=self._covered / self._frames,
            segments=self._segments,
            frames=self._frames,
            judged=self._segments >= self.min_segments,
        )
        self._frames = self._segments = self._merged = 0
        self._covered = 0.0

    def totals(self) -> tuple[int, int]:
        """(segments, of them flagged merges) since start."""
        with self._lock:
            return self._segments_total, self._merged_total

    def close(self) -> None:
        pass
