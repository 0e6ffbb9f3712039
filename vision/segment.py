"""Fragment segmentation against an adaptive belt model.

The belt texture moves with the belt, so a per-pixel model fixed to the camera
converges to what matters: the illumination field times the mean belt colour
(lighting drift across the belt and over time), and the spread of belt texture,
wear and stains at each pixel. Pixels far from that model, in units of its
spread, are foreground. Work happens at ``1/scale`` resolution (``scale`` = 2
by default: 640x256 for the default camera), which also averages sensor noise.

Touching fragments are split where the mask narrows (``vision.split``: grouped
distance-transform maxima as markers of a watershed on the colour image),
between two notches of the outline, or between two colour clusters; or
(``segmenter = "learned"``) from the cores a learned instance cue finds
(``vision.learned``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import cv2
import numpy as np

from vision.kernels import _belt_pass, _box_moments, _diff_fg, _gain, _label_stats, _update
from vision.learned import CoreMemory, InstanceCue, core_map, split_learned
from vision.split import split_touching

__all__ = ["BeltModel", "SegmentParams", "Segmenter", "Segments", "segment_axes_mm"]

_NO_MOMENTS = np.zeros((0, 3))  # Segments.moments_px not given: NaN (unknown)
PxToMm = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclasses.dataclass(frozen=True, slots=True)
class SegmentParams:
    """Tuning of the segmentation; lengths in pixels of the full-resolution image."""

    scale: int = 2  # work at 1/scale resolution
    k_sigma: float = 4.0  # foreground beyond k_sigma * the belt's spread
    min_diff: float = 24.0  # ... and beyond this sum of |BGR| differences
    alpha: float = 0.03  # EMA weight of one frame in the belt model
    min_area_px: float = 60.0  # fragments smaller than this (full-res px) are noise
    open_px: int = 3  # opening kernel (low-res px) against speckle
    close_px: int = 3  # closing kernel (low-res px) that fills small gaps
    split: bool = True  # split touching fragments (``vision.split``)
    split_min_area_px: float = 400.0  # only components this large (full-res px) are split
    split_min_radius_px: float = 8.0  # ... into pieces at least this thick (full-res px)
    split_compact_ratio: float = 1.5  # ... if area > this x the disc of the largest radius
    split_neck_ratio: float = 0.65  # a neck narrower than this x the smaller radius divides
    split_reach: float = 3.0  # distance-transform maxima compared within this x their depth
    split_notch_px: float = 6.0  # else cut between two notches this deep (full-res px; 0 = off)
    split_cut_ratio: float = 3.0  # ... no longer than this x the sum of their depths
    split_min_piece_px: float = 200.0  # ... into pieces of at least this area (full-res px)
    split_min_contrast: float = 30.0  # ... that differ in mean colour (sum |dBGR|) this much
    split_max_cuts: int = 2  # pieces are split again, this many levels deep
    split_min_diff: float = 60.0  # components fainter than this mean belt difference stay whole
    # else split two colour clusters this far apart (sum |dBGR|; 0 = off: measured on
    # the line it did not pay for its ~1 ms a frame, bench/README.md) ...
    split_colour_diff: float = 0.0
    split_colour_coherence: float = 0.7  # ... each mostly one connected region (this share)
    split_colour_separation: float = 16.0  # ... and well apart (centre gap^2 / spread^2)
    # a red metal on or against a grey one (vision.split, cue 4; session 14, tuned on
    # seeds 3001-3004, 4001; on by default with the one-material merge check, the
    # search's "least" last resort and the recipe's class pools, bench/README.md;
    # False: the split as before): its red-metal pixels
    # ((R - B) / (B + G + R) >= rb) and grey ones ((max - min) / (B + G + R) <= grey),
    # both at least split_min_piece_px, each mostly one region (coherence), the red
    # one solid, seed the watershed; pixels with B + G + R below dark count as neither
    split_chroma: bool = True
    split_chroma_rb: float = 0.15
    split_chroma_grey: float = 0.06
    split_chroma_dark: float = 60.0
    split_chroma_coherence: float = 0.8
    split_chroma_solidity: float = 0.75
    # the warm split (vision.split_warm, session 15; off by default): a red metal
    # against anything else (the chroma rules above for its red region), its red
    # region at least split_warm_min_px (full-res px), the rest's regions that reach
    # the outline, the split_warm_max_rest largest, holding split_warm_rest_share of it
    split_warm: bool = False
    split_warm_blue: float = 0.26  # ... its red metal also B >= this x R (not a paint)
    split_warm_min_px: float = 100.0
    split_warm_piece_px: float = 100.0  # ... the rest's regions at least this (full-res px)
    split_warm_rest_share: float = 0.4
    split_warm_max_rest: int = 2
    # "classic": the shape, notch and colour split above; "learned": pieces seeded by
    # a learned instance cue (``vision.learned``, an ONNX model) instead
    segmenter: str = "classic"
    learned_model: str = ""  # the instance cue's ONNX file ("learned")
    learned_core: float = 0.45  # core probability that seeds a piece (tuned on seed 4001)
    learned_min_seed_px: float = 40.0  # ... in regions of at least this area (full-res px)
    learned_threads: int = 1  # ONNX Runtime intra-op threads of the instance cue
    # a cue with a material head (seg-v2): pixels of a class the net gives at least this
    # probability; a core region holding two such classes (each a connected region of at
    # least learned_min_seed_px) is cut in two, and a component with one core but two
    # classes each a connected region of at least learned_material_px is split too
    # (both chosen on tuning seed 4001: models/seg-v2.md)
    learned_material_conf: float = 0.4
    learned_material_px: float = 200.0
    # the seam rule (vision.learned.split_learned): a cut the materials made stands only
    # where this share of its seam lies within 2 px of the net's contact (probability at
    # least learned_contact); learned_seam_cores: the cores' cuts too (session 13,
    # tuning seeds 3001-3004: models/seg-v2.md); 0 turns the rule off
    learned_contact: float = 0.3
    learned_seam_contact: float = 0.1
    learned_seam_cores: bool = False
    border_px: int = 0  # ignore this many low-res px at the image border
    gain_grid_px: int = 4  # low-res grid step of the global brightness estimate


@dataclasses.dataclass(frozen=True, slots=True)
class Segments:
    """Fragments found in one image.

    labels:      (h, w) int32 label image at 1/scale resolution, 0 = belt;
                 fragment i has value ``label_id[i]``.
    label_id:    (N,) int32.
    bbox_px:     (N, 4) float32 x0, y0, x1, y1 in full-resolution pixels
                 (pixel edges: x1 - x0 is the width in px).
    centroid_px: (N, 2) float64 column, row of the centroid (full-res pixel centres).
    area_px:     (N,) float64 area in full-resolution pixels.
    scale:       the label image's downsampling factor.
    moments_px:  (N, 3) float64 second central moments of the segment's area per
                 unit area, full-res px^2: variance of the column, covariance,
                 variance of the row (its pixels as squares: an axis-aligned
                 W x H px rectangle reads W^2 / 12, 0, H^2 / 12); NaN when not given.
    """

    labels: np.ndarray
    label_id: np.ndarray
    bbox_px: np.ndarray
    centroid_px: np.ndarray
    area_px: np.ndarray
    scale: int
    moments_px: np.ndarray = dataclasses.field(default_factory=lambda: _NO_MOMENTS)

    def __post_init__(self) -> None:
        if self.moments_px is _NO_MOMENTS:
            object.__setattr__(self, "moments_px", np.full((self.label_id.shape[0], 3), np.nan))

    def __len__(self) -> int:
        return int(self.label_id.shape[0])


class BeltModel:
    """Per-pixel running mean and spread of the belt at low resolution.

    mean:   (h, w, 3) float32 BGR.
    spread: (h, w) float32 running mean of sum(|BGR - mean|) over belt pixels.
    mean_u8 / thresh_u8: (h, w, 3) and (h, w) uint8 maps the kernels compare against.
    """

    def __init__(self, params: SegmentParams) -> None:
        self.params = params
        self.mean: np.ndarray | None = None
        self.spread: np.ndarray | None = None
        self._mean_u8: np.ndarray | None = None
        self._thresh_u8: np.ndarray | None = None
        self._dilate = np.ones((5, 5), np.uint8)
        self.frames = 0
        self.gain = 1.0

    def reset(self) -> None:
        self.mean = self.spread = self._mean_u8 = self._thresh_u8 = None
        self.frames = 0

    def _initialise(self, small: np.ndarray) -> None:
        """Start from the per-column median of the first frame (fragments are a minority)."""
        col_median = np.median(small, axis=0, keepdims=True).astype(np.float32)
        self.mean = np.ascontiguousarray(np.broadcast_to(col_median, small.shape))
        dev = np.abs(small.astype(np.float32) - col_median).sum(axis=2)
        col_spread = np.median(dev, axis=0, keepdims=True)
        self.spread = np.ascontiguousarray(np.broadcast_to(col_spread, dev.shape), np.float32)
        p = self.params
        self._mean_u8 = cv2.convertScaleAbs(self.mean)
        scaled = cv2.convertScaleAbs(self.spread, alpha=p.k_sigma)
        self._thresh_u8 = np.maximum(scaled, np.uint8(min(round(p.min_diff), 255)))

    @property
    def mean_u8(self) -> np.ndarray:
        """(h, w, 3) uint8 belt colour; valid after the first frame."""
        assert self._mean_u8 is not None, "belt model has seen no frame yet"
        return self._mean_u8

    def foreground(self, small: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(h, w) uint8 sum of |BGR - belt| (saturating) and the (h, w) uint8 mask
        (255 = fragment) of pixels beyond the belt's spread. Does not update the model."""
        if self.mean is None or self.mean.shape != small.shape:
            self._initialise(small)
        assert self._thresh_u8 is not None
        self.gain = float(np.clip(_gain(small, self.mean_u8, self.params.gain_grid_px), 0.5, 2.0))
        diff = np.empty(small.shape[:2], np.uint8)
        fg = np.empty(small.shape[:2], np.uint8)
        gain = self.gain if abs(self.gain - 1.0) > 0.005 else 1.0
        flat = small.reshape(-1)
        _diff_fg(flat, self.mean_u8.reshape(-1), self._thresh_u8.reshape(-1), gain,
                 diff.reshape(-1), fg.reshape(-1))  # fmt: skip
        return diff, fg

    def foreground_update(self, small: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``foreground`` then ``update`` with its mask, in one compiled pass over the
        rows (``vision.kernels._belt_pass``): the same difference, mask and model."""
        if self.mean is None or self.mean.shape != small.shape:
            self._initialise(small)
        assert self.mean is not None and self.spread is not None
        assert self._mean_u8 is not None and self._thresh_u8 is not None
        p = self.params
        self.gain = float(np.clip(_gain(small, self.mean_u8, p.gain_grid_px), 0.5, 2.0))
        h, w = small.shape[:2]
        diff = np.empty((h, w), np.uint8)
        fg = np.empty((h, w), np.uint8)
        gain = self.gain if abs(self.gain - 1.0) > 0.005 else 1.0
        alpha = max(p.alpha, 1.0 / (self.frames + 2))
        min_diff = int(min(round(p.min_diff), 255))
        _belt_pass(
            small.reshape(h, 3 * w), self._mean_u8.reshape(h, 3 * w), self._thresh_u8, gain,
            diff, fg, self.mean.reshape(h, 3 * w), self.spread, alpha, p.k_sigma, min_diff,
        )  # fmt: skip
        self.frames += 1
        return diff, fg

    def update(self, small: np.ndarray, diff: np.ndarray, fg_mask: np.ndarray) -> None:
        """Blend belt pixels (outside a 5x5-dilated foreground) into the model; a global
        lighting change (gain) rescales the whole belt first."""
        assert self.mean is not None and self.spread is not None
        assert self._mean_u8 is not None and self._thresh_u8 is not None
        p = self.params
        belt = cv2.bitwise_not(cv2.dilate(fg_mask, self._dilate))
        alpha = max(p.alpha, 1.0 / (self.frames + 2))
        gain = self.gain if abs(self.gain - 1.0) > 0.005 else 1.0
        min_diff = int(min(round(p.min_diff), 255))
        _update(
            small.reshape(-1), diff.reshape(-1), belt.reshape(-1), self.mean.reshape(-1),
            self.spread.reshape(-1), alpha, gain, p.k_sigma, min_diff,
            self._mean_u8.reshape(-1), self._thresh_u8.reshape(-1),
        )  # fmt: skip
        self.frames += 1


class Segmenter:
    """Image in, ``Segments`` out; keeps the belt model between frames."""

    def __init__(self, params: SegmentParams | None = None) -> None:
        self.params = params or SegmentParams()
        self.belt = BeltModel(self.params)
        k_open, k_close = self.params.open_px, self.params.close_px
        self._k_open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k_open, k_open))
        self._k_close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k_close, k_close))
        self.last_diff = np.zeros((0, 0), np.uint8)  # belt difference of the last frame
        self.cue: InstanceCue | None = None
        p = self.params
        if p.segmenter == "learned":
            self.cue = InstanceCue.load(p.learned_model, p.learned_threads)
        elif p.segmenter != "classic":
            raise ValueError(f'SegmentParams.segmenter must be "classic" or "learned", '
                             f"got {p.segmenter!r}")  # fmt: skip
        self.last_core = np.zeros((0, 0), np.float32)  # the cue's core map of the last frame

    def reset(self) -> None:
        """Forget the belt model and the instance cue's cores of the last frame."""
        self.belt.reset()
        if self.cue is not None:
            self.cue.memory = CoreMemory()

    def downsample(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> (H/s, W/s, 3) uint8 by area averaging."""
        s = self.params.scale
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        if s == 1:
            return np.ascontiguousarray(image)
        h, w = image.shape[:2]
        return cv2.resize(image, (w // s, h // s), interpolation=cv2.INTER_AREA)

    def mask(self, small: np.ndarray) -> np.ndarray:
        """Foreground mask of a low-resolution frame; updates the belt model."""
        diff, fg = self.belt.foreground_update(small)
        self.last_diff = diff
        if self.params.open_px > 1:
            fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, self._k_open)
        if self.params.close_px > 1:
            fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, self._k_close)
        b = self.params.border_px
        if b > 0:
            fg[:b] = fg[-b:] = 0
            fg[:, :b] = fg[:, -b:] = 0
        return fg

    def segment(self, image: np.ndarray) -> Segments:
        """Segment one (H, W, 3) uint8 BGR (or (H, W) mono) image."""
        p = self.params
        small = self.downsample(image)
        fg = self.mask(small)
        # 16-bit labels: several times faster than 32-bit in OpenCV 5, and a 1/scale
        # image holds far fewer than 65,535 components; the statistics (those of
        # ``cv2.connectedComponentsWithStats``, which takes 3-4x as long) in one pass
        # that also widens the labels to int32
        n, labels16 = cv2.connectedComponents(fg, connectivity=8, ltype=cv2.CV_16U)
        labels, stats, centroids, moments = _label_stats(labels16, n)
        s2 = float(p.scale**2)
        area0 = stats[:, cv2.CC_STAT_AREA].copy()  # the split rewrites stats in place
        if self.cue is not None and p.split and n > 1:
            self.last_core = core_map(self.cue, small, self.belt.mean_u8, fg, stats, p)
            stats, centroids = split_learned(
                small,
                labels,
                stats,
                centroids,
                self.last_core,
                p,
                self.cue.material,
                self.cue.contact,
            )
        elif p.split and n > 1:
            stats, centroids = split_touching(
                small, fg, self.last_diff, labels, stats, centroids, p
            )
        moments = _piece_moments(labels, stats, area0, moments, p.min_area_px / s2)
        return _to_segments(labels, stats, centroids, p.scale, p.min_area_px / s2, moments)


def _piece_moments(
    labels: np.ndarray, stats: np.ndarray, area0: np.ndarray, moments: np.ndarray, min_area: float
) -> np.ndarray:
    """(len(stats), 3) moments of every label value: those of ``_label_stats`` for the
    components the split left whole (``area0``: their areas before it), recomputed
    from ``labels`` inside their box for the pieces it made (new label values, or
    an old one whose area changed)."""
    n = area0.shape[0]
    if stats.shape[0] == n and np.array_equal(stats[:, cv2.CC_STAT_AREA], area0):
        return moments
    out = np.full((stats.shape[0], 3), np.nan)
    out[:n] = moments
    changed = np.flatnonzero(stats[:n, cv2.CC_STAT_AREA] != area0)
    redo = np.concatenate([changed, np.arange(n, stats.shape[0])])
    which = redo[stats[redo, cv2.CC_STAT_AREA] >= max(min_area, 1.0)].astype(np.int64)
    _box_moments(labels, stats, which, out)
    return out


def _to_segments(
    labels: np.ndarray,
    stats: np.ndarray,
    centroids: np.ndarray,
    scale: int,
    min_area: float,
    moments: np.ndarray,
) -> Segments:
    """Low-res component stats (rows = label values) and the central moments of
    their pixel centres (low-res px^2) -> full-res ``Segments``."""
    area = stats[:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(area >= max(min_area, 1.0))
    keep = keep[keep > 0]
    x, y = stats[keep, cv2.CC_STAT_LEFT], stats[keep, cv2.CC_STAT_TOP]
    w, h = stats[keep, cv2.CC_STAT_WIDTH], stats[keep, cv2.CC_STAT_HEIGHT]
    bbox = np.stack([x, y, x + w, y + h], axis=1) * scale
    half = (scale - 1) / 2.0
    mom = np.array(moments[keep], np.float64).reshape(-1, 3)
    mom[:, 0::2] += 1.0 / 12.0  # a pixel's own square about its centre
    return Segments(
        labels=labels,
        label_id=keep.astype(np.int32),
        bbox_px=bbox.astype(np.float32),
        centroid_px=np.asarray(centroids[keep], np.float64) * scale + half,
        area_px=area[keep] * scale * scale,
        scale=scale,
        moments_px=mom * float(scale * scale),
    )


def segment_axes_mm(seg: Segments, px_to_mm: PxToMm) -> np.ndarray:
    """(N, 2) float32 minor and major full length, belt mm, of each segment's
    moment-equivalent rectangle (sqrt(12 x eigenvalue) of its second central
    moments mapped to the belt by the camera's local Jacobian at the centroid):
    a rectangle's own sides at any orientation, a disc's 0.87 x its diameter.
    NaN where the moments are unknown."""
    n = len(seg)
    if n == 0:
        return np.zeros((0, 2), np.float32)
    c, r = seg.centroid_px[:, 0], seg.centroid_px[:, 1]
    x0, y0 = (np.asarray(v, np.float64) for v in px_to_mm(c, r))
    x1, y1 = (np.asarray(v, np.float64) for v in px_to_mm(c + 1.0, r))
    x2, y2 = (np.asarray(v, np.float64) for v in px_to_mm(c, r + 1.0))
    xc, yc, xr, yr = x1 - x0, y1 - y0, x2 - x0, y2 - y0  # mm per px along column, row
    m = seg.moments_px
    jac = np.stack([np.stack([xc, xr], -1), np.stack([yc, yr], -1)], -2)  # (n, 2, 2) mm / px
    cov = np.stack([np.stack([m[:, 0], m[:, 1]], -1), np.stack([m[:, 1], m[:, 2]], -1)], -2)
    cov_mm = jac @ cov @ np.swapaxes(jac, 1, 2)
    a, b, d = cov_mm[:, 0, 0], cov_mm[:, 0, 1], cov_mm[:, 1, 1]
    mid, half = 0.5 * (a + d), np.hypot(0.5 * (a - d), b)
    lo, hi = np.maximum(mid - half, 0.0), np.maximum(mid + half, 0.0)
    return np.sqrt(12.0 * np.stack([lo, hi], axis=1)).astype(np.float32)
