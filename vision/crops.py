"""Square classifier crops around segmented fragments, cut in one batch.

Each crop is centred on the fragment's bounding box, ``margin`` times its
longer side (never less than ``min_side_px``, so small fragments keep their
true scale and the classifier sees size), resampled bilinearly to ``size_px``.
Pixels that do not belong to the fragment (neighbours, belt) are replaced by
the local belt colour through a softened mask (the fragment's own low-res
label pixels, dilated 3x3, box-blurred 3x3), so a crop shows one fragment on a
clean belt: the same at training and at run time.

One Numba kernel (``vision.kernels._crops``) cuts, masks and blends every crop
of a frame straight into the classifier's input buffer; its slow twin (OpenCV
``remap`` of the stacked crops) lives in ``tests/vision/naive.py``, and an exact
NumPy twin of its fixed-point arithmetic in ``tests/vision/test_cpu_crops.py``.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from vision.kernels import _crops
from vision.segment import Segments

__all__ = ["CropParams", "crop_fill", "crop_windows", "extract_crops"]


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


def crop_fill(segments: Segments, belt_bgr: np.ndarray, params: CropParams) -> np.ndarray:
    """(N, 3) uint8 belt colour at each crop window's centre: what ``extract_crops``
    fills the non-fragment pixels with."""
    win = crop_windows(segments.bbox_px, params)
    return _belt_colour(belt_bgr, win, segments.scale)


def _belt_colour(belt_bgr: np.ndarray, win: np.ndarray, scale: int) -> np.ndarray:
    """(N, 3) uint8 belt model colour at each window's centre."""
    h, w = belt_bgr.shape[:2]
    r = np.clip((win[:, 1] / scale).astype(np.int64), 0, h - 1)
    c = np.clip((win[:, 0] / scale).astype(np.int64), 0, w - 1)
    return np.ascontiguousarray(belt_bgr[r, c])


def extract_crops(
    image: np.ndarray,
    segments: Segments,
    belt_bgr: np.ndarray | None,
    params: CropParams,
    index: np.ndarray | None = None,
    out: np.ndarray | None = None,
    fill_bgr: np.ndarray | None = None,
) -> np.ndarray:
    """Crops of ``segments`` (rows ``index``, default all) from ``image``.

    image:    (H, W, 3) uint8 BGR full resolution (or (H, W) mono).
    belt_bgr: (h, w, 3) uint8 belt model at the segments' resolution, used to
              fill non-fragment pixels; None keeps the raw surroundings.
    out:      optional C-contiguous (M >= N, S, S, 3) uint8 buffer to write into
              (the classifier's preallocated input); the result is ``out[:N]``.
    fill_bgr: optional (N, 3) uint8 fill colours taken earlier (``crop_fill``), used
              instead of ``belt_bgr`` (which a pipelined caller may be updating).
    Returns (N, S, S, 3) uint8 BGR, S = ``params.size_px``.
    """
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    image = np.ascontiguousarray(image)
    rows = np.arange(len(segments)) if index is None else np.asarray(index, dtype=np.int64)
    size = params.size_px
    n = int(rows.size)
    if out is None or out.shape[0] < n or out.shape[1:] != (size, size, 3):
        out = np.empty((n, size, size, 3), dtype=np.uint8)
    dst = out[:n]
    if n == 0:
        return dst
    win = crop_windows(segments.bbox_px[rows], params)
    masked = params.mask_background and (belt_bgr is not None or fill_bgr is not None)
    if fill_bgr is not None:
        fill = np.ascontiguousarray(fill_bgr, dtype=np.uint8).reshape(n, 3)
    elif belt_bgr is not None:
        fill = _belt_colour(belt_bgr, win, segments.scale)
    else:
        fill = np.zeros((n, 3), np.uint8)
    own = np.ascontiguousarray(segments.label_id[rows], dtype=np.int32)
    labels = np.ascontiguousarray(segments.labels, dtype=np.int32)
    _crops(image, labels, win, own, fill, float(segments.scale), masked, dst)
    return dst
