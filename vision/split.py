"""Touching and overlapping fragments split, at 1/scale resolution.

Two kinds of markers feed one marker watershed (``cv2.watershed`` on the
colour image, so a cut follows the colour edge between two fragments where
there is one and falls midway where there is none):

1. Shape: in a component that is large, thick enough and not compact (area
   above ``compact_ratio`` times the disc of its largest inscribed radius), the
   local maxima of the distance transform, grouped persistence-style: two
   groups stay one fragment when the line between them never narrows below
   ``neck_ratio`` times the shallower group's depth. Touching fragments meet
   at a neck; a ridge along one long fragment stays one group.
2. Notches (when the shape gives one group): where one fragment lies across
   another, their outlines cross in two concave corners; the straight line
   between the two deepest-and-closest convexity defects follows the upper
   fragment's edge. The cut is kept when the two pieces differ in mean colour
   (one notched sheet of one material is not cut).

3. Colour (when shape and notches give one group): two fragments of
   different materials lying against each other or one on the other, with no
   neck and no notch. Measured on the plant's truth (``sortline bench vision
   --study``): about three in four touching fragments merged at 500
   fragments/s of 25 mm shred, and in four of five merged segments the two
   fragments' mean colours differ by more than 60 (sum of |dBGR|). Every
   large component's pixels are cut into two colour clusters (2-means, one
   kernel call for all of them); where the centres lie at least
   ``split_colour_diff`` apart and the clusters are well separated (squared
   centre distance over the mean squared spread, at least
   ``split_colour_separation``: one colour with texture cut in two gives about
   3.5), each cluster, opened 3x3, must be mostly one
   connected region (``split_colour_coherence`` of its pixels: texture, dirt
   and noise scatter, two fragments do not) and at least ``split_min_piece_px``;
   their largest regions seed the watershed.

4. Chroma (session 14; when shape and notches give one group, before the
   colour clusters): a red metal lying on or against a grey one (a brass plate
   dropped on an aluminium plate, a copper wire touching a stainless piece:
   most of ``default``'s lost targets). A large component's red-metal pixels
   ((R - B) / (B + G + R) at least ``split_chroma_rb``) and grey ones ((max -
   min) / (B + G + R) at most ``split_chroma_grey``; pixels with B + G + R
   below ``split_chroma_dark`` count as neither) are counted in one kernel call
   for all of them; where both hold ``split_min_piece_px``, each class, opened
   3x3, must be mostly one 4-connected region (``split_chroma_coherence``: rust
   blotches on steel, a PCB's pads and a dirty plate scatter) and the red
   region solid (area over its convex hull at least ``split_chroma_solidity``);
   the two regions seed the watershed. ``split_chroma = False``: as before
   session 14. (The two brightest clusters of cue 3 fail here: a grey plate's
   own shading and dirt make its two clusters, not plate against piece.)

5. Warm (session 15; ``split_warm``, off by default; after the chroma cue): a red
   metal against whatever else it touches, one piece or several (a PCB, rubber, a
   coloured plastic); ``vision/split_warm.py`` has the rule.

Pieces are split again up to ``max_cuts`` levels (three fragments in a heap).
"""

from __future__ import annotations

import math
from typing import Protocol

import cv2
import numpy as np

from vision.kernels_split import (
    _chroma_counts,
    _chroma_seeds,
    _comp_mask,
    _fill_ridges,
    _label_max,
    _notch_cut,
    _shape_split,
    _two_means,
    _write_pieces,
)
from vision.split_warm import WarmParams, warm_labels, warm_markers

__all__ = ["SplitParams", "split_touching"]

_K3 = np.ones((3, 3), np.uint8)
SEED_DEPTH = 0.9  # watershed seeds: a group's maxima at least this x its deepest


class SplitParams(WarmParams, Protocol):
    """The ``SegmentParams`` fields the split reads (lengths in full-res px)."""

    @property
    def scale(self) -> int: ...

    @property
    def split_min_area_px(self) -> float: ...

    @property
    def split_min_radius_px(self) -> float: ...

    @property
    def split_compact_ratio(self) -> float: ...

    @property
    def split_neck_ratio(self) -> float: ...

    @property
    def split_reach(self) -> float: ...

    @property
    def split_notch_px(self) -> float: ...

    @property
    def split_cut_ratio(self) -> float: ...

    @property
    def split_min_piece_px(self) -> float: ...

    @property
    def split_min_contrast(self) -> float: ...

    @property
    def split_max_cuts(self) -> int: ...

    @property
    def split_min_diff(self) -> float: ...

    @property
    def split_colour_diff(self) -> float: ...

    @property
    def split_colour_coherence(self) -> float: ...

    @property
    def split_colour_separation(self) -> float: ...

    @property
    def split_chroma(self) -> bool: ...

    @property
    def split_chroma_rb(self) -> float: ...

    @property
    def split_chroma_grey(self) -> float: ...

    @property
    def split_chroma_dark(self) -> float: ...

    @property
    def split_chroma_coherence(self) -> float: ...

    @property
    def split_chroma_solidity(self) -> float: ...


