# mypy: disallow-untyped-defs=False
"""Numba kernels of the sensor fusion: footprints against sensor rows.

Private: the public shell is ``sortline.sensor.fusion`` (and the training and
evaluation code there). A footprint is a rectangle in belt coordinates at a
known encoder count; the rows it crossed are found by encoder count (the bar
line ``y_bar_mm`` meets the rectangle), the channels by their coil centres.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

# columns of the integrals ``_footprint_integrals`` writes
F_SUM_I = 0  # summed in-phase over the footprint's cells (shares of shared cells)
F_SUM_Q = 1  # summed quadrature
F_PEAK = 2  # largest |I + jQ| of one cell (times its share)
F_CELLS = 3  # cells (rows x channels) the footprint covers
F_SHARED = 4  # share of those cells that other footprints cover too
F_SIGNAL = 5  # share of cells above ``signal_units``
F_COMPLETE = 6  # 1 when every row it crossed is in the ring
N_INTEGRALS = 7


class FusionParams(NamedTuple):
    """y_bar_mm: the bar line, belt y in the camera's frame (negative: upstream);
    mm_per_tick; x_first_mm, pitch_mm: coil c's centre at x_first + (c + 0.5) pitch;
    margin_x_mm, margin_y_mm: added around each footprint (the coil's reach);
    signal_units: a cell above this |I + jQ| counts as signal; row_ticks: encoder
    counts between rows (a footprint missing more than one of its rows, lost
    datagrams or a stall, is not complete)."""

    y_bar_mm: float
    mm_per_tick: float
    x_first_mm: float
    pitch_mm: float
    margin_x_mm: float
    margin_y_mm: float
    signal_units: float
    row_ticks: float


@njit(cache=True, nogil=True)
def _first_at_or_after(TICK, lo, hi, cap, t):
    """Smallest logical index j in [lo, hi) with TICK[j % cap] >= t (hi if none)."""
    a, b = lo, hi
    while a < b:
        m = (a + b) // 2
        if TICK[m % cap] < t:
            a = m + 1
        else:
            b = m
    return a


@njit(cache=True, nogil=True)
def _ranges(TICK, first, end, cap, X0, X1, Y0, Y1, t_now, p, n_ch, RNG):
    """Per footprint: logical rows [r0, r1), channels [c0, c1], complete flag -> RNG (n, 5)."""
    n = X0.shape[0]
    for j in range(n):
        ta = t_now - (Y1[j] + p.margin_y_mm - p.y_bar_mm) / p.mm_per_tick
        tb = t_now - (Y0[j] - p.margin_y_mm - p.y_bar_mm) / p.mm_per_tick
        r0 = _first_at_or_after(TICK, first, end, cap, ta)
        r1 = _first_at_or_after(TICK, r0, end, cap, tb + 1e-9)
        c0 = int(np.ceil((X0[j] - p.margin_x_mm - p.x_first_mm) / p.pitch_mm - 0.5))
        c1 = int(np.floor((X1[j] + p.margin_x_mm - p.x_first_mm) / p.pitch_mm - 0.5))
        RNG[j, 0] = r0
        RNG[j, 1] = r1
        RNG[j, 2] = max(c0, 0)
        RNG[j, 3] = min(c1, n_ch - 1)
        ok = end > first and TICK[first % cap] <= ta and TICK[(end - 1) % cap] >= tb
        ok = ok and (r1 - r0) >= np.floor((tb - ta) / p.row_ticks) - 1
        RNG[j, 4] = 1 if ok else 0


@njit(cache=True, nogil=True)
def _footprint_integrals(TICK, RI, RQ, first, end, X0, X1, Y0, Y1, ACTIVE, t_now, p, OUT):
    """Integrate rows x channels under each footprint (module doc) -> OUT (n, N_INTEGRALS).

    TICK (cap,) int64, RI, RQ (cap, C) float32: the ring (in-phase, quadrature); rows first..end-1
    (logical, slot = index % cap) are readable. X0, X1, Y0, Y1 (n,) float64:
    footprints in belt mm at encoder count ``t_now`` (the ring's count space).
    ACTIVE (n,) bool: rows to integrate (all n share cells). A cell covered by
    k footprints gives each 1/k of its value.
    """
    n = X0.shape[0]
    cap = TICK.shape[0]
    n_ch = RI.shape[1]
    for j in range(n):
        for f in range(OUT.shape[1]):
            OUT[j, f] = 0.0
    if n == 0 or end <= first:
        return
    RNG = np.empty((n, 5), np.int64)
    _ranges(TICK, first, end, cap, X0, X1, Y0, Y1, t_now, p, n_ch, RNG)
    lo = end
    hi = first
    for j in range(n):
        if RNG[j, 1] > RNG[j, 0] and RNG[j, 3] >= RNG[j, 2]:
            lo = min(lo, RNG[j, 0])
            hi = max(hi, RNG[j, 1])
    if hi <= lo:
        return
    cover = np.zeros((hi - lo, n_ch), np.int32)
    for j in range(n):
        for r in range(RNG[j, 0], RNG[j, 1]):
            for c in range(RNG[j, 2], RNG[j, 3] + 1):
                cover[r - lo, c] += 1
    thr2 = p.signal_units * p.signal_units
    for j in range(n):
        OUT[j, F_COMPLETE] = RNG[j, 4]
        if not ACTIVE[j]:
            continue
        si = 0.0
        sq = 0.0
        peak = 0.0
        cells = 0
        shared = 0
        sig = 0
        for r in range(RNG[j, 0], RNG[j, 1]):
            slot = r % cap
            for c in range(RNG[j, 2], RNG[j, 3] + 1):
                k = cover[r - lo, c]
                w = 1.0 / k
                vi = RI[slot, c]
                vq = RQ[slot, c]
                si += w * vi
                sq += w * vq
                m2 = vi * vi + vq * vq
                peak = max(peak, w * np.sqrt(m2))
                cells += 1
                shared += 1 if k > 1 else 0
                sig += 1 if m2 > thr2 else 0
        OUT[j, F_SUM_I] = si
        OUT[j, F_SUM_Q] = sq
        OUT[j, F_PEAK] = peak
        OUT[j, F_CELLS] = cells
        if cells:
            OUT[j, F_SHARED] = shared / cells
            OUT[j, F_SIGNAL] = sig / cells


@njit(cache=True, nogil=True)
def _fused_logits(INT, rows, EV, NEV, mean, scale, W, cmap, weight, log_floor, noise, out):
    """Camera mean log-probabilities plus the sensor term, minus each row's max.

    INT (n, N_INTEGRALS) integrals; rows (m,) int64 rows to fuse; EV (n, K),
    NEV (n,) the tracker's evidence; mean, scale (7,), W (Km, D): the induction
    model (``models.induction``: the same features and quadratic expansion);
    cmap (K,) int64 model class of each controller class (-1: none, term 0);
    weight, log_floor: as ``sortline.sensor.fusion.sensor_term``; noise: units
    per cell. Writes out[:m] (m, K).
    """
    m = rows.shape[0]
    d = mean.shape[0]
    km = W.shape[0]
    k = EV.shape[1]
    f = np.empty(d)
    phi = np.empty(W.shape[1])
    lg = np.empty(km)
    for q in range(m):
        i = rows[q]
        si = INT[i, F_SUM_I]
        sq = INT[i, F_SUM_Q]
        cells = max(INT[i, F_CELLS], 1.0)
        mag = np.sqrt(si * si + sq * sq)
        eps = 3.0 * noise * np.sqrt(cells)
        f[0] = np.arcsinh(si / 100.0)
        f[1] = np.arcsinh(sq / 100.0)
        f[2] = si / (mag + eps)
        f[3] = sq / (mag + eps)
        f[4] = np.arcsinh(INT[i, F_PEAK] / 30.0)
        f[5] = INT[i, F_SIGNAL]
        f[6] = np.arcsinh(mag / cells / 5.0)
        phi[0] = 1.0
        for a in range(d):
            f[a] = (f[a] - mean[a]) / scale[a]
            phi[1 + a] = f[a]
        p = 1 + d
        for a in range(d):
            for b in range(a, d):
                phi[p] = f[a] * f[b]
                p += 1
        mx = -1e300
        for c in range(km):
            s = 0.0
            for j in range(phi.shape[0]):
                s += W[c, j] * phi[j]
            lg[c] = s
            mx = max(mx, s)
        tot = 0.0
        for c in range(km):
            tot += np.exp(lg[c] - mx)
        lse = mx + np.log(tot)
        scl = weight * (1.0 - INT[i, F_SHARED])
        inv = 1.0 / NEV[i]
        best = -1e300
        for c in range(k):
            v = EV[i, c] * inv
            if cmap[c] >= 0:
                v += scl * max(lg[cmap[c]] - lse, log_floor)
            out[q, c] = v
            best = max(best, v)
        for c in range(k):
            out[q, c] -= best
    return out[:m]
