# mypy: disallow-untyped-defs=False
"""Numba kernels of one track's actuator window: valves and ticks of its air
(or flap) before merging. Private: used by ``control.kernels_schedule``.

Ticks are float64 unwrapped encoder counts; lengths mm; ``sp`` is the schedule
vector as a tuple (``control.params`` S_* slots).
"""

from __future__ import annotations

import math

from numba import njit

from control.params import (
    MODE_BASELINE,
    RULE_MAX,
    S_BASE_MARGIN_MM,
    S_BASE_PAD_MM,
    S_BASE_STEP_MM,
    S_BLAST_MM,
    S_CLOSE_TICKS,
    S_COVER_U,
    S_COVER_X,
    S_DIV_DEAD_TICKS,
    S_DIV_DWELL_TICKS,
    S_FLOOR_U_MM,
    S_FLOOR_X_MM,
    S_K_SIGMA,
    S_LONG_MM,
    S_MIN_ON_TICKS,
    S_MM_PER_TICK,
    S_MODE,
    S_N_VALVES,
    S_OPEN_TICKS,
    S_PITCH_MM,
    S_SIGMA_X_K,
    S_WINDOW_RULE,
    S_X_FIRST_MM,
)


@njit(cache=True, nogil=True)
def _valve_air(ton, toff, sig, x, sx, hx, hu, sp):
    """(first valve, last valve, air on tick, air off tick) wanted AT THE BELT for
    one track (float ticks, before valve delays); arguments as ``_valve_request``."""
    pitch = sp[S_PITCH_MM]
    x0 = sp[S_X_FIRST_MM]
    nv = int(sp[S_N_VALVES])
    if sp[S_MODE] == MODE_BASELINE:
        vc = min(max(math.floor((x - x0) / pitch), 0), nv - 1)
        reach = hx + 0.5 * pitch
        first = vc
        while first > 0 and abs(x0 + (first - 0.5) * pitch - x) < reach:
            first -= 1
        last = vc
        while last < nv - 1 and abs(x0 + (last + 1.5) * pitch - x) < reach:
            last += 1
        step = sp[S_BASE_STEP_MM]
        length = math.ceil(2.0 * hu / step) * step + sp[S_BASE_PAD_MM] + sp[S_BASE_MARGIN_MM]
        half_ticks = 0.5 * length / sp[S_MM_PER_TICK]
        tc = 0.5 * (ton + toff)
        return first, last, tc - half_ticks, tc + half_ticks
    k = sp[S_K_SIGMA]
    if sp[S_WINDOW_RULE] == RULE_MAX:  # tolerance = half-length (see ControlParams)
        tc = 0.5 * (ton + toff)
        half = max(
            0.5 * sp[S_COVER_U] * (toff - ton), k * sig + sp[S_FLOOR_U_MM] / sp[S_MM_PER_TICK]
        )
        air_on = tc - half
        air_off = tc + half
        half_w = max(sp[S_COVER_X] * hx, sp[S_SIGMA_X_K] * sx + sp[S_FLOOR_X_MM])
        if sp[S_LONG_MM] > 0.0 and 2.0 * max(hx, hu) > sp[S_LONG_MM]:  # long: full width
            half_w = max(half_w, hx + sp[S_SIGMA_X_K] * sx)
    else:
        trim = 0.5 * (1.0 - sp[S_COVER_U]) * (toff - ton)
        air_on = ton + trim - k * sig
        air_off = toff - trim + k * sig
        half_w = sp[S_COVER_X] * hx + sp[S_SIGMA_X_K] * sx
    b2 = 0.5 * sp[S_BLAST_MM]
    first = math.floor((x - half_w + b2 - x0) / pitch - 0.5)
    last = math.ceil((x + half_w - b2 - x0) / pitch - 0.5)
    if first > last:  # one blast covers it: the valve nearest the centre
        v = math.floor((x - x0) / pitch)
        first = min(max(v, last), first)
        last = first
    return max(first, 0), min(last, nv - 1), air_on, air_off


@njit(cache=True, nogil=True)
def _command(air_on, air_off, open_ticks, close_ticks, min_on_ticks):
    """Command (on, off) ticks of one valve for air at the belt over [air_on, air_off)."""
    on = math.floor(air_on - open_ticks)
    off = math.ceil(air_off - close_ticks)
    return on, max(off, on + max(math.ceil(min_on_ticks), 1))


@njit(cache=True, nogil=True)
def _valve_request(ton, toff, sig, x, sx, hx, hu, sp):
    """(first valve, last valve, on tick, off tick) of an air-jet pulse for one track.

    ton, toff, sig: crossing ticks of leading and trailing edge and one sigma;
    x, sx: x at the crossing and its sigma mm; hx, hu: half sizes mm; sp: the
    schedule vector as a tuple. first > last means the fragment is off the bar.
    On/off use the bar's scalar delays (``S_OPEN_TICKS``, the longest of the
    valves' when they differ); ``_schedule`` commands each valve with its own.
    """
    first, last, air_on, air_off = _valve_air(ton, toff, sig, x, sx, hx, hu, sp)
    on, off = _command(air_on, air_off, sp[S_OPEN_TICKS], sp[S_CLOSE_TICKS], sp[S_MIN_ON_TICKS])
    return first, last, on, off


@njit(cache=True, nogil=True)
def _enabled_run(first, last, enabled):
    """The valves of first..last that may fire -> (lo, hi): the run's bounds when
    any of them is enabled, else the run widened by one valve on each side
    (a neighbour's blast reaches into the zone of a dead valve); lo > hi when
    none may fire."""
    nv = enabled.shape[0]
    for v in range(first, last + 1):
        if enabled[v]:
            return first, last
    lo = max(first - 1, 0)
    hi = min(last + 1, nv - 1)
    for v in range(lo, hi + 1):
        if enabled[v]:
            return lo, hi
    return 1, 0


@njit(cache=True, nogil=True)
def _diverter_request(ton, toff, sig, sp):
    """(on, off) ticks of a flap that must be over before the leading edge arrives."""
    k = sp[S_K_SIGMA]
    on = math.floor(ton - k * sig - sp[S_DIV_DEAD_TICKS])
    off = math.ceil(toff + k * sig)
    off = max(off, on + max(math.ceil(sp[S_DIV_DWELL_TICKS]), 1))
    return on, off


__all__ = ["_command", "_diverter_request", "_enabled_run", "_valve_air", "_valve_request"]