def _worth_splitting(area: np.ndarray, max_d: np.ndarray, p: SplitParams) -> np.ndarray:
    """Mask: large, thick enough and not compact (area > compact_ratio x the disc of
    the largest inscribed radius; one round or square fragment stays below)."""
    s = float(p.scale)
    ok = (area >= p.split_min_area_px / (s * s)) & (max_d >= p.split_min_radius_px / s)
    disc = math.pi * max_d.astype(np.float64) ** 2
    return np.asarray(ok & (area >= p.split_compact_ratio * disc))


def _pieces_worth_splitting(area: np.ndarray, max_d: np.ndarray, p: SplitParams) -> list[int]:
    """``np.flatnonzero(_worth_splitting(area, max_d, p))`` for the few pieces of one
    split (float64 ``area``, float32 ``max_d``), without NumPy's per-call cost."""
    s = float(p.scale)
    min_area = p.split_min_area_px / (s * s)
    min_d = float(np.float32(p.split_min_radius_px / s))  # as NumPy compares float32
    out = []
    for i, (a, d) in enumerate(zip(area.tolist(), max_d.tolist(), strict=True)):
        if a >= min_area and d >= min_d and a >= p.split_compact_ratio * (math.pi * d**2):
            out.append(i)
    return out


def _big_enough(stats: np.ndarray, p: SplitParams) -> np.ndarray:
    """Label values (not 0) of components large enough to hold two fragments."""
    area = stats[:, cv2.CC_STAT_AREA]
    big = np.flatnonzero(area >= p.split_min_area_px / float(p.scale * p.scale))
    return big[big > 0].astype(np.int64)


def split_touching(
    small: np.ndarray,
    fg: np.ndarray,
    diff: np.ndarray,
    labels: np.ndarray,
    stats: np.ndarray,
    centroids: np.ndarray,
    p: SplitParams,
) -> tuple[np.ndarray, np.ndarray]:
    """Split candidates in place on ``labels`` ((h, w) int32); new pieces get label
    values from ``len(stats)`` on. Returns stats (float64, cv2 CC_STAT columns) and
    centroids (column, row) with a row per label value.

    small: (h, w, 3) uint8 BGR at the labels' resolution; fg: (h, w) uint8 mask;
    diff: (h, w) uint8 belt difference (sum |BGR - belt|). Components whose mean
    difference is below ``split_min_diff`` (stains, wear, faint shadows) are left whole.
    """
    n = stats.shape[0]
    dist = cv2.distanceTransform(fg, cv2.DIST_L2, cv2.DIST_MASK_5)
    big = _big_enough(stats, p)
    big_d, big_diff = _label_max(labels, dist, diff, stats, big)
    keep = _worth_splitting(stats[big, cv2.CC_STAT_AREA], big_d, p)
    bright = big_diff >= p.split_min_diff
    cand = big[keep & bright]
    todo = [(int(lab), True, 0) for lab in cand]
    queued = set(cand.tolist())
    chroma: set[int] = set()
    if p.split_chroma:
        chroma = _chroma_pairs(small, labels, stats, big[bright], p)
        todo.extend((lab, False, 0) for lab in sorted(chroma - queued))
        queued |= chroma
    warm = warm_labels(small, labels, stats, big[bright], p)  # cue 5, vision.split_warm
    todo.extend((lab, False, 0) for lab in sorted(warm - queued))
    queued |= warm
    colours: dict[int, np.ndarray] = {}
    if p.split_colour_diff > 0:
        colours = _colour_pairs(small, labels, stats, big[bright], p)
        todo.extend((lab, False, 0) for lab in colours if lab not in queued)
    # stats and centroids of new labels (from n on), in buffers that grow by doubling
    more_st = np.empty((16, 5), np.float64)
    more_ce = np.empty((16, 2), np.float64)
    cents = np.array(centroids, np.float64)
    next_label = n
    while todo:
        lab, try_shape, level = todo.pop()
        stat = stats[lab] if lab < n else more_st[lab - n]
        pieces = _split_one(
            small, labels, dist, lab, stat, try_shape, p, colours.get(lab), lab in chroma,
            lab in warm,
        )  # fmt: skip
        if pieces is None:
            continue
        markers, n_groups = pieces
        x, y = int(stat[0]), int(stat[1])
        ids = np.arange(next_label - 1, next_label + n_groups - 1, dtype=np.int32)
        ids[0] = lab  # the first piece keeps the label, the others take new ones
        st = np.empty((n_groups, 5), np.float64)  # every row written by _write_pieces
        ce = np.empty((n_groups, 2), np.float64)
        piece_d = np.zeros(n_groups, np.float32)
        _write_pieces(labels, markers, lab, y, x, ids, st, ce, dist, piece_d)
        if lab < n:
            stats[lab], cents[lab] = st[0], ce[0]
        else:
            more_st[lab - n], more_ce[lab - n] = st[0], ce[0]
        m = next_label - n
        if m + n_groups - 1 > more_st.shape[0]:
            grow = max(2 * more_st.shape[0], m + n_groups - 1)
            more_st = np.concatenate([more_st, np.empty((grow - more_st.shape[0], 5))])
            more_ce = np.concatenate([more_ce, np.empty((grow - more_ce.shape[0], 2))])
        more_st[m : m + n_groups - 1] = st[1:]
        more_ce[m : m + n_groups - 1] = ce[1:]
        next_label += n_groups - 1
        if level + 1 < p.split_max_cuts:  # a piece may still hold touching fragments
            again = _pieces_worth_splitting(st[:, cv2.CC_STAT_AREA], piece_d, p)
            todo.extend((int(ids[i]), False, level + 1) for i in again)
    if next_label > n:
        stats = np.vstack([stats, more_st[: next_label - n]])
        cents = np.vstack([cents, more_ce[: next_label - n]])
    return stats, cents


