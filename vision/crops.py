"""Square classifier crops around segmented fragments, batched.

Each crop is centred on the fragment's bounding box, ``margin`` times its
longer side (never less than ``min_side_px``, so small fragments keep their
true scale and the classifier sees size), resized to ``size_px``. Pixels that
do not belong to the fragment (neighbours, belt) are replaced by the local belt
colour through a soft mask, so a crop shows one fragment on a clean belt: the
same at training and at run time.
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
    """(N, 3) float64 centre column, centre row and side of each square window (full-res px)."""
    b = np.asarray(bbox_px, dtype=np.float64).reshape(-1, 4)
    cx = (b[:, 0] + b[:, 2]) / 2.0
    cy = (b[:, 1] + b[:, 3]) / 2.0
    side = np.maximum(
        np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) * params.margin, params.min_side_px
    )
    return np.stack([cx, cy, side], axis=1)


def _affine(
    cx: float, cy: float, side: float, size: int, scale: float, offset: float
) -> np.ndarray:
    """2x3 map from source pixels (full-res = scale * src + offset) to crop pixels."""
    k = size / side
    x0, y0 = cx - side / 2.0, cy - side / 2.0
    return np.array(
        [
            [k * scale, 0.0, k * (offset - x0) - 0.5 + 0.5 * k],
            [0.0, k * scale, k * (offset - y0) - 0.5 + 0.5 * k],
        ],
        dtype=np.float64,
    )


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
    out = np.empty((rows.size, size, size, 3), dtype=np.uint8)
    if rows.size == 0:
        return out
    win = crop_windows(segments.bbox_px[rows], params)
    use_mask = params.mask_background and belt_bgr is not None
    alpha = np.empty((rows.size, size, size), dtype=np.float32) if use_mask else None
    fill = np.empty((rows.size, 3), dtype=np.float32)
    s = segments.scale
    off = (s - 1) / 2.0
    for j, (i, (cx, cy, side)) in enumerate(zip(rows, win, strict=True)):
        m_full = _affine(cx, cy, side, size, 1.0, 0.0)
        cv2.warpAffine(
            image,
            m_full,
            (size, size),
            dst=out[j],
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        if alpha is not None and belt_bgr is not None:
            _fragment_alpha(segments, int(i), cx, cy, side, size, s, off, alpha[j])
            r = min(max(int(cy / s), 0), belt_bgr.shape[0] - 1)
            c = min(max(int(cx / s), 0), belt_bgr.shape[1] - 1)
            fill[j] = belt_bgr[r, c]
    if alpha is not None:
        a = alpha[..., None]
        blended = out.astype(np.float32) * a + fill[:, None, None, :] * (1.0 - a)
        np.rint(blended, out=blended)
        out[...] = blended.astype(np.uint8)
    return out


def _fragment_alpha(
    segments: Segments,
    i: int,
    cx: float,
    cy: float,
    side: float,
    size: int,
    s: int,
    off: float,
    dst: np.ndarray,
) -> None:
    """Soft (0..1) mask of fragment ``i`` in crop coordinates, written into ``dst``."""
    lab = int(segments.label_id[i])
    labels = segments.labels
    # low-res window holding the crop, one pixel of slack each side
    h, w = labels.shape
    x0 = max(int((cx - side / 2 - off) / s) - 1, 0)
    y0 = max(int((cy - side / 2 - off) / s) - 1, 0)
    x1 = min(int((cx + side / 2 - off) / s) + 2, w)
    y1 = min(int((cy + side / 2 - off) / s) + 2, h)
    if x1 <= x0 or y1 <= y0:
        dst[...] = 1.0
        return
    m = (labels[y0:y1, x0:x1] == lab).astype(np.float32)
    m = cv2.dilate(m, np.ones((3, 3), np.uint8))
    a = _affine(cx, cy, side, size, float(s), off)
    a[0, 2] += a[0, 0] * x0
    a[1, 2] += a[1, 1] * y0
    cv2.warpAffine(
        m,
        a,
        (size, size),
        dst=dst,
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    )
