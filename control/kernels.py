"""Numba kernels of the tracker: predict, update, births, deaths, one frame step.

The decision core's kernels live in this module and its siblings:
``kernels_gate`` (spatial hash, Mahalanobis gate), ``kernels_cover``
(box coverage for the occlusion rule), ``kernels_assign``
(components, Hungarian, exact per-group assignment), ``kernels_evidence``
(class outlook, ``Tracks`` export), ``kernels_schedule``,
``kernels_windows`` and ``kernels_intervals`` (decisions, valve and flap
windows, per-valve merging).
All are private: call them through ``control.tracker``, ``control.assign``,
``control.evidence`` and ``control.scheduler``, which check their input.

Arrays are C-contiguous; ticks are float64 unwrapped encoder counts; lengths
mm. Track state per row: ``X`` (x, u, vx, vu) in mm and mm/tick; ``P`` the
two per-axis 2x2 covariances packed as (xx_pp, xx_pv, xx_vv, uu_pp, uu_pv,
uu_vv) (the axes are independent under a constant-velocity model with
diagonal noise, so this is exact); ``H`` half sizes (hx, hu) of the box
around the centre; ``G`` per axis the track's NIS average, which sets its
process noise, the rest model's ``XS``, ``PS``, ``MU`` and the
constant-acceleration model's ``XA``, ``PA``, ``MA`` (``kernels_motion``,
``kernels_motion_ca``: the motion model and the crossing). Helpers take
scalars: passing arrays into a non-inlined call costs reference counting on
every call.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from control.kernels_assign import _assign_gated
from control.kernels_cover import _cover_index, _covered
from control.kernels_evidence import _export, _outlook_finish, _outlook_logits, _outlook_rows
from control.kernels_gate import (
    _clip_codes,
    _gate,
    _innov_u,
    _lead_clip,
    _mahal2,
)
from control.kernels_motion import (
    HUBER_K,
    _axis_q,
    _crossing,
    _crossing_imm,
    _huber,
    _mode_update,
    _nis,
    _nis_capped,
    _noise_estimate,
    _predict,
    _still_update,
)
from control.kernels_motion_ca import _ca_update
from control.params import (
    T_A0_VAR,
    T_ACCEL_ON,
    T_BIRTH_ENTRY,
    T_BIRTH_MID,
    T_CLIP_TOL_MM,
    T_CONFIRM,
    T_DELETE,
    T_ENTRY_BAND_MM,
    T_EXTENT_ALPHA,
    T_EXTENT_VAR_MM2,
    T_GATE,
    T_HIT,
    T_MA0,
    T_MAX_COAST,
    T_MISS,
    T_MM_PER_TICK,
    T_MODE_CUT,
    T_MU0,
    T_MU_MIN,
    T_NIS_ALPHA,
    T_NIS_G0,
    T_OCCLUDED,
    T_P_ACCEL,
    T_P_MOVE,
    T_P_STILL,
    T_PASS_MM,
    T_Q,
    T_Q_JERK,
    T_Q_MAN,
    T_Q_STILL,
    T_R_ADAPT,
    T_R_GATE_MM2,
    T_R_MAX_MM2,
    T_R_MIN_MM2,
    T_R_MM2,
    T_SCORE_MAX,
    T_V0_VAR,
    T_VIEW_BOTTOM,
    T_VIEW_TOP,
    T_Y_VALVE,
)

BIG = 1e300


# Helpers below take and return scalars only: passing arrays into a
# non-inlined call costs reference counting per array on every call.


@njit(cache=True, nogil=True)
def _kf_axis(x, v, pp, pv, vv, innov, r):
    """Scalar Kalman update of one (position, velocity) axis -> (x, v, pp, pv, vv)."""
    s = pp + r
    kp = pp / s
    kv = pv / s
    return x + kp * innov, v + kv * innov, pp - kp * pp, pv - kp * pv, vv - kv * pv


@njit(cache=True, nogil=True)
def _keep(trail, dec, conf, score, miss, y_gone, max_coast, delete, bottom):
    """(keep the row, it is a confirmed track lost before its decision).

    trail: trailing edge y mm; y_gone: y past which a track has left the valves.
    """
    past = trail > y_gone
    if dec:
        return not past, False
    if conf:
        if past or miss > max_coast:
            return False, True
        return True, False
    return score >= delete and trail < bottom, False


@njit(cache=True, nogil=True)
def _update_matched(
    X, P, H, G, XS, PS, MU, XA, PA, MA, EV, NEV, SCORE, NVIEW, MISS, t2d, observable, dbox, clip,
    logp, has_ev, travel, prm, cstart, citems, cstamp, cgeo,
):  # fmt: skip
    """Kalman update of associated tracks (clip-aware; a whole box of a track
    that has just come in is measured by its leading edge when that fits better,
    ``kernels_gate._lead_clip``); score and misses of the rest: a miss of a track
    wholly in view costs score and counts towards ``T_MAX_COAST`` unless the
    track is occluded (its predicted box under boxes associated to other tracks
    by at least ``T_OCCLUDED``). cstart, citems, cstamp, cgeo: the frame's
    ``kernels_cover._cover_index`` of the associated boxes (query ids: rows).

    The filter measures with ``T_R_MM2`` (the clip decision keeps the gate's
    ``T_R_GATE_MM2``) and updates each track's NIS averages ``G`` (across
    the belt always, along it for whole boxes only). Returns (sum of squared
    x innovations, sum of predicted x variances, count) of the still model
    over whole boxes of tracks seen at least 4 times and most likely at rest:
    the frame's sample of the measurement noise
    (``kernels_motion._noise_estimate``). The still model (``XS``,
    ``PS``) and the constant-acceleration model (``XA``, ``PA``) take the
    same measurements; ``MU`` and ``MA`` their probabilities from the three
    models' likelihoods (``kernels_motion._mode_update``)."""
    mu_min = prm[T_MU_MIN]
    accel_on = prm[T_ACCEL_ON] > 0.0
    rg = prm[T_R_GATE_MM2]
    rug = rg + prm[T_EXTENT_VAR_MM2]
    r = prm[T_R_MM2]
    occ = prm[T_OCCLUDED]
    ru = r + prm[T_EXTENT_VAR_MM2]
    alpha_g = prm[T_NIS_ALPHA]
    s_i2 = 0.0
    s_pp = 0.0
    cnt = 0
    alpha = prm[T_EXTENT_ALPHA]
    top = prm[T_VIEW_TOP]
    bottom = prm[T_VIEW_BOTTOM]
    tol = prm[T_CLIP_TOL_MM]
    k = EV.shape[1]
    for i in range(t2d.shape[0]):
        j = t2d[i]
        if j < 0:
            if observable[i]:
                yc = X[i, 1] + travel
                if yc - H[i, 1] > top + tol and yc + H[i, 1] < bottom - tol:
                    x0, x1 = X[i, 0] - H[i, 0], X[i, 0] + H[i, 0]
                    y0, y1 = yc - H[i, 1], yc + H[i, 1]
                    hidden = (
                        occ > 0.0
                        and _covered(x0, x1, y0, y1, dbox, cstart, citems, cstamp, i, cgeo) >= occ
                    )
                    if not hidden:  # a hidden fragment's miss is no evidence against it
                        SCORE[i] -= prm[T_MISS]
                        MISS[i] += 1
            continue
        b0, b1, b2, b3 = dbox[j, 0], dbox[j, 1], dbox[j, 2], dbox[j, 3]
        H[i, 0] += alpha * (0.5 * (b1 - b0) - H[i, 0])
        ix = 0.5 * (b0 + b1) - X[i, 0]
        isx = 0.5 * (b0 + b1) - XS[i, 0]
        # a box cut by the view's edge shows part of the piece: its x centre
        # is off by up to the half width (a diagonal wire), as uncertain as
        # a uniform spread over it
        rx = r if clip[j] == 0 else r + H[i, 0] * H[i, 0] / 3.0
        if clip[j] == 0 and NVIEW[i] >= 4 and MU[i] > 0.9:  # at rest: its model is exact
            s_i2 += min(isx * isx, 9.0 * (PS[i, 0] + r))
            s_pp += PS[i, 0]
            cnt += 1
        nis_m = _nis_capped(ix, P[i, 0] + rx)
        nis_s = _nis_capped(isx, PS[i, 0] + rx)
        ratio = (P[i, 0] + rx) / (PS[i, 0] + rx)
        iax = 0.5 * (b0 + b1) - XA[i, 0]
        nis_a = _nis_capped(iax, PA[i, 0] + rx)
        ratio_a = (PA[i, 0] + rx) / (PS[i, 0] + rx)
        XA[i, 0], XA[i, 2], XA[i, 4], PA[i, 0], PA[i, 1], PA[i, 2], PA[i, 3], PA[i, 4], PA[i, 5] = (
            _ca_update(
                XA[i, 0], XA[i, 2], XA[i, 4], PA[i, 0], PA[i, 1], PA[i, 2], PA[i, 3], PA[i, 4],
                PA[i, 5], _huber(iax, PA[i, 0] + rx, HUBER_K), rx,
            )
        )  # fmt: skip
        XS[i, 0], PS[i, 0] = _still_update(
            XS[i, 0], PS[i, 0], _huber(isx, PS[i, 0] + rx, HUBER_K), rx
        )
        G[i, 0] = _nis(G[i, 0], ix, P[i, 0], rx, alpha_g)
        X[i, 0], X[i, 2], P[i, 0], P[i, 1], P[i, 2] = _kf_axis(
            X[i, 0], X[i, 2], P[i, 0], P[i, 1], P[i, 2], _huber(ix, P[i, 0] + rx, HUBER_K), rx
        )
        u = X[i, 1]
        hu = H[i, 1]
        c = _lead_clip(u, hu, P[i, 3], b2, b3, clip[j], travel, rg, rug, top, prm[T_ENTRY_BAND_MM])
        vis = 0.5 * (b3 - b2)
        rr = ru
        if c == 0 and vis > hu and b2 < top + prm[T_ENTRY_BAND_MM]:
            # the first whole box of a piece that has just come in shows its
            # whole length: the leading edge the track followed stays, its
            # centre moves upstream (a change of size, not of motion)
            u -= vis - hu
            hu = vis
            rr = r
        elif c == 0:
            hu += alpha * (vis - hu)
            rr = r
        elif c == 1 and vis > hu:  # longer visible part: the centre moves upstream
            u -= vis - hu
            hu = vis
        elif c == 2 and vis > hu:
            u += vis - hu
            hu = vis
        us = XS[i, 1] + (u - X[i, 1])  # the same change of size moves every centre
        ua = XA[i, 1] + (u - X[i, 1])
        X[i, 1] = u
        H[i, 1] = hu
        if c != 3:
            iu = _innov_u(u, hu, b2, b3, c, travel)
            ius = _innov_u(us, hu, b2, b3, c, travel)
            nis_m += _nis_capped(iu, P[i, 3] + rr)
            nis_s += _nis_capped(ius, PS[i, 1] + rr)
            ratio *= (P[i, 3] + rr) / (PS[i, 1] + rr)
            us, PS[i, 1] = _still_update(us, PS[i, 1], _huber(ius, PS[i, 1] + rr, HUBER_K), rr)
            iua = _innov_u(ua, hu, b2, b3, c, travel)
            nis_a += _nis_capped(iua, PA[i, 6] + rr)
            ratio_a *= (PA[i, 6] + rr) / (PS[i, 1] + rr)
            ua, XA[i, 3], XA[i, 5], PA[i, 6], PA[i, 7], PA[i, 8], PA[i, 9], PA[i, 10], PA[i, 11] = (
                _ca_update(
                    ua, XA[i, 3], XA[i, 5], PA[i, 6], PA[i, 7], PA[i, 8], PA[i, 9], PA[i, 10],
                    PA[i, 11], _huber(iua, PA[i, 6] + rr, HUBER_K), rr,
                )
            )  # fmt: skip
            if c == 0 and clip[j] == 0:
                G[i, 1] = _nis(G[i, 1], iu, P[i, 3], r, alpha_g)
            X[i, 1], X[i, 3], P[i, 3], P[i, 4], P[i, 5] = _kf_axis(
                u, X[i, 3], P[i, 3], P[i, 4], P[i, 5], _huber(iu, P[i, 3] + rr, HUBER_K), rr
            )
        XS[i, 1] = us
        XA[i, 1] = ua
        MU[i], MA[i] = _mode_update(
            MU[i], MA[i], nis_s, nis_m, nis_a, ratio, ratio_a, mu_min, accel_on
        )
        if has_ev[j]:
            for m in range(k):
                EV[i, m] += logp[j, m]
            NEV[i] += 1
        SCORE[i] = min(SCORE[i] + prm[T_HIT], prm[T_SCORE_MAX])
        NVIEW[i] += 1
        MISS[i] = 0
    return s_i2, s_pp, cnt


