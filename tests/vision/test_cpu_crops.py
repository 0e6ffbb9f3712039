"""The crop kernel (``vision.kernels._crops``, issue 15's frame CPU) against an exact
NumPy twin of its fixed-point arithmetic (OpenCV ``remap``'s 1/32 px bilinear taps,
the nearest low-res label, a 3x3 dilation and a 3x3 box blur with a reflect-101
border, the blend onto the belt colour), on hand-built scenes and virtual-plant
frames: the crops, and so the classes, must not change by a single level."""

from __future__ import annotations

import naive
import numpy as np
import pytest
import synth

from vision.crops import CropParams, crop_windows, extract_crops
from vision.segment import Segmenter, Segments

# ------------------------------------------------------------------ slow twin


def _taps(start: float, step: float, limit: int, size: int) -> tuple[np.ndarray, ...]:
    """First and second source index (replicated border) and weight (0..32) per sample."""
    i = np.arange(size, dtype=np.float64)
    q = np.floor((start + (i + 0.5) * step - 0.5) * 32.0 + 0.5).astype(np.int64)
    f = q >> 5
    return np.clip(f, 0, limit - 1), np.clip(f + 1, 0, limit - 1), q & 31


def _nearest(start: float, step: float, scale: float, limit: int, size: int) -> np.ndarray:
    i = np.arange(size, dtype=np.float64)
    q = np.floor((start + (i + 0.5) * step) / scale - 0.5 + 0.5).astype(np.int64)
    return np.where((q >= 0) & (q < limit), q, -1)


def _soft_mask(labels: np.ndarray, own: int, lr: np.ndarray, lc: np.ndarray) -> np.ndarray:
    size = lr.size
    inside = (lr[:, None] >= 0) & (lc[None, :] >= 0)
    hit = labels[np.maximum(lr, 0)[:, None], np.maximum(lc, 0)[None, :]] == own
    raw = np.pad(np.where(inside & hit, 255, 0), 1)  # a frame of zeros
    dil = np.zeros((size, size), np.int64)
    for dr in range(3):
        for dc in range(3):
            dil = np.maximum(dil, raw[dr : dr + size, dc : dc + size])
    padded = np.pad(dil, 1, mode="reflect")  # NumPy's "reflect" is reflect-101
    box = np.zeros((size, size), np.int64)
    for dr in range(3):
        for dc in range(3):
            box += padded[dr : dr + size, dc : dc + size]
    return (box + 4) // 9


def twin_crops(
    image: np.ndarray, seg: Segments, fill: np.ndarray, params: CropParams, masked: bool
) -> np.ndarray:
    size = params.size_px
    win = crop_windows(seg.bbox_px, params)
    hh, ww = image.shape[:2]
    h, w = seg.labels.shape
    out = np.empty((len(seg), size, size, 3), np.uint8)
    img = image.astype(np.int64)
    for m, (cx, cy, side) in enumerate(win):
        k, x0, y0 = side / size, cx - side / 2.0, cy - side / 2.0
        c0, c1, fx = _taps(x0, k, ww, size)
        r0, r1, fy = _taps(y0, k, hh, size)
        fx, fy = fx[None, :, None], fy[:, None, None]
        v = ((32 - fx) * (32 - fy) * img[r0][:, c0] + fx * (32 - fy) * img[r0][:, c1]
             + (32 - fx) * fy * img[r1][:, c0] + fx * fy * img[r1][:, c1] + 512) >> 10  # fmt: skip
        if masked:
            lc = _nearest(x0, k, seg.scale, w, size)
            lr = _nearest(y0, k, seg.scale, h, size)
            a = _soft_mask(seg.labels, int(seg.label_id[m]), lr, lc)[:, :, None]
            f = fill[m].astype(np.int64)[None, None, :]
            x, y = v * a + 128, f * (255 - a) + 128
            blend = np.minimum(((x + (x >> 8)) >> 8) + ((y + (y >> 8)) >> 8), 255)
            v = np.where(a == 0, f, np.where(a == 255, v, blend))
        out[m] = v
    return out


# ------------------------------------------------------------------ tests


def _check(image: np.ndarray, seg: Segments, belt: np.ndarray, params: CropParams) -> None:
    win = crop_windows(seg.bbox_px, params)
    s, (h, w) = seg.scale, belt.shape[:2]
    fill = belt[np.clip((win[:, 1] / s).astype(int), 0, h - 1),
                np.clip((win[:, 0] / s).astype(int), 0, w - 1)]  # fmt: skip
    for masked in (True, False):
        got = extract_crops(image, seg, belt if masked else None, params)
        want = twin_crops(image, seg, fill, params, masked)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("params", [CropParams(), CropParams(size_px=32, margin=2.0),
                                    CropParams(size_px=48, min_side_px=20.0)])  # fmt: skip
def test_crops_equal_the_exact_twin_on_drawn_scenes(seed: int, params: CropParams) -> None:
    img = synth.render(synth.scatter(30, seed, min_gap_px=-6.0), seed)  # some touch
    segmenter = Segmenter()
    segmenter.segment(img)
    seg = segmenter.segment(img)
    assert len(seg) > 10
    _check(img, seg, segmenter.belt.mean_u8, params)


def test_crops_at_the_image_corners_equal_the_twin() -> None:
    """Windows past every edge (replicated border, labels outside the image)."""
    blobs = [synth.Blob("copper", x, y, 30.0, 24.0, 0.3)
             for x, y in ((6.0, 6.0), (1274.0, 6.0), (6.0, 506.0), (1274.0, 506.0))]  # fmt: skip
    img = synth.render(blobs, 2)
    segmenter = Segmenter()
    seg = segmenter.segment(img)
    assert len(seg) == 4
    _check(img, seg, segmenter.belt.mean_u8, CropParams())


def test_crops_equal_the_twin_and_stay_near_opencv_on_plant_frames() -> None:
    from bench.vision import _study_scenario
    from calibration.geometry import LineGeometry
    from sim.plant.plant import IdlePlc, VirtualPlant

    plant = VirtualPlant(LineGeometry(), _study_scenario("shred", 1000.0), IdlePlc(), seed=4002)
    segmenter = Segmenter()
    checked = 0
    for i in range(24):
        image = plant.step().image
        seg = segmenter.segment(image)
        if i >= 20:  # the belt model has settled
            _check(image, seg, segmenter.belt.mean_u8, CropParams())
            fast = extract_crops(image, seg, segmenter.belt.mean_u8, CropParams()).astype(int)
            slow = naive.crops(image, seg, segmenter.belt.mean_u8, CropParams()).astype(int)
            assert (np.abs(fast - slow) > 2).mean() < 2e-3
            checked += len(seg)
    assert checked > 200


def test_a_crop_without_its_fragment_is_the_fill_colour_only() -> None:
    """Every row of the mask empty (the label is not in the window): no image read."""
    import dataclasses

    img = synth.render(synth.scatter(6, 5), 5)
    segmenter = Segmenter()
    seg = segmenter.segment(img)
    assert len(seg) >= 3
    absent = dataclasses.replace(seg, label_id=np.full(len(seg), 30000, np.int32))
    fill = np.array([[10, 200, 30]] * len(seg), np.uint8)
    got = extract_crops(img, absent, None, CropParams(), fill_bgr=fill)
    np.testing.assert_array_equal(got, twin_crops(img, absent, fill, CropParams(), True))
    assert (got == fill[:, None, None, :]).all()
