"""Is a segment probably two fragments the split could not separate?

Measured on the virtual plant's truth (``sortline bench vision --study``): on
``crowded`` and 25 mm ``shred`` at 500/s, about a sixth of the segments hold
two or more fragments, and those segments are larger than the feed's typical
segment (median about 3x) and less convex (two outlines meeting leave concave
corners). Neither cue alone separates them well; together (larger than
``area_ratio`` x the running median segment area of the line's own feed and
solidity below ``max_solidity``) about two flagged segments in three are
merges. The running median follows the feed's size, so the rule needs no
preset's numbers.

Solidity is the segment's pixel count over its outline's convex hull area (low
resolution), computed only for segments large enough to be flagged, in one
compiled pass (``vision.kernels._solidity``; ``solidity`` is the OpenCV twin).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from vision.kernels import _solidity
from vision.segment import Segments

__all__ = ["MergeFlagger", "MergeParams"]


@dataclasses.dataclass(frozen=True, slots=True)
class MergeParams:
    area_ratio: float = 2.5  # flag only segments larger than this x the running median
    max_solidity: float = 0.9  # ... whose pixels fill less than this of their convex hull
    median_alpha: float = 0.05  # EMA weight of one frame's median area
    min_segments: int = 5  # frames with fewer segments leave the median alone

    def __post_init__(self) -> None:
        if not self.area_ratio > 1.0:
            raise ValueError(f"MergeParams.area_ratio must be > 1, got {self.area_ratio}")
        if not 0.0 < self.max_solidity <= 1.0:
            raise ValueError(f"MergeParams.max_solidity must be in (0, 1], got {self.max_solidity}")
        if not 0.0 < self.median_alpha <= 1.0:
            raise ValueError(f"MergeParams.median_alpha must be in (0, 1], got {self.median_alpha}")


class MergeFlagger:
    """Keeps the running median segment area; ``flag`` marks probable merges."""

    def __init__(self, params: MergeParams | None = None) -> None:
        self.params = params or MergeParams()
        self.median_area_px = 0.0  # full-res px; 0 until a frame had min_segments

    def flag(self, seg: Segments) -> np.ndarray:
        """(N,) bool probable merges among ``seg``; updates the running median."""
        n = len(seg)
        out = np.zeros(n, np.bool_)
        if n == 0:
            return out
        p = self.params
        if n >= p.min_segments:
            med = float(np.median(seg.area_px))
            m = self.median_area_px
            self.median_area_px = med if m == 0.0 else m + p.median_alpha * (med - m)
        if self.median_area_px == 0.0:
            return out
        big = np.flatnonzero(seg.area_px > p.area_ratio * self.median_area_px)
        if len(big):
            out[big] = solidities(seg, big)[big] < p.max_solidity
        return out


def solidities(seg: Segments, which: np.ndarray) -> np.ndarray:
    """(N,) float64 solidity of the segments ``which`` (one compiled pass, no
    OpenCV call per segment; ``solidity`` is its twin); NaN for the others."""
    out = np.full(len(seg), np.nan)
    box = (np.asarray(seg.bbox_px, np.int64) // seg.scale).astype(np.int64)
    labels = np.ascontiguousarray(seg.labels, dtype=np.int32)
    ids = np.ascontiguousarray(seg.label_id, dtype=np.int32)
    count = np.asarray(seg.area_px, np.float64) / (seg.scale * seg.scale)  # low-res pixels
    _solidity(labels, ids, box, count, np.ascontiguousarray(which, dtype=np.int64), out)
    return out


def solidity(seg: Segments, k: int) -> float:
    """Pixels of segment ``k`` over the area of its outline's convex hull (low res);
    1.0 for a segment too small to have a hull."""
    s = seg.scale
    x0, y0, x1, y1 = (int(v) // s for v in seg.bbox_px[k])
    roi = seg.labels[y0 : y1 + 1, x0 : x1 + 1] == seg.label_id[k]
    mask = np.zeros((roi.shape[0] + 2, roi.shape[1] + 2), np.uint8)
    mask[1:-1, 1:-1] = roi
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return 1.0
    pts = np.concatenate(contours)
    hull = cv2.convexHull(pts)
    # pixel centres: the hull misses half a pixel all round; add it back (perimeter / 2)
    area = cv2.contourArea(hull) + 0.5 * cv2.arcLength(hull, True) + 1.0
    return float(min(roi.sum() / max(area, 1.0), 1.0))
