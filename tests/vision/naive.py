"""Slow twins of the Numba kernels in ``vision.kernels``, built from plain OpenCV
and NumPy calls (the implementation the kernels replaced); tests assert they agree."""

from __future__ import annotations

import cv2
import numpy as np

from vision.crops import CropParams, crop_windows
from vision.segment import Segments


def crops(
    image: np.ndarray, seg: Segments, belt_bgr: np.ndarray | None, params: CropParams
) -> np.ndarray:
    """(N, S, S, 3) crops: one ``cv2.remap`` of the stacked windows, the label image
    sampled nearest, mask dilated 3x3 and blurred 3x3 per crop, blended onto the belt."""
    size, n = params.size_px, len(seg)
    if n == 0:
        return np.empty((0, size, size, 3), np.uint8)
    win = crop_windows(seg.bbox_px, params)
    t = (np.arange(size, dtype=np.float64) + 0.5) / size
    cols = (win[:, 0] - win[:, 2] / 2)[:, None] + t[None, :] * win[:, 2:3] - 0.5
    rows = (win[:, 1] - win[:, 2] / 2)[:, None] + t[None, :] * win[:, 2:3] - 0.5
    map_x = np.repeat(cols[:, None, :], size, axis=1).reshape(n * size, size).astype(np.float32)
    map_y = np.repeat(rows[:, :, None], size, axis=2).reshape(n * size, size).astype(np.float32)
    out = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out = out.reshape(n, size, size, 3)
    if not params.mask_background or belt_bgr is None:
        return out
    s = seg.scale
    lab = cv2.remap(
        seg.labels.astype(np.float32),
        (map_x + 0.5) / s - 0.5,
        (map_y + 0.5) / s - 0.5,
        cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    ).reshape(n, size, size)
    h, w = belt_bgr.shape[:2]
    fill_r = np.clip((win[:, 1] / s).astype(np.int64), 0, h - 1)
    fill_c = np.clip((win[:, 0] / s).astype(np.int64), 0, w - 1)
    fill = belt_bgr[fill_r, fill_c].astype(np.float64)
    for i in range(n):
        own = (lab[i] == seg.label_id[i]).astype(np.uint8) * 255
        dil = cv2.dilate(own, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT)
        a = cv2.blur(dil, (3, 3)).astype(np.float64)[:, :, None]
        fg = np.round(out[i] * a / 255.0)
        bg = np.round(fill[i] * (255.0 - a) / 255.0)
        out[i] = np.minimum(fg + bg, 255).astype(np.uint8)
    return out


def belt_diff_fg(
    small: np.ndarray, mean_u8: np.ndarray, thresh_u8: np.ndarray, gain: float
) -> tuple[np.ndarray, np.ndarray]:
    """diff = min(255, sum |small - round(gain * belt)|), fg = 255 where diff > thresh."""
    belt = np.minimum(np.floor(mean_u8.astype(np.float64) * np.float32(gain) + 0.5), 255)
    diff = np.minimum(np.abs(small.astype(np.float64) - belt).sum(axis=2), 255).astype(np.uint8)
    return diff, np.where(diff > thresh_u8, 255, 0).astype(np.uint8)


def belt_update(
    small: np.ndarray,
    diff: np.ndarray,
    belt_mask: np.ndarray,
    mean: np.ndarray,
    spread: np.ndarray,
    alpha: float,
    gain: float,
    k_sigma: float,
    min_diff: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """New mean, spread and their uint8 maps (mean_u8, thresh_u8), in float64."""
    a = np.where(belt_mask != 0, alpha, 0.0)
    m = mean.astype(np.float64) * gain
    m = m + a[:, :, None] * (small - m)
    s = spread + a * (diff - spread.astype(np.float64))
    mean_u8 = np.minimum(np.floor(m + 0.5), 255).astype(np.uint8)
    thresh = np.maximum(np.minimum(np.floor(k_sigma * s + 0.5), 255), min_diff).astype(np.uint8)
    return m, s, mean_u8, thresh


def label_max(labels: np.ndarray, dist: np.ndarray, diff: np.ndarray, n: int) -> tuple:
    """Largest ``dist`` and mean ``diff`` per label value (0 for label 0 and empty labels)."""
    max_d = np.zeros(n, np.float32)
    mean = np.zeros(n)
    for lab in range(1, n):
        on = labels == lab
        if on.any():
            max_d[lab] = dist[on].max()
            mean[lab] = diff[on].mean()
    return max_d, mean


def peaks(labels: np.ndarray, dist: np.ndarray, lab: int, min_radius: float) -> set:
    """(row, col) of the 3x3 local maxima (plateaus kept) of ``dist`` on label ``lab``."""
    grown = cv2.dilate(dist, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT,
                       borderValue=0.0)  # fmt: skip
    rows, cols = np.nonzero((labels == lab) & (dist >= min_radius) & (dist >= grown))
    return set(zip(rows.tolist(), cols.tolist(), strict=True))


def best_cut(mask: np.ndarray, far: np.ndarray, depth: np.ndarray, ratio: float) -> tuple:
    """The notch pair with the smallest length / depth sum below ``ratio`` whose straight
    line stays on the mask for >= 90 % of its samples; (-1, -1) if none."""
    best, best_q = (-1, -1), ratio
    for i in range(len(far)):
        for j in range(i):
            length = float(np.hypot(*(far[i] - far[j])))
            q = length / (depth[i] + depth[j])
            if q >= best_q or length < 2.0:
                continue
            steps = max(int(length), 2)
            t = np.arange(steps)[:, None] / (steps - 1)
            pts = np.floor(far[j] + t * (far[i] - far[j]) + 0.5).astype(np.int64)
            if (mask[pts[:, 1], pts[:, 0]] != 0).sum() >= 0.9 * steps:
                best, best_q = (i, j), q
    return best


def two_means(
    small: np.ndarray, labels: np.ndarray, lab: int, iters: int, step: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Lloyd's 2-means of every ``step``-th pixel of label ``lab`` (row-major order),
    from its darkest and brightest sampled pixels: centres (2, 3), counts (2,) of
    the sample times ``step``, separation (squared centre gap / mean squared spread)."""
    px = small[labels == lab].astype(np.float64)[::step]
    s = px.sum(axis=1)
    a, b = px[np.argmin(s)].copy(), px[np.argmax(s)].copy()
    near_a = np.ones(len(px), bool)
    for _ in range(iters):
        near_a = ((px - a) ** 2).sum(axis=1) <= ((px - b) ** 2).sum(axis=1)
        if near_a.any():
            a = px[near_a].mean(axis=0)
        if (~near_a).any():
            b = px[~near_a].mean(axis=0)
    d2 = np.minimum(((px - a) ** 2).sum(axis=1), ((px - b) ** 2).sum(axis=1))
    counts = np.array([near_a.sum(), (~near_a).sum()], float) * step
    return np.stack([a, b]), counts, float(((a - b) ** 2).sum() / max(d2.mean(), 1e-9))