@njit(cache=True, nogil=True)
def _births(
    X,
    P,
    H,
    G,
    XS,
    PS,
    MU,
    XA,
    PA,
    MA,
    EV,
    NEV,
    TID,
    CONF,
    DEC,
    SCORE,
    NVIEW,
    MISS,
    n,
    d2t,
    dbox,
    clip,
    logp,
    has_ev,
    travel,
    prm,
    counters,
    cstart,
    citems,
    cstamp,
    cgeo,
):
    """New tentative tracks from unassociated boxes, appended at row ``n``; returns rows.

    Entry births (score ``T_BIRTH_ENTRY``): boxes cut by or near the upstream
    view edge, and boxes covered by boxes associated to tracks by at least
    ``T_OCCLUDED`` (a fragment coming out from under another one; the frame's
    ``kernels_cover._cover_index``, query ids ``n + box``)."""
    r = prm[T_R_MM2]
    occ = prm[T_OCCLUDED]
    v0 = prm[T_V0_VAR]
    k = EV.shape[1]
    m = n
    for j in range(d2t.shape[0]):
        if d2t[j] >= 0:
            continue
        b0, b1, b2, b3 = dbox[j, 0], dbox[j, 1], dbox[j, 2], dbox[j, 3]
        X[m, 0] = 0.5 * (b0 + b1)
        X[m, 1] = 0.5 * (b2 + b3) - travel
        X[m, 2] = 0.0
        X[m, 3] = 0.0
        P[m, 0] = r
        P[m, 1] = 0.0
        P[m, 2] = v0
        P[m, 3] = r + (prm[T_EXTENT_VAR_MM2] if clip[j] != 0 else 0.0)
        P[m, 4] = 0.0
        P[m, 5] = v0
        H[m, 0] = 0.5 * (b1 - b0)
        H[m, 1] = 0.5 * (b3 - b2)
        G[m, 0] = 1.0
        G[m, 1] = 1.0
        XS[m, 0] = X[m, 0]
        XS[m, 1] = X[m, 1]
        PS[m, 0] = P[m, 0]
        PS[m, 1] = P[m, 3]
        MU[m] = prm[T_MU0]
        MA[m] = prm[T_MA0]
        for a in range(2):
            XA[m, a] = X[m, a]
            XA[m, a + 2] = 0.0
            XA[m, a + 4] = 0.0
            PA[m, 6 * a] = P[m, 3 * a]
            PA[m, 6 * a + 1] = 0.0
            PA[m, 6 * a + 2] = 0.0
            PA[m, 6 * a + 3] = v0
            PA[m, 6 * a + 4] = 0.0
            PA[m, 6 * a + 5] = prm[T_A0_VAR]
        entering = (clip[j] & 1) != 0 or b2 < prm[T_VIEW_TOP] + prm[T_ENTRY_BAND_MM]
        if not entering and occ > 0.0:
            share = _covered(b0, b1, b2, b3, dbox, cstart, citems, cstamp, n + j, cgeo)
            entering = share >= occ
        SCORE[m] = prm[T_BIRTH_ENTRY] if entering else prm[T_BIRTH_MID]
        TID[m] = counters[0]
        counters[0] += 1
        counters[1] += 1
        CONF[m] = 0
        DEC[m] = 0
        NVIEW[m] = 1
        MISS[m] = 0
        for c in range(k):
            EV[m, c] = logp[j, c] if has_ev[j] else 0.0
        NEV[m] = 1 if has_ev[j] else 0
        m += 1
    return m


