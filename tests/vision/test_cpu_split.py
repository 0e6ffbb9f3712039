"""The compiled parts of the touching-fragment split (issue 15's frame CPU) against
slow twins built from NumPy and OpenCV calls: the way ``vision.split`` computed the
same thing before they were compiled. Each must agree exactly (same pixels, same
piece numbering), so the split's segments do not change."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from vision.kernels_split import (
    _best_cut,
    _comp_mask,
    _draw_line0,
    _group_peaks,
    _label4,
    _notch_cut,
    _peaks,
    _shape_split,
)
from vision.segment import SegmentParams
from vision.split import SEED_DEPTH, _pieces_worth_splitting, _worth_splitting

# ------------------------------------------------------------------ slow twins


def twin_group_peaks(
    peaks: np.ndarray, dist: np.ndarray, neck_ratio: float, reach: float
) -> tuple[np.ndarray, int]:
    """Grouping with every pair's neck measured to the end (no early stop)."""
    p = peaks.shape[0]
    edges = []
    for i in range(p):
        for j in range(i):
            ri, ci, di = peaks[i]
            rj, cj, dj = peaks[j]
            if math.hypot(ri - rj, ci - cj) > reach * max(di, dj) + 1.5:
                continue
            steps = int(2.0 * max(abs(rj - ri), abs(cj - ci))) + 1
            t = np.arange(steps + 1) / steps
            r = (ri + t * (rj - ri) + 0.5).astype(np.int64)
            c = (ci + t * (cj - ci) + 0.5).astype(np.int64)
            edges.append((i, j, float(dist[r, c].min())))
    parent = list(range(p))
    depth = peaks[:, 2].tolist()

    def find(k: int) -> int:
        while parent[k] != k:
            k = parent[k]
        return k

    for i, j, neck in sorted(edges, key=lambda e: -e[2]):  # stable, widest neck first
        a, b = find(i), find(j)
        if a != b and neck >= neck_ratio * min(depth[a], depth[b]):
            parent[b] = a
            depth[a] = max(depth[a], depth[b])
    roots: dict[int, int] = {}
    group = np.array([roots.setdefault(find(i), len(roots)) for i in range(p)], np.int64)
    return group, len(roots)


def twin_shape_markers(
    labels: np.ndarray, dist: np.ndarray, lab: int, y: int, x: int, h: int, w: int,
    min_r: float, neck: float, reach: float,
) -> tuple[np.ndarray, int]:  # fmt: skip
    """The shape split's markers as ``vision.split`` built them in NumPy."""
    peaks = _peaks(labels, dist, lab, y, x, y + h, x + w, min_r)
    if peaks.shape[0] < 2:
        return np.empty((0, 0), np.int32), 1
    group, n_groups = twin_group_peaks(peaks, dist, neck, reach)
    if n_groups < 2:
        return np.empty((0, 0), np.int32), 1
    comp = labels[y : y + h, x : x + w] == lab
    markers = np.full((h + 2, w + 2), n_groups + 1, np.int32)
    markers[1:-1, 1:-1][comp] = 0
    top = np.zeros(n_groups)
    np.maximum.at(top, group, peaks[:, 2])
    seed = peaks[:, 2] >= SEED_DEPTH * top[group]
    rows = peaks[seed, 0].astype(np.int64) - y + 1
    cols = peaks[seed, 1].astype(np.int64) - x + 1
    markers[rows, cols] = group[seed].astype(np.int32) + 1
    return markers, n_groups


def twin_notch(
    padded: np.ndarray, small: np.ndarray, x: int, y: int, min_depth: float, ratio: float,
    min_piece: float,
) -> tuple[np.ndarray, int, float]:  # fmt: skip
    """The notch split (outline, defects, cut, 4-connected pieces, contrast) as
    ``vision.split`` did it with OpenCV calls."""
    none = np.empty((0, 0), np.int32), 1, 0.0
    contours, _ = cv2.findContours(padded, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    c = max(contours, key=len)
    if len(c) < 4:
        return none
    try:
        defects = cv2.convexityDefects(c, cv2.convexHull(c, returnPoints=False))
    except cv2.error:
        return none
    if defects is None:
        return none
    d = defects.reshape(-1, 4)
    depth = d[:, 3] / 256.0
    deep = depth >= min_depth
    if deep.sum() < 2:
        return none
    far = c.reshape(-1, 2)[d[deep, 2]].astype(np.float64)
    i, j = _best_cut(padded, far, depth[deep], ratio)
    if i < 0:
        return none
    cut = padded.copy()
    a, b = far[i].astype(int), far[j].astype(int)
    cv2.line(cut, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), 0, 1, cv2.LINE_8)
    _, lab, st, _ = cv2.connectedComponentsWithStats(cut, connectivity=4, ltype=cv2.CV_16U)
    big = np.flatnonzero(st[:, cv2.CC_STAT_AREA] >= min_piece)
    big = big[big > 0]
    if big.size < 2:
        return none
    markers = np.where(padded > 0, 0, big.size + 1).astype(np.int32)
    for g, k in enumerate(big):
        markers[lab == k] = g + 1
    contrast = 0.0
    if big.size == 2:
        h, w = padded.shape[0] - 2, padded.shape[1] - 2
        roi = cv2.copyMakeBorder(small[y : y + h, x : x + w], 1, 1, 1, 1, cv2.BORDER_REPLICATE)
        m1 = cv2.mean(roi, mask=(markers == 1).view(np.uint8))
        m2 = cv2.mean(roi, mask=(markers == 2).view(np.uint8))
        contrast = abs(m1[0] - m2[0]) + abs(m1[1] - m2[1]) + abs(m1[2] - m2[2])
    return markers, int(big.size), contrast


