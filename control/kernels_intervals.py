# mypy: disallow-untyped-defs=False
"""Numba kernels of per-resource interval sets (valves, diverter flaps).

Private: used by ``control.kernels_schedule``. ``ivs`` (R, M, 2) int64 with
counts ``cnt`` (R,) hold the committed future on/off intervals of each
resource, sorted and disjoint, any two separated by at least the minimum off
time. A request is merged into them: gaps shorter than the minimum off time
are bridged, and only the parts not already commanded become new pulses.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _prune(ivs, cnt, now):
    """Forget intervals that ended before ``now``."""
    for r in range(cnt.shape[0]):
        k = 0
        while k < cnt[r] and ivs[r, k, 1] < now:
            k += 1
        if k:
            for m in range(k, cnt[r]):
                ivs[r, m - k, 0] = ivs[r, m, 0]
                ivs[r, m - k, 1] = ivs[r, m, 1]
            cnt[r] -= k


@njit(cache=True, nogil=True)
def _plan(ivs, cnt, r, a, b, min_off, seg):
    """Merge request [a, b) into resource ``r``'s committed intervals (dry run).

    Returns (S, E, lo, hi, nseg): the merged interval, the index range of the
    committed intervals it absorbs, and the new segments written to ``seg``
    rows (start, end, 1 if it continues a committed interval else 0).
    """
    lo = 0
    while lo < cnt[r] and ivs[r, lo, 1] + min_off <= a:
        lo += 1
    hi = lo
    while hi < cnt[r] and ivs[r, hi, 0] < b + min_off:
        hi += 1
    s_all = a
    e_all = b
    if hi > lo:
        s_all = min(a, ivs[r, lo, 0])
        e_all = max(b, ivs[r, hi - 1, 1])
    cur = s_all
    cont = 0
    nseg = 0
    for k in range(lo, hi):
        if ivs[r, k, 0] > cur:
            seg[nseg, 0] = cur
            seg[nseg, 1] = ivs[r, k, 0]
            seg[nseg, 2] = cont
            nseg += 1
        cur = max(cur, ivs[r, k, 1])
        cont = 1
    if cur < e_all:
        seg[nseg, 0] = cur
        seg[nseg, 1] = e_all
        seg[nseg, 2] = cont
        nseg += 1
    return s_all, e_all, lo, hi, nseg


@njit(cache=True, nogil=True)
def _commit(ivs, cnt, r, s_all, e_all, lo, hi):
    """Replace committed intervals lo..hi-1 of ``r`` by [s_all, e_all)."""
    m_cap = ivs.shape[1]
    if hi == lo and cnt[r] == m_cap:  # full: forget the earliest
        for m in range(1, cnt[r]):
            ivs[r, m - 1, 0] = ivs[r, m, 0]
            ivs[r, m - 1, 1] = ivs[r, m, 1]
        cnt[r] -= 1
        lo = max(lo - 1, 0)
        hi = lo
    shift = 1 - (hi - lo)
    n = cnt[r]
    if shift > 0:
        for m in range(n - 1, hi - 1, -1):
            ivs[r, m + shift, 0] = ivs[r, m, 0]
            ivs[r, m + shift, 1] = ivs[r, m, 1]
    elif shift < 0:
        for m in range(hi, n):
            ivs[r, m + shift, 0] = ivs[r, m, 0]
            ivs[r, m + shift, 1] = ivs[r, m, 1]
    ivs[r, lo, 0] = s_all
    ivs[r, lo, 1] = e_all
    cnt[r] = n + shift


@njit(cache=True, nogil=True)
def _pulse_columns(rows, n, modulus):
    """Rows (P, 7) int64 of ``_emit`` -> the ``Pulses`` columns in their final dtypes:
    actuator, first, last int16; on, off uint32 (ticks mod ``modulus``); track id
    int64; fraction int16 (fresh arrays of the first ``n`` rows)."""
    act = np.empty(n, np.int16)
    first = np.empty(n, np.int16)
    last = np.empty(n, np.int16)
    on = np.empty(n, np.uint32)
    off = np.empty(n, np.uint32)
    tid = np.empty(n, np.int64)
    frac = np.empty(n, np.int16)
    for k in range(n):
        act[k] = rows[k, 0]
        first[k] = rows[k, 1]
        last[k] = rows[k, 2]
        on[k] = rows[k, 3] % modulus
        off[k] = rows[k, 4] % modulus
        tid[k] = rows[k, 5]
        frac[k] = rows[k, 6]
    return act, first, last, on, off, tid, frac


@njit(cache=True, nogil=True)
def _emit(out, n_out, act, v_arr, s_arr, e_arr, nsv, tid, frac):
    """Group per-valve segments (v, s, e) into runs of adjacent valves with equal
    (s, e); append rows (actuator, first, last, on, off, track id, fraction)."""
    same = nsv > 0
    for k in range(1, nsv):  # the usual case: one run, valves in order
        if s_arr[k] != s_arr[0] or e_arr[k] != e_arr[0] or v_arr[k] != v_arr[k - 1] + 1:
            same = False
            break
    if same:
        if n_out == out.shape[0]:
            grown = np.empty((2 * out.shape[0], 7), np.int64)
            grown[:n_out] = out[:n_out]
            out = grown
        out[n_out, 0] = act
        out[n_out, 1] = v_arr[0]
        out[n_out, 2] = v_arr[nsv - 1]
        out[n_out, 3] = s_arr[0]
        out[n_out, 4] = e_arr[0]
        out[n_out, 5] = tid
        out[n_out, 6] = frac
        return out, n_out + 1
    idx = np.argsort(v_arr[:nsv], kind="mergesort")
    idx = idx[np.argsort(e_arr[idx], kind="mergesort")]
    idx = idx[np.argsort(s_arr[idx], kind="mergesort")]
    k = 0
    while k < nsv:
        a = idx[k]
        last = v_arr[a]
        m = k + 1
        while m < nsv:
            b = idx[m]
            if s_arr[b] != s_arr[a] or e_arr[b] != e_arr[a] or v_arr[b] != last + 1:
                break
            last += 1
            m += 1
        if n_out == out.shape[0]:
            grown = np.empty((2 * out.shape[0], 7), np.int64)
            grown[:n_out] = out[:n_out]
            out = grown
        out[n_out, 0] = act
        out[n_out, 1] = v_arr[a]
        out[n_out, 2] = last
        out[n_out, 3] = s_arr[a]
        out[n_out, 4] = e_arr[a]
        out[n_out, 5] = tid
        out[n_out, 6] = frac
        n_out += 1
        k = m
    return out, n_out