def _split_one(
    small: np.ndarray,
    labels: np.ndarray,
    dist: np.ndarray,
    lab: int,
    stat: np.ndarray,
    try_shape: bool,
    p: SplitParams,
    centres: np.ndarray | None = None,
    chroma: bool = False,
    warm: bool = False,
) -> tuple[np.ndarray, int] | None:
    """Watershed markers (after the watershed) and piece count for one label, or None;
    ``chroma``: try its red-metal and grey regions after the notches; ``centres``:
    its two colour clusters' (2, 3) BGR centres, tried last."""
    x, y, w, h = map(int, stat[:4].tolist())
    if w < 2 or h < 2:
        return None
    n_groups = 1
    if try_shape:
        min_r = p.split_min_radius_px / p.scale
        markers, n_groups = _shape_split(
            labels, dist, lab, y, x, h, w, min_r, p.split_neck_ratio, p.split_reach, SEED_DEPTH
        )
    padded = None
    if n_groups < 2 and (p.split_notch_px > 0 or centres is not None):
        padded = _comp_mask(labels, lab, y, x, h, w)
    if n_groups < 2 and padded is not None and p.split_notch_px > 0:
        markers, n_groups, contrast = _notch_markers(padded, small, x, y, p)
        if n_groups == 2 and contrast < p.split_min_contrast:
            return None  # a notched outline of one material: a torn sheet, not two fragments
    if n_groups < 2 and chroma:  # the red-metal and grey regions (one kernel call)
        markers, n_groups = _chroma_seeds(
            small, labels, lab, y, x, h, w, float(p.split_chroma_dark), float(p.split_chroma_rb),
            float(p.split_chroma_grey), p.split_min_piece_px / float(p.scale * p.scale),
            float(p.split_chroma_coherence), float(p.split_chroma_solidity),
        )  # fmt: skip
    if n_groups < 2 and warm:  # a red metal against the rest (cue 5, vision.split_warm)
        markers, n_groups = warm_markers(small, labels, lab, y, x, h, w, p)
    if n_groups < 2 and centres is None:
        return None
    roi = cv2.copyMakeBorder(small[y : y + h, x : x + w], 1, 1, 1, 1, cv2.BORDER_REPLICATE)
    if n_groups < 2 and centres is not None and padded is not None:
        markers, n_groups = _colour_markers(roi, padded[1:-1, 1:-1] > 0, centres, p)
    if n_groups < 2:
        return None
    cv2.watershed(roi, markers)
    _fill_ridges(markers)
    return markers, n_groups


