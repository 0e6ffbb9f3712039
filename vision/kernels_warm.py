# mypy: disallow-untyped-defs=False
"""Numba kernel of the warm split (``vision.split_warm``): a red metal against
whatever else it touches.

Private: ``vision.split_warm`` prepares its input. Coordinates are
low-resolution pixels (row, column) as ``vision.kernels_split``. Releases the GIL.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from vision.kernels_split import _label4, _main_region, _open3, _region_solid


@njit(cache=True, nogil=True, error_model="numpy")
def _metal(b, g, r, dark_sum, warm_rb, blue):
    """A red-metal pixel of the warm cue (``b``, ``g``, ``r``: int32): red metal by
    ``_chroma_class`` (B + G + R at least ``dark_sum``, (R - B) / (B + G + R) at
    least ``warm_rb``) and B at least ``blue`` x R (a metal reflects every colour:
    copper and brass keep B near 0.4 R, a yellow or red paint or plastic goes
    under 0.25). Integer sums, compared in float64: exact."""
    s = b + g + r
    return s >= dark_sum and r - b >= warm_rb * s and b >= blue * r


@njit(cache=True, nogil=True, error_model="numpy")
def _warm_counts(small, labels, boxes, which, dark_sum, warm_rb, blue, min_red):
    """(K, 2) float64 per label in ``which`` (K,): its red-metal pixels (``_metal``)
    and, where those are at least ``min_red`` (else 0), its other pixels whose
    four neighbours are all of the label (a lone red piece's blurred rim does not
    count), read inside their boxes (``boxes``: (n, 4+) left, top, width, height
    per label value). Most labels hold no red metal: one pass each."""
    k = which.size
    h, w = labels.shape[0], labels.shape[1]
    out = np.zeros((k, 2), np.float64)
    for i in range(k):
        lab = which[i]
        x0, y0 = int(boxes[lab, 0]), int(boxes[lab, 1])
        x1, y1 = x0 + int(boxes[lab, 2]), y0 + int(boxes[lab, 3])
        red = 0
        for r in range(y0, y1):
            row = labels[r]
            img = small[r]
            for c in range(x0, x1):  # ``_metal`` without branches: most pixels are not
                b, g, rr = np.int32(img[c, 0]), np.int32(img[c, 1]), np.int32(img[c, 2])
                s = b + g + rr
                red += (
                    (row[c] == lab) & (s >= dark_sum) & (rr - b >= warm_rb * s) & (b >= blue * rr)
                )
        out[i, 0] = red
        if red < min_red:
            continue
        rest = 0
        for r in range(max(y0, 1), min(y1, h - 1)):
            row = labels[r]
            img = small[r]
            for c in range(max(x0, 1), min(x1, w - 1)):
                if row[c] != lab or row[c - 1] != lab or row[c + 1] != lab:
                    continue
                if labels[r - 1, c] != lab or labels[r + 1, c] != lab:
                    continue
                if not _metal(
                    np.int32(img[c, 0]), np.int32(img[c, 1]), np.int32(img[c, 2]),
                    dark_sum, warm_rb, blue,
                ):  # fmt: skip
                    rest += 1
        out[i, 1] = rest
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def _on_outline(region, n, comp):
    """(n,) bool: region k (``region`` == k, (h, w) int32) has a pixel with a
    4-neighbour outside ``comp`` ((h, w) uint8, 1 = the component) or on the box's
    edge."""
    h, w = region.shape[0], region.shape[1]
    out = np.zeros(n, np.bool_)
    for r in range(h):
        for c in range(w):
            k = region[r, c]
            if k == 0 or out[k]:
                continue
            if r == 0 or c == 0 or r == h - 1 or c == w - 1:
                out[k] = True
                continue
            vert = comp[r - 1, c] == 0 or comp[r + 1, c] == 0
            out[k] = vert or comp[r, c - 1] == 0 or comp[r, c + 1] == 0
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def _warm_seeds(
    small, labels, lab, r0, c0, h, w, dark, rb, blue, min_red, min_piece, coherence, solid,
    rest_share, max_rest,
):  # fmt: skip
    """Watershed markers of the warm cue for label ``lab`` in its box (rows r0..r0+h,
    columns c0..c0+w of ``small`` and ``labels``): (h + 2, w + 2) int32, G + 1 on a
    1 px frame and outside the label, 0 inside, 1 the red-metal region, 2..G the
    rest's regions, and the marker count G (1: no cut).

    Red metal as ``_metal``; the rest is every other pixel of the label
    (grey, dark, any other colour). The red pixels, opened 3x3, must keep
    ``coherence`` of them in their largest 4-connected region (the first in raster
    order among equals), of at least ``min_red`` px, filling ``solid`` of its convex
    hull. The rest, opened 3x3, gives its 4-connected regions of at least
    ``min_piece`` px that reach the label's outline (a dirt blotch or a piece lying
    wholly on the red metal does not), the ``max_rest`` largest of them (ties: raster
    order); together they must hold ``rest_share`` of the rest's pixels (a rag of
    edges, pads and highlights does not)."""
    comp = np.zeros((h, w), np.uint8)
    red = np.zeros((h, w), np.uint8)
    rest = np.zeros((h, w), np.uint8)
    n_red = 0
    n_rest = 0
    for r in range(h):
        for c in range(w):
            if labels[r0 + r, c0 + c] != lab:
                continue
            comp[r, c] = 1
            px = small[r0 + r]
            if _metal(
                np.int32(px[c0 + c, 0]), np.int32(px[c0 + c, 1]), np.int32(px[c0 + c, 2]),
                dark, rb, blue,
            ):  # fmt: skip
                red[r, c] = 1
                n_red += 1
            else:
                rest[r, c] = 1
                n_rest += 1
    no = np.full((h + 2, w + 2), 2, np.int32)
    if n_red < min_red or n_rest < min_piece:
        return no, 1
    region, best, top = _main_region(red, n_red, min_red, coherence)
    if best == 0:
        return no, 1
    others, o_area = _label4(_open3(rest))
    edge = _on_outline(others, o_area.size, comp)
    keep = np.zeros(max_rest, np.int64)
    n_keep = 0
    held = 0
    for _ in range(max_rest):  # the largest regions first
        pick = 0
        for i in range(1, o_area.size):
            if o_area[i] < min_piece or not edge[i]:
                continue
            if pick > 0 and o_area[i] <= o_area[pick]:
                continue
            taken = False
            for j in range(n_keep):
                if keep[j] == i:
                    taken = True
            if not taken:
                pick = i
        if pick == 0:
            break
        keep[n_keep] = pick
        n_keep += 1
        held += o_area[pick]
    if n_keep == 0 or held < rest_share * n_rest:
        return no, 1
    one, ok = _region_solid(region, best, top, solid)  # the red hull last: the dearest check
    if not ok:
        return no, 1
    g = 1 + n_keep
    markers = np.full((h + 2, w + 2), g + 1, np.int32)
    for r in range(h):
        for c in range(w):
            if comp[r, c] == 0:
                continue
            m = 0
            if one[r, c] == 1:
                m = 1
            else:
                v = others[r, c]
                if v > 0:
                    for j in range(n_keep):
                        if keep[j] == v:
                            m = 2 + j
            markers[r + 1, c + 1] = m
    return markers, g
