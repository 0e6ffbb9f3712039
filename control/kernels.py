"""Numba kernels of the tracker: predict, gate, group, assign, update.

Private: call them through ``control.tracker`` / ``control.assign``, which check
their input. Arrays are C-contiguous; ticks are float64 unwrapped encoder
counts; lengths mm. Track state per row: ``X`` (x, u, vx, vu) in mm and
mm/tick, ``P`` the two per-axis 2x2 covariances packed as
(xx_pp, xx_pv, xx_vv, uu_pp, uu_pv, uu_vv) (the axes are independent under a
constant-velocity model with diagonal noise, so this is exact), ``H`` half
sizes (hx, hu) of the box around the centre.

Detection clip codes: 0 whole, 1 cut by the top (upstream) edge of the view,
2 cut by the bottom edge, 3 both. A cut box measures only its valid edge.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from control.params import (
    T_BIRTH_ENTRY,
    T_BIRTH_MID,
    T_CELL_MM,
    T_CLIP_TOL_MM,
    T_CONFIRM,
    T_DELETE,
    T_ENTRY_BAND_MM,
    T_EXTENT_ALPHA,
    T_EXTENT_VAR_MM2,
    T_GATE,
    T_HIT,
    T_MAX_COAST,
    T_MISS,
    T_MM_PER_TICK,
    T_PASS_MM,
    T_Q,
    T_R_MM2,
    T_SCORE_MAX,
    T_V0_VAR,
    T_VIEW_BOTTOM,
    T_VIEW_TOP,
    T_X_MIN,
    T_X_SPAN,
    T_Y_VALVE,
)

BIG = 1e300


@njit(cache=True, nogil=True)
def _predict(X, P, n, dt, q):
    """Constant-velocity prediction of rows 0..n-1 by ``dt`` ticks, in place."""
    q3 = q * dt * dt * dt / 3.0
    q2 = q * dt * dt / 2.0
    q1 = q * dt
    for i in range(n):
        for a in range(2):
            X[i, a] += X[i, a + 2] * dt
            pp = P[i, 3 * a]
            pv = P[i, 3 * a + 1]
            vv = P[i, 3 * a + 2]
            P[i, 3 * a] = pp + 2.0 * dt * pv + dt * dt * vv + q3
            P[i, 3 * a + 1] = pv + dt * vv + q2
            P[i, 3 * a + 2] = vv + q1


@njit(cache=True, nogil=True)
def _update_axis(X, P, i, a, innov, r):
    """Scalar Kalman update of axis ``a`` of row ``i`` with innovation ``innov``."""
    pp = P[i, 3 * a]
    pv = P[i, 3 * a + 1]
    vv = P[i, 3 * a + 2]
    s = pp + r
    kp = pp / s
    kv = pv / s
    X[i, a] += kp * innov
    X[i, a + 2] += kv * innov
    P[i, 3 * a] = pp - kp * pp
    P[i, 3 * a + 1] = pv - kp * pv
    P[i, 3 * a + 2] = vv - kv * pv


@njit(cache=True, nogil=True)
def _innov_u(u, hu, dymin, dymax, clip, travel):
    """Along-belt innovation of a track (centre ``u``, half length ``hu``) by one box.

    Whole box: centre residual; cut at the top: leading-edge residual; cut at
    the bottom: trailing-edge residual; cut at both: no information (NaN).
    """
    if clip == 0:
        return 0.5 * (dymin + dymax) - travel - u
    if clip == 1:
        return dymax - travel - (u + hu)
    if clip == 2:
        return dymin - travel - (u - hu)
    return np.nan


@njit(cache=True, nogil=True)
def _mahal2(X, P, H, i, dx, dymin, dymax, clip, travel, prm):
    """Squared Mahalanobis distance of track ``i`` to one detection."""
    r = prm[T_R_MM2]
    ix = dx - X[i, 0]
    d2 = ix * ix / (P[i, 0] + r)
    iu = _innov_u(X[i, 1], H[i, 1], dymin, dymax, clip, travel)
    if not np.isnan(iu):
        ru = r if clip == 0 else r + prm[T_EXTENT_VAR_MM2]
        d2 += iu * iu / (P[i, 3] + ru)
    return d2


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
def _gate(X, P, H, n, observable, dbox, clip, travel, prm):
    """Gated (track, detection, cost) edges found through a spatial hash.

    dbox: (D, 4) x_min, x_max, y_min, y_max (y in view mm). Returns edge arrays
    (E,) track, det, squared Mahalanobis cost, all < gate.
    """
    nd = dbox.shape[0]
    cap = 4 * (n + nd) + 16
    et = np.empty(cap, np.int64)
    ed = np.empty(cap, np.int64)
    ec = np.empty(cap, np.float64)
    ne = 0
    if nd == 0 or n == 0:
        return et[:0], ed[:0], ec[:0]
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
    r = prm[T_R_MM2]
    ru = r + prm[T_EXTENT_VAR_MM2]
    tol = prm[T_CLIP_TOL_MM]
    for i in range(n):
        if not observable[i]:
            continue
        rx = math.sqrt(gate * (P[i, 0] + r))
        ry = math.sqrt(gate * (P[i, 3] + ru))
        yc = X[i, 1] + travel
        if yc - H[i, 1] <= prm[T_VIEW_TOP] + tol or yc + H[i, 1] >= prm[T_VIEW_BOTTOM] - tol:
            ry += H[i, 1]
        cx0 = min(max(math.floor((X[i, 0] - rx - x0) / cell), 0), nx - 1)
        cx1 = min(max(math.floor((X[i, 0] + rx - x0) / cell), 0), nx - 1)
        cy0 = min(max(math.floor((yc - ry - y0) / cell), 0), ny - 1)
        cy1 = min(max(math.floor((yc + ry - y0) / cell), 0), ny - 1)
        for cy in range(cy0, cy1 + 1):
            for cx in range(cx0, cx1 + 1):
                c = cy * nx + cx
                for k in range(start[c], start[c + 1]):
                    j = order[k]
                    d2 = _mahal2(X, P, H, i, px[j], dbox[j, 2], dbox[j, 3], clip[j], travel, prm)
                    if d2 < gate:
                        if ne == cap:
                            cap *= 2
                            et2 = np.empty(cap, np.int64)
                            ed2 = np.empty(cap, np.int64)
                            ec2 = np.empty(cap, np.float64)
                            et2[:ne] = et[:ne]
                            ed2[:ne] = ed[:ne]
                            ec2[:ne] = ec[:ne]
                            et, ed, ec = et2, ed2, ec2
                        et[ne] = i
                        ed[ne] = j
                        ec[ne] = d2
                        ne += 1
    return et[:ne], ed[:ne], ec[:ne]


@njit(cache=True, nogil=True)
def _find(parent, a):
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


@njit(cache=True, nogil=True)
def _components(n_rows, n_cols, er, ec_):
    """Connected components of the bipartite edge graph.

    Returns comp (n_rows + n_cols,) int64: component id per node (rows first),
    -1 for nodes without edges; and the number of components.
    """
    nn = n_rows + n_cols
    parent = np.arange(nn)
    for e in range(er.shape[0]):
        a = _find(parent, er[e])
        b = _find(parent, n_rows + ec_[e])
        if a != b:
            if a < b:
                parent[b] = a
            else:
                parent[a] = b
    has = np.zeros(nn, np.bool_)
    for e in range(er.shape[0]):
        has[er[e]] = True
        has[n_rows + ec_[e]] = True
    comp = np.full(nn, -1, np.int64)
    root_id = np.full(nn, -1, np.int64)
    g = 0
    for a in range(nn):
        if has[a]:
            r = _find(parent, a)
            if root_id[r] < 0:
                root_id[r] = g
                g += 1
            comp[a] = root_id[r]
    return comp, g


@njit(cache=True, nogil=True)
def _lsa_rect(cost):
    """Minimum-cost assignment of every row of ``cost`` (R <= C) to a distinct column.

    Shortest augmenting paths with potentials (Hungarian, O(R^2 C)). Returns
    (R,) int64 column per row.
    """
    nr, nc = cost.shape
    u = np.zeros(nr + 1)
    v = np.zeros(nc + 1)
    p = np.zeros(nc + 1, np.int64)
    way = np.zeros(nc + 1, np.int64)
    minv = np.empty(nc + 1)
    used = np.empty(nc + 1, np.bool_)
    for i in range(1, nr + 1):
        p[0] = i
        j0 = 0
        minv[:] = BIG
        used[:] = False
        while True:
            used[j0] = True
            i0 = p[j0]
            delta = BIG
            j1 = 0
            for j in range(1, nc + 1):
                if not used[j]:
                    cur = cost[i0 - 1, j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j] = cur
                        way[j] = j0
                    if minv[j] < delta:
                        delta = minv[j]
                        j1 = j
            for j in range(nc + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while True:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
            if j0 == 0:
                break
    out = np.full(nr, -1, np.int64)
    for j in range(1, nc + 1):
        if p[j] != 0:
            out[p[j] - 1] = j - 1
    return out


@njit(cache=True, nogil=True)
def _assign_gated(n_rows, n_cols, er, ec_, cost, gate):
    """Exact gated assignment, solved per independent group.

    Minimises the sum of matched edge costs plus ``gate / 2`` per unmatched
    row and per unmatched column (equivalently: a full assignment on the
    dense matrix whose missing entries cost ``gate``, keeping only pairs
    cheaper than ``gate``). Returns (row_to_col (n_rows,), col_to_row (n_cols,)).
    """
    r2c = np.full(n_rows, -1, np.int64)
    c2r = np.full(n_cols, -1, np.int64)
    ne = er.shape[0]
    if ne == 0:
        return r2c, c2r
    comp, g = _components(n_rows, n_cols, er, ec_)
    nrow = np.zeros(g, np.int64)
    ncol = np.zeros(g, np.int64)
    nedge = np.zeros(g, np.int64)
    loc = np.empty(n_rows + n_cols, np.int64)
    for a in range(n_rows + n_cols):
        c = comp[a]
        if c >= 0:
            if a < n_rows:
                loc[a] = nrow[c]
                nrow[c] += 1
            else:
                loc[a] = ncol[c]
                ncol[c] += 1
    for e in range(ne):
        nedge[comp[er[e]]] += 1
    estart = np.zeros(g + 1, np.int64)
    for c in range(g):
        estart[c + 1] = estart[c] + nedge[c]
    fill = estart[:-1].copy()
    eorder = np.empty(ne, np.int64)
    for e in range(ne):
        c = comp[er[e]]
        eorder[fill[c]] = e
        fill[c] += 1
    # members per component, to map local indices back
    rstart = np.zeros(g + 1, np.int64)
    cstart = np.zeros(g + 1, np.int64)
    for c in range(g):
        rstart[c + 1] = rstart[c] + nrow[c]
        cstart[c + 1] = cstart[c] + ncol[c]
    rmem = np.empty(rstart[g], np.int64)
    cmem = np.empty(cstart[g], np.int64)
    for a in range(n_rows + n_cols):
        c = comp[a]
        if c >= 0:
            if a < n_rows:
                rmem[rstart[c] + loc[a]] = a
            else:
                cmem[cstart[c] + loc[a]] = a - n_rows
    for c in range(g):
        if nedge[c] == 1:  # one row, one column, one edge: cheaper than gate by construction
            e = eorder[estart[c]]
            r2c[er[e]] = ec_[e]
            c2r[ec_[e]] = er[e]
            continue
        nr_c = nrow[c]
        nc_c = ncol[c]
        flip = nr_c > nc_c
        m = np.full((nc_c, nr_c), gate) if flip else np.full((nr_c, nc_c), gate)
        for k in range(estart[c], estart[c + 1]):
            e = eorder[k]
            if flip:
                m[loc[n_rows + ec_[e]], loc[er[e]]] = cost[e]
            else:
                m[loc[er[e]], loc[n_rows + ec_[e]]] = cost[e]
        sol = _lsa_rect(m)
        for a in range(sol.shape[0]):
            b = sol[a]
            if m[a, b] < gate:
                if flip:
                    row = rmem[rstart[c] + b]
                    col = cmem[cstart[c] + a]
                else:
                    row = rmem[rstart[c] + a]
                    col = cmem[cstart[c] + b]
                r2c[row] = col
                c2r[col] = row
    return r2c, c2r


@njit(cache=True, nogil=True)
def _clip_codes(dbox, prm):
    nd = dbox.shape[0]
    out = np.zeros(nd, np.int64)
    tol = prm[T_CLIP_TOL_MM]
    for j in range(nd):
        c = 0
        if dbox[j, 2] <= prm[T_VIEW_TOP] + tol:
            c |= 1
        if dbox[j, 3] >= prm[T_VIEW_BOTTOM] - tol:
            c |= 2
        out[j] = c
    return out


@njit(cache=True, nogil=True)
def _apply_det(X, P, H, i, box, clip, travel, prm):
    """Kalman update of track ``i`` by one box (clip-aware), half sizes refreshed."""
    r = prm[T_R_MM2]
    ru = r + prm[T_EXTENT_VAR_MM2]
    alpha = prm[T_EXTENT_ALPHA]
    H[i, 0] += alpha * (0.5 * (box[1] - box[0]) - H[i, 0])
    _update_axis(X, P, i, 0, 0.5 * (box[0] + box[1]) - X[i, 0], r)
    vis = 0.5 * (box[3] - box[2])
    if clip == 0:
        H[i, 1] += alpha * (vis - H[i, 1])
        _update_axis(X, P, i, 1, 0.5 * (box[2] + box[3]) - travel - X[i, 1], r)
    elif clip == 1:  # leading edge valid; a longer visible part moves the centre upstream
        if vis > H[i, 1]:
            X[i, 1] -= vis - H[i, 1]
            H[i, 1] = vis
        _update_axis(X, P, i, 1, box[3] - travel - (X[i, 1] + H[i, 1]), ru)
    elif clip == 2:  # trailing edge valid
        if vis > H[i, 1]:
            X[i, 1] += vis - H[i, 1]
            H[i, 1] = vis
        _update_axis(X, P, i, 1, box[2] - travel - (X[i, 1] - H[i, 1]), ru)


@njit(cache=True, nogil=True)
def _decide_class(ev, nev, cls_frac, thr, order, probs):
    """Combined class probabilities (normalised geometric mean over views) and the
    recipe's decision. Returns (argmax class, its prob, fraction, target class)."""
    k = ev.shape[0]
    if nev == 0 or k == 0:
        return -1, 0.0, -1, -1
    m = -BIG
    for c in range(k):
        m = max(m, ev[c] / nev)
    tot = 0.0
    for c in range(k):
        probs[c] = math.exp(ev[c] / nev - m)
        tot += probs[c]
    best = 0
    for c in range(k):
        probs[c] /= tot
        if probs[c] > probs[best]:
            best = c
    for o in range(k):
        c = order[o]
        if cls_frac[c] >= 0 and probs[c] >= thr[c]:
            return best, probs[best], cls_frac[c], c
    return best, probs[best], -1, -1


