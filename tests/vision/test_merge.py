"""``MergeFlagger``: probable merges among hand-drawn segments (known answers);
the compiled solidity (``solidities``) against its OpenCV twin (``solidity``)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vision.merge import MergeFlagger, MergeParams, solidities, solidity
from vision.segment import Segmenter, SegmentParams, Segments


def _segments(shapes: list[str]) -> Segments:
    """One 1280x512 belt image with the shapes drawn apart; segmented without splitting."""
    img = np.full((512, 1280, 3), 90, np.uint8)
    x = 40
    for s in shapes:
        if s == "disc":
            cv2.circle(img, (x + 20, 250), 20, (40, 120, 200), -1)
            x += 80
        elif s == "pair":  # two discs just overlapping: one blob with two concave corners
            cv2.circle(img, (x + 35, 250), 35, (40, 120, 200), -1)
            cv2.circle(img, (x + 103, 250), 35, (200, 200, 200), -1)
            x += 170
    seg = Segmenter(SegmentParams(split=False))
    seg.segment(np.full_like(img, 90))  # the belt model first
    return seg.segment(img)


def test_a_large_concave_segment_is_flagged_and_discs_are_not() -> None:
    seg = _segments(["disc"] * 8 + ["pair"])
    flags = MergeFlagger().flag(seg)
    big = int(np.argmax(seg.area_px))
    assert flags.tolist() == [i == big for i in range(len(seg))]


def test_the_median_needs_enough_segments_before_anything_is_flagged() -> None:
    seg = _segments(["disc", "pair"])  # fewer than min_segments: no median yet
    assert not MergeFlagger().flag(seg).any()


def test_solidity_of_a_disc_is_near_one_and_of_a_pair_lower() -> None:
    seg = _segments(["disc", "pair"])
    small, big = np.argsort(seg.area_px)
    assert solidity(seg, int(small)) > 0.93
    assert solidity(seg, int(big)) < 0.9


def _label_image(masks: list[np.ndarray], scale: int = 2) -> Segments:
    """Segments straight from boolean masks (label k + 1 each; later masks
    overwrite earlier ones), with boxes and areas as the segmenter reports them."""
    h, w = masks[0].shape
    labels = np.zeros((h, w), np.int32)
    for k, m in enumerate(masks):
        labels[m] = k + 1
    ids, boxes, areas = [], [], []
    for k in range(len(masks)):
        ys, xs = np.nonzero(labels == k + 1)
        if len(ys) == 0:
            continue
        ids.append(k + 1)
        boxes.append([xs.min() * scale, ys.min() * scale, (xs.max() + 1) * scale,
                      (ys.max() + 1) * scale])  # fmt: skip
        areas.append(len(ys) * scale * scale)
    n = len(ids)
    return Segments(
        labels=labels, label_id=np.asarray(ids, np.int32),
        bbox_px=np.asarray(boxes, np.float32).reshape(n, 4), centroid_px=np.zeros((n, 2)),
        area_px=np.asarray(areas, np.float64), scale=scale,
    )  # fmt: skip


def _shapes() -> list[np.ndarray]:
    h, w = 120, 300
    out = []
    for draw in (
        lambda m: cv2.circle(m, (30, 30), 20, 1, -1),  # disc
        lambda m: (cv2.circle(m, (80, 60), 18, 1, -1), cv2.circle(m, (110, 60), 18, 1, -1)),
        lambda m: cv2.rectangle(m, (140, 10), (145, 100), 1, -1),  # a thin bar
        lambda m: (
            cv2.rectangle(m, (160, 10), (200, 20), 1, -1),  # an L
            cv2.rectangle(m, (160, 10), (170, 80), 1, -1),
        ),
        lambda m: cv2.circle(m, (250, 60), 30, 1, 6),  # a ring: the hole counts as concave
        lambda m: m.__setitem__((5, 290), 1),  # one pixel
        lambda m: m.__setitem__((slice(110, 111), slice(200, 260)), 1),  # one row
        lambda m: m.__setitem__((slice(40, 90), slice(295, 296)), 1),  # one column
        lambda m: (cv2.circle(m, (40, 95), 8, 1, -1), cv2.circle(m, (75, 100), 6, 1, -1)),
    ):  # the last: two blobs apart under one label
        m = np.zeros((h, w), np.uint8)
        draw(m)
        out.append(m.astype(bool))
    return out


def test_compiled_solidity_equals_the_opencv_twin_on_drawn_shapes() -> None:
    seg = _label_image(_shapes())
    got = solidities(seg, np.arange(len(seg)))
    want = np.array([solidity(seg, k) for k in range(len(seg))])
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9)
    disc, pair, bar, ell, ring, dot = got[:6]
    assert disc > 0.93 and bar > 0.9 and pair < disc and ell < 0.6 and ring < 0.5
    assert dot == 1.0  # one pixel: its hull is the pixel itself (area 1)
    only = solidities(seg, np.array([1, 4]))  # only those asked for
    assert np.isnan(only[[0, 2, 3, 5]]).all() and only[1] == got[1] and only[4] == got[4]


def test_compiled_solidity_equals_the_opencv_twin_on_random_blobs() -> None:
    rng = np.random.default_rng(11)
    for _ in range(20):
        masks = []
        for _ in range(12):
            m = np.zeros((128, 320), np.uint8)
            for _ in range(int(rng.integers(1, 4))):  # 1-3 overlapping ellipses
                c = (int(rng.integers(10, 310)), int(rng.integers(10, 118)))
                ax = (int(rng.integers(1, 25)), int(rng.integers(1, 25)))
                cv2.ellipse(m, c, ax, float(rng.uniform(0, 180)), 0, 360, 1, -1)
            masks.append(m.astype(bool))
        seg = _label_image(masks)
        got = solidities(seg, np.arange(len(seg)))
        want = np.array([solidity(seg, k) for k in range(len(seg))])
        np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize(
    ("kw", "what"),
    [({"area_ratio": 1.0}, "area_ratio"), ({"max_solidity": 0.0}, "max_solidity"),
     ({"median_alpha": 0.0}, "median_alpha")],
)  # fmt: skip
def test_bad_params_are_refused_naming_the_field(kw: dict, what: str) -> None:
    with pytest.raises(ValueError, match=what):
        MergeParams(**kw)