@njit(cache=True, nogil=True)
def _size_update(AX, AXH, AXN, n, d2t, daxes, clip):
    """The tracks' size from this frame's boxes (after ``_births``: unassociated box
    j became row n + its rank among them): each box wholly in view (clip code 0)
    with a finite size ``daxes[j]`` (minor, major mm) joins its track's last
    ``AXH.shape[1] // 2`` sizes (a ring, ``AXN`` sizes seen so far), and the
    track's size ``AX`` is their median per axis; NaN until it has one. ``daxes``
    with no rows (sizes not kept): born rows are cleared, nothing else."""
    keeping = daxes.shape[0] == d2t.shape[0]
    keep = AXH.shape[1] // 2
    buf = np.empty(keep)
    m = n
    for j in range(d2t.shape[0]):
        row = d2t[j]
        if row < 0:  # born this frame
            row = m
            m += 1
            AXN[row] = 0
            AX[row, 0] = np.nan
            AX[row, 1] = np.nan
        if not keeping:
            continue
        a0, a1 = daxes[j, 0], daxes[j, 1]
        if clip[j] != 0 or not (math.isfinite(a0) and math.isfinite(a1)):
            continue
        slot = AXN[row] % keep
        AXH[row, 2 * slot] = a0
        AXH[row, 2 * slot + 1] = a1
        AXN[row] += 1
        cnt = min(AXN[row], keep)
        for a in range(2):
            for k in range(cnt):  # insertion sort of a handful: no allocation per box
                v = AXH[row, 2 * k + a]
                i = k
                while i > 0 and buf[i - 1] > v:
                    buf[i] = buf[i - 1]
                    i -= 1
                buf[i] = v
            h = cnt // 2
            AX[row, a] = buf[h] if cnt % 2 else 0.5 * (buf[h - 1] + buf[h])


