# mypy: disallow-untyped-defs=False
"""Numba kernels around the class outlook and the ``Tracks`` export.

Private: used by ``control.evidence`` and ``control.tracker``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

BIG = 1e300


@njit(cache=True, nogil=True)
def _outlook_rows(TID, NEV, DEC, OTID, ONEV, n, force):
    """Undecided rows whose outlook is stale -> (m,) int64 row indices, ascending.

    A row's outlook (CLS, CPROB, FRAC, TCLS) is a function of its evidence,
    which changes only with its view count: it is stale unless it was last
    computed for this track id at this view count (``OTID``, ``ONEV``, stamped
    here), or ``force`` (a new recipe). OTID and ONEV stay with the row
    position when rows move, so a moved track is always refreshed.
    """
    rows = np.empty(n, np.int64)
    m = 0
    for i in range(n):
        if DEC[i]:
            continue
        if force or OTID[i] != TID[i] or ONEV[i] != NEV[i]:
            OTID[i] = TID[i]
            ONEV[i] = NEV[i]
            rows[m] = i
            m += 1
    return rows[:m]


@njit(cache=True, nogil=True)
def _outlook_logits(EV, NEV, rows, out):
    """out[q] = mean log probability per view of row ``rows[q]`` minus its maximum
    (0 for no evidence); returns ``out[:m]`` (m, K)."""
    k = EV.shape[1]
    m = rows.shape[0]
    for q in range(m):
        i = rows[q]
        if NEV[i] == 0:
            for c in range(k):
                out[q, c] = 0.0
            continue
        inv = 1.0 / NEV[i]
        mx = -BIG
        for c in range(k):
            mx = max(mx, EV[i, c] * inv)
        for c in range(k):
            out[q, c] = EV[i, c] * inv - mx
    return out[:m]


@njit(cache=True, nogil=True)
def _outlook_finish(E, rows, NEV, cls_frac, thr, order, pool, CLS, CPROB, FRAC, TCLS):
    """From exp(logits) (m, K) of rows ``rows``: normalise, argmax, and the recipe's
    first class by priority meeting its threshold, written to those rows; when
    none does, the first class by priority whose pool (``pool[c]``, (K, K) bool:
    the classes of its fraction asking no more certainty than it, itself
    included; all False: no pooling) holds its threshold."""
    m, k = E.shape
    for q in range(m):
        i = rows[q]
        CLS[i] = -1
        CPROB[i] = 0.0
        FRAC[i] = -1
        TCLS[i] = -1
        if NEV[i] == 0 or k == 0:
            continue
        tot = 0.0
        best = 0
        for c in range(k):
            tot += E[q, c]
            if E[q, c] > E[q, best]:
                best = c
        CLS[i] = best
        CPROB[i] = E[q, best] / tot
        for o in range(k):
            c = order[o]
            if cls_frac[c] >= 0 and E[q, c] >= thr[c] * tot:
                FRAC[i] = cls_frac[c]
                TCLS[i] = c
                break
        if TCLS[i] >= 0:
            continue
        for o in range(k):
            c = order[o]
            if cls_frac[c] < 0 or not pool[c, c]:
                continue
            pooled = 0.0
            for c2 in range(k):
                if pool[c, c2]:
                    pooled += E[q, c2]
            if pooled >= thr[c] * tot:
                FRAC[i] = cls_frac[c]
                TCLS[i] = c
                break


@njit(cache=True, nogil=True)
def _export(X, H, EV, TID, CONF, DEC, MISS, CLS, CPROB, NVIEW, CROSS, FRAC, n):
    """Rows 0..n-1 as the arrays of a ``core.types.Tracks`` batch, final dtypes.

    State codes: 3 decided, 2 coasting (confirmed, missed last frame), 1
    confirmed, 0 tentative.
    """
    k = EV.shape[1]
    tid = np.empty(n, np.int64)
    state = np.empty(n, np.int8)
    cen = np.empty((n, 2))
    vel = np.empty((n, 2))
    ext = np.empty((n, 4))
    ev = np.empty((n, k), np.float32)
    cls = np.empty(n, np.int16)
    cprob = np.empty(n, np.float32)
    nview = np.empty(n, np.int16)
    con = np.empty(n, np.int64)
    coff = np.empty(n, np.int64)
    sig = np.empty(n, np.float32)
    frac = np.empty(n, np.int16)
    for i in range(n):
        tid[i] = TID[i]
        if DEC[i]:
            state[i] = 3
        elif CONF[i]:
            state[i] = 2 if MISS[i] > 0 else 1
        else:
            state[i] = 0
        cen[i, 0] = X[i, 0]
        cen[i, 1] = X[i, 1]
        vel[i, 0] = X[i, 2]
        vel[i, 1] = X[i, 3]
        ext[i, 0] = X[i, 0] - H[i, 0]
        ext[i, 1] = X[i, 0] + H[i, 0]
        ext[i, 2] = X[i, 1] - H[i, 1]
        ext[i, 3] = X[i, 1] + H[i, 1]
        for c in range(k):
            ev[i, c] = EV[i, c]
        cls[i] = CLS[i]
        cprob[i] = CPROB[i]
        nview[i] = min(NVIEW[i], 32767)
        con[i] = round(CROSS[i, 0])
        coff[i] = round(CROSS[i, 1])
        sig[i] = CROSS[i, 2]
        frac[i] = FRAC[i]
    return tid, state, cen, vel, ext, ev, cls, cprob, nview, con, coff, sig, frac
