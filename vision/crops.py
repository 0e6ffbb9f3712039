"""Square classifier crops around segmented fragments, cut in one batch.

Each crop is centred on the fragment's bounding box, ``margin`` times its
longer side (never less than ``min_side_px``, so small fragments keep their
true scale and the classifier sees size), resampled to ``size_px``. Pixels that
do not belong to the fragment (neighbours, belt) are replaced by the local belt
colour through a softened mask, so a crop shows one fragment on a clean belt:
the same at training and at run time.

All crops of a frame come from one ``cv2.remap`` of the image and one of the
label image (the crops stacked as one tall image), then one blend: no Python
work per crop beyond building the sampling maps with NumPy.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from vision.segment import Segments

__all__ = ["CropParams", "crop_windows", "extract_crops"]


@dataclasses.dataclass(frozen=True, slots=True)
class CropParams:
    size_px: int = 64  # classifier input side
    margin: float = 1.2  # crop side / longer bbox side
    min_side_px: float = 48.0  # full-res px: smaller fragments are not magnified beyond this
    mask_background: bool = True


def crop_windows(bbox_px: np.ndarray, params: CropParams) -> np.ndarray:
    """(N, 3) float64 centre column, centre row and side of each square window.

    bbox_px: (N, 4) x0, y0, x1, y1 pixel edges (full resolution).
    """
    b = np.asarray(bbox_px, dtype=np.float64).reshape(-1, 4)
    cx = (b[:, 0] + b[:, 2]) / 2.0
    cy = (b[:, 1] + b[:, 3]) / 2.0
    longer = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    side = np.maximum(longer * params.margin, params.min_side_px)
    return np.stack([cx, cy, side], axis=1)


def _maps(win: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(N*S, S) float32 source column and row (pixel-centre coordinates) of every crop pixel."""
    t = (np.arange(size, dtype=np.float64) + 0.5) / size  # crop pixel centres in 0..1
    x0 = win[:, 0] - win[:, 2] / 2.0
    y0 = win[:, 1] - win[:, 2] / 2.0
    cols = x0[:, None] + t[None, :] * win[:, 2:3] - 0.5  # (N, S)
    rows = y0[:, None] + t[None, :] * win[:, 2:3] - 0.5
    n = win.shape[0]
    map_x = np.broadcast_to(cols[:, None, :], (n, size, size)).reshape(n * size, size)
    map_y = np.broadcast_to(rows[:, :, None], (n, size, size)).reshape(n * size, size)
    return map_x.astype(np.float32), map_y.astype(np.float32)


def extract_crops(
    image: np.ndarray,
    segments: Segments,
    belt_bgr: np.ndarray | None,
    params: CropParams,
    index: np.ndarray | None = None,
) -> np.ndarray:
    """Crops of ``segments`` (rows ``index``, default all) from ``image``.

    image:    (H, W, 3) uint8 BGR full resolution (or (H, W) mono).
    belt_bgr: (h, w, 3) uint8 belt model at the segments' resolution, used to
              fill non-fragment pixels; None keeps the raw surroundings.
    Returns (N, S, S, 3) uint8 BGR, S = ``params.size_px``.
    """
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    rows = np.arange(len(segments)) if index is None else np.asarray(index, dtype=np.int64)
    size = params.size_px
    n = int(rows.size)
    if n == 0:
        return np.empty((0, size, size, 3), dtype=np.uint8)
    win = crop_windows(segments.bbox_px[rows], params)
    map_x, map_y = _maps(win, size)
    crops = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if params.mask_background and belt_bgr is not None:
        alpha = _fragment_alpha(segments, rows, map_x, map_y)
        fill = _belt_colour(belt_bgr, win, segments.scale)  # (N, 3)
        crops = _blend(crops, alpha, fill, size)
    return crops.reshape(n, size, size, 3)


def _fragment_alpha(
    segments: Segments, rows: np.ndarray, map_x: np.ndarray, map_y: np.ndarray
) -> np.ndarray:
    """(N*S, S) uint8 0..255: the fragment's own pixels, softened by a 3x3 box."""
    s = segments.scale
    lx = (map_x + 0.5) / s - 0.5
    ly = (map_y + 0.5) / s - 0.5
    labels = segments.labels.astype(np.float32)  # exact for label values < 2**24
    sampled = cv2.remap(
        labels, lx, ly, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0
    )
    n = rows.size
    size = map_x.shape[1]
    own = segments.label_id[rows].astype(np.float32)
    mask = (sampled.reshape(n, size, size) == own[:, None, None]).astype(np.uint8) * 255
    mask = cv2.dilate(mask.reshape(n * size, size), np.ones((3, 3), np.uint8))
    return cv2.blur(mask, (3, 3))


def _belt_colour(belt_bgr: np.ndarray, win: np.ndarray, scale: int) -> np.ndarray:
    """(N, 3) uint8 belt model colour at each window's centre."""
    h, w = belt_bgr.shape[:2]
    r = np.clip((win[:, 1] / scale).astype(np.int64), 0, h - 1)
    c = np.clip((win[:, 0] / scale).astype(np.int64), 0, w - 1)
    return belt_bgr[r, c]


def _blend(crops: np.ndarray, alpha: np.ndarray, fill: np.ndarray, size: int) -> np.ndarray:
    """crops * a + fill * (1 - a) on the stacked (N*S, S, 3) image, uint8 arithmetic."""
    n = fill.shape[0]
    fill_img = np.ascontiguousarray(
        np.broadcast_to(fill[:, None, None, :], (n, size, size, 3)).reshape(n * size, size, 3)
    )
    a3 = cv2.cvtColor(alpha, cv2.COLOR_GRAY2BGR)
    fg = cv2.multiply(crops, a3, scale=1.0 / 255.0)
    bg = cv2.multiply(fill_img, cv2.bitwise_not(a3), scale=1.0 / 255.0)
    return cv2.add(fg, bg)
