# mypy: disallow-untyped-defs=False
"""Numba kernels that aim a target's air around its neighbours (recipe ``prefer``).

Private: used by ``control.kernels_schedule``. The air of one target is a
rectangle on the belt: valves ``first..last`` (their blasts span x) and the
ticks ``[air_on, air_off)`` at which it reaches the belt. A neighbour of
another fraction conflicts when the share of its predicted footprint (crossing
time x width, each widened by one sigma of its own prediction) under the air
exceeds the recipe's ``co_ejection_tolerance``.

Aiming removes a conflict by cutting the rectangle on the neighbour's side:
across the belt by dropping the valves whose blast reaches it, or along the
belt by starting the air after the neighbour has passed (a neighbour crossing
earlier) or ending it before the neighbour arrives (one crossing later); of
the two, the cut that keeps more of the target under air. A cut is allowed
only while at least ``S_AIM_COVER`` of the target's length and of its width
stay under air for any crossing error within k sigma (the worst case of a
shifted interval's overlap lies at an end of the shift range: the overlap is
a trapezoid in the shift). Conflicts are removed one at a time, worst first,
up to ``_MAX_CUTS``.

Ticks are float64 unwrapped encoder counts; lengths mm.
"""

from __future__ import annotations

import math

from numba import njit

from control.params import (
    S_AIM_COVER,
    S_BLAST_MM,
    S_K_SIGMA,
    S_PITCH_MM,
    S_SIGMA_X_K,
    S_TOLERANCE,
    S_X_FIRST_MM,
)

AIM_CLEAR = 0  # no neighbour conflicts with the air: unchanged
AIM_CUT = 1  # conflicts removed by cutting the air
AIM_FAILED = 2  # a conflict remains: no cut keeps enough of the target under air
_MAX_CUTS = 4


@njit(cache=True, nogil=True)
def _worst_cover(lo, hi, a, b, s):
    """Share of the piece [a, b] under [lo, hi] in the worst case of the piece
    shifted by up to +-s (s >= 0)."""
    length = max(b - a, 1e-9)
    o1 = min(hi, b - s) - max(lo, a - s)
    o2 = min(hi, b + s) - max(lo, a + s)
    return max(min(o1, o2), 0.0) / length


@njit(cache=True, nogil=True)
def _blast_span(first, last, sp):
    """(x left, x right) mm the blasts of valves first..last reach."""
    b2 = 0.5 * sp[S_BLAST_MM]
    x0 = sp[S_X_FIRST_MM]
    pitch = sp[S_PITCH_MM]
    return x0 + (first + 0.5) * pitch - b2, x0 + (last + 0.5) * pitch + b2


@njit(cache=True, nogil=True)
def _footprint(j, CROSS, XC, H):
    """Neighbour j's footprint widened by one sigma: (t0, t1, x0, x1, raw duration, raw width)."""
    s_t = CROSS[j, 2]
    s_x = XC[j, 1]
    return (
        CROSS[j, 0] - s_t,
        CROSS[j, 1] + s_t,
        XC[j, 0] - H[j, 0] - s_x,
        XC[j, 0] + H[j, 0] + s_x,
        max(CROSS[j, 1] - CROSS[j, 0], 1.0),
        max(2.0 * H[j, 0], 1e-6),
    )


@njit(cache=True, nogil=True)
def _target_cover(i, first, last, air_on, air_off, CROSS, XC, H, sp):
    """Worst-case shares of target i's length and width under the air."""
    if first > last or air_off <= air_on:
        return 0.0, 0.0
    x_lo, x_hi = _blast_span(first, last, sp)
    cu = _worst_cover(air_on, air_off, CROSS[i, 0], CROSS[i, 1], sp[S_K_SIGMA] * CROSS[i, 2])
    x = XC[i, 0]
    cx = _worst_cover(x_lo, x_hi, x - H[i, 0], x + H[i, 0], sp[S_SIGMA_X_K] * XC[i, 1])
    return cu, cx