def _notch_markers(
    padded: np.ndarray, small: np.ndarray, x: int, y: int, p: SplitParams
) -> tuple[np.ndarray, int, float]:
    """Markers from a cut between two notches of the outline (convexity defects at
    least ``split_notch_px`` deep, full-res px): where one fragment lies across
    another, or two meet at an angle, their outlines cross in two concave corners
    and the straight line between them follows the upper fragment's edge. The
    cut with the smallest length / (depth_a + depth_b), at most
    ``split_cut_ratio``, running inside the component, is taken; pieces of at
    least ``split_min_piece_px`` (full-res px) become markers. ``padded``: the
    component's (h+2, w+2) uint8 mask with a 1 px frame, at column ``x``, row ``y``
    of ``small``. Returns markers, their count (1: no cut) and, for two pieces,
    their contrast (sum over B, G, R of |difference of mean colour|)."""
    none = np.empty((0, 0), np.int32), 1, 0.0
    # the outline's vertices suffice: a defect's deepest point is always a vertex
    contours, _ = cv2.findContours(padded, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return none
    c = contours[0] if len(contours) == 1 else max(contours, key=len)
    if len(c) < 4:
        return none
    try:
        defects = cv2.convexityDefects(c, cv2.convexHull(c, returnPoints=False))
    except cv2.error:  # self-intersecting outlines: no notch split
        return none
    if defects is None:
        return none
    s2 = float(p.scale * p.scale)
    markers, n, contrast = _notch_cut(
        padded, c.reshape(-1, 2), defects.reshape(-1, 4), p.split_notch_px / p.scale,
        p.split_cut_ratio, p.split_min_piece_px / s2, small, y, x,
    )  # fmt: skip
    return markers, int(n), float(contrast)


def _colour_pairs(
    small: np.ndarray, labels: np.ndarray, stats: np.ndarray, which: np.ndarray, p: SplitParams
) -> dict[int, np.ndarray]:
    """Label value -> (2, 3) float64 BGR centres of its two colour clusters, for the
    labels in ``which`` whose clusters lie ``split_colour_diff`` apart and both hold
    at least ``split_min_piece_px`` (full-res px)."""
    if which.size == 0:
        return {}
    cen, cnt, sep = _two_means(small, labels, stats, which.astype(np.int64), 5, 256)
    apart = np.abs(cen[:, 0] - cen[:, 1]).sum(axis=1) >= p.split_colour_diff
    apart &= sep >= p.split_colour_separation
    piece = p.split_min_piece_px / float(p.scale * p.scale)
    ok = apart & (cnt.min(axis=1) >= piece)
    return {int(lab): cen[i] for i, lab in zip(np.flatnonzero(ok), which[ok].tolist(), strict=True)}


def _colour_markers(
    roi: np.ndarray, comp: np.ndarray, centres: np.ndarray, p: SplitParams
) -> tuple[np.ndarray, int]:
    """Markers from two colour clusters: each pixel of ``comp`` goes to the nearer
    centre; each cluster, opened 3x3, must keep ``split_colour_coherence`` of its
    pixels in its largest 4-connected region, of at least ``split_min_piece_px``;
    those regions are the markers (1, 2; background 3, 1 px frame as ``roi``)."""
    none = np.empty((0, 0), np.int32), 1
    h, w = comp.shape
    px = roi[1:-1, 1:-1].astype(np.float32)
    d0 = np.abs(px - centres[0].astype(np.float32)).sum(axis=2)
    d1 = np.abs(px - centres[1].astype(np.float32)).sum(axis=2)
    near1 = d1 < d0
    markers = np.full((h + 2, w + 2), 3, np.int32)
    inner = markers[1:-1, 1:-1]
    inner[comp] = 0
    piece = p.split_min_piece_px / float(p.scale * p.scale)
    for g, mine in ((1, comp & ~near1), (2, comp & near1)):
        total = int(mine.sum())
        opened = cv2.morphologyEx(mine.view(np.uint8), cv2.MORPH_OPEN, _K3)
        n, lab, st, _ = cv2.connectedComponentsWithStats(opened, connectivity=4)
        if n < 2:
            return none
        k = 1 + int(np.argmax(st[1:, cv2.CC_STAT_AREA]))
        top = int(st[k, cv2.CC_STAT_AREA])
        if top < piece or top < p.split_colour_coherence * total:
            return none
        inner[lab == k] = g
    return markers, 2


def _chroma_pairs(
    small: np.ndarray, labels: np.ndarray, stats: np.ndarray, which: np.ndarray, p: SplitParams
) -> set[int]:
    """Label values among ``which`` holding at least ``split_min_piece_px`` (full-res
    px) of red-metal pixels and as many grey ones (``_chroma_counts``)."""
    if which.size == 0:
        return set()
    counts = _chroma_counts(
        small, labels, stats, which.astype(np.int64),
        float(p.split_chroma_dark), float(p.split_chroma_rb), float(p.split_chroma_grey),
    )  # fmt: skip
    piece = p.split_min_piece_px / float(p.scale * p.scale)
    ok = (counts[:, 0] >= piece) & (counts[:, 1] >= piece)
    return set(which[ok].tolist())
