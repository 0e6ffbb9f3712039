"""The split kernels (``vision.kernels_split``) against slow twins, on random and
edge cases (no label, plateaus, no notch pair)."""

from __future__ import annotations

import cv2
import naive
import numpy as np
import pytest

from vision.kernels_split import _best_cut, _group_peaks, _label_max, _peaks, _two_means


def _blobs(seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    rng = np.random.default_rng(seed)
    fg = np.zeros((60, 90), np.uint8)
    for _ in range(6):
        c = (int(rng.integers(5, 85)), int(rng.integers(5, 55)))
        cv2.circle(fg, c, int(rng.integers(3, 12)), 255, -1)
    n, labels = cv2.connectedComponents(fg, connectivity=8)
    return fg, labels.astype(np.int32), n


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_label_max_and_peaks_match_twins(seed: int) -> None:
    fg, labels, n = _blobs(seed)
    dist = cv2.distanceTransform(fg, cv2.DIST_L2, cv2.DIST_MASK_5)
    diff = np.random.default_rng(seed).integers(0, 256, fg.shape).astype(np.uint8)
    _, _, boxes, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    which = np.arange(1, n, dtype=np.int64)
    max_d, mean = _label_max(labels, dist, diff, boxes.astype(np.float64), which)
    want_d, want_mean = naive.label_max(labels, dist, diff, n)
    np.testing.assert_array_equal(max_d, want_d[1:])
    np.testing.assert_allclose(mean, want_mean[1:])
    empty = _label_max(labels, dist, diff, boxes.astype(np.float64), which[:0])
    assert empty[0].shape == empty[1].shape == (0,)
    for lab in range(1, n):
        got = _peaks(labels, dist, lab, 0, 0, fg.shape[0], fg.shape[1], 2.0)
        assert np.all(np.diff(got[:, 2]) <= 0)  # deepest first
        assert {(int(r), int(c)) for r, c, _ in got} == naive.peaks(labels, dist, lab, 2.0)


@pytest.mark.parametrize(
    ("gap_px", "groups"),
    [(0, 2), (40, 1)],  # two disks joined by a thin bridge: 2; one long bar: 1
)
def test_group_peaks_neck_and_ridge(gap_px: int, groups: int) -> None:
    fg = np.zeros((60, 120), np.uint8)
    if gap_px == 0:
        cv2.circle(fg, (35, 30), 18, 255, -1)
        cv2.circle(fg, (85, 30), 18, 255, -1)
        cv2.rectangle(fg, (35, 27), (85, 33), 255, -1)
    else:
        cv2.rectangle(fg, (10, 18), (110, 42), 255, -1)
    _, labels = cv2.connectedComponents(fg)
    dist = cv2.distanceTransform(fg, cv2.DIST_L2, cv2.DIST_MASK_5)
    pk = _peaks(labels.astype(np.int32), dist, 1, 0, 0, 60, 120, 4.0)
    group, n = _group_peaks(pk, dist, 0.65, 3.0)
    assert n == groups and group.min() == 0 and group.max() == n - 1


@pytest.mark.parametrize("seed", [3, 4, 5, 6])
def test_best_cut_matches_twin(seed: int) -> None:
    rng = np.random.default_rng(seed)
    mask = np.zeros((50, 50), np.uint8)
    cv2.circle(mask, (25, 25), 20, 255, -1)
    far = rng.uniform(5, 45, (int(rng.integers(0, 7)), 2))
    depth = rng.uniform(1, 10, far.shape[0])
    assert tuple(_best_cut(mask, far, depth, 3.0)) == naive.best_cut(mask, far, depth, 3.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("max_px", [10_000, 16])
def test_two_means_matches_twin(seed: int, max_px: int) -> None:
    fg, labels, n = _blobs(seed)
    small = np.random.default_rng(seed).integers(0, 256, (*fg.shape, 3)).astype(np.uint8)
    _, _, boxes, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    which = np.arange(1, n, dtype=np.int64)
    cen, cnt, sep = _two_means(small, labels, boxes.astype(np.float64), which, 5, max_px)
    for i, lab in enumerate(which.tolist()):
        step = max(1, int(boxes[lab, 4]) // max_px)
        want_c, want_n, want_s = naive.two_means(small, labels, lab, 5, step)
        np.testing.assert_allclose(cen[i], want_c, rtol=1e-9)
        np.testing.assert_allclose(cnt[i], want_n)
        assert sep[i] == pytest.approx(want_s, rel=1e-9)
    assert _two_means(small, labels, boxes.astype(np.float64), which[:0], 5, 16)[0].shape == (
        0, 2, 3,
    )  # fmt: skip


def test_two_colours_are_far_apart_and_one_colour_is_not() -> None:
    labels = np.zeros((20, 40), np.int32)
    labels[2:18, 2:18] = 1  # one grey square with noise
    labels[2:18, 22:38] = 2  # copper half and grey half
    rng = np.random.default_rng(3)
    small = np.clip(rng.normal(128, 6, (20, 40, 3)), 0, 255).astype(np.uint8)
    small[2:18, 22:30] = (40, 110, 200)
    boxes = np.array([[0, 0, 0, 0, 0], [2, 2, 16, 16, 256], [22, 2, 16, 16, 256]], np.float64)
    _, _, sep = _two_means(small, labels, boxes, np.array([1, 2], np.int64), 5, 256)
    assert sep[0] < 5.0 < 16.0 < sep[1]
