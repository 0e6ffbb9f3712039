"""Which detections of a frame are worth a crop: classify fragments, not views.

A fragment stays in view for about 15 frames; classifying every view makes the
classifier's cost follow fragments in view x frames. ``CropPlanner`` follows
each segment from frame to frame on the belt (its belt position moved by the
encoder's travel; mutual nearest neighbours within a gate, similar area) and
chooses the views to classify:

1. views of new segments and of segments with fewer than ``views_per_track``
   classified views, fully visible ones (not cut by the image's top or bottom
   edge); a partial view only while the fragment has no classified view (one
   that is never seen whole, or leaves before it is, still gets one);
2. segments whose evidence so far is uncertain (combined probability below
   ``confident_at``), up to ``max_views`` views;
3. at most ``budget`` crops per frame, in that order (a probable merge after a
   clean segment, fewer classified views first, then the least confident);
   with ``frame_ms`` set (session 15; off by default, inexact: the classes then
   depend on the machine), fewer when the frame has already spent its time: the
   crops that fit in ``frame_ms`` of vision CPU at ``crop_ms`` a crop after
   what the frame spent before the choice and ``reserve_ms`` (at least
   ``min_crops``; ``VisionPipeline`` passes the cap to ``CropPlanner.plan``).

A view not chosen carries no class evidence (class_prob NaN, class_id -1),
never a copy of an earlier one, so the tracker combines only real views. A
segment the classifier rejected as "not a fragment" stays rejected while it is
followed, without a new crop. ``mode = "every"`` classifies every view (the
baseline).

The association here is vision's own bookkeeping (which segment was which a
frame ago); the controller's tracker does its own from the detections.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from core.ticks import tick_diff
from vision.kernels_track import _mutual_nearest

__all__ = ["CropPlanner", "CropPolicy", "Plan"]

_FLOOR = 1e-4  # probability floor of the evidence (as the tracker's)


@dataclasses.dataclass(frozen=True, slots=True)
class CropPolicy:
    mode: Literal["every", "tracks"] = "tracks"
    views_per_track: int = 3  # classified views every fragment gets when it can
    max_views: int = 6  # ... and at most this many while it stays uncertain
    confident_at: float = 0.9  # combined probability that needs no more views
    budget: int = 32  # crops per frame at most (48 before session 11: bench/README.md)
    gate_mm: float = 2.0  # association gate, plus a quarter of the fragment's size
    area_ratio: float = 1.3  # a segment whose area changed more than this is new
    edge_px: float = 2.0  # a bbox this close to the top or bottom edge is a partial view
    # a frame's own budget (session 15, off: 0): the crops that fit in frame_ms of vision
    # CPU after what the frame spent before the choice and reserve_ms (the classifier's
    # fixed cost, the detections), crop_ms a crop (cut + classified), at least min_crops
    frame_ms: float = 0.0
    crop_ms: float = 0.1
    reserve_ms: float = 1.0
    min_crops: int = 8

    def __post_init__(self) -> None:
        if self.mode not in ("every", "tracks"):
            raise ValueError(f"CropPolicy.mode must be 'every' or 'tracks', got {self.mode!r}")
        if not 1 <= self.views_per_track <= self.max_views:
            raise ValueError(
                f"CropPolicy: need 1 <= views_per_track ({self.views_per_track}) "
                f"<= max_views ({self.max_views})"
            )
        if self.budget < 1:
            raise ValueError(f"CropPolicy.budget must be >= 1, got {self.budget}")
        if not self.gate_mm > 0 or not self.area_ratio > 1:
            raise ValueError("CropPolicy: gate_mm must be > 0 and area_ratio > 1")
        if not self.frame_ms >= 0 or not self.crop_ms > 0 or not self.reserve_ms >= 0:
            raise ValueError(
                f"CropPolicy: need frame_ms >= 0 ({self.frame_ms}), crop_ms > 0 "
                f"({self.crop_ms}) and reserve_ms >= 0 ({self.reserve_ms})"
            )
        if self.min_crops < 0:
            raise ValueError(f"CropPolicy.min_crops must be >= 0, got {self.min_crops}")

    def frame_cap(self, spent_ms: float) -> int | None:
        """The crops a frame that has spent ``spent_ms`` of vision CPU may still cut
        (``frame_ms``; None when off)."""
        if self.frame_ms <= 0:
            return None
        return max(self.min_crops, int((self.frame_ms - spent_ms - self.reserve_ms) / self.crop_ms))


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """One frame's choice. ``classify``: (M,) int64 rows to crop, ascending;
    ``prev``: (N,) int64 row of each segment in the previous frame's state, -1 new;
    ``rejected``: (N,) bool followed from a segment the classifier rejected."""

    classify: np.ndarray
    prev: np.ndarray
    rejected: np.ndarray


class CropPlanner:
    """Frame-to-frame bookkeeping of segments and the crop choice (see module doc).

    mm_per_tick: belt travel per encoder count; height_px: image rows (edges).
    """

    def __init__(
        self, policy: CropPolicy, mm_per_tick: float, height_px: int, n_classes: int
    ) -> None:
        if not mm_per_tick > 0:
            raise ValueError(f"mm_per_tick must be > 0, got {mm_per_tick}")
        self.policy = policy
        self.mm_per_tick = float(mm_per_tick)
        self.height_px = float(height_px)
        self.n_classes = int(n_classes)
        self.reset()

    def reset(self) -> None:
        k = self.n_classes
        self._tick: int | None = None
        self._xy = np.zeros((0, 2))
        self._area = np.zeros(0)
        self._views = np.zeros(0, np.int64)
        self._logp = np.zeros((0, k))
        self._rejected = np.zeros(0, np.bool_)
        self.crops = 0  # crops chosen since start
        self.views = 0  # views seen since start

    # ------------------------------------------------------------------ plan
    def plan(
        self,
        tick: int,
        centroid_mm: np.ndarray,
        extent_mm: np.ndarray,
        area_mm2: np.ndarray,
        bbox_px: np.ndarray,
        merged: np.ndarray,
        cap: int | None = None,
    ) -> Plan:
        """Associate this frame's segments with the last frame's and choose crops
        (at most ``cap`` too when given: ``CropPolicy.frame_cap``)."""
        n = centroid_mm.shape[0]
        prev = self._associate(tick, centroid_mm, extent_mm, area_mm2)
        self.views += n
        if self.policy.mode == "every" or n == 0:
            rows = np.arange(n, dtype=np.int64)
            self.crops += n
            return Plan(rows, prev, np.zeros(n, np.bool_))
        p = self.policy
        known = prev >= 0
        views = np.zeros(n, np.int64)
        views[known] = self._views[prev[known]]
        rejected = np.zeros(n, np.bool_)
        rejected[known] = self._rejected[prev[known]]
        conf = np.zeros(n)
        if known.any():
            conf[known] = self._confidence(prev[known])
        y0, y1 = bbox_px[:, 1], bbox_px[:, 3]
        cut_top = y0 <= p.edge_px
        cut_bottom = y1 >= self.height_px - p.edge_px
        full = ~(cut_top | cut_bottom)
        want = ~rejected & (
            (full & (views < p.views_per_track))
            | (full & (views < p.max_views) & (conf < p.confident_at))
            | (views == 0)
        )
        rows = np.flatnonzero(want)
        budget = p.budget if cap is None else min(p.budget, cap)
        if rows.size > budget:
            # fewer classified views first, clean before merged, then least confident
            key = np.lexsort((conf[rows], merged[rows], views[rows]))
            rows = np.sort(rows[key[:budget]])
        self.crops += int(rows.size)
        return Plan(rows.astype(np.int64), prev, rejected)

    def _associate(
        self, tick: int, centroid_mm: np.ndarray, extent_mm: np.ndarray, area_mm2: np.ndarray
    ) -> np.ndarray:
        """(N,) previous row of each segment (-1 new): mutual nearest neighbours in belt
        coordinates after the belt's travel, within the gate and of similar area."""
        n, m = centroid_mm.shape[0], self._xy.shape[0]
        prev = np.full(n, -1, np.int64)
        last, self._tick = self._tick, int(tick)
        if n == 0 or m == 0 or last is None:
            return prev
        travel = tick_diff(int(tick), last) * self.mm_per_tick
        c = np.asarray(centroid_mm, np.float64)
        near, back, d_near = _mutual_nearest(
            np.ascontiguousarray(c[:, 0]), np.ascontiguousarray(c[:, 1]),
            np.ascontiguousarray(self._xy[:, 0]), self._xy[:, 1] + travel,
        )  # fmt: skip
        i = np.arange(n)
        size = np.maximum(extent_mm[:, 1] - extent_mm[:, 0], extent_mm[:, 3] - extent_mm[:, 2])
        gate = self.policy.gate_mm + 0.25 * size
        ratio = np.maximum(area_mm2, 1e-6) / np.maximum(self._area[near], 1e-6)
        r = self.policy.area_ratio
        ok = (back[near] == i) & (d_near <= gate) & (ratio <= r) & (ratio >= 1.0 / r)
        prev[ok] = near[ok]
        return prev

    def _confidence(self, rows: np.ndarray) -> np.ndarray:
        """Combined probability (normalised geometric mean) of the top class; 0 without views."""
        v = self._views[rows]
        logp = self._logp[rows] / np.maximum(v, 1)[:, None]
        logp -= logp.max(axis=1, keepdims=True)
        e = np.exp(logp)
        top = e.max(axis=1) / e.sum(axis=1)
        return np.where(v > 0, top, 0.0)

    # ---------------------------------------------------------------- update
    def update(
        self,
        plan: Plan,
        centroid_mm: np.ndarray,
        extent_mm: np.ndarray,
        area_mm2: np.ndarray,
        prob: np.ndarray,
        rejected: np.ndarray,
    ) -> None:
        """Keep this frame's segments (all of them, rejected ones too) as the next
        frame's previous state. ``prob``: (M, K) probabilities of the rows in
        ``plan.classify``; ``rejected``: (M,) bool of those rows."""
        n = centroid_mm.shape[0]
        known = plan.prev >= 0
        src = plan.prev[known]
        views = np.zeros(n, np.int64)
        logp = np.zeros((n, self.n_classes))
        rej = np.zeros(n, np.bool_)
        views[known] = self._views[src]
        logp[known] = self._logp[src]
        rej[known] = self._rejected[src]
        rows = plan.classify
        if rows.size and prob.shape[1] == self.n_classes:
            logp[rows] += np.log(np.maximum(prob.astype(np.float64), _FLOOR))
            views[rows] += 1
            rej[rows] |= rejected
        self._xy = np.asarray(centroid_mm, np.float64).reshape(n, 2).copy()
        self._area = np.asarray(area_mm2, np.float64).copy()
        self._views = views
        self._logp = logp
        self._rejected = rej
