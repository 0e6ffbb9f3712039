# mypy: disallow-untyped-defs=False
"""Numba kernels of box coverage through a grid: how much of a box lies under
the frame's associated detection boxes, without visiting every box.

Private: used by ``control.kernels`` (occlusion-aware scoring and births).
Boxes are (D, 4) x_min, x_max, y_min, y_max in view mm. A box is entered in
every grid cell it overlaps (cell indices clamped to the grid, so boxes past
its edges land in the edge cells and are still found); a query visits the
cells its box overlaps and counts each box once (``stamp``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from control.params import T_CELL_MM, T_VIEW_BOTTOM, T_VIEW_TOP, T_X_MIN, T_X_SPAN

COVER_CELL_PER_HASH_CELL = 3.0  # coverage cells hold a few boxes each: cheap to build


@njit(cache=True, nogil=True)
def _cell_range(lo, hi, origin, cell, n):
    """First and last cell index (clamped to 0..n-1) of the interval [lo, hi] mm."""
    a = min(max(math.floor((lo - origin) / cell), 0), n - 1)
    b = min(max(math.floor((hi - origin) / cell), 0), n - 1)
    return a, b


@njit(cache=True, nogil=True)
def _grid_pass(dbox, owner, x0, y0, cell, nx, ny, at, items):
    """One pass over the boxes with ``owner >= 0`` and the cells they overlap.
    With ``items`` empty, counts each into ``at[cell + 1]``; else writes the box
    index to ``items[at[cell]]`` and advances ``at[cell]``."""
    filling = items.shape[0] > 0
    for j in range(dbox.shape[0]):
        if owner[j] < 0:
            continue
        cx0, cx1 = _cell_range(dbox[j, 0], dbox[j, 1], x0, cell, nx)
        cy0, cy1 = _cell_range(dbox[j, 2], dbox[j, 3], y0, cell, ny)
        for cy in range(cy0, cy1 + 1):
            for cx in range(cx0, cx1 + 1):
                c = cy * nx + cx
                if filling:
                    items[at[c]] = j
                    at[c] += 1
                else:
                    at[c + 1] += 1


@njit(cache=True, nogil=True)
def _box_grid(dbox, owner, x0, y0, cell, nx, ny):
    """Cells -> the boxes with ``owner >= 0`` overlapping them, as CSR arrays
    (start (nx*ny + 1,) int64, items (M,) int64 box indices)."""
    start = np.zeros(nx * ny + 1, np.int64)
    _grid_pass(dbox, owner, x0, y0, cell, nx, ny, start, np.empty(0, np.int64))
    for c in range(nx * ny):
        start[c + 1] += start[c]
    items = np.empty(start[nx * ny], np.int64)
    if items.shape[0] > 0:
        _grid_pass(dbox, owner, x0, y0, cell, nx, ny, start[:-1].copy(), items)
    return start, items


@njit(cache=True, nogil=True)
def _grid_share(bx0, bx1, by0, by1, dbox, start, items, stamp, query, x0, y0, cell, nx, ny):
    """Share of the box [bx0, bx1] x [by0, by1] under the boxes entered in the
    grid: summed pairwise intersections over its area, capped at 1 (where two
    of them overlap it counts twice), 0 for a box of no area. ``stamp`` (D,)
    int64 marks the boxes counted by query number ``query`` (use a new number
    per query; start from -1s)."""
    area = (bx1 - bx0) * (by1 - by0)
    if not area > 0.0:
        return 0.0
    cx0, cx1 = _cell_range(bx0, bx1, x0, cell, nx)
    cy0, cy1 = _cell_range(by0, by1, y0, cell, ny)
    cov = 0.0
    for cy in range(cy0, cy1 + 1):
        for cx in range(cx0, cx1 + 1):
            c = cy * nx + cx
            for q in range(start[c], start[c + 1]):
                k = items[q]
                if stamp[k] == query:
                    continue
                stamp[k] = query
                w = min(bx1, dbox[k, 1]) - max(bx0, dbox[k, 0])
                if w <= 0.0:
                    continue
                h = min(by1, dbox[k, 3]) - max(by0, dbox[k, 2])
                if h > 0.0:
                    cov += w * h
    return min(cov / area, 1.0)


@njit(cache=True, nogil=True)
def _cover_index(dbox, owner, prm):
    """The frame's grid of boxes with ``owner >= 0`` (associated to a track) for
    coverage queries -> (start, items, stamp (D,) int64 of -1s, geo (5,) float64:
    x0, y0, cell mm, nx, ny). Cells are ``COVER_CELL_PER_HASH_CELL`` gate-hash
    cells (``T_CELL_MM``) wide, over the camera's view."""
    cell = max(COVER_CELL_PER_HASH_CELL * prm[T_CELL_MM], 1.0)
    x0 = prm[T_X_MIN]
    y0 = prm[T_VIEW_TOP]
    nx = int(prm[T_X_SPAN] / cell) + 1
    ny = int((prm[T_VIEW_BOTTOM] - y0) / cell) + 1
    start, items = _box_grid(dbox, owner, x0, y0, cell, nx, ny)
    geo = np.array([x0, y0, cell, float(nx), float(ny)])
    return start, items, np.full(dbox.shape[0], -1, np.int64), geo


@njit(cache=True, nogil=True)
def _covered(bx0, bx1, by0, by1, dbox, start, items, stamp, query, geo):
    """``_grid_share`` on an index from ``_cover_index``."""
    return _grid_share(
        bx0, bx1, by0, by1, dbox, start, items, stamp, query,
        geo[0], geo[1], geo[2], int(geo[3]), int(geo[4]),
    )  # fmt: skip
