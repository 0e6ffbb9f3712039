# mypy: disallow-untyped-defs=False
"""Numba kernels that search a target's air for the sub-window clear of its
neighbours (``ControlParams.aim_rule = "search"``, recipe ``prefer``).

Private: used by ``control.kernels_schedule``. The air is a rectangle on the
belt: valves ``first..last`` (their blasts span x) and the ticks
``[air_on, air_off)`` at which it reaches the belt. The valve bar lifts a piece
when at least ``S_LIFT`` of its length and of its width lie under air (the
controller's own setting of its air, ``ControlParams.lift_share``).

- A neighbour of another fraction is *spared* when the air, widened by one
  sigma of the neighbour's own prediction on each side (a bound of the most
  it can cover for a crossing error within that sigma) and along the belt by
  half a jet's length (``S_JET_MM``: the jet's own footprint), covers at most
  ``S_LIFT - S_AIM_MARGIN`` of its length or of its width (or at most the
  recipe's ``S_TOLERANCE`` of its footprint, length share x width share).
- The target stays *lifted* when, for a crossing error within k sigma
  (``S_K_SIGMA``, ``S_SIGMA_X_K``), at least ``S_LIFT + S_AIM_MARGIN`` of its
  length and of its width stay under air (or as much as the full window
  gives, when that is less).

Sparing a neighbour means starting the air after it has passed, stopping it
before it comes, or dropping the valves on its side: each conflicting
neighbour adds one candidate for each edge of the rectangle (the edge at
which it is just spared). The target's cover only grows with the window, so
the best sub-window has its edges among those candidates; all their
combinations are tried (at most ``_MAX_CONF`` neighbours, the worst), and the
one sparing the most neighbours, then covering the most of the target, wins.

Ticks are float64 unwrapped encoder counts; lengths mm.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from control.kernels_aim import (
    AIM_CLEAR,
    AIM_CUT,
    AIM_FAILED,
    _blast_span,
    _target_cover,
    _worst_cover,
)
from control.params import (
    AIM_LAST_LEAST,
    S_AIM_FALLBACK,
    S_AIM_LAST,
    S_AIM_LAST_K,
    S_AIM_MARGIN,
    S_BLAST_MM,
    S_JET_MM,
    S_K_SIGMA,
    S_LIFT,
    S_MM_PER_TICK,
    S_PITCH_MM,
    S_SIGMA_X_K,
    S_TOLERANCE,
    S_X_FIRST_MM,
)

_MAX_CONF = 6  # conflicting neighbours whose edges are tried (the worst ones)
_FALLBACK_STEPS = 2  # thinner margins tried, evenly down to S_AIM_FALLBACK
_LEAST_GRID = 8  # last resort: the air's on and off edges also on this many even steps
_LEAST_RUNS = 16  # ... and every valve run inside first..last up to this many valves
_EPS = 1e-9


@njit(cache=True, nogil=True)
def _neighbour_shares(j, x_lo, x_hi, air_on, air_off, CROSS, XC, H, jh):
    """Shares of neighbour j's length and width under the air [x_lo, x_hi] x
    [air_on, air_off) widened by one sigma of j's prediction on each side (a
    bound of the most it can cover for a crossing error within one sigma)."""
    s_t = CROSS[j, 2] + jh
    s_x = XC[j, 1]
    dur = max(CROSS[j, 1] - CROSS[j, 0], 1.0)
    wid = max(2.0 * H[j, 0], 1e-6)
    ov_t = min(air_off + s_t, CROSS[j, 1]) - max(air_on - s_t, CROSS[j, 0])
    ov_x = min(x_hi + s_x, XC[j, 0] + H[j, 0]) - max(x_lo - s_x, XC[j, 0] - H[j, 0])
    return min(max(ov_t, 0.0) / dur, 1.0), min(max(ov_x, 0.0) / wid, 1.0)


@njit(cache=True, nogil=True)
def _bar(sp, margin):
    """The scalars the per-neighbour kernels need, out of the schedule vector
    (a tuple of 35 is dear to pass per neighbour) and the aiming ``margin``
    (``S_AIM_MARGIN``, or the fallback's thinner one): (spare share (lift - margin),
    lift share, tolerance, half blast mm, pitch mm, first valve's x mm, half the
    jet's length along the belt in ticks)."""
    mpt = sp[S_MM_PER_TICK]
    jh = 0.5 * sp[S_JET_MM] / mpt if mpt > 0.0 else 0.0
    return (
        sp[S_LIFT] - margin, sp[S_LIFT], sp[S_TOLERANCE], 0.5 * sp[S_BLAST_MM],
        sp[S_PITCH_MM], sp[S_X_FIRST_MM], jh,
    )  # fmt: skip


@njit(cache=True, nogil=True)
def _committed(j, ivs, cnt, open_v, close_v, CROSS, XC, H, g):
    """Hull (t_lo, t_hi, x_lo, x_hi) of the air already committed over neighbour
    j's footprint (the air widened by one sigma of j's prediction, as in
    ``_neighbour_shares``); t_lo > t_hi when none. ``ivs``/``cnt``: the valves'
    committed command intervals, ``open_v``/``close_v`` their delays (ticks);
    ``g``: ``_bar``."""
    s_t = CROSS[j, 2] + g[6]
    s_x = XC[j, 1]
    x0 = XC[j, 0] - H[j, 0]
    x1 = XC[j, 0] + H[j, 0]
    b2, pitch, xf = g[3], g[4], g[5]
    v0 = max(math.ceil((x0 - s_x - b2 - xf) / pitch - 0.5), 0)
    v1 = min(math.floor((x1 + s_x + b2 - xf) / pitch - 0.5), ivs.shape[0] - 1)
    ta = xa = 1e300
    tb = xb = -1e300
    for v in range(v0, v1 + 1):
        for k in range(cnt[v]):
            lo = max(ivs[v, k, 0] + open_v[v] - s_t, CROSS[j, 0])
            hi = min(ivs[v, k, 1] + close_v[v] + s_t, CROSS[j, 1])
            if hi <= lo:
                continue
            ta = min(ta, lo)
            tb = max(tb, hi)
            c = xf + (v + 0.5) * pitch
            xa = min(xa, max(c - b2 - s_x, x0))
            xb = max(xb, min(c + b2 + s_x, x1))
    return ta, tb, xa, xb


@njit(cache=True, nogil=True)
def _union_len(a0, a1, b0, b1):
    """Length of [a0, a1] u [b0, b1] (an interval with a1 <= a0 is empty)."""
    la = max(a1 - a0, 0.0)
    lb = max(b1 - b0, 0.0)
    if la == 0.0 or lb == 0.0:
        return la + lb
    return la + lb - max(min(a1, b1) - max(a0, b0), 0.0)


@njit(cache=True, nogil=True)
def _spared_along(lo, hi, b0, b1, extent, spare):
    """A neighbour is spared along one axis when the new air's span over it,
    [lo, hi], does not reach it (hi <= lo), or when that span together with the
    committed air's [b0, b1] covers at most ``spare`` of its ``extent``."""
    return hi <= lo or _union_len(lo, hi, b0, b1) / extent <= spare


@njit(cache=True, nogil=True)
def _shares_with(j, x_lo, x_hi, air_on, air_off, box, CROSS, XC, H, jh):
    """``_neighbour_shares`` of the new air together with the committed air
    ``box`` (``_committed``) over j: shares of the union of their projections
    on its length and on its width (the new air touching j at all)."""
    s_t = CROSS[j, 2] + jh
    s_x = XC[j, 1]
    lo = max(air_on - s_t, CROSS[j, 0])
    hi = min(air_off + s_t, CROSS[j, 1])
    xl = max(x_lo - s_x, XC[j, 0] - H[j, 0])
    xr = min(x_hi + s_x, XC[j, 0] + H[j, 0])
    if hi <= lo or xr <= xl:
        return 0.0, 0.0
    dur = max(CROSS[j, 1] - CROSS[j, 0], 1.0)
    wid = max(2.0 * H[j, 0], 1e-6)
    return (
        min(_union_len(lo, hi, box[0], box[1]) / dur, 1.0),
        min(_union_len(xl, xr, box[2], box[3]) / wid, 1.0),
    )


@njit(cache=True, nogil=True)
def _lifted_before(box, j, CROSS, XC, H, g):
    """Whether the committed air ``box`` alone covers the lift share of
    neighbour j's length and width (then no window of this target spares it)."""
    if box[1] <= box[0]:
        return False
    cu = (box[1] - box[0]) / max(CROSS[j, 1] - CROSS[j, 0], 1.0)
    cx = (box[3] - box[2]) / max(2.0 * H[j, 0], 1e-6)
    return min(cu, cx) >= g[1]


@njit(cache=True, nogil=True)
def _spared(cu, cx, g):
    """Whether a neighbour with shares (length cu, width cx) under air stays on
    the belt; ``g``: ``_bar``."""
    # (the candidate edges put a share exactly at the bound: rounding must not undo it)
    return cu * cx <= g[2] or min(cu, cx) <= g[0] + _EPS


@njit(cache=True, nogil=True)
def _judge(j, cu, cx, x_lo, x_hi, air_on, air_off, ivs, cnt, open_v, close_v, CROSS, XC, H, g, box):
    """Whether the air lifts neighbour j (of another fraction than the
    target's; cu, cx: its ``_neighbour_shares``, both > 0) together with the
    air already committed over it (written to ``box`` (4,)); one the
    committed air lifts anyway is no conflict. ``g``: ``_bar``."""
    box[0], box[1], box[2], box[3] = _committed(j, ivs, cnt, open_v, close_v, CROSS, XC, H, g)
    if box[1] > box[0]:
        if _lifted_before(box, j, CROSS, XC, H, g):
            return False
        cu, cx = _shares_with(j, x_lo, x_hi, air_on, air_off, box, CROSS, XC, H, g[6])
    return not _spared(cu, cx, g)


@njit(cache=True, nogil=True)
def _n_lifted(
    i, first, last, air_on, air_off, rows, start, b0, b1, CROSS, XC, H, FRAC, sp,
    ivs, cnt, open_v, close_v, box, margin,
):  # fmt: skip
    """Neighbours (bins b0..b1) the air would lift (``_judge`` at ``margin``);
    ``box`` (4,) scratch."""
    x_lo, x_hi = _blast_span(first, last, sp)
    g = _bar(sp, margin)
    n = 0
    for b in range(b0, b1 + 1):
        for q in range(start[b], start[b + 1]):
            j = rows[q]
            if j == i or FRAC[j] == FRAC[i]:
                continue
            cu, cx = _neighbour_shares(j, x_lo, x_hi, air_on, air_off, CROSS, XC, H, g[6])
            if cu == 0.0 or cx == 0.0:  # not touched
                continue
            if _judge(
                j, cu, cx, x_lo, x_hi, air_on, air_off, ivs, cnt, open_v, close_v, CROSS, XC,
                H, g, box,
            ):  # fmt: skip
                n += 1
    return n


@njit(cache=True, nogil=True)
def _conflicts(
    i, first, last, air_on, air_off, rows, start, b0, b1, CROSS, XC, H, FRAC, sp,
    ivs, cnt, open_v, close_v, conf, work, margin,
):  # fmt: skip
    """The (at most ``_MAX_CONF``) neighbours the full air would lift, worst
    (largest length share x width share) kept, written to ``conf``
    (_MAX_CONF,) int64 with their committed-air hulls in ``work[:, :4]``
    (``aim_work``) -> count; judged at ``margin``."""
    x_lo, x_hi = _blast_span(first, last, sp)
    g = _bar(sp, margin)
    boxes = work[:_MAX_CONF, :4]
    sev = work[:_MAX_CONF, 4]
    box = work[_MAX_CONF, :4]
    nc = 0
    for b in range(b0, b1 + 1):
        for q in range(start[b], start[b + 1]):
            j = rows[q]
            if j == i or FRAC[j] == FRAC[i]:
                continue
            cu, cx = _neighbour_shares(j, x_lo, x_hi, air_on, air_off, CROSS, XC, H, g[6])
            if cu == 0.0 or cx == 0.0:  # not touched
                continue
            if not _judge(
                j, cu, cx, x_lo, x_hi, air_on, air_off, ivs, cnt, open_v, close_v, CROSS, XC,
                H, g, box,
            ):  # fmt: skip
                continue
            k = nc
            if nc == _MAX_CONF:
                k = int(np.argmin(sev[:nc]))
                if cu * cx <= sev[k]:
                    continue
            else:
                nc += 1
            conf[k] = j
            sev[k] = cu * cx
            boxes[k] = box
    return nc


@njit(cache=True, nogil=True)
def _edges(i, conf, boxes, nc, first, last, air_on, air_off, CROSS, XC, H, sp, margin):
    """Candidate edges of target i's air: (on (3 nc + 1,), count, off, count,
    first valve, count, last valve, count); index 0 of each is the full
    window's own edge. Per neighbour: the edge past which it is spared on
    each side (also with what the air already committed over it, ``boxes``,
    leaves of its spare share), and for one longer (wider) than the air, the
    window (valve run) short enough to spare it, centred on the target;
    spared at lift - ``margin``."""
    spare = sp[S_LIFT] - margin
    pitch = sp[S_PITCH_MM]
    b2 = 0.5 * sp[S_BLAST_MM]
    xf = sp[S_X_FIRST_MM]
    ons = np.empty(3 * nc + 1, np.float64)
    offs = np.empty(3 * nc + 1, np.float64)
    fs = np.empty(3 * nc + 1, np.int64)
    ls = np.empty(3 * nc + 1, np.int64)
    tc = 0.5 * (CROSS[i, 0] + CROSS[i, 1])
    vc = (XC[i, 0] - xf) / pitch - 0.5
    jh = _bar(sp, margin)[6]  # the target's centre in valve units
    ons[0], offs[0], fs[0], ls[0] = air_on, air_off, first, last
    n_on = n_off = n_f = n_l = 1
    for k in range(nc):
        j = conf[k]
        s_t = CROSS[j, 2] + jh
        s_x = XC[j, 1]
        dur = max(CROSS[j, 1] - CROSS[j, 0], 1.0)
        wid = max(2.0 * H[j, 0], 1e-6)
        x0 = XC[j, 0] - H[j, 0]
        x1 = XC[j, 0] + H[j, 0]
        sent = boxes[k, 1] > boxes[k, 0]
        for rep in range(2 if sent else 1):
            # the share of its length (width) the new air may take: all of the
            # spare share, or what the committed air leaves of it
            rt = spare * dur if rep == 0 else max(spare * dur - (boxes[k, 1] - boxes[k, 0]), 0.0)
            rx = spare * wid if rep == 0 else max(spare * wid - (boxes[k, 3] - boxes[k, 2]), 0.0)
            on = CROSS[j, 1] + s_t - rt  # after it
            if air_on < on < air_off:
                ons[n_on] = on
                n_on += 1
            off = CROSS[j, 0] - s_t + rt  # before it
            if air_on < off < air_off:
                offs[n_off] = off
                n_off += 1
            lv = math.floor((x0 + rx - s_x - b2 - xf) / pitch - 0.5)  # blasts end before it
            if first <= lv < last:
                ls[n_l] = lv
                n_l += 1
            fv = math.ceil((x1 - rx + s_x + b2 - xf) / pitch - 0.5)  # ... start after it
            if first < fv <= last:
                fs[n_f] = fv
                n_f += 1
        t_max = spare * dur - 2.0 * s_t  # the longest air that spares it from inside
        if 0.0 < t_max < air_off - air_on:
            on = min(max(tc - 0.5 * t_max, air_on), air_off - t_max)
            ons[n_on] = on
            offs[n_off] = on + t_max
            n_on += 1
            n_off += 1
        m = math.floor((spare * wid - 2.0 * s_x - 2.0 * b2) / pitch) + 1  # valves, ditto
        if 1 <= m < last - first + 1:
            fv = min(max(round(vc - 0.5 * (m - 1)), first), last - m + 1)
            fs[n_f] = fv
            ls[n_l] = fv + m - 1
            n_f += 1
            n_l += 1
    return ons, n_on, offs, n_off, fs, n_f, ls, n_l


@njit(cache=True, nogil=True)
def _slot(mask, cov, n, bits, cover):
    """Where a candidate with spare mask ``bits`` and ``cover`` goes among the
    first ``n``: the row of the same mask when it covers more (-1 when that
    row covers as much: only the best of each mask is kept), else row n."""
    for k in range(n):
        if mask[k] == bits:
            return k if cover > cov[k] else -1
    return n


@njit(cache=True, nogil=True)
def _axis_t(i, conf, boxes, nc, ons, n_on, offs, n_off, need_u, CROSS, XC, H, sp, margin, t_jet):
    """Windows (on, off) from the candidate edges that keep ``need_u`` of target
    i's length under air (k sigma; the air reaching ``t_jet`` ticks beyond),
    with their cover and the bit mask of the conflicts they spare along the
    belt, the best of each mask only -> (on, off, cover, mask, count)."""
    m = n_on * n_off
    w_on = np.empty(m, np.float64)
    w_off = np.empty(m, np.float64)
    cov = np.empty(m, np.float64)
    mask = np.empty(m, np.int64)
    spare = sp[S_LIFT] - margin + _EPS
    jh = _bar(sp, margin)[6]
    n = 0
    for c in range(n_on):
        for d in range(n_off):
            on, off = ons[c], offs[d]
            if off <= on:
                continue
            cu = _worst_cover(
                on - t_jet, off + t_jet, CROSS[i, 0], CROSS[i, 1], sp[S_K_SIGMA] * CROSS[i, 2]
            )
            if cu < need_u - 1e-12:
                continue
            bits = 0
            for k in range(nc):
                j = conf[k]
                lo = max(on - CROSS[j, 2] - jh, CROSS[j, 0])
                hi = min(off + CROSS[j, 2] + jh, CROSS[j, 1])
                dur = max(CROSS[j, 1] - CROSS[j, 0], 1.0)
                if _spared_along(lo, hi, boxes[k, 0], boxes[k, 1], dur, spare):
                    bits |= 1 << k
            at = _slot(mask, cov, n, bits, cu)
            if at >= 0:
                w_on[at], w_off[at], cov[at], mask[at] = on, off, cu, bits
                n = max(n, at + 1)
    return w_on, w_off, cov, mask, n


@njit(cache=True, nogil=True)
def _axis_x(i, conf, boxes, nc, fs, n_f, ls, n_l, need_x, CROSS, XC, H, sp, margin):
    """Valve runs from the candidate edges that keep ``need_x`` of target i's
    width under air (k sigma), with their cover and the bit mask of the
    conflicts they spare across the belt, the best of each mask only ->
    (first, last, cover, mask, count)."""
    m = n_f * n_l
    w_f = np.empty(m, np.int64)
    w_l = np.empty(m, np.int64)
    cov = np.empty(m, np.float64)
    mask = np.empty(m, np.int64)
    spare = sp[S_LIFT] - margin + _EPS
    x = XC[i, 0]
    n = 0
    for a in range(n_f):
        for b in range(n_l):
            f, lst = fs[a], ls[b]
            if f > lst:
                continue
            x_lo, x_hi = _blast_span(f, lst, sp)
            cx = _worst_cover(x_lo, x_hi, x - H[i, 0], x + H[i, 0], sp[S_SIGMA_X_K] * XC[i, 1])
            if cx < need_x - 1e-12:
                continue
            bits = 0
            for k in range(nc):
                j = conf[k]
                xl = max(x_lo - XC[j, 1], XC[j, 0] - H[j, 0])
                xr = min(x_hi + XC[j, 1], XC[j, 0] + H[j, 0])
                wid = max(2.0 * H[j, 0], 1e-6)
                if _spared_along(xl, xr, boxes[k, 2], boxes[k, 3], wid, spare):
                    bits |= 1 << k
            at = _slot(mask, cov, n, bits, cx)
            if at >= 0:
                w_f[at], w_l[at], cov[at], mask[at] = f, lst, cx, bits
                n = max(n, at + 1)
    return w_f, w_l, cov, mask, n


@njit(cache=True, nogil=True)
def aim_work():
    """Scratch arrays of ``_aim_search`` (allocate once per schedule call):
    (iwork (_MAX_CONF,) int64, work (_MAX_CONF + 1, 5) float64)."""
    return np.empty(_MAX_CONF, np.int64), np.empty((_MAX_CONF + 1, 5), np.float64)


@njit(cache=True, nogil=True)
def _aim_search(
    i, first, last, air_on, air_off, rows, start, b0, b1, CROSS, XC, H, FRAC, sp,
    ivs, cnt, open_v, close_v, iwork, work, margin, t_jet,
):  # fmt: skip
    """Target i's air as the sub-window that spares the most neighbours, then
    covers the most of it (module docstring).

    rows/start: neighbour rows by x bin (``kernels_schedule._bin_neighbours``),
    bins b0..b1 scanned; ivs/cnt: the valves' committed command intervals,
    open_v/close_v: their delays in ticks (air already sent over a neighbour
    counts with the new air); iwork, work: scratch from ``aim_work``;
    margin: the aiming margin (``S_AIM_MARGIN``; thinner for the fallback,
    ``_aim_with_fallback``); t_jet: ticks the air reaches the target beyond
    the window on each side (0: the jet left out of its cover; the fallback:
    half the jet's length).
    Returns (first, last, air_on, air_off, AIM_*): AIM_CLEAR (the air as
    given spares every neighbour), AIM_CUT (a sub-window does), AIM_FAILED
    (none does: the sub-window that lifts the fewest, the full window when
    no sub-window lifts fewer).
    """
    conf = iwork
    nc = _conflicts(
        i, first, last, air_on, air_off, rows, start, b0, b1, CROSS, XC, H, FRAC, sp,
        ivs, cnt, open_v, close_v, conf, work, margin,
    )  # fmt: skip
    boxes = work[:_MAX_CONF, :4]
    if nc == 0:
        return first, last, air_on, air_off, AIM_CLEAR
    need = sp[S_LIFT] + margin
    cu0, cx0 = _target_cover(i, first, last, air_on - t_jet, air_off + t_jet, CROSS, XC, H, sp)
    ons, n_on, offs, n_off, fs, n_f, ls, n_l = _edges(
        i, conf, boxes, nc, first, last, air_on, air_off, CROSS, XC, H, sp, margin
    )
    # a neighbour is spared by the window's length OR by its valves: per axis,
    # each candidate's target cover and a bit per neighbour it spares
    tw_on, tw_off, t_cov, t_mask, n_t = _axis_t(
        i, conf, boxes, nc, ons, n_on, offs, n_off, min(need, cu0), CROSS, XC, H, sp,
        margin, t_jet,
    )  # fmt: skip
    xw_f, xw_l, x_cov, x_mask, n_x = _axis_x(
        i, conf, boxes, nc, fs, n_f, ls, n_l, min(need, cx0), CROSS, XC, H, sp, margin
    )
    full = (1 << nc) - 1
    best = (first, last, air_on, air_off)
    best_bad = nc
    best_cover = cu0 * cx0
    for a in range(n_x):
        for c in range(n_t):
            left = full & ~(x_mask[a] | t_mask[c])
            bad = 0
            while left:
                left &= left - 1
                bad += 1
            cover = x_cov[a] * t_cov[c]
            if bad < best_bad or (bad == best_bad and cover > best_cover):
                best = (xw_f[a], xw_l[a], tw_on[c], tw_off[c])
                best_bad = bad
                best_cover = cover
    f, lst, on, off = best
    if best_bad == 0:
        left = _n_lifted(
            i, f, lst, on, off, rows, start, b0, b1, CROSS, XC, H, FRAC, sp,
            ivs, cnt, open_v, close_v, work[_MAX_CONF, :4], margin,
        )  # fmt: skip
        if left == 0:  # the neighbours beyond the worst _MAX_CONF too
            return f, lst, on, off, AIM_CUT
    return f, lst, on, off, AIM_FAILED


@njit(cache=True, nogil=True)
def _excess(su, sx, g):
    """How far a neighbour with shares (length su, width sx) under air is over
    its spare share (0 when spared: ``_spared``); ``g``: ``_bar``."""
    if su * sx <= g[2]:
        return 0.0
    return max(min(su, sx) - g[0], 0.0)


@njit(cache=True, nogil=True)
def _least_t(i, conf, boxes, nc, ons, n_on, need_u, CROSS, sp, g, t_jet):
    """Last resort, along the belt: windows (on, off) with both edges among
    ``ons[:n_on]`` that keep ``need_u`` of target i's length under air (for
    an error within ``S_AIM_LAST_K`` sigmas; the air reaching ``t_jet`` ticks
    beyond), with each conflict's length share under the new air together
    with the committed air (``boxes``; 0 where the new air does not reach it) -> (on, off, cover,
    shares (m, nc), count)."""
    m = n_on * n_on
    w_on = np.empty(m, np.float64)
    w_off = np.empty(m, np.float64)
    cov = np.empty(m, np.float64)
    sh = np.zeros((m, max(nc, 1)), np.float64)
    n = 0
    for c in range(n_on):
        for d in range(n_on):
            on, off = ons[c], ons[d]
            if off <= on:
                continue
            cu = _worst_cover(
                on - t_jet, off + t_jet, CROSS[i, 0], CROSS[i, 1], sp[S_AIM_LAST_K] * CROSS[i, 2]
            )
            if cu < need_u - 1e-12:
                continue
            for k in range(nc):
                j = conf[k]
                lo = max(on - CROSS[j, 2] - g[6], CROSS[j, 0])
                hi = min(off + CROSS[j, 2] + g[6], CROSS[j, 1])
                if hi > lo:
                    dur = max(CROSS[j, 1] - CROSS[j, 0], 1.0)
                    sh[n, k] = min(_union_len(lo, hi, boxes[k, 0], boxes[k, 1]) / dur, 1.0)
            w_on[n], w_off[n], cov[n] = on, off, cu
            n += 1
    return w_on, w_off, cov, sh, n


@njit(cache=True, nogil=True)
def _least_x(i, conf, boxes, nc, fs, n_f, need_x, XC, H, sp):
    """Last resort, across the belt: valve runs with both ends among
    ``fs[:n_f]`` that keep ``need_x`` of target i's width under air (k
    sigma), with each conflict's width share under the new air together with
    the committed air -> (first, last, cover, shares (m, nc), count)."""
    m = n_f * n_f
    w_f = np.empty(m, np.int64)
    w_l = np.empty(m, np.int64)
    cov = np.empty(m, np.float64)
    sh = np.zeros((m, max(nc, 1)), np.float64)
    x = XC[i, 0]
    n = 0
    for a in range(n_f):
        for b in range(n_f):
            f, lst = fs[a], fs[b]
            if f > lst:
                continue
            x_lo, x_hi = _blast_span(f, lst, sp)
            cx = _worst_cover(x_lo, x_hi, x - H[i, 0], x + H[i, 0], sp[S_SIGMA_X_K] * XC[i, 1])
            if cx < need_x - 1e-12:
                continue
            for k in range(nc):
                j = conf[k]
                xl = max(x_lo - XC[j, 1], XC[j, 0] - H[j, 0])
                xr = min(x_hi + XC[j, 1], XC[j, 0] + H[j, 0])
                if xr > xl:
                    wid = max(2.0 * H[j, 0], 1e-6)
                    sh[n, k] = min(_union_len(xl, xr, boxes[k, 2], boxes[k, 3]) / wid, 1.0)
            w_f[n], w_l[n], cov[n] = f, lst, cx
            n += 1
    return w_f, w_l, cov, sh, n


@njit(cache=True, nogil=True)
def _aim_least(
    i, first, last, air_on, air_off, rows, start, b0, b1, CROSS, XC, H, FRAC, sp,
    ivs, cnt, open_v, close_v, iwork, work, margin, t_jet,
):  # fmt: skip
    """The last resort when no sub-window spares every neighbour and the air
    goes out anyway (``S_AIM_LAST`` = ``AIM_LAST_LEAST``): of the windows that
    keep min(lift + ``margin``, the full window's) of target i's length and
    width under air for a crossing error within ``S_AIM_LAST_K`` sigmas along
    the belt (``S_SIGMA_X_K`` across; the air reaching ``t_jet`` ticks
    beyond it), the one whose air over its conflicting neighbours (at most
    ``_MAX_CONF``, the worst, judged at ``margin`` with the committed air)
    exceeds their spare share the least, summed over them (``_excess``:
    min(length share, width share) - (lift - margin)); then the one covering
    the most of the target. Candidate edges: the full window's, the edges at
    which a conflict is just spared (``_edges``), the tightest the target
    allows (ending as early, starting as late, or as short and centred as its
    cover allows), ticks on ``_LEAST_GRID`` even steps over the full window
    (any two as on and off), and every valve run
    inside first..last (only ``_edges``' runs when it is wider than
    ``_LEAST_RUNS`` valves). A neighbour pushed from under the whole air to
    just over its spare share may still stay on the belt (its sigma and the
    jet widen its share); the full window lifts it for sure.
    Same arguments and return as ``_aim_search``: AIM_FAILED with the
    window, or AIM_CLEAR (the air as given) when nothing conflicts."""
    conf = iwork
    nc = _conflicts(
        i, first, last, air_on, air_off, rows, start, b0, b1, CROSS, XC, H, FRAC, sp,
        ivs, cnt, open_v, close_v, conf, work, margin,
    )  # fmt: skip
    if nc == 0:
        return first, last, air_on, air_off, AIM_CLEAR
    boxes = work[:_MAX_CONF, :4]
    g = _bar(sp, margin)
    need = sp[S_LIFT] + margin
    a_t, b_t, s_t = CROSS[i, 0], CROSS[i, 1], sp[S_AIM_LAST_K] * CROSS[i, 2]
    cu0 = _worst_cover(air_on - t_jet, air_off + t_jet, a_t, b_t, s_t)
    cx0 = _target_cover(i, first, last, air_on, air_off, CROSS, XC, H, sp)[1]
    ons, n_on, offs, n_off, fs, n_f, ls, n_l = _edges(
        i, conf, boxes, nc, first, last, air_on, air_off, CROSS, XC, H, sp, margin
    )
    # one list of along-belt edges (either can be on or off) and of valve ends;
    # the tightest: the air ending (starting) as early (late) as the target's
    # need allows, and the shortest window centred on it
    te = np.empty(n_on + n_off + _LEAST_GRID + 3, np.float64)
    keep = min(need, cu0) * max(b_t - a_t, 1e-9)
    te[0] = max(air_on - t_jet, a_t + s_t) + keep - t_jet + 1e-6  # with the full on
    te[1] = min(air_off + t_jet, b_t - s_t) - keep + t_jet - 1e-6  # with the full off
    te[2] = 0.5 * (a_t + b_t) - 0.5 * keep + t_jet - 1e-6
    te[3] = 0.5 * (a_t + b_t) + 0.5 * keep - t_jet + 1e-6
    n_te = 4
    for c in range(n_on):
        te[n_te] = ons[c]
        n_te += 1
    for d in range(n_off):
        te[n_te] = offs[d]
        n_te += 1
    for k in range(1, _LEAST_GRID):
        te[n_te] = air_on + (air_off - air_on) * k / _LEAST_GRID
        n_te += 1
    for k in range(4):  # sub-windows of the full one only
        te[k] = min(max(te[k], air_on), air_off)
    n_v = last - first + 1
    if n_v <= _LEAST_RUNS:
        ve = np.arange(first, last + 1).astype(np.int64)
        n_ve = n_v
    else:
        ve = np.empty(n_f + n_l, np.int64)
        n_ve = 0
        for a in range(n_f):
            ve[n_ve] = fs[a]
            n_ve += 1
        for b in range(n_l):
            ve[n_ve] = ls[b]
            n_ve += 1
    tw_on, tw_off, t_cov, t_sh, n_t = _least_t(
        i, conf, boxes, nc, te, n_te, min(need, cu0), CROSS, sp, g, t_jet
    )
    xw_f, xw_l, x_cov, x_sh, n_x = _least_x(i, conf, boxes, nc, ve, n_ve, min(need, cx0), XC, H, sp)
    best = (first, last, air_on, air_off)
    best_ex = 1e300
    best_cover = -1.0
    for a in range(n_x):
        for c in range(n_t):
            ex = 0.0
            for k in range(nc):
                ex += _excess(t_sh[c, k], x_sh[a, k], g)
            cover = x_cov[a] * t_cov[c]
            if ex < best_ex - _EPS or (ex <= best_ex + _EPS and cover > best_cover):
                best = (xw_f[a], xw_l[a], tw_on[c], tw_off[c])
                best_ex = min(best_ex, ex)
                best_cover = cover
    f, lst, on, off = best
    return f, lst, on, off, AIM_FAILED


@njit(cache=True, nogil=True)
def _aim_with_fallback(
    i, first, last, air_on, air_off, rows, start, b0, b1, CROSS, XC, H, FRAC, sp,
    ivs, cnt, open_v, close_v, iwork, work, fallback,
):  # fmt: skip
    """``_aim_search`` at the margin ``S_AIM_MARGIN``; when no sub-window
    spares every neighbour and ``fallback`` is set (air that goes out anyway:
    ``balanced``, a battery), again at thinner margins, ``_FALLBACK_STEPS``
    even steps down to ``S_AIM_FALLBACK`` (a target kept at lift + margin
    under air, neighbours at most lift - margin), the jet's length now
    counted over the target as over its neighbours (the strict search leaves
    it out of the target's cover): the first (thickest) margin
    at which a sub-window spares every neighbour wins, else the last resort
    ``S_AIM_LAST``: ``_aim_least`` at the thinnest margin, or the strict
    answer (the window lifting the fewest at the full margin, then covering
    the most of the target). Same arguments and return as ``_aim_search``
    (whose ``margin`` it sets)."""
    m0 = sp[S_AIM_MARGIN]
    f, lst, on, off, aim = _aim_search(
        i, first, last, air_on, air_off, rows, start, b0, b1, CROSS, XC, H, FRAC, sp,
        ivs, cnt, open_v, close_v, iwork, work, m0, 0.0,
    )  # fmt: skip
    thin = sp[S_AIM_FALLBACK]
    if aim != AIM_FAILED or not fallback or thin >= m0:
        return f, lst, on, off, aim
    for k in range(1, _FALLBACK_STEPS + 1):
        m = m0 - (m0 - thin) * k / _FALLBACK_STEPS
        f2, l2, on2, off2, aim2 = _aim_search(
            i, first, last, air_on, air_off, rows, start, b0, b1, CROSS, XC, H, FRAC, sp,
            ivs, cnt, open_v, close_v, iwork, work, m, _bar(sp, m)[6],
        )  # fmt: skip
        if aim2 != AIM_FAILED:
            return f2, l2, on2, off2, AIM_CUT
    if sp[S_AIM_LAST] == AIM_LAST_LEAST:
        return _aim_least(
            i, first, last, air_on, air_off, rows, start, b0, b1, CROSS, XC, H, FRAC, sp,
            ivs, cnt, open_v, close_v, iwork, work, thin, _bar(sp, thin)[6],
        )  # fmt: skip
    return f, lst, on, off, aim


__all__ = [
    "_aim_least",
    "_aim_search",
    "_aim_with_fallback",
    "_axis_t",
    "_axis_x",
    "_bar",
    "_committed",
    "_conflicts",
    "_edges",
    "_excess",
    "_judge",
    "_least_t",
    "_least_x",
    "_n_lifted",
    "_neighbour_shares",
    "_shares_with",
    "_slot",
    "_spared",
    "_union_len",
    "aim_work",
]