@njit(cache=True, nogil=True)
def _crossing(X, P, H, i, t, travel, prm, cross, xc):
    """Predicted valve-line crossing of track ``i``: leading/trailing edge ticks,
    one-sigma in ticks, x at the crossing and its sigma (mm)."""
    mpt = prm[T_MM_PER_TICK]
    q = prm[T_Q]
    ev = prm[T_EXTENT_VAR_MM2]
    vel = max(mpt + X[i, 3], 0.25 * mpt)
    yc = X[i, 1] + travel
    ton = t + (prm[T_Y_VALVE] - yc - H[i, 1]) / vel
    toff = t + (prm[T_Y_VALVE] - yc + H[i, 1]) / vel
    d = max(0.5 * (ton + toff) - t, 0.0)
    var_u = P[i, 3] + 2.0 * d * P[i, 4] + d * d * P[i, 5] + q * d * d * d / 3.0 + ev
    var_x = P[i, 0] + 2.0 * d * P[i, 1] + d * d * P[i, 2] + q * d * d * d / 3.0 + ev
    cross[i, 0] = ton
    cross[i, 1] = toff
    cross[i, 2] = math.sqrt(max(var_u, 0.0)) / vel
    xc[i, 0] = X[i, 0] + X[i, 2] * d
    xc[i, 1] = math.sqrt(max(var_x, 0.0))


