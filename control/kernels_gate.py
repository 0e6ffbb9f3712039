# mypy: disallow-untyped-defs=False
"""Numba kernels of association gating: spatial hash and squared Mahalanobis gate.

Private: used by ``control.kernels._track_step``. Boxes are (D, 4) x_min,
x_max, y_min, y_max in view mm; clip codes: 0 whole, 1 cut by the top
(upstream) edge of the view, 2 cut by the bottom edge, 3 both. A cut box
measures only its valid edge.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from control.params import (
    T_CELL_MM,
    T_CLIP_TOL_MM,
    T_ENTRY_BAND_MM,
    T_EXTENT_VAR_MM2,
    T_GATE,
    T_R_GATE_MM2,
    T_VIEW_BOTTOM,
    T_VIEW_TOP,
    T_X_MIN,
    T_X_SPAN,
)


@njit(cache=True, nogil=True)
def _innov_u(u, hu, dymin, dymax, clip, travel):
    """Along-belt innovation of a track (centre ``u``, half length ``hu``) by one box.

    Whole box: centre residual; cut at the top: leading-edge residual; cut at
    the bottom: trailing-edge residual; cut at both: 0 (no information).
    """
    if clip == 0:
        return 0.5 * (dymin + dymax) - travel - u
    if clip == 1:
        return dymax - travel - (u + hu)
    if clip == 2:
        return dymin - travel - (u - hu)
    return 0.0


@njit(cache=True, nogil=True)
def _lead_clip(u, hu, puu, dymin, dymax, clip, travel, r, ru, top, band):
    """Clip code to measure a box by: 1 (its leading edge) for a whole box of a
    track that has just come in (box trailing edge less than ``band`` below the
    view's top edge, the track's predicted one less than two bands: a frame's
    travel), longer than the track by over two edge sigmas, whose leading
    edge fits better than its centre (the track's length is a lower bound while
    the view's top edge cuts the fragment), else ``clip``."""
    if clip != 0 or dymin >= top + band or u - hu + travel > top + 2.0 * band:
        return clip
    if 0.5 * (dymax - dymin) - hu <= 2.0 * math.sqrt(ru - r):
        return clip
    ic = 0.5 * (dymin + dymax) - travel - u
    il = dymax - travel - (u + hu)
    return 1 if il * il / (puu + ru) < ic * ic / (puu + r) else clip


@njit(cache=True, nogil=True)
def _mahal2(x, u, hu, pxx, puu, dx, dymin, dymax, clip, travel, r, ru, top, band):
    """Squared Mahalanobis distance of a predicted track to one detection box."""
    ix = dx - x
    d2 = ix * ix / (pxx + r)
    if clip == 3:
        return d2
    c = clip
    if clip == 0 and dymin < top + band:  # only boxes just in may take the leading edge
        c = _lead_clip(u, hu, puu, dymin, dymax, clip, travel, r, ru, top, band)
    iu = _innov_u(u, hu, dymin, dymax, c, travel)
    return d2 + iu * iu / (puu + (r if c == 0 else ru))


@njit(cache=True, nogil=True)
def _hash_points(px, py, x0, y0, cell, nx, ny):
    """Counting sort of points into a (ny, nx) grid -> (cell_start (nx*ny+1,), order)."""
    n = px.shape[0]
    key = np.empty(n, np.int64)
    start = np.zeros(nx * ny + 1, np.int64)
    for j in range(n):
        cx = min(max(math.floor((px[j] - x0) / cell), 0), nx - 1)
        cy = min(max(math.floor((py[j] - y0) / cell), 0), ny - 1)
        key[j] = cy * nx + cx
        start[key[j] + 1] += 1
    for c in range(nx * ny):
        start[c + 1] += start[c]
    fill = start[:-1].copy()
    order = np.empty(n, np.int64)
    for j in range(n):
        order[fill[key[j]]] = j
        fill[key[j]] += 1
    return start, order


@njit(cache=True, nogil=True)
def _gate_boxes(X, P, H, n, observable, travel, prm, x0, y0, cell, nx, ny):
    """Per track the hash cells its gate can reach -> (n, 4) int64 cx0, cx1, cy0, cy1
    (cx0 = -1 for tracks out of view)."""
    gate = prm[T_GATE]
    r = prm[T_R_GATE_MM2]
    ru = r + prm[T_EXTENT_VAR_MM2]
    tol = prm[T_CLIP_TOL_MM]
    band = prm[T_ENTRY_BAND_MM]
    box = np.full((n, 4), -1, np.int64)
    for i in range(n):
        if not observable[i]:
            continue
        rx = math.sqrt(gate * (P[i, 0] + r))
        ry = math.sqrt(gate * (P[i, 3] + ru))
        yc = X[i, 1] + travel
        if yc - H[i, 1] <= prm[T_VIEW_TOP] + tol or yc + H[i, 1] >= prm[T_VIEW_BOTTOM] - tol:
            ry += H[i, 1]  # a cut box is measured by one edge, up to hu from its centre
        elif yc - H[i, 1] <= prm[T_VIEW_TOP] + 2.0 * band:  # just in (_lead_clip): a box
            ry += band  # measured by its leading edge has its centre <= band + ry / 2 off
        box[i, 0] = min(max(math.floor((X[i, 0] - rx - x0) / cell), 0), nx - 1)
        box[i, 1] = min(max(math.floor((X[i, 0] + rx - x0) / cell), 0), nx - 1)
        box[i, 2] = min(max(math.floor((yc - ry - y0) / cell), 0), ny - 1)
        box[i, 3] = min(max(math.floor((yc + ry - y0) / cell), 0), ny - 1)
    return box


@njit(cache=True, nogil=True)
def _gate(X, P, H, n, observable, dbox, clip, travel, prm):
    """Gated (track, detection, cost) edges found through a spatial hash.

    dbox: (D, 4) x_min, x_max, y_min, y_max (y in view mm). Returns edge arrays
    (E,) track, det, squared Mahalanobis cost, all < gate. Two passes (bound,
    then fill) so that no array is reallocated inside the loops.
    """
    nd = dbox.shape[0]
    if nd == 0 or n == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64)
    gate = prm[T_GATE]
    cell = prm[T_CELL_MM]
    x0 = prm[T_X_MIN]
    y0 = prm[T_VIEW_TOP]
    nx = int(prm[T_X_SPAN] / cell) + 1
    ny = int((prm[T_VIEW_BOTTOM] - y0) / cell) + 1
    px = np.empty(nd, np.float64)
    py = np.empty(nd, np.float64)
    for j in range(nd):
        px[j] = 0.5 * (dbox[j, 0] + dbox[j, 1])
        py[j] = 0.5 * (dbox[j, 2] + dbox[j, 3])
    start, order = _hash_points(px, py, x0, y0, cell, nx, ny)
    box = _gate_boxes(X, P, H, n, observable, travel, prm, x0, y0, cell, nx, ny)
    bound = 0
    for i in range(n):
        if box[i, 0] >= 0:
            for cy in range(box[i, 2], box[i, 3] + 1):
                bound += start[cy * nx + box[i, 1] + 1] - start[cy * nx + box[i, 0]]
    et = np.empty(bound, np.int64)
    ed = np.empty(bound, np.int64)
    ec = np.empty(bound, np.float64)
    r = prm[T_R_GATE_MM2]
    ru = r + prm[T_EXTENT_VAR_MM2]
    top = prm[T_VIEW_TOP]
    band = prm[T_ENTRY_BAND_MM]
    ne = 0
    for i in range(n):
        if box[i, 0] < 0:
            continue
        xi = X[i, 0]
        ui = X[i, 1]
        hui = H[i, 1]
        pxx = P[i, 0]
        puu = P[i, 3]
        for cy in range(box[i, 2], box[i, 3] + 1):
            for k in range(start[cy * nx + box[i, 0]], start[cy * nx + box[i, 1] + 1]):
                j = order[k]
                d2 = _mahal2(
                    xi, ui, hui, pxx, puu, px[j], dbox[j, 2], dbox[j, 3], clip[j], travel, r, ru,
                    top, band,
                )  # fmt: skip
                if d2 < gate:
                    et[ne] = i
                    ed[ne] = j
                    ec[ne] = d2
                    ne += 1
    return et[:ne], ed[:ne], ec[:ne]


@njit(cache=True, nogil=True)
def _clip_codes(dbox, top, bottom, tol):
    """(D,) int64 clip code per box (see module docstring)."""
    nd = dbox.shape[0]
    out = np.zeros(nd, np.int64)
    for j in range(nd):
        c = 0
        if dbox[j, 2] <= top + tol:
            c |= 1
        if dbox[j, 3] >= bottom - tol:
            c |= 2
        out[j] = c
    return out