def _kernel_notch(
    padded: np.ndarray, small: np.ndarray, x: int, y: int, min_depth: float, ratio: float,
    min_piece: float,
) -> tuple[np.ndarray, int, float]:  # fmt: skip
    contours, _ = cv2.findContours(padded, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    c = max(contours, key=len)
    if len(c) < 4:
        return np.empty((0, 0), np.int32), 1, 0.0
    try:
        defects = cv2.convexityDefects(c, cv2.convexHull(c, returnPoints=False))
    except cv2.error:
        return np.empty((0, 0), np.int32), 1, 0.0
    if defects is None:
        return np.empty((0, 0), np.int32), 1, 0.0
    m, n, con = _notch_cut(
        padded, c.reshape(-1, 2), defects.reshape(-1, 4), min_depth, ratio, min_piece, small, y, x
    )
    return m, int(n), float(con)


# ------------------------------------------------------------------ scenes


def _scene(seed: int, shapes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Random overlapping discs, bars and ellipses (uint8 mask 0/255) and a colour image
    in which each shape has its own colour plus noise."""
    rng = np.random.default_rng(seed)
    fg = np.zeros((90, 140), np.uint8)
    small = np.zeros((90, 140, 3), np.uint8)
    for _ in range(shapes):
        one = np.zeros_like(fg)
        cx, cy = int(rng.integers(15, 125)), int(rng.integers(15, 75))
        kind = rng.integers(3)
        if kind == 0:
            cv2.circle(one, (cx, cy), int(rng.integers(5, 16)), 255, -1)
        elif kind == 1:
            box = (
                (cx, cy),
                (float(rng.uniform(8, 50)), float(rng.uniform(4, 14))),
                float(rng.uniform(0, 180)),
            )
            cv2.fillPoly(one, [cv2.boxPoints(box).astype(np.int32)], 255)
        else:
            axes = (int(rng.integers(6, 22)), int(rng.integers(4, 12)))
            cv2.ellipse(one, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
        colour = rng.integers(20, 235, 3)
        small[one > 0] = colour
        fg |= one
    noise = rng.normal(0, 4, small.shape)
    small = np.clip(small + noise, 0, 255).astype(np.uint8)
    return fg, small


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("seed", range(4))
def test_draw_line_matches_cv2_line(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(300):
        h, w = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        img = np.full((h, w), 7, np.uint8)
        x1, x2 = (int(v) for v in rng.integers(0, w, 2))
        y1, y2 = (int(v) for v in rng.integers(0, h, 2))
        want = img.copy()
        cv2.line(want, (x1, y1), (x2, y2), 0, 1, cv2.LINE_8)
        _draw_line0(img, x1, y1, x2, y2)
        assert np.array_equal(img, want), (x1, y1, x2, y2)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("density", [0.3, 0.55, 0.8])
def test_label4_matches_cv2_connected_components(seed: int, density: float) -> None:
    rng = np.random.default_rng(seed)
    mask = (rng.random((int(rng.integers(1, 60)), int(rng.integers(1, 60)))) < density).astype(
        np.uint8
    )
    n, want, st, _ = cv2.connectedComponentsWithStats(mask, connectivity=4, ltype=cv2.CV_16U)
    got, area = _label4(mask)
    assert np.array_equal(got, want.astype(np.int32))
    assert np.array_equal(area[1:], st[1:, cv2.CC_STAT_AREA])
    assert area.size == n


def test_label4_of_an_empty_mask_has_no_component() -> None:
    got, area = _label4(np.zeros((5, 7), np.uint8))
    assert not got.any() and area.size == 1


@pytest.mark.parametrize("seed", range(8))
def test_shape_split_and_group_peaks_match_twins(seed: int) -> None:
    fg, _ = _scene(seed, shapes=5)
    n, labels, st, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    labels = labels.astype(np.int32)
    dist = cv2.distanceTransform(fg, cv2.DIST_L2, cv2.DIST_MASK_5)
    for lab in range(1, n):
        x, y, w, h = (int(v) for v in st[lab, :4])
        for neck in (0.65, 0.9):
            pk = _peaks(labels, dist, lab, y, x, y + h, x + w, 2.0)
            if pk.shape[0] >= 2:
                g, k = _group_peaks(pk, dist, neck, 3.0)
                wg, wk = twin_group_peaks(pk, dist, neck, 3.0)
                assert k == wk and np.array_equal(g, wg)
            got, k = _shape_split(labels, dist, lab, y, x, h, w, 2.0, neck, 3.0, SEED_DEPTH)
            want, wk = twin_shape_markers(labels, dist, lab, y, x, h, w, 2.0, neck, 3.0)
            assert k == wk and np.array_equal(got, want)


@pytest.mark.parametrize(("bridge_px", "groups"), [(3, 2), (30, 1)])
def test_shape_split_two_discs_at_a_neck_and_one_blob(bridge_px: int, groups: int) -> None:
    """Two discs joined by a thin bridge: two groups, seeded; a thick join: one."""
    fg = np.zeros((60, 110), np.uint8)
    cv2.circle(fg, (30, 30), 16, 255, -1)
    cv2.circle(fg, (78, 30), 16, 255, -1)
    cv2.rectangle(fg, (30, 30 - bridge_px // 2), (78, 30 + bridge_px // 2), 255, -1)
    _, labels, st, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    labels = labels.astype(np.int32)
    dist = cv2.distanceTransform(fg, cv2.DIST_L2, cv2.DIST_MASK_5)
    x, y, w, h = (int(v) for v in st[1, :4])
    got, k = _shape_split(labels, dist, 1, y, x, h, w, 4.0, 0.65, 3.0, SEED_DEPTH)
    want, wk = twin_shape_markers(labels, dist, 1, y, x, h, w, 4.0, 0.65, 3.0)
    assert k == wk == groups and np.array_equal(got, want)
    if groups == 2:
        assert {1, 2} <= set(np.unique(got).tolist()) and got.max() == 3


@pytest.mark.parametrize("seed", range(12))
def test_notch_cut_matches_twin(seed: int) -> None:
    fg, small = _scene(100 + seed, shapes=3)
    n, labels, st, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    labels = labels.astype(np.int32)
    for lab in range(1, n):
        x, y, w, h = (int(v) for v in st[lab, :4])
        padded = _comp_mask(labels, lab, y, x, h, w)
        want_pad = np.zeros((h + 2, w + 2), np.uint8)
        want_pad[1:-1, 1:-1] = labels[y : y + h, x : x + w] == lab
        assert np.array_equal(padded, want_pad)
        for min_depth, ratio, piece in ((3.0, 3.0, 50.0), (1.5, 6.0, 5.0)):
            got = _kernel_notch(padded, small, x, y, min_depth, ratio, piece)
            want = twin_notch(padded, small, x, y, min_depth, ratio, piece)
            assert got[1] == want[1] and np.array_equal(got[0], want[0])
            assert got[2] == want[2]  # exactly: the same sums, scaled as cv2.mean does


def test_notch_cut_splits_a_cross_of_two_colours() -> None:
    """Two bars lying across each other: a cut between the notches, two pieces of
    different colour (a contrast well above 30)."""
    fg = np.zeros((60, 60), np.uint8)
    small = np.full((60, 60, 3), 90, np.uint8)
    cv2.rectangle(fg, (5, 22), (54, 36), 255, -1)
    cv2.rectangle(small, (5, 22), (54, 36), (40, 120, 200), -1)
    cv2.rectangle(fg, (22, 5), (36, 54), 255, -1)
    cv2.rectangle(small, (22, 5), (36, 54), (200, 200, 200), -1)
    _, labels, st, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    x, y, w, h = (int(v) for v in st[1, :4])
    padded = _comp_mask(labels.astype(np.int32), 1, y, x, h, w)
    markers, k, contrast = _kernel_notch(padded, small, x, y, 3.0, 3.0, 20.0)
    want = twin_notch(padded, small, x, y, 3.0, 3.0, 20.0)
    assert k == want[1] >= 2 and np.array_equal(markers, want[0])
    assert markers.max() == k + 1 and (markers == 0).any()
    assert contrast == want[2] and (k > 2 or contrast > 30.0)


@pytest.mark.parametrize("seed", range(5))
def test_pieces_worth_splitting_matches_worth_splitting(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = SegmentParams()
    area = np.round(rng.uniform(50, 400, 40))
    max_d = rng.uniform(3.0, 6.0, 40).astype(np.float32)
    max_d[:4] = [4.0, np.nextafter(np.float32(4.0), np.float32(0)), 3.99999, 5.0]
    area[4] = p.split_min_area_px / p.scale**2  # on the edge of large enough
    want = np.flatnonzero(_worth_splitting(area, max_d, p)).tolist()
    assert _pieces_worth_splitting(area, max_d, p) == want
    odd = SegmentParams(split_min_radius_px=8.3, scale=3)  # a limit float32 cannot hold
    want = np.flatnonzero(_worth_splitting(area, max_d, odd)).tolist()
    assert _pieces_worth_splitting(area, max_d, odd) == want
