"""Component statistics in one compiled pass (``vision.kernels._label_stats``) against
``cv2.connectedComponentsWithStats``, which the segmentation called before: the same
labels (int32), boxes, areas and centroids, bit for bit."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vision.kernels import _label_stats
from vision.segment import Segmenter, SegmentParams


def _check(fg: np.ndarray) -> None:
    n, want_lab, want_st, want_ce = cv2.connectedComponentsWithStats(
        fg, connectivity=8, ltype=cv2.CV_16U
    )
    m, lab16 = cv2.connectedComponents(fg, connectivity=8, ltype=cv2.CV_16U)
    labels, stats, cents = _label_stats(lab16, m)
    assert m == n
    assert labels.dtype == np.int32 and np.array_equal(labels, want_lab.astype(np.int32))
    assert stats.dtype == np.float64 and np.array_equal(stats, want_st.astype(np.float64))
    assert np.array_equal(cents, want_ce, equal_nan=True)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("density", [0.05, 0.4, 0.7, 0.97])
def test_label_stats_match_opencv_on_random_masks(seed: int, density: float) -> None:
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(1, 70)), int(rng.integers(1, 90))
    _check(((rng.random((h, w)) < density) * 255).astype(np.uint8))


@pytest.mark.parametrize("fill", [0, 255])
def test_label_stats_of_an_empty_and_a_full_mask(fill: int) -> None:
    """A full mask leaves label 0 without pixels: OpenCV's -1 / INT_MAX / NaN row."""
    _check(np.full((7, 11), fill, np.uint8))


def test_segments_of_a_scene_are_those_of_the_opencv_statistics() -> None:
    """Blobs through the whole segmentation: its boxes and centroids are the OpenCV
    statistics of its own foreground (no split: one segment per component)."""
    rng = np.random.default_rng(7)
    img = np.full((256, 640, 3), 60, np.uint8)
    seg = Segmenter(SegmentParams(split=False))
    seg.segment(img)  # the belt model starts from an empty belt
    for _ in range(25):
        c = (int(rng.integers(20, 620)), int(rng.integers(20, 236)))
        cv2.circle(img, c, int(rng.integers(4, 18)), (200, 180, 90), -1)
    got = seg.segment(img)
    small = seg.downsample(img)
    fg = seg.mask(small)
    _, _, st, ce = cv2.connectedComponentsWithStats(fg, connectivity=8, ltype=cv2.CV_16U)
    keep = np.flatnonzero(st[:, cv2.CC_STAT_AREA] * 4 >= 60)
    keep = keep[keep > 0]
    assert len(got) == keep.size > 10
    np.testing.assert_array_equal(got.centroid_px, ce[keep] * 2 + 0.5)
    np.testing.assert_array_equal(got.area_px, st[keep, cv2.CC_STAT_AREA] * 4.0)
