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
to nothing. Measured against the plant's truth (``sortline/sensor/README.md``,
session 12): sliders' footprints 49 mm off the bar crossing at the median,
92 mm at p90, per frame; 11 and 24 mm anchored.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BarAnchors", "anchor_extents"]


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
        self._ids = np.empty(0, np.int64)  # sorted
        self._rows = np.empty((0, 4))  # anchor x, u, origin x, u

    def __len__(self) -> int:
        return int(self._ids.size)

    def clear(self) -> None:
        """Forget every anchor."""
        self._ids = np.empty(0, np.int64)
        self._rows = np.empty((0, 4))

    def place(
        self, ids: np.ndarray, centre_xu: np.ndarray, now_xu: np.ndarray, ready: np.ndarray
    ) -> np.ndarray:
        """(n, 2) bar centres to use for ``ids`` (n,): ``centre_xu`` (n, 2), the
        present back-projection, unless the id has an anchor and has moved from
        its origin to ``now_xu`` (n, 2, its present centre) by at least
        ``min_moved_mm``. Rows ``ready`` (n,) without an anchor store one now.
        Ids not in ``ids`` are forgotten (the caller passes every live id each
        frame)."""
        ids = np.asarray(ids, np.int64)
        centre = np.asarray(centre_xu, np.float64).reshape(ids.size, 2)
        now = np.asarray(now_xu, np.float64).reshape(ids.size, 2)
        pos = np.searchsorted(self._ids, ids)
        inside = pos < self._ids.size
        have = np.zeros(ids.size, np.bool_)
        have[inside] = self._ids[pos[inside]] == ids[inside]
        rows = np.empty((ids.size, 4))
        rows[have] = self._rows[pos[have]]
        new = np.asarray(ready, np.bool_) & ~have & (ids >= 0)
        rows[new, :2] = centre[new]
        rows[new, 2:] = now[new]
        moved = np.hypot(now[:, 0] - rows[:, 2], now[:, 1] - rows[:, 3])
        use = (have | new) & (moved >= self.min_moved_mm)
        out = centre.copy()
        out[use] = rows[use, :2]
        keep = have | new
        order = np.argsort(ids[keep], kind="stable")
        self._ids = ids[keep][order]
        self._rows = rows[keep][order]
        return out


def anchor_extents(
    x0: np.ndarray,
    x1: np.ndarray,
    y0: np.ndarray,
    y1: np.ndarray,
    travel_mm: float,
    ids: np.ndarray,
    now_xu: np.ndarray,
    ready: np.ndarray,
    anchors: BarAnchors,
) -> None:
    """Back-projected extents (camera-frame belt mm at belt travel
    ``travel_mm``) moved, in place, so that each footprint is centred where
    ``anchors.place`` says (``now_xu`` (n, 2): each track's present belt-fixed
    centre): the size is the present one."""
    cx = 0.5 * (x0 + x1)
    cu = 0.5 * (y0 + y1) - travel_mm
    xu = anchors.place(ids, np.stack([cx, cu], axis=1), now_xu, ready)
    dx = xu[:, 0] - cx
    du = xu[:, 1] - cu
    x0 += dx
    x1 += dx
    y0 += du
    y1 += du
