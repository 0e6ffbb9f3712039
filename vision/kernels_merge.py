# mypy: disallow-untyped-defs=False
"""Numba kernel of the merge flag's material check (``vision.merge``).

Private: ``vision.merge.warm_shares`` prepares its input; its NumPy twin is
``tests/vision/test_merge_material.py::warm_shares_twin``. Releases the GIL.
"""

from __future__ import annotations

from numba import njit

from vision.kernels_split import _chroma_class


@njit(cache=True, nogil=True, error_model="numpy")
def _warm_shares(image, labels, label_id, box, which, scale, min_sum, warm_rb, max_px, out):
    """Share of red-metal ("warm") pixels of each segment ``which`` (indices into
    ``label_id`` and ``box``: (N, 4) int64 x0, y0, x1, y1 inclusive at the label
    image's resolution). A pixel (row r, column c) of the label image is read from
    ``image`` (full-resolution (H, W, 3) uint8 BGR) at row ``r * scale + scale // 2``,
    column ``c * scale + scale // 2``; every n-th of the segment's pixels (so that
    at most about ``max_px`` are read) counts, unless its B + G + R is below
    ``min_sum`` (too dark for a colour). A pixel is warm when (R - B) / (B + G + R)
    is at least ``warm_rb`` (copper, brass and their tarnish; grey metals, grey
    plastic and rubber are near 0). Writes ``out[k, 0]`` the warm share (0 when
    no pixel counted) and ``out[k, 1]`` the pixels counted, for k in ``which``."""
    h, w = labels.shape[0], labels.shape[1]
    hi_r, hi_c = image.shape[0], image.shape[1]
    off = scale // 2
    for k in which:
        x0, y0 = max(box[k, 0], 0), max(box[k, 1], 0)
        x1, y1 = min(box[k, 2], w - 1), min(box[k, 3], h - 1)
        lid = label_id[k]
        total = 0
        for y in range(y0, y1 + 1):
            for x in range(x0, x1 + 1):
                if labels[y, x] == lid:
                    total += 1
        step = max(1, total // max_px)
        seen = 0
        n = 0
        warm = 0
        for y in range(y0, y1 + 1):
            ry = min(y * scale + off, hi_r - 1)
            for x in range(x0, x1 + 1):
                if labels[y, x] != lid:
                    continue
                take = seen % step == 0
                seen += 1
                if not take:
                    continue
                rx = min(x * scale + off, hi_c - 1)
                kind = _chroma_class(  # grey is not asked for: 2 counts as 0 here
                    float(image[ry, rx, 0]), float(image[ry, rx, 1]), float(image[ry, rx, 2]),
                    min_sum, warm_rb, -1.0,
                )  # fmt: skip
                if kind < 0:
                    continue
                n += 1
                if kind == 1:
                    warm += 1
        out[k, 0] = warm / n if n > 0 else 0.0
        out[k, 1] = float(n)
