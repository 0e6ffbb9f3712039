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
N_INTEGRALS = 16
N_FEATURES_V2 = 15  # features of a single-frequency model (``models.induction``)
N_FEATURES_V3 = 24  # ... and of a two-frequency one


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


@njit(cache=True, nogil=True)
def _phi(z):
    """Standard normal CDF, linear in a table (an erf per call cost more than the rest)."""
    t = (z + 8.0) / _PHI_STEP
    if t <= 0.0:
        return 0.0
    if t >= _PHI_TABLE.shape[0] - 1:
        return 1.0
    i = int(t)
    f = t - i
    return _PHI_TABLE[i] + f * (_PHI_TABLE[i + 1] - _PHI_TABLE[i])


@njit(cache=True, nogil=True)
def _ls_ranges(TICK, first, end, cap, X0, X1, Y0, Y1, t_now, p, n_ch, R):
    """Per footprint: logical rows [R0, R1) and channels [C0, C1] within
    ``p.ls_reach`` coil sigmas (plus one channel for crosstalk) -> R (n, 4)."""
    reach = p.ls_reach * p.coil_sigma_mm
    for j in range(X0.shape[0]):
        ta = t_now - (Y1[j] + reach - p.y_bar_mm) / p.mm_per_tick
        tb = t_now - (Y0[j] - reach - p.y_bar_mm) / p.mm_per_tick
        r0 = _first_at_or_after(TICK, first, end, cap, ta)
        R[j, 0] = r0
        R[j, 1] = _first_at_or_after(TICK, r0, end, cap, tb + 1e-9)
        c0 = int(np.ceil((X0[j] - reach - p.x_first_mm) / p.pitch_mm - 0.5)) - 1
        c1 = int(np.floor((X1[j] + reach - p.x_first_mm) / p.pitch_mm - 0.5)) + 1
        R[j, 2] = max(c0, 0)
        R[j, 3] = min(c1, n_ch - 1)


@njit(cache=True, nogil=True)
def _decompose(TICK, RI, RQ, first, end, X0, X1, Y0, Y1, t_now, p, OUT):
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
    frequency is solved with the same overlaps in the same sweeps.
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
    R = np.empty((n, 4), np.int64)
    _ls_ranges(TICK, first, end, cap, X0, X1, Y0, Y1, t_now, p, n_ch, R)
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
    GY = np.empty(offy[n])
    GX = np.empty(offx[n])
    G = np.zeros(n)
    ov = np.empty(n_ch)
    c_lo = 0
    s = p.coil_sigma_mm
    for j in range(n):
        sy = 0.0
        for q in range(offy[j + 1] - offy[j]):
            d = (t_now - TICK[(R[j, 0] + q) % cap]) * p.mm_per_tick + p.y_bar_mm
            g = _phi((Y1[j] - d) / s) - _phi((Y0[j] - d) / s)
            GY[offy[j] + q] = g
            sy += g * g
        nx = offx[j + 1] - offx[j]
        if nx > 0:  # each coil's overlap once (its neighbours' crosstalk reuses it)
            c_lo = max(R[j, 2] - 1, 0)
            c_hi = min(R[j, 3] + 1, n_ch - 1)
            for c in range(c_lo, c_hi + 1):
                cx = p.x_first_mm + (c + 0.5) * p.pitch_mm
                ov[c - c_lo] = _phi((X1[j] - cx) / s) - _phi((X0[j] - cx) / s)
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
        G[j] = sy * sx
    # residuals per frequency: columns f x n_ch + c of the ring
    res_i = np.empty((hi - lo, nf * n_ch))
    res_q = np.empty((hi - lo, nf * n_ch))
    for r in range(lo, hi):
        for c in range(nf * n_ch):
            res_i[r - lo, c] = RI[r % cap, c]
            res_q[r - lo, c] = RQ[r % cap, c]
    amp_i = np.zeros((n, nf))
    amp_q = np.zeros((n, nf))
    ni = np.empty(nf)
    nq = np.empty(nf)
    live = np.ones(nf, np.bool_)  # a frequency whose amplitudes settled is left alone, so
    moved = np.zeros(nf, np.bool_)  # each frequency's fit is what it would be on its own
    for _ in range(p.ls_sweeps):
        moved[:] = False
        for j in range(n):
            if G[j] <= 1e-12:
                continue
            ni[:] = 0.0
            nq[:] = 0.0
            for a in range(offy[j + 1] - offy[j]):
                gy = GY[offy[j] + a]
                rr = R[j, 0] + a - lo
                for b in range(offx[j + 1] - offx[j]):
                    g = gy * GX[offx[j] + b]
                    for f in range(nf):
                        col = f * n_ch + R[j, 2] + b
                        ni[f] += g * res_i[rr, col]
                        nq[f] += g * res_q[rr, col]
            for f in range(nf):
                if not live[f]:
                    ni[f] = 0.0
                    nq[f] = 0.0
                    continue
                new_i = (ni[f] + amp_i[j, f] * G[j]) / (G[j] * (1.0 + _RIDGE))
                new_q = (nq[f] + amp_q[j, f] * G[j]) / (G[j] * (1.0 + _RIDGE))
                di = new_i - amp_i[j, f]
                dq = new_q - amp_q[j, f]
                ni[f] = di  # the step, applied to the residual below
                nq[f] = dq
                amp_i[j, f] = new_i
                amp_q[j, f] = new_q
                if di * di + dq * dq > _SETTLED * _SETTLED * (new_i * new_i + new_q * new_q) + 1e-8:
                    moved[f] = True
            for a in range(offy[j + 1] - offy[j]):
                gy = GY[offy[j] + a]
                rr = R[j, 0] + a - lo
                for b in range(offx[j + 1] - offx[j]):
                    g = gy * GX[offx[j] + b]
                    for f in range(nf):
                        col = f * n_ch + R[j, 2] + b
                        res_i[rr, col] -= ni[f] * g
                        res_q[rr, col] -= nq[f] * g
        live[:] = moved
        if not moved.any():  # every amplitude settled: a sweep more would change nothing
            break
    for j in range(n):
        OUT[j, F_AMP_I] = amp_i[j, 0]
        OUT[j, F_AMP_Q] = amp_q[j, 0]
        OUT[j, F_COVER] = G[j]
        if nf > 1:
            OUT[j, F_AMP_I2] = amp_i[j, 1]
            OUT[j, F_AMP_Q2] = amp_q[j, 1]


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
    if n == 0 or end <= first:
        return
    RNG = np.empty((n, 5), np.int64)
    _ranges(TICK, first, end, cap, X0, X1, Y0, Y1, t_now, p, n_ch, RNG)
    _decompose(TICK, RI, RQ, first, end, X0, X1, Y0, Y1, t_now, p, OUT)
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
        si2 = 0.0
        sq2 = 0.0
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
                if two:
                    si2 += w * RI[slot, n_ch + c]
                    sq2 += w * RQ[slot, n_ch + c]
                m2 = vi * vi + vq * vq
                peak = max(peak, w * np.sqrt(m2))
                cells += 1
                shared += 1 if k > 1 else 0
                sig += 1 if m2 > thr2 else 0
        OUT[j, F_SUM_I] = si
        OUT[j, F_SUM_Q] = sq
        OUT[j, F_SUM_I2] = si2
        OUT[j, F_SUM_Q2] = sq2
        OUT[j, F_PEAK] = peak
        OUT[j, F_CELLS] = cells
        if cells:
            OUT[j, F_SHARED] = shared / cells
            OUT[j, F_SIGNAL] = sig / cells


