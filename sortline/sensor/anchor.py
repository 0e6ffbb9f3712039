"""Where each piece crossed the bar, fixed once: ``BarAnchors``.

The bar is upstream of the camera (300 mm on the default line), so a track's
footprint must be moved back to where the piece crossed it. A piece lying on
the belt is where the belt carried it; one that slides or rolls is not, and
the only knowledge of how it moved between the bar and the camera is the
track's velocity relative to the belt. Projected back from the *present*
frame with that velocity, a slider is misplaced by everything it slid since:
sliders land slower than the belt and brake at their kinetic friction (0.3-0.45
g) until they rest on it, so by the time a track is decided, near the valve
line, most have stopped (velocity 0) and the back-projection puts their
footprint where they would be had they never slid.

So each track's bar position is also taken once, from the frame in which its
velocity is first trusted (``ready``: enough views behind it, some wholly in
the image): the centre back-projected then, in belt-fixed coordinates (x
across, u = camera y less belt travel), with the track's own centre then (its
*origin*). In every later frame the anchor is used when the track has moved on
the belt since its origin by at least ``min_moved_mm``: it was moving, and
what it did between the bar and its origin is best told by its velocity
then. A track that has not moved keeps the present back-projection: a piece
lying still is where the belt carried it, and its velocity, noisy in its first
views (a tenth of the belt's speed at p95 on the virtual plant), has settled
to nothing. Measured against the plant's truth (``sortline bench
bar_anchor``, ``sortline/sensor/README.md``, session 12): sliders' footprints
55 mm off the bar crossing at the median, 94 mm at p90, per frame; 15 and 34
mm placed so.

A line whose vision gives no sizes (``Detections.axes_mm`` NaN, so no view
counts as wholly in the image) takes no anchors: the per-frame rule.

The placement is one compiled pass (``control.kernels_fusion._place_anchors``:
a binary search per track in the book, which is kept sorted by id; a track
table's ids are ascending, so the new book comes out sorted).
"""

from __future__ import annotations

import numpy as np

from control.kernels_fusion import _place_anchors

__all__ = ["BarAnchors"]


class BarAnchors:
    """Per id (track id on the line, fragment id in evaluation) its anchor, the
    (x, u) belt-fixed centre of its footprint at the bar back-projected at its
    first ready frame, and its origin, its own (x, u) centre then. Ids < 0 are
    never stored; ``min_moved_mm``: how far a track must have moved on the belt
    since its origin for its anchor to be used."""

    def __init__(self, min_moved_mm: float = 5.0) -> None:
        if not min_moved_mm >= 0:
            raise ValueError(f"anchor min_moved_mm must be >= 0, got {min_moved_mm}")
        self.min_moved_mm = float(min_moved_mm)
        self.clear()

    def __len__(self) -> int:
        return self._m

    def clear(self) -> None:
        """Forget every anchor."""
        self._m = 0
        self._ids = np.empty(64, np.int64)  # [:_m] ascending
        self._rows = np.empty((64, 4))  # anchor x, u, origin x, u
        self._next_ids = np.empty(64, np.int64)
        self._next_rows = np.empty((64, 4))

    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids (m,), rows (m, 4): anchor x, u, origin x, u), copies."""
        return self._ids[: self._m].copy(), self._rows[: self._m].copy()

    def place_extents(
        self,
        x0: np.ndarray,
        x1: np.ndarray,
        y0: np.ndarray,
        y1: np.ndarray,
        travel_mm: float,
        ids: np.ndarray,
        now_x: np.ndarray,
        now_u: np.ndarray,
        ready: np.ndarray,
    ) -> None:
        """Back-projected extents (n,) (camera-frame belt mm at belt travel
        ``travel_mm``) moved in place: centred on the id's anchor where it has
        one and has moved from its origin to (``now_x``, ``now_u``), its present
        belt-fixed centre, by ``min_moved_mm``; the size is the present one.
        Ids ``ready`` without an anchor take one now; ids not in ``ids`` are
        forgotten (the caller passes every live id each frame)."""
        n = ids.shape[0]
        if self._next_ids.shape[0] < n:
            cap = max(n, 2 * self._next_ids.shape[0])
            self._next_ids = np.empty(cap, np.int64)
            self._next_rows = np.empty((cap, 4))
        m, ascending = _place_anchors(
            x0, x1, y0, y1, float(travel_mm), np.asarray(ids, np.int64), now_x, now_u,
            np.asarray(ready, np.bool_), self.min_moved_mm, self._ids, self._rows, self._m,
            self._next_ids, self._next_rows,
        )  # fmt: skip
        if not ascending:  # ids not in ascending order (never from a TrackTable)
            order = np.argsort(self._next_ids[:m], kind="stable")
            self._next_ids[:m] = self._next_ids[:m][order]
            self._next_rows[:m] = self._next_rows[:m][order]
        self._ids, self._next_ids = self._next_ids, self._ids
        self._rows, self._next_rows = self._next_rows, self._rows
        self._m = int(m)
