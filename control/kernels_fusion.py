# mypy: disallow-untyped-defs=False
"""Numba kernels of the sensor fusion: footprints against sensor rows.

Private: the public shell is ``sortline.sensor.fusion`` (and the training and
evaluation code there). A footprint is a rectangle in belt coordinates at a
known encoder count; the rows it crossed are found by encoder count (the bar
line ``y_bar_mm`` meets the rectangle), the channels by their coil centres.

A bar of ``n_freq`` frequencies fills its rows frequency-major (value index
f x coils + c); the integrals of frequency 0 are those of a single-frequency
bar, frequency 1 adds its sums and its jointly fitted amplitude (the same
overlaps, one solve).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

_SETTLED = 1e-3  # sweeps stop once no amplitude moves by more than this share
_RIDGE = 0.05  # relative: each amplitude is shrunk by 1 / (1 + _RIDGE) per solve
_LANES = 4  # residual values per cell in the sweeps: I, Q of frequency 0, I, Q of frequency 1
_TERMS = 6  # per cell, a footprint's terms of its integrals (``_cell_sums``)
_SIGNAL_FLAG = 1 << 32  # a cell's flags: 1 if shared + this if signal, so one sum counts both

# columns of the integrals ``_footprint_integrals`` writes
F_SUM_I = 0  # summed in-phase over the footprint's cells (shares of shared cells)
F_SUM_Q = 1  # summed quadrature
F_PEAK = 2  # largest |I + jQ| of one cell (times its share)
F_CELLS = 3  # cells (rows x channels) the footprint covers
F_SHARED = 4  # share of those cells that other footprints cover too
F_SIGNAL = 5  # share of cells above ``signal_units``
F_COMPLETE = 6  # 1 when every row it crossed is in the ring
F_AMP_I = 7  # in-phase amplitude per unit coil overlap (joint least squares, ``_decompose``)
F_AMP_Q = 8  # quadrature amplitude per unit coil overlap
F_COVER = 9  # sum of squared coil overlaps of its cells (the amplitudes' noise is noise / sqrt)
F_WIDTH = 10  # the footprint's extent across the belt, mm
F_LENGTH = 11  # its extent along the belt, mm
F_SUM_I2 = 12  # frequency 1 (0 on a single-frequency bar): summed in-phase, as F_SUM_I
F_SUM_Q2 = 13  # frequency 1: summed quadrature
F_AMP_I2 = 14  # frequency 1: in-phase amplitude per unit coil overlap
F_AMP_Q2 = 15  # frequency 1: quadrature amplitude per unit coil overlap
F_MINOR = 16  # the piece's size from the camera (the track's ``AX``): minor full length, mm
F_MAJOR = 17  # ... major; both NaN (written so here) until the caller gives them
N_INTEGRALS = 18
N_FEATURES_V2 = 15  # features of a single-frequency model (``models.induction``)
N_FEATURES_V3 = 24  # ... and of a two-frequency one
N_FEATURES_V4 = 26  # ... and of one that reads the camera's size of the piece too


class FusionParams(NamedTuple):
    """y_bar_mm: the bar line, belt y in the camera's frame (negative: upstream);
    mm_per_tick; x_first_mm, pitch_mm: coil c's centre at x_first + (c + 0.5) pitch;
    margin_x_mm, margin_y_mm: added around each footprint (the coil's reach);
    signal_units: a cell above this |I + jQ| counts as signal; row_ticks: encoder
    counts between rows (a footprint missing more than one of its rows, lost
    datagrams or a stall, is not complete); coil_sigma_mm: the Gaussian width of
    a coil's sensitivity, crosstalk: the share of each neighbour a channel picks up
    (the overlap model of ``_decompose``); ls_reach: coil sigmas around a
    footprint whose cells its amplitude is fitted to; ls_sweeps: Gauss-Seidel
    sweeps at most; n_freq: frequencies per row (1 or 2; rows hold n_freq x
    coils values, frequency-major)."""

    y_bar_mm: float
    mm_per_tick: float
    x_first_mm: float
    pitch_mm: float
    margin_x_mm: float
    margin_y_mm: float
    signal_units: float
    row_ticks: float
    coil_sigma_mm: float = 15.0
    crosstalk: float = 0.06
    ls_reach: float = 1.5
    ls_sweeps: int = 2
    n_freq: int = 1


@njit(cache=True, nogil=True)
def _first_at_or_after(TICK, lo, hi, wrap, t):
    """Smallest logical index j in [lo, hi) with TICK at j >= t (hi if none); logical
    index j sits in slot j - wrap (- cap past the end: ``wrap`` = first - first % cap)."""
    cap = TICK.shape[0]
    a, b = lo, hi
    while a < b:
        m = (a + b) // 2
        slot = m - wrap
        if slot >= cap:
            slot -= cap
        if TICK[slot] < t:
            a = m + 1
        else:
            b = m
    return a


@njit(cache=True, nogil=True)
def _ranges(TICK, first, end, X0, X1, Y0, Y1, t_now, p, n_ch, RNG, R):
    """Per footprint, one pass: logical rows [r0, r1), channels [c0, c1] and complete flag
    of its integrals -> RNG (n, 5); rows [R0, R1) and channels [C0, C1] of its joint fit,
    within ``p.ls_reach`` coil sigmas (plus one channel for crosstalk) -> R (n, 4).

    Every row search looks only between the rows of the earliest and the latest count
    any footprint needs (found first), which holds every answer a search of the whole
    ring gives."""
    n = X0.shape[0]
    cap = TICK.shape[0]
    wrap = first - first % cap
    reach = p.ls_reach * p.coil_sigma_mm
    t_lo = np.inf
    t_hi = -np.inf
    odd = False  # a NaN count: search the whole ring
    T = np.empty((n, 4))  # the counts each footprint's rows span: integrals, joint fit
    for j in range(n):
        ta_i = t_now - (Y1[j] + p.margin_y_mm - p.y_bar_mm) / p.mm_per_tick
        tb_i = t_now - (Y0[j] - p.margin_y_mm - p.y_bar_mm) / p.mm_per_tick
        ta = t_now - (Y1[j] + reach - p.y_bar_mm) / p.mm_per_tick
        tb = t_now - (Y0[j] - reach - p.y_bar_mm) / p.mm_per_tick
        T[j, 0], T[j, 1], T[j, 2], T[j, 3] = ta_i, tb_i, ta, tb
        t_lo = min(t_lo, ta, ta_i)
        t_hi = max(t_hi, tb + 1e-9, tb_i + 1e-9)
        odd = odd or ta != ta or tb != tb or ta_i != ta_i or tb_i != tb_i
    g_lo, g_hi = first, end
    if not odd:
        g_lo = _first_at_or_after(TICK, first, end, wrap, t_lo)
        g_hi = _first_at_or_after(TICK, g_lo, end, wrap, t_hi)
    t_first = TICK[first % cap] if end > first else 0
    t_last = TICK[(end - 1) % cap] if end > first else 0
    for j in range(n):
        ta = T[j, 0]
        tb = T[j, 1]
        r0 = _first_at_or_after(TICK, g_lo, g_hi, wrap, ta)
        r1 = _first_at_or_after(TICK, r0, g_hi, wrap, tb + 1e-9)
        c0 = int(np.ceil((X0[j] - p.margin_x_mm - p.x_first_mm) / p.pitch_mm - 0.5))
        c1 = int(np.floor((X1[j] + p.margin_x_mm - p.x_first_mm) / p.pitch_mm - 0.5))
        RNG[j, 0] = r0
        RNG[j, 1] = r1
        RNG[j, 2] = max(c0, 0)
        RNG[j, 3] = min(c1, n_ch - 1)
        ok = end > first and t_first <= ta and t_last >= tb
        ok = ok and (r1 - r0) >= np.floor((tb - ta) / p.row_ticks) - 1
        RNG[j, 4] = 1 if ok else 0
        ta = T[j, 2]
        tb = T[j, 3]
        r0 = _first_at_or_after(TICK, g_lo, g_hi, wrap, ta)
        R[j, 0] = r0
        R[j, 1] = _first_at_or_after(TICK, r0, g_hi, wrap, tb + 1e-9)
        c0 = int(np.ceil((X0[j] - reach - p.x_first_mm) / p.pitch_mm - 0.5)) - 1
        c1 = int(np.floor((X1[j] + reach - p.x_first_mm) / p.pitch_mm - 0.5)) + 1
        R[j, 2] = max(c0, 0)
        R[j, 3] = min(c1, n_ch - 1)


@njit(cache=True, nogil=True)
def _back_project(X0, X1, Y0, Y1, VX, VU, y_bar_mm, max_rel):
    """Footprints moved back to where they crossed the bar, in place.

    X0, X1, Y0, Y1 (n,) float64 belt mm now; VX, VU (n,) their velocity relative
    to the belt in mm per mm of belt travel (a rolling or sliding piece), clipped
    to +-max_rel. At constant velocity a piece whose centre is at y now crossed
    y_bar_mm d = (y - y_bar) / (1 + vu) mm of travel ago, vu d further along the
    belt and vx d across it; its rows are found there.
    """
    for j in range(X0.shape[0]):
        vu = min(max(VU[j], -max_rel), max_rel)
        vx = min(max(VX[j], -max_rel), max_rel)
        d = (0.5 * (Y0[j] + Y1[j]) - y_bar_mm) / (1.0 + vu)
        du = -vu * d
        dx = -vx * d
        X0[j] += dx
        X1[j] += dx
        Y0[j] += du
        Y1[j] += du


_PHI_STEP = 1.0 / 64.0  # the normal CDF's table: z from -8 to 8 (interpolation error < 1e-5)
_PHI_TABLE = np.array(
    [0.5 * (1.0 + math.erf(z / math.sqrt(2.0))) for z in np.arange(-512, 513) / 64.0]
)
_PHI_SLOPE = np.append(np.diff(_PHI_TABLE), 0.0)  # entry i + 1 less entry i (the same doubles)


@njit(cache=True, nogil=True)
def _phi(z):
    """Standard normal CDF, linear in a table (an erf per call cost more than the rest);
    0 and 1 beyond it. Without branches (selects), so loops over it vectorise."""
    t = (z + 8.0) * (1.0 / _PHI_STEP)
    top = _PHI_TABLE.shape[0] - 1
    u = min(max(t, 0.0), top - 0.5)  # in the table, for the look-up only
    i = np.uint64(u)  # unsigned: no negative-index wraparound in the look-ups
    f = t - i
    v = _PHI_TABLE[i] + f * _PHI_SLOPE[i]
    v = 0.0 if t <= 0.0 else v
    return 1.0 if t >= top else v


@njit(cache=True, nogil=True)
def _decompose(TICK, RI, RQ, first, end, R, X0, X1, Y0, Y1, t_now, p, OUT):
    """Each footprint's amplitude per unit coil overlap -> OUT[:, F_AMP_I, F_AMP_Q, F_COVER]
    (and F_AMP_I2, F_AMP_Q2 at frequency 1 of a two-frequency bar).

    A cell (row r, coil c) reads sum_j a_j g_j(r, c): g_j is the share of coil
    c's Gaussian sensitivity (sigma ``coil_sigma_mm``, neighbours' crosstalk
    added) that footprint j's rectangle covers when row r was sampled, a
    product of normal CDFs across and along the belt; a_j (complex) is the
    piece's response x coupling x conducting share. The a_j of all footprints
    are solved jointly by least squares (Gauss-Seidel sweeps over the residual,
    a small relative ridge, at most ``ls_sweeps``): touching footprints share
    the cells by how much each explains them, not by an even split. Every
    frequency is solved with the same overlaps in the same sweeps. R (n, 4): each
    footprint's window of rows and coils (``_ranges``).
    """
    n = X0.shape[0]
    cap = TICK.shape[0]
    nf = min(max(p.n_freq, 1), 2)
    n_ch = RI.shape[1] // max(p.n_freq, 1)
    for j in range(n):
        OUT[j, F_AMP_I] = 0.0
        OUT[j, F_AMP_Q] = 0.0
        OUT[j, F_COVER] = 0.0
        OUT[j, F_AMP_I2] = 0.0
        OUT[j, F_AMP_Q2] = 0.0
    if n == 0 or end <= first:
        return
    lo = end
    hi = first
    offy = np.zeros(n + 1, np.int64)
    offx = np.zeros(n + 1, np.int64)
    for j in range(n):
        ny = max(R[j, 1] - R[j, 0], 0)
        nx = max(R[j, 3] - R[j, 2] + 1, 0)
        if ny == 0 or nx == 0:
            ny = 0
            nx = 0
        else:
            lo = min(lo, R[j, 0])
            hi = max(hi, R[j, 1])
        offy[j + 1] = offy[j] + ny
        offx[j + 1] = offx[j] + nx
    if hi <= lo:
        return
    rows = hi - lo
    wrap = first - first % cap  # logical row r sits in slot r - wrap (- cap past the end)
    dist = np.empty(rows)  # each row's bar line in belt mm at t_now (the same for every footprint)
    for r in range(rows):
        slot = lo + r - wrap
        if slot >= cap:
            slot -= cap
        dist[r] = (t_now - TICK[slot]) * p.mm_per_tick + p.y_bar_mm
    GY = np.empty(offy[n])
    GX = np.empty(offx[n])
    G = np.zeros(n)
    ov = np.empty(n_ch)
    inv_s = 1.0 / p.coil_sigma_mm
    for j in range(n):
        G[j] = _overlaps(j, R, lo, offy, offx, dist, X0, X1, Y0, Y1, inv_s, p, n_ch, ov, GY, GX)
    # residuals row-major, the lanes of a cell side by side: [(row - lo) x width + coil x
    # _LANES + 2 f + (0: in-phase, 1: quadrature)], so one row of a footprint's window is
    # one contiguous run (its columns x _LANES values)
    width = n_ch * _LANES
    res = np.empty(rows * width)
    if nf == 1:
        res[:] = 0.0  # a single-frequency bar leaves lanes 2, 3 at 0
    for r in range(rows):
        slot = lo + r - wrap
        if slot >= cap:
            slot -= cap
        cell = res[r * width : (r + 1) * width]
        for f in range(nf):
            vi = RI[slot, f * n_ch : (f + 1) * n_ch]
            vq = RQ[slot, f * n_ch : (f + 1) * n_ch]
            for c in range(n_ch):
                cell[c * _LANES + 2 * f] = vi[c]
                cell[c * _LANES + 2 * f + 1] = vq[c]
    _sweeps(res, width, lo, nf, n, R, offy, offx, GY, GX, G, p.ls_sweeps, OUT)
    for j in range(n):
        OUT[j, F_COVER] = G[j]


@njit(cache=True, nogil=True)
def _overlaps(j, R, lo, offy, offx, dist, X0, X1, Y0, Y1, inv_s, p, n_ch, ov, GY, GX):
    """Footprint j's overlaps along the belt (one per row of its window, ``dist``: each
    row's bar line, rows from ``lo``) -> GY[offy[j]:], across it (one per coil, its
    neighbours' crosstalk added; ``ov`` scratch (n_ch,)) -> GX[offx[j]:]; returns
    sum GY^2 x sum GX^2."""
    ny = offy[j + 1] - offy[j]
    nx = offx[j + 1] - offx[j]
    oy = np.uint64(offy[j])  # unsigned offsets (no negative-index wraparound): no sum
    y0 = Y0[j]  # in the first loop, which vectorises
    y1 = Y1[j]
    d0 = np.uint64(max(R[j, 0] - lo, 0))  # R[j, 0] >= lo where ny > 0
    for q in range(np.uint64(ny)):
        d = dist[d0 + q]
        GY[oy + q] = _phi((y1 - d) * inv_s) - _phi((y0 - d) * inv_s)
    sy = 0.0
    for q in range(np.uint64(ny)):
        sy += GY[oy + q] * GY[oy + q]
    c_lo = max(R[j, 2] - 1, 0)  # each coil's overlap once (its neighbours' crosstalk reuses it)
    c_hi = min(R[j, 3] + 1, n_ch - 1)
    if nx > 0:
        x0 = X0[j]
        x1 = X1[j]
        for k in range(np.uint64(c_hi - c_lo + 1)):  # unsigned: vectorises as GY's loop
            cx = p.x_first_mm + (c_lo + np.int64(k) + 0.5) * p.pitch_mm
            ov[k] = _phi((x1 - cx) * inv_s) - _phi((x0 - cx) * inv_s)
    sx = 0.0
    for q in range(nx):
        c = R[j, 2] + q
        g = ov[c - c_lo]
        if c > 0:
            g += p.crosstalk * ov[c - 1 - c_lo]
        if c < n_ch - 1:
            g += p.crosstalk * ov[c + 1 - c_lo]
        GX[offx[j] + q] = g
        sx += g * g
    return sy * sx


@njit(cache=True, nogil=True)
def _sweeps(res, width, lo, nf, n, R, offy, offx, GY, GX, G, n_sweeps, OUT):
    """Gauss-Seidel sweeps of ``_decompose`` over the residual ``res`` (row - ``lo``,
    ``width`` = coils x ``_LANES`` per row: in-phase and quadrature of frequency 0, then
    of frequency 1, 0 on a bar of ``nf`` = 1) -> OUT[:, F_AMP_I, F_AMP_Q(, F_AMP_I2,
    F_AMP_Q2)].

    A footprint's correlation with the residual is sum_b GX[b] sum_a GY[a] res[a, b]:
    each column of its window summed down its rows, then weighted across. The rows of
    its window are contiguous runs (its columns x lanes), so every column and lane is
    summed at once, one vector operation per few cells, each sum still in row order;
    its step goes back the same way. Each frequency is computed with the same
    operations in the same order whatever the other does, and one whose amplitudes all
    settled in a sweep is left alone in the next (each frequency's fit is what it would
    be alone). A footprint whose amplitudes did not move leaves the residual as it is.
    """
    amp = np.zeros((n, _LANES))
    num = np.empty(_LANES)
    col = np.empty(width)  # a footprint's columns x lanes summed down its rows
    step = np.empty(width)  # ... and its step x GX, per column and lane
    live = np.zeros(_LANES // 2, np.bool_)  # a frequency whose amplitudes settled is left alone
    live[:nf] = True
    moved = np.zeros(_LANES // 2, np.bool_)
    ridge = 1.0 + _RIDGE
    for _ in range(n_sweeps):
        moved[:] = False
        for j in range(n):
            g_j = G[j]
            if g_j <= 1e-12:
                continue
            ny = offy[j + 1] - offy[j]
            nx = offx[j + 1] - offx[j]
            run = np.uint64(nx * _LANES)
            oy = offy[j]
            ox = offx[j]
            # unsigned offsets: no negative-index wraparound in the loops over a run,
            # which then vectorise (every column and lane at once, each sum in row order)
            base = np.uint64((R[j, 0] - lo) * width + R[j, 2] * _LANES)
            for k in range(run):
                col[k] = 0.0
            for a in range(ny):
                w = GY[oy + a]
                o = base + np.uint64(a * width)
                for k in range(run):
                    col[k] += w * res[o + k]
            n0 = 0.0
            n1 = 0.0
            n2 = 0.0
            n3 = 0.0
            for b in range(nx):
                w = GX[ox + b]
                k = b * _LANES
                n0 += w * col[k]
                n1 += w * col[k + 1]
                n2 += w * col[k + 2]
                n3 += w * col[k + 3]
            num[0] = n0
            num[1] = n1
            num[2] = n2
            num[3] = n3
            any_step = False
            for f in range(_LANES // 2):
                ki, kq = 2 * f, 2 * f + 1
                if not live[f]:
                    num[ki] = 0.0
                    num[kq] = 0.0
                    continue
                old_i = amp[j, ki]
                old_q = amp[j, kq]
                new_i = (num[ki] + old_i * g_j) / (g_j * ridge)
                new_q = (num[kq] + old_q * g_j) / (g_j * ridge)
                di = new_i - old_i
                dq = new_q - old_q
                num[ki] = di  # the step, applied to the residual below
                num[kq] = dq
                amp[j, ki] = new_i
                amp[j, kq] = new_q
                any_step = any_step or di != 0.0 or dq != 0.0
                if di * di + dq * dq > _SETTLED * _SETTLED * (new_i * new_i + new_q * new_q) + 1e-8:
                    moved[f] = True
            if not any_step:
                continue
            for b in range(nx):
                w = GX[ox + b]
                for k in range(_LANES):
                    step[b * _LANES + k] = num[k] * w
            for a in range(ny):
                w = GY[oy + a]
                o = base + np.uint64(a * width)
                for k in range(run):
                    res[o + k] -= w * step[k]
        live[:] = moved
        if not moved.any():  # every amplitude settled: a sweep more would change nothing
            break
    for j in range(n):
        OUT[j, F_AMP_I] = amp[j, 0]
        OUT[j, F_AMP_Q] = amp[j, 1]
        if nf > 1:
            OUT[j, F_AMP_I2] = amp[j, 2]
            OUT[j, F_AMP_Q2] = amp[j, 3]


@njit(cache=True, nogil=True)
def _footprint_integrals(TICK, RI, RQ, first, end, X0, X1, Y0, Y1, ACTIVE, t_now, p, OUT):
    """Integrate rows x channels under each footprint (module doc) -> OUT (n, N_INTEGRALS).

    TICK (cap,) int64, RI, RQ (cap, F x C) float32: the ring (in-phase, quadrature,
    frequency-major, F = ``p.n_freq``); rows first..end-1
    (logical, slot = index % cap) are readable. X0, X1, Y0, Y1 (n,) float64:
    footprints in belt mm at encoder count ``t_now`` (the ring's count space).
    ACTIVE (n,) bool: rows to integrate (all n share cells). A cell covered by
    k footprints gives each 1/k of its value.
    """
    n = X0.shape[0]
    cap = TICK.shape[0]
    n_ch = RI.shape[1] // max(p.n_freq, 1)
    two = p.n_freq > 1
    for j in range(n):
        for f in range(OUT.shape[1]):
            OUT[j, f] = 0.0
        OUT[j, F_WIDTH] = X1[j] - X0[j]
        OUT[j, F_LENGTH] = Y1[j] - Y0[j]
        OUT[j, F_MINOR] = np.nan
        OUT[j, F_MAJOR] = np.nan
    if n == 0 or end <= first:
        return
    RNG = np.empty((n, 5), np.int64)
    R = np.empty((n, 4), np.int64)
    _ranges(TICK, first, end, X0, X1, Y0, Y1, t_now, p, n_ch, RNG, R)
    _decompose(TICK, RI, RQ, first, end, R, X0, X1, Y0, Y1, t_now, p, OUT)
    lo = end
    hi = first
    for j in range(n):
        if RNG[j, 1] > RNG[j, 0] and RNG[j, 3] >= RNG[j, 2]:
            lo = min(lo, RNG[j, 0])
            hi = max(hi, RNG[j, 1])
    if hi <= lo:
        return
    rows = hi - lo
    wrap = first - first % cap  # logical row r sits in slot r - wrap (- cap past the end)
    cover = np.zeros(rows * n_ch, np.int32)  # row-major over the window: (r - lo) x n_ch + c
    for j in range(n):
        if RNG[j, 3] < RNG[j, 2] or RNG[j, 1] <= RNG[j, 0]:
            continue  # no cells (its rows may lie outside the window)
        for r in range(RNG[j, 0] - lo, RNG[j, 1] - lo):
            o = np.uint64(r * n_ch)  # unsigned: no negative-index wraparound per cell
            for c in range(o + np.uint64(RNG[j, 2]), o + np.uint64(RNG[j, 3] + 1)):
                cover[c] += 1
    # per cell, once for all the footprints over it (a cell's share, 1 / cover, is the
    # same for each): its terms of their sums, see _cell_sums
    terms = np.empty((rows * n_ch, _TERMS))  # read only where covered: written there
    flags = np.empty(rows * n_ch, np.int64)
    thr2 = p.signal_units * p.signal_units
    for r in range(rows):
        slot = lo + r - wrap
        if slot >= cap:
            slot -= cap
        for c in range(n_ch):
            k = r * n_ch + c
            if cover[k] == 0:
                continue
            w = 1.0 / cover[k]
            vi = RI[slot, c]  # float32, as the ring holds them
            vq = RQ[slot, c]
            m2 = vi * vi + vq * vq  # float32
            terms[k, 0] = w * vi
            terms[k, 1] = w * vq
            terms[k, 2] = w * w * m2
            terms[k, 3] = w * np.sqrt(m2)
            terms[k, 4] = w * RI[slot, n_ch + c] if two else 0.0
            terms[k, 5] = w * RQ[slot, n_ch + c] if two else 0.0
            flags[k] = (1 if cover[k] > 1 else 0) + (_SIGNAL_FLAG if m2 > thr2 else 0)
    for j in range(n):
        OUT[j, F_COMPLETE] = RNG[j, 4]
        if ACTIVE[j]:
            _cell_sums(j, RNG, lo, n_ch, terms, flags, OUT)


@njit(cache=True, nogil=True)
def _cell_sums(j, RNG, lo, n_ch, terms, flags, OUT):
    """Footprint j's integrals over its cells (``_footprint_integrals``) -> OUT[j, F_SUM_I
    ... F_SIGNAL, F_SUM_I2, F_SUM_Q2], from its cells' terms (rows from ``lo``, row-major
    by ``n_ch``): ``terms`` (cells, _TERMS) share x in-phase, share x quadrature,
    (share x |I + jQ|)^2, share x |I + jQ|, share x in-phase and quadrature of frequency
    1; ``flags``: 1 if shared + _SIGNAL_FLAG if signal. Sums in row, then coil order;
    offsets unsigned (no negative-index wraparound per cell)."""
    if RNG[j, 3] < RNG[j, 2] or RNG[j, 1] <= RNG[j, 0]:
        return  # no cells: its integrals stay 0 (its rows may lie outside the window)
    si = 0.0
    sq = 0.0
    si2 = 0.0
    sq2 = 0.0
    best = 0.0  # largest (share x |I + jQ|)^2 of one cell, then its peak
    peak = 0.0
    cells = 0
    n_flags = 0
    c0 = np.uint64(RNG[j, 2])  # >= 0
    c1 = np.uint64(RNG[j, 3] + 1)
    for r in range(RNG[j, 0], RNG[j, 1]):
        o = np.uint64((r - lo) * n_ch)
        for c in range(o + c0, o + c1):
            t = terms[c]
            si += t[0]
            sq += t[1]
            top = t[2] > best  # selects, not a branch
            peak = t[3] if top else peak
            best = t[2] if top else best
            si2 += t[4]
            sq2 += t[5]
            n_flags += flags[c]
        cells += max(RNG[j, 3] + 1 - RNG[j, 2], 0)
    OUT[j, F_SUM_I] = si
    OUT[j, F_SUM_Q] = sq
    OUT[j, F_SUM_I2] = si2
    OUT[j, F_SUM_Q2] = sq2
    OUT[j, F_PEAK] = peak
    OUT[j, F_CELLS] = cells
    if cells:
        OUT[j, F_SHARED] = (n_flags % _SIGNAL_FLAG) / cells
        OUT[j, F_SIGNAL] = (n_flags // _SIGNAL_FLAG) / cells


@njit(cache=True, nogil=True)
def _features(INT, i, noise, f):
    """The features of footprint i (``models.induction.features``) -> f: 15
    (single frequency), 24 (two frequencies) or 26 (and the camera's size) by
    f's length."""
    si = INT[i, F_SUM_I]
    sq = INT[i, F_SUM_Q]
    cells = max(INT[i, F_CELLS], 1.0)
    mag = np.sqrt(si * si + sq * sq)
    eps = 3.0 * noise * np.sqrt(cells)
    ai = INT[i, F_AMP_I]
    aq = INT[i, F_AMP_Q]
    amp = np.sqrt(ai * ai + aq * aq)
    aeps = 3.0 * noise / np.sqrt(max(INT[i, F_COVER], 1e-3))
    wide = INT[i, F_WIDTH]
    long = INT[i, F_LENGTH]
    f[0] = np.arcsinh(si / 100.0)
    f[1] = np.arcsinh(sq / 100.0)
    f[2] = si / (mag + eps)
    f[3] = sq / (mag + eps)
    f[4] = np.arcsinh(INT[i, F_PEAK] / 30.0)
    f[5] = INT[i, F_SIGNAL]
    f[6] = np.arcsinh(mag / cells / 5.0)
    f[7] = np.arcsinh(ai / 20.0)
    f[8] = np.arcsinh(aq / 20.0)
    f[9] = ai / (amp + aeps)
    f[10] = aq / (amp + aeps)
    f[11] = np.log(INT[i, F_COVER] + 1e-3)
    f[12] = np.log(max(min(wide, long), 0.0) + 1.0)
    f[13] = np.log(max(max(wide, long), 0.0) + 1.0)
    f[14] = INT[i, F_SHARED]
    if f.shape[0] > N_FEATURES_V2:  # frequency 1: its sums and fitted amplitude
        si2 = INT[i, F_SUM_I2]
        sq2 = INT[i, F_SUM_Q2]
        ai2 = INT[i, F_AMP_I2]
        aq2 = INT[i, F_AMP_Q2]
        amp2 = np.sqrt(ai2 * ai2 + aq2 * aq2)
        f[15] = np.arcsinh(si2 / 100.0)
        f[16] = np.arcsinh(sq2 / 100.0)
        f[17] = np.arcsinh(ai2 / 20.0)
        f[18] = np.arcsinh(aq2 / 20.0)
        f[19] = ai2 / (amp2 + aeps)
        f[20] = aq2 / (amp2 + aeps)
        # the ratio of the two amplitudes: coupling and coil overlap cancel
        f[21] = np.log((amp2 + aeps) / (amp + aeps))
        den = amp2 * amp + aeps * aeps
        f[22] = (ai2 * ai + aq2 * aq) / den
        f[23] = (aq2 * ai - ai2 * aq) / den
    if f.shape[0] > N_FEATURES_V3:  # the camera's size, the footprint's extents without one
        lo = INT[i, F_MINOR]
        hi = INT[i, F_MAJOR]
        if not (math.isfinite(lo) and math.isfinite(hi)):
            lo = min(wide, long)
            hi = max(wide, long)
        f[24] = np.log(max(lo, 0.0) + 1.0)
        f[25] = np.log(max(hi, 0.0) + 1.0)


@njit(cache=True, nogil=True)
def _dense(WT, B, X, Y, m, relu):
    """Y[:, :m] = W X[:, :m] + B, rectified when ``relu``; WT = W transposed, (in, out)
    contiguous; X (in, >= m), Y (out, >= m): one column per footprint.

    Each Y[o, q] is B[o] + W[o, 0] X[0, q] + W[o, 1] X[1, q] + ... in that order (a
    plain dot product's sum), computed a whole row of footprints at a time (the
    loop over q is what vectorises; no sum is reordered).
    """
    for o in range(WT.shape[1]):
        y = Y[o]
        for q in range(m):
            y[q] = B[o]
        for a in range(WT.shape[0]):
            w = WT[a, o]
            x = X[a]
            for q in range(m):
                y[q] += w * x[q]
        if relu:
            for q in range(m):
                y[q] = max(y[q], 0.0)


def dense_layers(layers: tuple[tuple[np.ndarray, np.ndarray], ...]) -> tuple[np.ndarray, ...]:
    """``InductionModel.layers`` ((W (out, in), b), ...) as ``_fused_logits`` takes them:
    (W1T, b1, W2T, b2, W3T, b3), weights transposed to (in, out), all C-contiguous float64."""
    out: list[np.ndarray] = []
    for w, b in layers:
        out += [
            np.ascontiguousarray(np.asarray(w, np.float64).T),
            np.ascontiguousarray(b, np.float64),
        ]
    return tuple(out)


@njit(cache=True, nogil=True)
def _fused_logits(INT, rows, EV, NEV, mean, scale, L, cmap, comb, noise, out):
    """Camera mean log-probabilities / T plus the sensor term, minus each row's max.

    INT (n, N_INTEGRALS) integrals; rows (m,) int64 rows to fuse; EV (n, K),
    NEV (n,) the tracker's evidence; mean, scale (d,), L = (W1T, B1, W2T, B2,
    W3T, B3): the induction model (``models.induction``: the same features and
    layers, each weight transposed to (in, out), C-contiguous: ``dense_layers``);
    cmap (K,) int64 model class of each controller class (-1: none, term 0);
    comb = (CAM (K,), SENS (K,), BIAS (K,), log_floor, damping): per controller class the
    multiplier of the camera's mean log-probability, of the floored sensor
    log-probability and the bias (``sortline.sensor.fusion.camera_term``, ``sensor_term``),
    each row's logits then multiplied by 1 / (1 + damping x its footprint's
    shared share) (flattened: a mostly
    shared footprint is less sure; ``fusion.flatten_shared``); noise: units
    per cell. Writes out[:m] (m, K).
    """
    W1, B1, W2, B2, W3, B3 = L
    cam, sens, bias, log_floor, damping = comb
    m = rows.shape[0]
    km = W3.shape[1]
    k = EV.shape[1]
    d = mean.shape[0]
    f = np.empty(d)
    xs = np.empty((d, m))  # standardised features, one column per fused row
    for q in range(m):
        _features(INT, rows[q], noise, f)
        for a in range(d):
            xs[a, q] = f[a]
    for a in range(d):
        for q in range(m):
            xs[a, q] = (xs[a, q] - mean[a]) / scale[a]
    h1 = np.empty((W1.shape[1], m))
    h2 = np.empty((W2.shape[1], m))
    lgs = np.empty((km, m))
    _dense(W1, B1, xs, h1, m, True)
    _dense(W2, B2, h1, h2, m, True)
    _dense(W3, B3, h2, lgs, m, False)
    for q in range(m):
        i = rows[q]
        mx = -1e300
        for c in range(km):
            mx = max(mx, lgs[c, q])
        tot = 0.0
        for c in range(km):
            tot += np.exp(lgs[c, q] - mx)
        lse = mx + np.log(tot)
        inv = 1.0 / NEV[i]
        best = -1e300
        for c in range(k):
            v = EV[i, c] * inv * cam[c]
            if cmap[c] >= 0:
                v += sens[c] * max(lgs[cmap[c], q] - lse, log_floor) + bias[c]
            out[q, c] = v
            best = max(best, v)
        flat = 1.0 / (1.0 + damping * INT[i, F_SHARED])
        for c in range(k):
            out[q, c] = (out[q, c] - best) * flat
    return out[:m]


@njit(cache=True, nogil=True)
def _footprints(
    X, H, CONF, DEC, NEV, NVIEW, AXN, n, travel_mm, per_mm, y_bar_mm, max_rel,
    anchor_views, whole_views, EXT, VEL, WANT, READY,
):  # fmt: skip
    """Tracks 0..n-1 of a ``TrackTable`` (X (N, 4) x, u, vx, vu: centre mm, velocity mm
    per encoder count; H (N, 2) half extents mm; CONF, DEC, NEV, NVIEW, AXN (N,) int64)
    as footprints at the bar, the first step of ``sortline.sensor.fusion``'s frame, one pass.

    EXT (4, >= n) <- x0, x1, y0, y1: each extent at belt travel ``travel_mm``, moved
    back by ``_back_project`` (velocities x ``per_mm``, counts per mm of travel, kept in
    VEL (2, >= n)); WANT (>= n,) bool <- confirmed, undecided, with camera evidence;
    READY (>= n,) bool <- confirmed with ``anchor_views`` views of which ``whole_views``
    wholly in the image (``sortline.sensor.anchor``).
    """
    for j in range(n):
        EXT[0, j] = X[j, 0] - H[j, 0]
        EXT[1, j] = X[j, 0] + H[j, 0]
        EXT[2, j] = X[j, 1] - (H[j, 1] - travel_mm)
        EXT[3, j] = X[j, 1] + (H[j, 1] + travel_mm)
        VEL[0, j] = X[j, 2] * per_mm
        VEL[1, j] = X[j, 3] * per_mm
        WANT[j] = CONF[j] != 0 and DEC[j] == 0 and NEV[j] > 0
        READY[j] = CONF[j] != 0 and NVIEW[j] >= anchor_views and AXN[j] >= whole_views
    _back_project(
        EXT[0, :n], EXT[1, :n], EXT[2, :n], EXT[3, :n], VEL[0, :n], VEL[1, :n], y_bar_mm, max_rel
    )  # fmt: skip


@njit(cache=True, nogil=True)
def _integrate_fuse(
    TICK, RI, RQ, first, end, EXT, WANT, n, t_now, p, AX, OUT, ROWS,
    EV, NEV, mean, scale, L, cmap, comb, noise, LOGITS,
):  # fmt: skip
    """The rest of ``sortline.sensor.fusion``'s frame up to the outlook, one call:
    ``_footprint_integrals`` of the footprints EXT[:, :n] (``_footprints``) -> OUT[:n],
    the camera's size of each piece (AX (N, 2), the track's minor and major length, NaN:
    none yet) into F_MINOR, F_MAJOR, the rows to fuse (WANT and every row of its
    footprint in the ring) -> ROWS[:m] int64, and their fused logits (``_fused_logits``)
    -> LOGITS[:m]; returns m."""
    out = OUT[:n]
    _footprint_integrals(
        TICK, RI, RQ, first, end, EXT[0, :n], EXT[1, :n], EXT[2, :n], EXT[3, :n], WANT[:n],
        t_now, p, out,
    )  # fmt: skip
    m = 0
    for j in range(n):
        out[j, F_MINOR] = AX[j, 0]
        out[j, F_MAJOR] = AX[j, 1]
        if WANT[j] and out[j, F_COMPLETE] > 0:
            ROWS[m] = j
            m += 1
    if m > 0:
        _fused_logits(out, ROWS[:m], EV, NEV, mean, scale, L, cmap, comb, noise, LOGITS)
    return m


@njit(cache=True, nogil=True)
def _place_anchors(
    X0, X1, Y0, Y1, travel_mm, ids, NX, NU, ready, min_moved_mm,
    book_ids, book_rows, m, new_ids, new_rows,
):  # fmt: skip
    """Footprints placed at their bar positions (``sortline.sensor.anchor``), in place.

    X0, X1, Y0, Y1 (n,) back-projected extents, camera-frame mm at belt travel
    ``travel_mm``; ids (n,) int64; NX, NU (n,) each id's present belt-fixed
    centre; ready (n,) bool. The book: ``book_ids[:m]`` ascending, ``book_rows``
    (m, 4) anchor x, u and origin x, u. An id in the book, or ready and >= 0 (its
    anchor is then its back-projected centre, its origin its present centre),
    is centred on its anchor when it has moved ``min_moved_mm`` from its origin.
    Writes the new book (the ids of ``ids`` in it, in their order) to
    ``new_ids``, ``new_rows``; returns (its length, whether ascending)."""
    k = 0
    ascending = True
    for i in range(ids.shape[0]):
        tid = ids[i]
        lo, hi = 0, m
        while lo < hi:
            mid = (lo + hi) // 2
            if book_ids[mid] < tid:
                lo = mid + 1
            else:
                hi = mid
        cx = 0.5 * (X0[i] + X1[i])
        cu = 0.5 * (Y0[i] + Y1[i]) - travel_mm
        if lo < m and book_ids[lo] == tid:
            ax, au, gx, gu = book_rows[lo, 0], book_rows[lo, 1], book_rows[lo, 2], book_rows[lo, 3]
        elif ready[i] and tid >= 0:
            ax, au, gx, gu = cx, cu, NX[i], NU[i]
        else:
            continue
        if k > 0 and tid <= new_ids[k - 1]:
            ascending = False
        new_ids[k] = tid
        new_rows[k, 0], new_rows[k, 1], new_rows[k, 2], new_rows[k, 3] = ax, au, gx, gu
        k += 1
        if math.hypot(NX[i] - gx, NU[i] - gu) >= min_moved_mm:
            dx, du = ax - cx, au - cu
            X0[i] += dx
            X1[i] += dx
            Y0[i] += du
            Y1[i] += du
    return k, ascending