@njit(cache=True, nogil=True)
def _features(INT, i, noise, f):
    """The features of footprint i (``models.induction.features``) -> f: 15
    (single frequency) or 24 (two frequencies) by f's length."""
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


@njit(cache=True, nogil=True)
def _dense(W, B, x, y, relu):
    """y = W x + B, rectified when ``relu``."""
    for o in range(W.shape[0]):
        s = B[o]
        for a in range(W.shape[1]):
            s += W[o, a] * x[a]
        y[o] = max(s, 0.0) if relu else s


@njit(cache=True, nogil=True)
def _fused_logits(INT, rows, EV, NEV, mean, scale, L, cmap, comb, noise, out):
    """Camera mean log-probabilities / T plus the sensor term, minus each row's max.

    INT (n, N_INTEGRALS) integrals; rows (m,) int64 rows to fuse; EV (n, K),
    NEV (n,) the tracker's evidence; mean, scale (d,), L = (W1, B1, W2, B2, W3,
    B3): the induction model (``models.induction``: the same features and
    layers); cmap (K,) int64 model class of each controller class (-1: none,
    term 0); comb = (1 / T, weight, log_floor, damping) as
    ``sortline.sensor.fusion.sensor_term``, each row's logits then multiplied
    by 1 / (1 + damping x its footprint's shared share) (flattened: a mostly
    shared footprint is less sure; ``fusion.flatten_shared``); noise: units
    per cell. Writes out[:m] (m, K).
    """
    W1, B1, W2, B2, W3, B3 = L
    inv_t, weight, log_floor, damping = comb
    m = rows.shape[0]
    km = W3.shape[0]
    k = EV.shape[1]
    f = np.empty(mean.shape[0])
    h1 = np.empty(W1.shape[0])
    h2 = np.empty(W2.shape[0])
    lg = np.empty(km)
    for q in range(m):
        i = rows[q]
        _features(INT, i, noise, f)
        for a in range(f.shape[0]):
            f[a] = (f[a] - mean[a]) / scale[a]
        _dense(W1, B1, f, h1, True)
        _dense(W2, B2, h1, h2, True)
        _dense(W3, B3, h2, lg, False)
        mx = -1e300
        for c in range(km):
            mx = max(mx, lg[c])
        tot = 0.0
        for c in range(km):
            tot += np.exp(lg[c] - mx)
        lse = mx + np.log(tot)
        inv = inv_t / NEV[i]
        best = -1e300
        for c in range(k):
            v = EV[i, c] * inv
            if cmap[c] >= 0:
                v += weight * max(lg[cmap[c]] - lse, log_floor)
            out[q, c] = v
            best = max(best, v)
        flat = 1.0 / (1.0 + damping * INT[i, F_SHARED])
        for c in range(k):
            out[q, c] = (out[q, c] - best) * flat
    return out[:m]