@njit(cache=True, nogil=True)
def _birth(
    X,
    P,
    H,
    EV,
    NEV,
    TID,
    CONF,
    DEC,
    SCORE,
    NVIEW,
    MISS,
    k,
    box,
    clip,
    logp_j,
    has_ev_j,
    travel,
    prm,
    counters,
):
    X[k, 0] = 0.5 * (box[0] + box[1])
    X[k, 1] = 0.5 * (box[2] + box[3]) - travel
    X[k, 2] = 0.0
    X[k, 3] = 0.0
    r = prm[T_R_MM2]
    v0 = prm[T_V0_VAR]
    P[k, 0] = r
    P[k, 1] = 0.0
    P[k, 2] = v0
    P[k, 3] = r + (prm[T_EXTENT_VAR_MM2] if clip != 0 else 0.0)
    P[k, 4] = 0.0
    P[k, 5] = v0
    H[k, 0] = 0.5 * (box[1] - box[0])
    H[k, 1] = 0.5 * (box[3] - box[2])
    entering = (clip & 1) != 0 or box[2] < prm[T_VIEW_TOP] + prm[T_ENTRY_BAND_MM]
    SCORE[k] = prm[T_BIRTH_ENTRY] if entering else prm[T_BIRTH_MID]
    TID[k] = counters[0]
    counters[0] += 1
    counters[1] += 1
    CONF[k] = 0
    DEC[k] = 0
    NVIEW[k] = 1
    MISS[k] = 0
    if has_ev_j:
        EV[k, :] = logp_j
        NEV[k] = 1
    else:
        EV[k, :] = 0.0
        NEV[k] = 0


