# mypy: disallow-untyped-defs=False
"""Numba kernels of the scheduler: decide, shape the air window, merge per valve.

Private: call them through ``control.scheduler``. Ticks are int64 unwrapped
encoder counts (float64 where predicted); lengths mm.

Per-resource interval sets (``ivs`` (R, M, 2) int64 with counts ``cnt`` (R,))
hold the committed future on/off intervals of each valve (or diverter flap),
sorted and disjoint, any two separated by at least the minimum off time. A new
request is merged into them: gaps shorter than the minimum off time are
bridged, and only the parts not already commanded become new pulses.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from control.kernels_aim import AIM_CUT, AIM_FAILED, _aim
from control.kernels_aim_search import _aim_with_fallback, aim_work
from control.kernels_intervals import _commit, _emit, _plan, _prune, _pulse_columns
from control.kernels_windows import (
    _command,
    _diverter_request,
    _enabled_run,
    _valve_air,
    _valve_request,
)
from control.params import (
    AIM_RULE_SEARCH,
    MODE_BASELINE,
    PREFER_PURITY,
    PREFER_RECOVERY,
    S_AIM_MARGIN,
    S_AIM_RULE,
    S_BASE_MARGIN_MM,
    S_BASE_PAD_MM,
    S_BASE_STEP_MM,
    S_BATTERY,
    S_BELT_WIDTH_MM,
    S_BLAST_MM,
    S_CLOSE_TICKS,
    S_DIV_DEAD_TICKS,
    S_FLOOR_U_MM,
    S_GUARD_TICKS,
    S_JET_MM,
    S_K_SIGMA,
    S_LEAD_TICKS,
    S_LIFT,
    S_MIN_OFF_TICKS,
    S_MIN_ON_TICKS,
    S_MM_PER_TICK,
    S_MODE,
    S_OPEN_TICKS,
    S_PITCH_MM,
    S_PREFER,
    S_TOLERANCE,
    S_X_FIRST_MM,
)

# counters slots
C_SEEN = 0
C_TARGETED = 1
C_PULSES = 2
C_DEADLINE = 3
C_CO_ACCEPTED = 4
C_CO_AVOIDED = 5
C_DIV_CONFLICTS = 6
C_VALVE_TICKS = 7
C_OFF_BAR = 8
C_AIMED = 9  # targets whose air was cut clear of a neighbour (recipe ``prefer``)
N_COUNTERS = 10
NEIGHBOUR_BIN_MM = 64.0  # x bins of the neighbour search


@njit(cache=True, nogil=True)
def _class_priority(frac, tcls, cls, prio):
    if frac >= 0 and tcls >= 0:
        return prio[tcls]
    if cls >= 0:
        return prio[cls]
    return 0


@njit(cache=True, nogil=True)
def _bin_neighbours(nbr, XC, H, bin_mm, n_bins):
    """Neighbour rows regrouped by x bin, order kept.

    Returns (rows (M,), bin_start (n_bins + 1,), widest half width mm)."""
    m = nbr.shape[0]
    key = np.empty(m, np.int64)
    start = np.zeros(n_bins + 1, np.int64)
    h_max = 0.0
    for q in range(m):
        j = nbr[q]
        key[q] = min(max(math.floor(XC[j, 0] / bin_mm), 0), n_bins - 1)
        start[key[q] + 1] += 1
        h_max = max(h_max, H[j, 0])
    for b in range(n_bins):
        start[b + 1] += start[b]
    fill = start[:-1].copy()
    rows = np.empty(m, np.int64)
    for q in range(m):
        rows[fill[key[q]]] = nbr[q]
        fill[key[q]] += 1
    return rows, start, h_max


@njit(cache=True, nogil=True)
def _weigh_neighbours(
    i, rows, start, b0, b1, x_lo, x_hi, t_lo, t_hi, CROSS, XC, H, FRAC, TCLS, CLS, prio, tol,
    spare, jh,
):  # fmt: skip
    """Neighbours of another fraction under the air rectangle -> (n conflicts, max priority).

    rows/start: neighbours by x bin (``_bin_neighbours``); bins b0..b1 are
    scanned. A neighbour conflicts when the share of its footprint (time x
    width) under the air exceeds ``tol`` and both its length and its width
    share exceed ``spare`` (the search rule's lift - margin; < 0: off), the
    air reaching ``jh`` ticks (half a jet's length) beyond [t_lo, t_hi].
    """
    n_conf = 0
    worst = -1
    for b in range(b0, b1 + 1):
        for q in range(start[b], start[b + 1]):
            j = rows[q]
            if j == i or FRAC[j] == FRAC[i]:
                continue
            ov_t = min(t_hi + jh, CROSS[j, 1]) - max(t_lo - jh, CROSS[j, 0])
            if ov_t <= 0.0:
                continue
            ov_x = min(x_hi, XC[j, 0] + H[j, 0]) - max(x_lo, XC[j, 0] - H[j, 0])
            if ov_x <= 0.0:
                continue
            s_t = ov_t / max(CROSS[j, 1] - CROSS[j, 0], 1.0)
            s_x = ov_x / max(2.0 * H[j, 0], 1e-6)
            if s_t * s_x > tol and min(s_t, s_x) > spare:
                n_conf += 1
                worst = max(worst, _class_priority(FRAC[j], TCLS[j], CLS[j], prio))
    return n_conf, worst


@njit(cache=True, nogil=True)
def _schedule(
    n,
    TID,
    CONF,
    DEC,
    FRAC,
    TCLS,
    CLS,
    NVIEW,
    CROSS,
    XC,
    H,
    now,
    frac_act,
    prio,
    sp,
    ivs,
    cnt,
    div_ivs,
    div_cnt,
    counters,
    open_v,
    close_v,
    enabled,
):
    """Decide the tracks whose deadline is near and schedule their actuators.

    open_v, close_v: (V,) float64 each valve's open / close delay in ticks;
    enabled: (V,) int64, 0 for a valve that must never be commanded (the
    ``ValveBar.disabled_valves`` of the calibration). Returns (pulses (P, 7)
    int64 rows: actuator, first, last, on, off, track id, fraction; count).
    Marks decided rows in DEC; updates counters (C_* slots).
    """
    out = np.empty((16, 7), np.int64)
    n_out = 0
    lead = sp[S_LEAD_TICKS]
    guard = sp[S_GUARD_TICKS]
    _prune(ivs, cnt, now)
    _prune(div_ivs, div_cnt, now)
    # candidates whose command must leave within the guard, by on tick
    cand = np.empty(n, np.int64)
    con = np.empty(n, np.float64)
    nc = 0
    any_flap = False
    t_min = 1e300
    t_max = -1e300
    # no valve (flap) request starts earlier than this before its leading edge
    # arrives minus k sigma: tracks farther out are skipped without shaping a window
    reach_valve = (
        lead + guard + sp[S_OPEN_TICKS]
        + (sp[S_BASE_STEP_MM] + sp[S_BASE_PAD_MM] + sp[S_BASE_MARGIN_MM] + sp[S_FLOOR_U_MM])
        / sp[S_MM_PER_TICK]
    )  # fmt: skip
    reach_flap = lead + guard + sp[S_DIV_DEAD_TICKS]
    for i in range(n):
        if CONF[i] and not DEC[i]:
            flap = FRAC[i] >= 0 and frac_act[FRAC[i]] > 0
            reach = reach_flap if flap else reach_valve
            if CROSS[i, 0] - sp[S_K_SIGMA] * CROSS[i, 2] - reach > now:
                continue
            if flap:
                on, off = _diverter_request(CROSS[i, 0], CROSS[i, 1], CROSS[i, 2], sp)
            else:
                _, _, on, off = _valve_request(
                    CROSS[i, 0], CROSS[i, 1], CROSS[i, 2], XC[i, 0], XC[i, 1], H[i, 0], H[i, 1], sp
                )
            if on - lead - now < guard:
                any_flap = any_flap or flap
                cand[nc] = i
                con[nc] = on
                nc += 1
                t_min = min(t_min, on)
                t_max = max(t_max, off)
    if nc == 0:
        return out[:0], 0
    cand = cand[:nc][np.argsort(con[:nc], kind="mergesort")]
    # neighbours that can be under any of this call's air
    # (merging bridges gaps shorter than the minimum off time or flap dead time)
    dead = sp[S_DIV_DEAD_TICKS] if any_flap else 0.0
    slack = max(sp[S_MIN_OFF_TICKS], dead) + sp[S_OPEN_TICKS] + sp[S_CLOSE_TICKS]
    nbr = np.empty(n, np.int64)
    nn = 0
    for j in range(n):
        near = CROSS[j, 1] >= t_min - slack and CROSS[j, 0] <= t_max + slack
        if near and (CONF[j] or NVIEW[j] >= 2):
            nbr[nn] = j
            nn += 1
    nbr = nbr[:nn]
    n_bins = math.floor(max(sp[S_BELT_WIDTH_MM], 1.0) / NEIGHBOUR_BIN_MM) + 1
    rows, bstart, h_max = _bin_neighbours(nbr, XC, H, NEIGHBOUR_BIN_MM, n_bins)
    nv = ivs.shape[0]
    seg = np.empty((ivs.shape[1] + 2, 3), np.int64)
    v_arr = np.empty(nv * (ivs.shape[1] + 2), np.int64)
    s_arr = np.empty_like(v_arr)
    e_arr = np.empty_like(v_arr)
    plans = np.empty((nv, 4), np.int64)
    b2 = 0.5 * sp[S_BLAST_MM]
    aiming = sp[S_PREFER] != PREFER_RECOVERY and sp[S_MODE] != MODE_BASELINE
    purity = sp[S_PREFER] == PREFER_PURITY
    search = sp[S_AIM_RULE] == AIM_RULE_SEARCH
    spare = sp[S_LIFT] - sp[S_AIM_MARGIN] if search and aiming else -1.0
    jh = 0.5 * sp[S_JET_MM] / sp[S_MM_PER_TICK] if search and aiming else 0.0
    iwork, awork = aim_work()
    for q in range(nc):
        i = cand[q]
        DEC[i] = 1
        counters[C_SEEN] += 1
        f = FRAC[i]
        if f < 0:
            continue
        counters[C_TARGETED] += 1
        act = frac_act[f]
        if act > 0:
            first, last = 0, 0
            on, off = _diverter_request(CROSS[i, 0], CROSS[i, 1], CROSS[i, 2], sp)
            res = div_ivs
            rcnt = div_cnt
            r0 = act - 1
            min_off = math.ceil(sp[S_DIV_DEAD_TICKS])
        else:
            first, last, air_on, air_off = _valve_air(
                CROSS[i, 0], CROSS[i, 1], CROSS[i, 2], XC[i, 0], XC[i, 1], H[i, 0], H[i, 1], sp
            )
            if first <= last and aiming:
                x_lo = sp[S_X_FIRST_MM] + (first + 0.5) * sp[S_PITCH_MM] - b2
                x_hi = sp[S_X_FIRST_MM] + (last + 0.5) * sp[S_PITCH_MM] + b2
                b0 = min(max(math.floor((x_lo - h_max) / NEIGHBOUR_BIN_MM), 0), n_bins - 1)
                b1 = min(max(math.floor((x_hi + h_max) / NEIGHBOUR_BIN_MM), 0), n_bins - 1)
                if search:
                    fires = not purity or TCLS[i] == int(sp[S_BATTERY])  # air goes out anyway
                    first, last, air_on, air_off, aim = _aim_with_fallback(
                        i, first, last, air_on, air_off, rows, bstart, b0, b1, CROSS, XC, H,
                        FRAC, sp, ivs, cnt, open_v, close_v, iwork, awork, fires,
                    )  # fmt: skip
                else:
                    first, last, air_on, air_off, aim = _aim(
                        i, first, last, air_on, air_off, rows, bstart, b0, b1, CROSS, XC, H,
                        FRAC, sp,
                    )  # fmt: skip
                if aim == AIM_CUT:
                    counters[C_AIMED] += 1
                elif aim == AIM_FAILED and purity and TCLS[i] != int(sp[S_BATTERY]):
                    counters[C_CO_AVOIDED] += 1
                    continue
            if first <= last:
                first, last = _enabled_run(first, last, enabled)
            res = ivs
            rcnt = cnt
            r0 = 0
            min_off = math.ceil(sp[S_MIN_OFF_TICKS])
            if first > last:
                counters[C_OFF_BAR] += 1
                continue
        # dry run per valve: the new segments after merging
        nsv = 0
        t_lo = 1e300
        t_hi = -1e300
        eff_lo = 1e300  # when the new commands start to act (a continuation at once)
        delay = sp[S_DIV_DEAD_TICKS]
        v_lo = last + 1
        v_hi = first - 1
        for v in range(first, last + 1):
            if act == 0:
                if not enabled[v]:
                    plans[v, 0] = -1  # not commanded
                    continue
                on, off = _command(air_on, air_off, open_v[v], close_v[v], sp[S_MIN_ON_TICKS])
                delay = open_v[v]
            r = r0 + v
            s_all, e_all, lo, hi, nseg = _plan(res, rcnt, r, on, off, min_off, seg)
            plans[v, 0] = s_all
            plans[v, 1] = e_all
            plans[v, 2] = lo
            plans[v, 3] = hi
            for k in range(nseg):
                v_arr[nsv] = v
                s_arr[nsv] = seg[k, 0]
                e_arr[nsv] = seg[k, 1]
                nsv += 1
                t_lo = min(t_lo, seg[k, 0])
                t_hi = max(t_hi, seg[k, 1])
                eff_lo = min(eff_lo, seg[k, 0] + (0.0 if seg[k, 2] else delay))
                v_lo = min(v_lo, v)
                v_hi = max(v_hi, v)
        if nsv == 0:
            continue  # already under commanded air
        if t_lo - lead <= now:
            counters[C_DEADLINE] += 1
            continue
        if act > 0:  # the flap acts from dead time after it is commanded until off
            a_lo = eff_lo
            a_hi = t_hi
            x_lo = -1e300
            x_hi = 1e300
        else:
            a_lo = eff_lo
            a_hi = t_hi + sp[S_CLOSE_TICKS]
            x_lo = sp[S_X_FIRST_MM] + (v_lo + 0.5) * sp[S_PITCH_MM] - b2
            x_hi = sp[S_X_FIRST_MM] + (v_hi + 0.5) * sp[S_PITCH_MM] + b2
        if act > 0:
            b0, b1 = 0, n_bins - 1
        else:
            b0 = min(max(math.floor((x_lo - h_max) / NEIGHBOUR_BIN_MM), 0), n_bins - 1)
            b1 = min(max(math.floor((x_hi + h_max) / NEIGHBOUR_BIN_MM), 0), n_bins - 1)
        n_conf, worst = _weigh_neighbours(
            i, rows, bstart, b0, b1, x_lo, x_hi, a_lo, a_hi, CROSS, XC, H, FRAC, TCLS, CLS, prio,
            sp[S_TOLERANCE], spare, jh,
        )  # fmt: skip
        if n_conf > 0:
            if act > 0:
                counters[C_DIV_CONFLICTS] += 1
            battery = TCLS[i] == int(sp[S_BATTERY])
            if not battery and (worst > prio[TCLS[i]] or (purity and act == 0)):
                if act == 0:
                    counters[C_CO_AVOIDED] += 1
                continue
            if act == 0:
                counters[C_CO_ACCEPTED] += 1
        for v in range(first, last + 1):
            if act > 0 or enabled[v]:
                _commit(res, rcnt, r0 + v, plans[v, 0], plans[v, 1], plans[v, 2], plans[v, 3])
        if act > 0:
            for k in range(nsv):
                v_arr[k] = 0
        n_before = n_out
        out, n_out = _emit(out, n_out, act, v_arr, s_arr, e_arr, nsv, TID[i], f)
        counters[C_PULSES] += n_out - n_before
        if act == 0:
            for k in range(nsv):
                counters[C_VALVE_TICKS] += e_arr[k] - s_arr[k]
    return out[:n_out], n_out


__all__ = [
    "_bin_neighbours",
    "_class_priority",
    "_command",
    "_commit",
    "_diverter_request",
    "_emit",
    "_enabled_run",
    "_plan",
    "_prune",
    "_pulse_columns",
    "_schedule",
    "_valve_air",
    "_valve_request",
    "_weigh_neighbours",
]