@njit(cache=True, nogil=True)
def _fill_holes(keep, m):
    """Row moves that close the holes of dropped rows with live rows from the end
    (O(dropped), row order not kept) -> (dst, src) int64 arrays."""
    dst = np.empty(m, np.int64)
    src = np.empty(m, np.int64)
    k = 0
    i = 0
    r = m - 1
    while True:
        while i < m and keep[i]:
            i += 1
        while r >= 0 and not keep[r]:
            r -= 1
        if i >= r:
            break
        dst[k] = i
        src[k] = r
        k += 1
        i += 1
        r -= 1
    return dst[:k], src[:k]


@njit(cache=True, nogil=True)
def _move_2d(a, dst, src):
    for k in range(dst.shape[0]):
        for c in range(a.shape[1]):
            a[dst[k], c] = a[src[k], c]


@njit(cache=True, nogil=True)
def _move_1d(a, dst, src):
    for k in range(dst.shape[0]):
        a[dst[k]] = a[src[k]]


@njit(cache=True, nogil=True)
def _track_step(
    X,
    P,
    H,
    G,
    XS,
    PS,
    MU,
    XA,
    PA,
    MA,
    EV,
    NEV,
    TID,
    CONF,
    DEC,
    SCORE,
    NVIEW,
    MISS,
    CLS,
    CPROB,
    FRAC,
    TCLS,
    CROSS,
    XC,
    n,
    dt,
    t,
    travel,
    dbox,
    logp,
    has_ev,
    prm,
    counters,
    AX,
    AXH,
    AXN,
    daxes,
):
    """One frame: predict, gate, assign, update, birth, confirm, predict
    crossing, drop dead rows (holes filled from the end; row order is not
    kept). Returns the live count;
    class outlooks (CLS, CPROB, FRAC, TCLS) are left to ``control.evidence``.

    counters: int64 [next_id, born, confirmed, lost]. dbox: (D, 4) view-mm
    boxes; returns -1 (nothing changed) when a box is not finite or inverted.
    AX, AXH, AXN: the tracks' size (``_size_update``) from daxes (D, 2) minor,
    major mm per box (NaN: not measured).
    Integer per-track arrays are int64, float ones float64.
    """
    for j in range(dbox.shape[0]):  # refuse bad boxes before touching any state
        b0, b1, b2, b3 = dbox[j, 0], dbox[j, 1], dbox[j, 2], dbox[j, 3]
        if not (b1 >= b0 and b3 >= b2 and math.isfinite(b1 - b0) and math.isfinite(b3 - b2)):
            return -1
    _predict(
        X, P, G, XS, PS, MU, XA, PA, MA, n, dt, prm[T_Q], prm[T_Q_MAN], prm[T_NIS_G0],
        prm[T_Q_STILL], prm[T_P_STILL], prm[T_P_MOVE], prm[T_V0_VAR], prm[T_A0_VAR],
        prm[T_Q_JERK], prm[T_P_ACCEL], prm[T_ACCEL_ON] > 0.0,
    )  # fmt: skip
    top = prm[T_VIEW_TOP]
    bottom = prm[T_VIEW_BOTTOM]
    observable = np.empty(n, np.bool_)
    for i in range(n):
        yc = X[i, 1] + travel
        observable[i] = yc + H[i, 1] > top and yc - H[i, 1] < bottom
    clip = _clip_codes(dbox, top, bottom, prm[T_CLIP_TOL_MM])
    et, ed, ec = _gate(X, P, H, n, observable, dbox, clip, travel, prm)
    t2d, d2t = _assign_gated(n, dbox.shape[0], et, ed, ec, prm[T_GATE])
    # boxes taken by tracks, indexed for the occlusion rule's coverage queries
    if prm[T_OCCLUDED] > 0.0:
        cstart, citems, cstamp, cgeo = _cover_index(dbox, d2t, prm)
    else:
        cstart, citems, cstamp, cgeo = _cover_index(dbox[:0], d2t[:0], prm)
    s_i2, s_pp, cnt = _update_matched(
        X, P, H, G, XS, PS, MU, XA, PA, MA, EV, NEV, SCORE, NVIEW, MISS, t2d, observable, dbox,
        clip, logp, has_ev, travel, prm, cstart, citems, cstamp, cgeo,
    )  # fmt: skip
    prm[T_R_MM2] = _noise_estimate(
        prm[T_R_MM2], s_i2, s_pp, cnt, prm[T_R_MIN_MM2], prm[T_R_MAX_MM2], prm[T_R_ADAPT]
    )
    m = _births(
        X,
        P,
        H,
        G,
        XS,
        PS,
        MU,
        XA,
        PA,
        MA,
        EV,
        NEV,
        TID,
        CONF,
        DEC,
        SCORE,
        NVIEW,
        MISS,
        n,
        d2t,
        dbox,
        clip,
        logp,
        has_ev,
        travel,
        prm,
        counters,
        cstart,
        citems,
        cstamp,
        cgeo,
    )
    _size_update(AX, AXH, AXN, n, d2t, daxes, clip)
    keep = np.empty(m, np.bool_)
    y_valve = prm[T_Y_VALVE]
    y_gone = y_valve + prm[T_PASS_MM]
    mpt = prm[T_MM_PER_TICK]
    q = prm[T_Q]
    q_man = prm[T_Q_MAN]
    g0 = prm[T_NIS_G0]
    q_still = prm[T_Q_STILL]
    q_jerk = prm[T_Q_JERK]
    mode_cut = prm[T_MODE_CUT]
    ev = prm[T_EXTENT_VAR_MM2]
    max_coast = prm[T_MAX_COAST]
    delete = prm[T_DELETE]
    confirm = prm[T_CONFIRM]
    n_keep = 0
    for i in range(m):
        if not CONF[i] and SCORE[i] >= confirm:
            CONF[i] = 1
            counters[2] += 1
        qx = _axis_q(G[i, 0], q, q_man, g0)
        qu = _axis_q(G[i, 1], q, q_man, g0)
        CROSS[i, 0], CROSS[i, 1], CROSS[i, 2], CROSS[i, 3], XC[i, 0], XC[i, 1], XC[i, 2] = (
            _crossing_imm(
                X[i, 0], X[i, 1], X[i, 2], X[i, 3], H[i, 1], P[i, 0], P[i, 1], P[i, 2], P[i, 3],
                P[i, 4], P[i, 5], qx, qu, XS[i, 0], XS[i, 1], PS[i, 0], PS[i, 1], MU[i], q_still,
                t, travel, y_valve, mpt, ev, XA[i, 0], XA[i, 1], XA[i, 2], XA[i, 3], XA[i, 4],
                XA[i, 5], PA[i, 0], PA[i, 1], PA[i, 2], PA[i, 3], PA[i, 4], PA[i, 5], PA[i, 6],
                PA[i, 7], PA[i, 8], PA[i, 9], PA[i, 10], PA[i, 11], MA[i], q_jerk, mode_cut,
            )
        )  # fmt: skip
        trail = X[i, 1] + travel - H[i, 1]
        keep[i], lost = _keep(
            trail, DEC[i], CONF[i], SCORE[i], MISS[i], y_gone, max_coast, delete, bottom
        )
        n_keep += keep[i]
        if lost:
            counters[3] += 1
    if n_keep == m:
        return m
    dst, src = _fill_holes(keep, m)
    for a2 in (X, P, H, G, XS, PS, XA, PA, EV, CROSS, XC, AX, AXH):
        _move_2d(a2, dst, src)
    for a1 in (SCORE, CPROB, MU, MA):
        _move_1d(a1, dst, src)
    for a3 in (TID, NVIEW, MISS, NEV, CONF, DEC, CLS, FRAC, TCLS, AXN):
        _move_1d(a3, dst, src)
    return n_keep


__all__ = [
    "_assign_gated",
    "_axis_q",
    "_births",
    "_clip_codes",
    "_cover_index",
    "_covered",
    "_crossing",
    "_crossing_imm",
    "_export",
    "_fill_holes",
    "_gate",
    "_huber",
    "_innov_u",
    "_keep",
    "_kf_axis",
    "_lead_clip",
    "_mahal2",
    "_mode_update",
    "_move_1d",
    "_move_2d",
    "_nis",
    "_nis_capped",
    "_noise_estimate",
    "_outlook_finish",
    "_outlook_logits",
    "_outlook_rows",
    "_predict",
    "_size_update",
    "_still_update",
    "_track_step",
    "_update_matched",
]