@njit(cache=True, nogil=True)
def _worst_conflict(i, first, last, air_on, air_off, rows, start, b0, b1, CROSS, XC, H, FRAC, sp):
    """The neighbour of another fraction with the largest share of its widened
    footprint under the air, when that share exceeds the tolerance; else -1."""
    x_lo, x_hi = _blast_span(first, last, sp)
    tol = sp[S_TOLERANCE]
    worst = -1
    worst_share = tol
    for b in range(b0, b1 + 1):
        for q in range(start[b], start[b + 1]):
            j = rows[q]
            if j == i or FRAC[j] == FRAC[i]:
                continue
            t0, t1, x0, x1, dur, wid = _footprint(j, CROSS, XC, H)
            ov_t = min(air_off, t1) - max(air_on, t0)
            ov_x = min(x_hi, x1) - max(x_lo, x0)
            if ov_t <= 0.0 or ov_x <= 0.0:
                continue
            share = min(ov_t / dur, 1.0) * min(ov_x / wid, 1.0)
            if share > worst_share:
                worst_share = share
                worst = j
    return worst


@njit(cache=True, nogil=True)
def _cuts(i, j, first, last, air_on, air_off, CROSS, XC, H, sp):
    """The two cuts that clear neighbour j: (first, last, on, off) across the
    belt, then along it. A cut that cannot clear it comes back empty (first > last)."""
    t0, t1, x0, x1, dur, wid = _footprint(j, CROSS, XC, H)
    tol = sp[S_TOLERANCE]
    pitch = sp[S_PITCH_MM]
    b2 = 0.5 * sp[S_BLAST_MM]
    xf = sp[S_X_FIRST_MM]
    # across: drop the valves whose blast reaches further into j than the tolerance
    fx, lx = first, last
    if XC[j, 0] >= XC[i, 0]:
        lx = min(last, math.floor((x0 + tol * wid - b2 - xf) / pitch - 0.5))
    else:
        fx = max(first, math.ceil((x1 - tol * wid + b2 - xf) / pitch - 0.5))
    # along: start after j has passed, or stop before it comes
    on_t, off_t = air_on, air_off
    if CROSS[j, 0] + CROSS[j, 1] <= CROSS[i, 0] + CROSS[i, 1]:
        on_t = max(air_on, t1 - tol * dur)
    else:
        off_t = min(air_off, t0 + tol * dur)
    if off_t <= on_t:
        on_t, off_t = air_on, air_on  # empty
    return fx, lx, on_t, off_t


@njit(cache=True, nogil=True)
def _aim(i, first, last, air_on, air_off, rows, start, b0, b1, CROSS, XC, H, FRAC, sp):
    """Cut target i's air clear of its neighbours.

    rows/start: neighbour rows by x bin (``kernels_schedule._bin_neighbours``),
    bins b0..b1 scanned. Returns (first, last, air_on, air_off, AIM_*): the cut
    air for AIM_CUT, the air as given for AIM_CLEAR and AIM_FAILED.
    """
    f, lst, on, off = first, last, air_on, air_off
    need = sp[S_AIM_COVER]
    for n_cut in range(_MAX_CUTS + 1):
        j = _worst_conflict(i, f, lst, on, off, rows, start, b0, b1, CROSS, XC, H, FRAC, sp)
        if j < 0:
            return f, lst, on, off, AIM_CLEAR if n_cut == 0 else AIM_CUT
        if n_cut == _MAX_CUTS:
            break
        fx, lx, on_t, off_t = _cuts(i, j, f, lst, on, off, CROSS, XC, H, sp)
        cu_x, cx_x = _target_cover(i, fx, lx, on, off, CROSS, XC, H, sp)
        cu_t, cx_t = _target_cover(i, f, lst, on_t, off_t, CROSS, XC, H, sp)
        ok_x = cu_x >= need and cx_x >= need
        ok_t = cu_t >= need and cx_t >= need
        if ok_x and (not ok_t or cu_x * cx_x >= cu_t * cx_t):
            f, lst = fx, lx
        elif ok_t:
            on, off = on_t, off_t
        else:
            break
    return first, last, air_on, air_off, AIM_FAILED


__all__ = [
    "AIM_CLEAR",
    "AIM_CUT",
    "AIM_FAILED",
    "_aim",
    "_blast_span",
    "_cuts",
    "_target_cover",
    "_worst_conflict",
    "_worst_cover",
]
