"""Component statistics in one compiled pass (``vision.kernels._label_stats``) against
``cv2.connectedComponentsWithStats``, which the segmentation called before: the same
labels (int32), boxes, areas and centroids, bit for bit; the second central moments
against ``cv2.moments`` of each label's mask. The segment's moment-equivalent size
(``segment_axes_mm``) against rectangles drawn at any angle, and the moments of the
pieces a split makes against those of the final label image."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vision.kernels import _box_moments, _label_stats
from vision.segment import Segmenter, SegmentParams, Segments, segment_axes_mm


def _check(fg: np.ndarray) -> None:
    n, want_lab, want_st, want_ce = cv2.connectedComponentsWithStats(
        fg, connectivity=8, ltype=cv2.CV_16U
    )
    m, lab16 = cv2.connectedComponents(fg, connectivity=8, ltype=cv2.CV_16U)
    labels, stats, cents, moms = _label_stats(lab16, m)
    assert m == n
    assert labels.dtype == np.int32 and np.array_equal(labels, want_lab.astype(np.int32))
    assert stats.dtype == np.float64 and np.array_equal(stats, want_st.astype(np.float64))
    assert np.array_equal(cents, want_ce, equal_nan=True)
    assert moms.shape == (m, 3) and moms.dtype == np.float64
    for k in range(m):
        mk = cv2.moments((labels == k).astype(np.uint8), binaryImage=True)
        if mk["m00"] == 0:
            assert np.isnan(moms[k]).all()
            continue
        want = np.array([mk["mu20"], mk["mu11"], mk["mu02"]]) / mk["m00"]
        np.testing.assert_allclose(moms[k], want, rtol=1e-9, atol=1e-9)


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


def _rect_image(w_px: float, h_px: float, angle_deg: float) -> np.ndarray:
    img = np.full((256, 640, 3), 60, np.uint8)
    box = cv2.boxPoints(((320.0, 128.0), (w_px, h_px), angle_deg))
    cv2.fillPoly(img, [np.round(box).astype(np.int32)], (200, 180, 90))
    return img


@pytest.mark.parametrize("angle_deg", [0.0, 17.0, 45.0, 71.0, 90.0])
@pytest.mark.parametrize(("w_px", "h_px"), [(120.0, 40.0), (60.0, 60.0), (200.0, 24.0)])
def test_segment_axes_are_a_rectangles_sides_at_any_angle(
    w_px: float, h_px: float, angle_deg: float
) -> None:
    """A rectangle's moment-equivalent sides are its own (to the 2 px of the low-res
    outline and the opening/closing), whatever its angle; px to mm at 0.5 mm/px."""
    seg = Segmenter(SegmentParams(split=False))
    seg.segment(np.full((256, 640, 3), 60, np.uint8))
    got = seg.segment(_rect_image(w_px, h_px, angle_deg))
    assert len(got) == 1

    def to_mm(c: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return 0.5 * np.asarray(c) + 3.0, 0.5 * np.asarray(r) - 7.0

    axes = segment_axes_mm(got, to_mm)
    assert axes.shape == (1, 2) and axes.dtype == np.float32
    want = 0.5 * np.array([min(w_px, h_px), max(w_px, h_px)])
    np.testing.assert_allclose(axes[0], want, atol=2.5)


def test_segment_axes_of_unknown_moments_are_nan_and_of_none_empty() -> None:
    seg = Segmenter(SegmentParams(split=False))
    seg.segment(np.full((256, 640, 3), 60, np.uint8))
    got = seg.segment(_rect_image(80.0, 30.0, 30.0))
    bare = Segments(got.labels, got.label_id, got.bbox_px, got.centroid_px, got.area_px, 2)
    assert bare.moments_px.shape == (1, 3)
    assert np.isnan(segment_axes_mm(bare, lambda c, r: (c, r))).all()
    none = Segments(got.labels, got.label_id[:0], got.bbox_px[:0], got.centroid_px[:0],
                    got.area_px[:0], 2)  # fmt: skip
    assert segment_axes_mm(none, lambda c, r: (c, r)).shape == (0, 2)


def test_split_pieces_get_the_moments_of_the_final_labels() -> None:
    """Seven pairs of touching discs split by the segmentation: every segment's
    moments are those of its own pixels in the label image the split leaves."""
    rng = np.random.default_rng(3)
    img = np.full((256, 640, 3), 60, np.uint8)
    seg = Segmenter(SegmentParams())
    seg.segment(img)
    for k in range(7):
        cx, cy = 40 + 85 * k, int(rng.integers(80, 170))
        cv2.circle(img, (cx, cy), 22, (200, 180, 90), -1)
        cv2.circle(img, (cx + 36, cy + 8), 20, (190, 170, 80), -1)  # a touching twin
    got = seg.segment(img)
    assert len(got) > 7  # pairs were split
    for i, lab in enumerate(got.label_id.tolist()):
        mk = cv2.moments((got.labels == lab).astype(np.uint8), binaryImage=True)
        own = np.array([mk["mu20"], mk["mu11"], mk["mu02"]]) / mk["m00"] + [1 / 12, 0, 1 / 12]
        np.testing.assert_allclose(got.moments_px[i], own * 4, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("jit", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_box_moments_match_opencv_inside_each_box(seed: int, jit: bool) -> None:
    """``_box_moments`` (a split's pieces) against ``cv2.moments`` of each label's
    mask; a label with no pixel in its box, and one left out, keep NaN."""
    rng = np.random.default_rng(seed)
    fg = ((rng.random((60, 90)) < 0.6) * 255).astype(np.uint8)
    m, lab16 = cv2.connectedComponents(fg, connectivity=8, ltype=cv2.CV_16U)
    labels, stats, _, _ = _label_stats(lab16, m)
    which = np.arange(1, m, dtype=np.int64)[::2]
    stats = stats.copy()
    if which.size:
        stats[which[0], :4] = (0, 0, 0, 0)  # an empty box: no pixel
    out = np.full((m, 3), np.nan)
    fn = _box_moments if jit else getattr(_box_moments, "py_func", _box_moments)
    fn(labels, stats, which, out)
    for k in range(m):
        if k not in set(which.tolist()) or (which.size and k == which[0]):
            assert np.isnan(out[k]).all()
            continue
        mk = cv2.moments((labels == k).astype(np.uint8), binaryImage=True)
        want = np.array([mk["mu20"], mk["mu11"], mk["mu02"]]) / mk["m00"]
        np.testing.assert_allclose(out[k], want, rtol=1e-9, atol=1e-9)
