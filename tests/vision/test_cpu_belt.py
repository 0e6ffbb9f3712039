"""The belt model's difference, mask and update in one pass over the rows
(``vision.kernels._belt_pass``, ``BeltModel.foreground_update``) against the two
kernels and the OpenCV dilation the segmentation ran before (``_diff_fg``,
``cv2.bitwise_not(cv2.dilate(fg, 5x5))``, ``_update``): the same bytes and floats."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.vision import synth
from vision.kernels import _belt_pass, _diff_fg, _update
from vision.segment import BeltModel, SegmentParams


def _two_passes(
    small: np.ndarray,
    mean_u8: np.ndarray,
    thresh_u8: np.ndarray,
    gain: float,
    mean: np.ndarray,
    spread: np.ndarray,
    alpha: float,
    k_sigma: float,
    min_diff: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The former path: the whole image's difference, then its dilated mask, then the
    whole image's update (arrays updated in place, as ``_belt_pass`` does)."""
    h, w = small.shape[:2]
    diff = np.empty((h, w), np.uint8)
    fg = np.empty((h, w), np.uint8)
    _diff_fg(small.reshape(-1), mean_u8.reshape(-1), thresh_u8.reshape(-1), gain,
             diff.reshape(-1), fg.reshape(-1))  # fmt: skip
    belt = cv2.bitwise_not(cv2.dilate(fg, np.ones((5, 5), np.uint8)))
    _update(small.reshape(-1), diff.reshape(-1), belt.reshape(-1), mean.reshape(-1),
            spread.reshape(-1), alpha, gain, k_sigma, min_diff, mean_u8.reshape(-1),
            thresh_u8.reshape(-1))  # fmt: skip
    return diff, fg


def _belt_mask_twin(fg: np.ndarray) -> np.ndarray:
    """255 where no foreground lies within 2 rows and 2 columns (NumPy)."""
    h, w = fg.shape
    pad = np.zeros((h + 4, w + 4), bool)
    pad[2:-2, 2:-2] = fg != 0
    near = np.zeros((h, w), bool)
    for dr in range(5):
        for dc in range(5):
            near |= pad[dr : dr + h, dc : dc + w]
    return np.where(near, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("gain", [1.0, 0.93, 1.07])
@pytest.mark.parametrize("shape", [(1, 1), (2, 7), (5, 3), (40, 64), (57, 33)])
def test_belt_pass_equals_the_two_kernels_and_the_dilation(
    gain: float, shape: tuple[int, int]
) -> None:
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    h, w = shape
    small = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mean = rng.uniform(0, 250, (h, w, 3)).astype(np.float32)
    spread = rng.uniform(0, 40, (h, w)).astype(np.float32)
    mean_u8 = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    thresh = rng.integers(0, 256, (h, w), dtype=np.uint8)
    want = [a.copy() for a in (mean, spread, mean_u8, thresh)]
    want_diff, want_fg = _two_passes(small, want[2], want[3], gain, want[0], want[1],
                                     0.05, 4.0, 24)  # fmt: skip
    diff = np.empty((h, w), np.uint8)
    fg = np.empty((h, w), np.uint8)
    _belt_pass(small.reshape(h, 3 * w), mean_u8.reshape(h, 3 * w), thresh, gain, diff, fg,
               mean.reshape(h, 3 * w), spread, 0.05, 4.0, 24)  # fmt: skip
    assert np.array_equal(diff, want_diff) and np.array_equal(fg, want_fg)
    got: list[np.ndarray] = [mean, spread, mean_u8, thresh]
    for a, b in zip(got, want, strict=True):
        assert np.array_equal(a, b)


def test_belt_mask_is_the_dilation_the_twin_computes() -> None:
    """The mask's rule (no foreground within 2 px, the image's outside counts as none)
    is OpenCV's 5x5 dilation, inverted."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        h, w = (int(v) for v in rng.integers(1, 30, 2))
        fg = np.where(rng.random((h, w)) < 0.05, 255, 0).astype(np.uint8)
        want = cv2.bitwise_not(cv2.dilate(fg, np.ones((5, 5), np.uint8)))
        assert np.array_equal(_belt_mask_twin(fg), want)


def test_foreground_update_equals_foreground_then_update_on_frames() -> None:
    """A sequence of drawn frames (fragments coming and going, a brightness change):
    the model, difference and mask stay the same frame after frame."""
    a, b = BeltModel(SegmentParams()), BeltModel(SegmentParams())
    rng = np.random.default_rng(11)
    for i in range(8):
        blobs = [synth.Blob(name, float(rng.uniform(20, 236)), float(rng.uniform(20, 108)),
                            float(rng.uniform(8, 30)), 10.0, float(rng.uniform(0, 180)))
                 for name in ("copper", "aluminium")]  # fmt: skip
        img = synth.render(blobs if i else [], i, h=128, w=256)
        if i == 5:
            img = np.clip(img.astype(np.float32) * 1.08, 0, 255).astype(np.uint8)
        small = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2),
                           interpolation=cv2.INTER_AREA)  # fmt: skip
        da, fa = a.foreground(small)
        a.update(small, da, fa)
        db, fb = b.foreground_update(small)
        assert np.array_equal(da, db) and np.array_equal(fa, fb)
        assert i < 2 or (fb != 0).any()  # the fragments are seen once the model holds
        assert a.gain == b.gain and a.frames == b.frames
        for name in ("mean", "spread", "_mean_u8", "_thresh_u8"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