@njit(cache=True, nogil=True)
def _keep_row(X, H, CONF, DEC, SCORE, MISS, i, travel, prm, counters):
    trail = X[i, 1] + travel - H[i, 1]
    past = trail > prm[T_Y_VALVE] + prm[T_PASS_MM]
    if DEC[i]:
        return not past
    if CONF[i]:
        if past or MISS[i] > prm[T_MAX_COAST]:
            counters[3] += 1  # lost before a decision
            return False
        return True
    return SCORE[i] >= prm[T_DELETE] and trail < prm[T_VIEW_BOTTOM]


@njit(cache=True, nogil=True)
def _compact(keep, n, arrs2d_f, arrs1d_f, arrs1d_i):
    """Move kept rows to the front (stable); returns their count."""
    w = 0
    for i in range(n):
        if keep[i]:
            if w != i:
                for a in arrs2d_f:
                    a[w, :] = a[i, :]
                for a in arrs1d_f:
                    a[w] = a[i]
                for a in arrs1d_i:
                    a[w] = a[i]
            w += 1
    return w


@njit(cache=True, nogil=True)
def _track_step(
    X,
    P,
    H,
    EV,
    NEV,
    TID,
    CONF,
    DEC,
    SCORE,
    NVIEW,
    MISS,
    CLS,
    CPROB,
    FRAC,
    TCLS,
    CROSS,
    XC,
    n,
    dt,
    t,
    travel,
    dbox,
    logp,
    has_ev,
    prm,
    cls_frac,
    thr,
    order,
    counters,
):
    """One frame: predict, gate, assign, update, birth, confirm, decide class,
    predict crossing, drop dead rows (compacted in place). Returns the live count.

    counters: int64 [next_id, born, confirmed, lost]. dbox: (D, 4) view-mm boxes.
    Integer per-track arrays are int64, float ones float64 (see control.tracker).
    """
    nd = dbox.shape[0]
    _predict(X, P, n, dt, prm[T_Q])
    top = prm[T_VIEW_TOP]
    bottom = prm[T_VIEW_BOTTOM]
    tol = prm[T_CLIP_TOL_MM]
    observable = np.zeros(n, np.bool_)
    for i in range(n):
        yc = X[i, 1] + travel
        observable[i] = yc + H[i, 1] > top and yc - H[i, 1] < bottom
    clip = _clip_codes(dbox, prm)
    et, ed, ec = _gate(X, P, H, n, observable, dbox, clip, travel, prm)
    t2d, d2t = _assign_gated(n, nd, et, ed, ec, prm[T_GATE])
    for i in range(n):
        j = t2d[i]
        if j >= 0:
            _apply_det(X, P, H, i, dbox[j], clip[j], travel, prm)
            if has_ev[j]:
                EV[i, :] += logp[j]
                NEV[i] += 1
            SCORE[i] = min(SCORE[i] + prm[T_HIT], prm[T_SCORE_MAX])
            NVIEW[i] += 1
            MISS[i] = 0
        elif observable[i]:
            yc = X[i, 1] + travel
            if yc - H[i, 1] > top + tol and yc + H[i, 1] < bottom - tol:
                SCORE[i] -= prm[T_MISS]
                MISS[i] += 1
    m = n
    for j in range(nd):
        if d2t[j] < 0:
            _birth(
                X,
                P,
                H,
                EV,
                NEV,
                TID,
                CONF,
                DEC,
                SCORE,
                NVIEW,
                MISS,
                m,
                dbox[j],
                clip[j],
                logp[j],
                has_ev[j],
                travel,
                prm,
                counters,
            )
            m += 1
    keep = np.empty(m, np.bool_)
    probs = np.empty(EV.shape[1], np.float64)
    for i in range(m):
        if not CONF[i] and SCORE[i] >= prm[T_CONFIRM]:
            CONF[i] = 1
            counters[2] += 1
        if not DEC[i]:
            c, p, f, tc = _decide_class(EV[i], NEV[i], cls_frac, thr, order, probs)
            CLS[i] = c
            CPROB[i] = p
            FRAC[i] = f
            TCLS[i] = tc
        _crossing(X, P, H, i, t, travel, prm, CROSS, XC)
        keep[i] = _keep_row(X, H, CONF, DEC, SCORE, MISS, i, travel, prm, counters)
    return _compact(
        keep,
        m,
        (X, P, H, EV, CROSS, XC),
        (SCORE, CPROB),
        (TID, NVIEW, MISS, NEV, CONF, DEC, CLS, FRAC, TCLS),
    )
