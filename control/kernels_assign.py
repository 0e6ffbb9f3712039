# mypy: disallow-untyped-defs=False
"""Numba kernels of exact gated assignment: components, Hungarian, per-group solve.

Private: the public, validating wrappers are in ``control.assign``. A gated
cost graph (edges between rows and columns cheaper than the gate) splits
into independent connected components; each is solved exactly on its own
small dense matrix, so the total equals the optimum of the whole problem.
"""

from __future__ import annotations

import numpy as np
from numba import njit

BIG = 1e300


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
