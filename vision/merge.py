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

One material (session 14, issue 15's `default` losses): a large, ragged copper
or brass plate or a bent copper wire lying alone passes both cues, and under
``prefer = "balanced"`` a flagged view's evidence is tempered, so such a
target was often never fired at. A candidate whose pixels (those bright
enough for a colour) are at least ``warm_share`` red metal ((R - B) / (B + G +
R) at least ``warm_rb``: copper, brass and their tarnish; grey metals, grey
plastic, rubber and a PCB's green are well below) is one material, or two
targets, and is not flagged (``warm_shares``, one compiled pass over at most
``warm_max_px`` pixels of each candidate, read from the full-resolution
frame). ``WARM_SHARE`` (the default) is the share measured (``[vision]
merge_material``); ``warm_share = 0`` turns the check off (the flag as before
session 14).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from vision.kernels import _solidity
from vision.kernels_merge import _warm_shares
from vision.segment import Segments

__all__ = ["WARM_SHARE", "MergeFlagger", "MergeParams"]

# the one-material check's share when on (``[vision] merge_material = true``; chosen
# on the tuning seeds' flag candidates, vision/README.md)
WARM_SHARE = 0.8


@dataclasses.dataclass(frozen=True, slots=True)
class MergeParams:
    area_ratio: float = 2.5  # flag only segments larger than this x the running median
    max_solidity: float = 0.9  # ... whose pixels fill less than this of their convex hull
    median_alpha: float = 0.05  # EMA weight of one frame's median area
    min_segments: int = 5  # frames with fewer segments leave the median alone
    # one material: a candidate at least this share red metal is not flagged (0 = off,
    # the flag as before session 14; ``[vision] merge_material = false``)
    warm_share: float = WARM_SHARE
    warm_rb: float = 0.15  # ... a pixel is red metal where (R - B) / (B + G + R) >= this
    warm_dark_sum: float = 60.0  # ... pixels darker than this B + G + R are not counted
    warm_max_px: int = 256  # ... at most about this many pixels of a candidate are read

    def __post_init__(self) -> None:
        if not self.area_ratio > 1.0:
            raise ValueError(f"MergeParams.area_ratio must be > 1, got {self.area_ratio}")
        if not 0.0 < self.max_solidity <= 1.0:
            raise ValueError(f"MergeParams.max_solidity must be in (0, 1], got {self.max_solidity}")
        if not 0.0 < self.median_alpha <= 1.0:
            raise ValueError(f"MergeParams.median_alpha must be in (0, 1], got {self.median_alpha}")
        if not 0.0 <= self.warm_share <= 1.0:
            raise ValueError(f"MergeParams.warm_share must be in [0, 1], got {self.warm_share}")
        if not 0.0 < self.warm_rb < 1.0:
            raise ValueError(f"MergeParams.warm_rb must be in (0, 1), got {self.warm_rb}")
        if not 0.0 <= self.warm_dark_sum < 765.0:
            raise ValueError(
                f"MergeParams.warm_dark_sum must be in [0, 765), got {self.warm_dark_sum}"
            )
        if self.warm_max_px < 1:
            raise ValueError(f"MergeParams.warm_max_px must be >= 1, got {self.warm_max_px}")


class MergeFlagger:
    """Keeps the running median segment area; ``flag`` marks probable merges."""

    def __init__(self, params: MergeParams | None = None) -> None:
        self.params = params or MergeParams()
        self.median_area_px = 0.0  # full-res px; 0 until a frame had min_segments

    def flag(self, seg: Segments, image: np.ndarray | None = None) -> np.ndarray:
        """(N,) bool probable merges among ``seg``; updates the running median.
        ``image``: the frame ((H, W, 3) uint8 BGR, full resolution) ``seg`` was
        found in, for the one-material check (None, or a mono frame: no check)."""
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
        cand = np.flatnonzero(out)
        if p.warm_share > 0 and image is not None and image.ndim == 3 and len(cand):
            warm = warm_shares(seg, image, cand, p)
            out[cand] = ~(warm[cand, 0] >= p.warm_share)
        return out


def warm_shares(seg: Segments, image: np.ndarray, which: np.ndarray, p: MergeParams) -> np.ndarray:
    """(N, 2) float64: for the segments ``which``, the share of their counted pixels
    that are red metal, and how many pixels were counted (``MergeParams.warm_*``;
    one compiled pass); 0 for the others. ``image``: the frame, full resolution."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"warm_shares: image must be (H, W, 3) uint8, got {image.shape} "
                         f"{image.dtype}")  # fmt: skip
    out = np.zeros((len(seg), 2))
    box = (np.asarray(seg.bbox_px, np.int64) // seg.scale).astype(np.int64)
    labels = np.ascontiguousarray(seg.labels, dtype=np.int32)
    ids = np.ascontiguousarray(seg.label_id, dtype=np.int32)
    _warm_shares(
        np.ascontiguousarray(image), labels, ids, box, np.ascontiguousarray(which, np.int64),
        int(seg.scale), float(p.warm_dark_sum), float(p.warm_rb), int(p.warm_max_px), out,
    )  # fmt: skip
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
