"""The colour split (``vision.split``): two materials side by side with no neck and
no notch are cut between them; one material with texture is not."""

from __future__ import annotations

import numpy as np
import pytest

from vision.segment import Segmenter, SegmentParams

BELT = 90


def _segment(image: np.ndarray, colour_diff: float) -> int:
    # the colour cue alone: the chroma cue (on by default) cuts copper from aluminium too
    seg = Segmenter(SegmentParams(split_colour_diff=colour_diff, split_chroma=False))
    seg.segment(np.full_like(image, BELT))  # the belt model first
    return len(seg.segment(image))


BGR = tuple[int, int, int]


def _scene(left_bgr: BGR, right_bgr: BGR, seed: int = 0) -> np.ndarray:
    """A 64 x 40 px rectangle: left half one colour, right half another, with noise."""
    rng = np.random.default_rng(seed)
    img = np.full((512, 1280, 3), BELT, np.int16)
    img[200:240, 600:632] = left_bgr
    img[200:240, 632:664] = right_bgr
    img += rng.normal(0, 4, img.shape).astype(np.int16)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("left", "right", "colour_diff", "want"),
    [
        ((40, 110, 200), (200, 200, 205), 60.0, 2),  # copper beside aluminium: cut
        ((40, 110, 200), (200, 200, 205), 0.0, 1),  # colour split off (the default): whole
        ((200, 200, 205), (200, 200, 205), 60.0, 1),  # one material: whole
        ((40, 110, 200), (48, 118, 206), 60.0, 1),  # two shades of one: whole
    ],
)
def test_colour_split(left: BGR, right: BGR, colour_diff: float, want: int) -> None:
    assert _segment(_scene(left, right), colour_diff) == want
