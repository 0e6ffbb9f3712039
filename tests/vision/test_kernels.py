"""The Numba kernels of ``vision.kernels`` against their slow OpenCV / NumPy twins
(``naive.py``) on random and edge cases."""

from __future__ import annotations

import naive
import numpy as np
import pytest
import synth

from vision.crops import CropParams, crop_fill, extract_crops
from vision.kernels import _diff_fg, _update
from vision.segment import Segmenter


def _segments(n_blobs: int, seed: int) -> tuple[np.ndarray, Segmenter]:
    img = synth.render(synth.scatter(n_blobs, seed, min_gap_px=-6.0), seed)  # some touch
    segmenter = Segmenter()
    segmenter.segment(img)
    return img, segmenter


@pytest.mark.parametrize("n_blobs", [0, 1, 30])
@pytest.mark.parametrize("masked", [True, False])
@pytest.mark.parametrize("params", [CropParams(), CropParams(size_px=32, margin=2.0)])
def test_crops_match_opencv_twin(n_blobs: int, masked: bool, params: CropParams) -> None:
    img, segmenter = _segments(n_blobs, 3)
    seg = segmenter.segment(img)
    belt = segmenter.belt.mean_u8 if masked else None
    fast = extract_crops(img, seg, belt, params).astype(np.int32)
    slow = naive.crops(img, seg, belt, params).astype(np.int32)
    assert fast.shape == slow.shape == (len(seg), params.size_px, params.size_px, 3)
    if len(seg):
        diff = np.abs(fast - slow)
        # fixed-point rounding (OpenCV's remap differs by 1-2 levels on ~1 % of values);
        # a mask edge pixel where nearest-label sampling ties may differ more
        assert (diff > 2).mean() < 1e-3 and diff.mean() < 0.06
        if not masked:
            assert diff.max() <= 2


def test_crops_at_image_border_replicate_and_write_into_buffer() -> None:
    img = synth.render([synth.Blob("copper", 5.0, 5.0, 20.0, 20.0, 0.0)], 1)
    segmenter = Segmenter()
    seg = segmenter.segment(img)
    assert len(seg) == 1
    buf = np.zeros((8, 64, 64, 3), np.uint8)
    fast = extract_crops(img, seg, segmenter.belt.mean_u8, CropParams(), out=buf)
    assert fast.base is buf or np.shares_memory(fast, buf)
    slow = naive.crops(img, seg, segmenter.belt.mean_u8, CropParams())
    assert np.abs(fast.astype(int) - slow).max() <= 2


@pytest.mark.parametrize("gain", [1.0, 0.93, 1.07])
def test_belt_difference_matches_twin(gain: float) -> None:
    rng = np.random.default_rng(5)
    small = rng.integers(0, 256, (40, 64, 3), dtype=np.uint8)
    mean_u8 = rng.integers(0, 256, (40, 64, 3), dtype=np.uint8)
    thresh = rng.integers(0, 256, (40, 64), dtype=np.uint8)
    diff = np.empty((40, 64), np.uint8)
    fg = np.empty((40, 64), np.uint8)
    _diff_fg(small.reshape(-1), mean_u8.reshape(-1), thresh.reshape(-1), gain,
             diff.reshape(-1), fg.reshape(-1))  # fmt: skip
    want_diff, want_fg = naive.belt_diff_fg(small, mean_u8, thresh, gain)
    assert np.abs(diff.astype(int) - want_diff).max() <= 1  # float32 vs float64 rounding
    assert (diff != want_diff).mean() < 0.01
    assert ((fg != want_fg) & (diff == want_diff)).sum() == 0


@pytest.mark.parametrize(("alpha", "gain"), [(0.03, 1.0), (0.5, 1.0), (0.03, 1.1)])
def test_belt_update_matches_twin(alpha: float, gain: float) -> None:
    rng = np.random.default_rng(6)
    small = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    diff = rng.integers(0, 256, (30, 50), dtype=np.uint8)
    belt_mask = np.where(rng.random((30, 50)) < 0.7, 255, 0).astype(np.uint8)
    mean = rng.uniform(0, 230, (30, 50, 3)).astype(np.float32)
    spread = rng.uniform(0, 30, (30, 50)).astype(np.float32)
    want = naive.belt_update(small, diff, belt_mask, mean, spread, alpha, gain, 4.0, 24)
    mean_u8 = np.empty((30, 50, 3), np.uint8)
    thresh = np.empty((30, 50), np.uint8)
    _update(small.reshape(-1), diff.reshape(-1), belt_mask.reshape(-1), mean.reshape(-1),
            spread.reshape(-1), alpha, gain, 4.0, 24, mean_u8.reshape(-1),
            thresh.reshape(-1))  # fmt: skip
    np.testing.assert_allclose(mean, want[0], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(spread, want[1], rtol=1e-5, atol=1e-3)
    assert np.abs(mean_u8.astype(int) - want[2]).max() <= 1
    assert np.abs(thresh.astype(int) - want[3]).max() <= 1
    assert thresh.min() >= 24


def test_crops_with_fill_taken_earlier_are_the_same() -> None:
    img, segmenter = _segments(20, 4)
    seg = segmenter.segment(img)
    belt = segmenter.belt.mean_u8
    params = CropParams()
    want = extract_crops(img, seg, belt, params)
    got = extract_crops(img, seg, None, params, fill_bgr=crop_fill(seg, belt, params))
    assert len(seg) > 10
    np.testing.assert_array_equal(got, want)
