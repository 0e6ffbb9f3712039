"""``MergeFlagger``: probable merges among hand-drawn segments (known answers)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vision.merge import MergeFlagger, MergeParams, solidity
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


@pytest.mark.parametrize(
    ("kw", "what"),
    [({"area_ratio": 1.0}, "area_ratio"), ({"max_solidity": 0.0}, "max_solidity"),
     ({"median_alpha": 0.0}, "median_alpha")],
)  # fmt: skip
def test_bad_params_are_refused_naming_the_field(kw: dict, what: str) -> None:
    with pytest.raises(ValueError, match=what):
        MergeParams(**kw)
