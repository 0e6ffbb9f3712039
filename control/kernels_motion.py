# mypy: disallow-untyped-defs=False
"""Numba kernels of the motion model: an interacting multiple model (IMM) of
three hypotheses per track, at rest on the belt, constant velocity and
constant acceleration relative to the belt, and the valve-line crossing
integrated under each and combined with an uncertainty that includes them.

Private: used by ``control.kernels._track_step``. State per track as in
``control.kernels``: the rest model ``XS``, ``PS`` (positions, variances),
probability ``MU``; the constant-velocity model ``X`` (x, u mm and vx, vu
mm/tick relative to the belt), ``P`` (packed per-axis covariances) and
``G`` (C, 2) per axis an exponential average of its normalised innovation
squared (NIS, 1 when the model fits); the constant-acceleration model
``XA``, ``PA`` (``kernels_motion_ca``), probability ``MA``.

Why (issue 16): measured on the plant's truth, a lying piece is at rest
(the rest model is exact and keeps its crossing within 0.2 mm); a roller
keeps its speed (rolling resistance 0.008-0.04 g) but its path curves, so
its sideways speed drifts at a nearly constant rate; a slider brakes at
0.3-0.45 g and rests on the belt a few frames later. KIT's TrackSort work
(Pfaff et al.) found constant acceleration worse than constant velocity on
noisy centroids, and tailored models better than both: here each track
picks among the three by the likelihood of its own innovations, so

- the velocity prior is wide (``init_speed_sigma_frac`` of the belt speed)
  and the measurement noise realistic (estimated from the innovations of all
  tracks, ``_noise_estimate``): two or three frames override the prior;
- the constant-velocity model's white-acceleration density is
  ``q_base + q_man * max(G - g0, 0)`` per axis: a steadily rolling fragment
  keeps ``q_base``, a curving or bouncing one raises it at once;
- the constant-acceleration model takes over when a piece brakes or curves
  more than the noise hides; its crossing lets friction stop the piece
  (``kernels_motion_ca._crossing_ca``) instead of running it backwards.
"""

from __future__ import annotations

import math

from numba import njit

from control.kernels_motion_ca import _ca_predict_axis, _crossing_ca, _stop_ticks

HUBER_K = 4.0  # innovations beyond this many sigmas move a state as if they were this far
NIS_CAP = 25.0  # a likelihood counts an innovation at most this many squared sigmas off


@njit(cache=True, nogil=True)
def _axis_q(g, q_base, q_man, g0):
    """White-acceleration density (mm^2/tick^3) of an axis whose NIS average is ``g``."""
    return q_base + q_man * max(g - g0, 0.0)


@njit(cache=True, nogil=True)
def _mix3(ws, wm, wa, xs, ps, xm, vm, pp, pv, vv, xa, va, aa, qp, qv, qa, rv, ra, rr, v0, a0):
    """IMM mixing of one axis into one model: the weighted mean and spread of
    the rest model (position ``xs``, variance ``ps``; velocity and
    acceleration 0 with the priors ``v0``, ``a0``), the constant-velocity
    model (``xm``, ``vm``; ``pp``, ``pv``, ``vv``; acceleration 0 with ``a0``)
    and the constant-acceleration model (``xa``, ``va``, ``aa``; covariance
    ``qp``, ``qv``, ``qa``, ``rv``, ``ra``, ``rr``: pp, pv, pa, vv, va, aa)
    -> the 3-state mean and packed covariance (9 values). A model with fewer
    states takes the leading ones (marginalising commutes with mixing)."""
    m0 = ws * xs + wm * xm + wa * xa
    m1 = wm * vm + wa * va
    m2 = wa * aa
    d0s, d1s, d2s = xs - m0, -m1, -m2
    d0m, d1m, d2m = xm - m0, vm - m1, -m2
    d0a, d1a, d2a = xa - m0, va - m1, aa - m2
    c00 = ws * (ps + d0s * d0s) + wm * (pp + d0m * d0m) + wa * (qp + d0a * d0a)
    c01 = ws * (d0s * d1s) + wm * (pv + d0m * d1m) + wa * (qv + d0a * d1a)
    c02 = ws * (d0s * d2s) + wm * (d0m * d2m) + wa * (qa + d0a * d2a)
    c11 = ws * (v0 + d1s * d1s) + wm * (vv + d1m * d1m) + wa * (rv + d1a * d1a)
    c12 = ws * (d1s * d2s) + wm * (d1m * d2m) + wa * (ra + d1a * d2a)
    c22 = ws * (a0 + d2s * d2s) + wm * (a0 + d2m * d2m) + wa * (rr + d2a * d2a)
    return m0, m1, m2, c00, c01, c02, c11, c12, c22


@njit(cache=True, nogil=True)
def _transitions(p_still, p_move, p_accel, accel_on):
    """Mode transition probabilities over one frame -> (S->V, S->A, V->S,
    V->A, A->S, A->V); rest S, constant velocity V, constant acceleration A.
    With the acceleration model off, S and V only pass to each other."""
    if accel_on:
        return (
            0.5 * (1.0 - p_still), 0.5 * (1.0 - p_still), 0.5 * (1.0 - p_move),
            0.5 * (1.0 - p_move), 0.5 * (1.0 - p_accel), 0.5 * (1.0 - p_accel),
        )  # fmt: skip
    return 1.0 - p_still, 0.0, 1.0 - p_move, 0.0, 0.5 * (1.0 - p_accel), 0.5 * (1.0 - p_accel)


@njit(cache=True, nogil=True)
def _predict(
    X, P, G, XS, PS, MU, XA, PA, MA, n, dt, q_base, q_man, g0, q_still, p_still, p_move, v0, a0,
    q_jerk, p_accel, accel_on,
):  # fmt: skip
    """One IMM cycle's mixing and prediction of rows 0..n-1 by ``dt`` ticks,
    in place, for three models: at rest on the belt (``XS`` positions,
    ``PS`` variances; ``q_still`` mm^2/tick of diffusion), constant velocity
    (``X``, ``P``; each row's own process noise per axis, ``_axis_q``) and
    constant acceleration (``XA``, ``PA``: ``kernels_motion_ca``; white
    jerk ``q_jerk``). ``MU`` and ``MA`` become the predicted probabilities
    of rest and of acceleration (``p_still``, ``p_move``, ``p_accel``:
    probabilities of staying in each model over one frame, ``_transitions``;
    ``accel_on`` 0 leaves the two-model filter of before). A braking piece
    whose relative speed reaches 0 within ``dt`` rests there in the
    acceleration model (``kernels_motion_ca._stop_ticks``: Coulomb friction
    does not run it backwards); its covariance is predicted over the whole
    ``dt``. ``dt`` 0 leaves every row as it is."""
    if dt <= 0.0:
        return
    t_sv, t_sa, t_vs, t_va, t_as, t_av = _transitions(p_still, p_move, p_accel, accel_on)
    for i in range(n):
        ms = MU[i]
        ma = MA[i]
        mv = 1.0 - ms - ma
        cs = ms * (1.0 - t_sv - t_sa) + mv * t_vs + ma * t_as
        cv = ms * t_sv + mv * (1.0 - t_vs - t_va) + ma * t_av
        ca = ms * t_sa + mv * t_va + ma * (1.0 - t_as - t_av)
        cs = min(max(cs, 1e-12), 1.0)
        cv = max(cv, 1e-12)
        # weights of (rest, velocity, acceleration) in each model's start
        ss, vs, as_ = ms * (1.0 - t_sv - t_sa) / cs, mv * t_vs / cs, ma * t_as / cs
        sv, vv_, av = ms * t_sv / cv, mv * (1.0 - t_vs - t_va) / cv, ma * t_av / cv
        if ca > 1e-12:
            sa, va_, aa_ = ms * t_sa / ca, mv * t_va / ca, ma * (1.0 - t_as - t_av) / ca
        else:  # the acceleration model is off: it follows the constant-velocity one
            sa, va_, aa_ = 0.0, 1.0, 0.0
        for a in range(2):
            b = 3 * a
            c = 6 * a
            args = (
                XS[i, a], PS[i, a], X[i, a], X[i, a + 2], P[i, b], P[i, b + 1], P[i, b + 2],
                XA[i, a], XA[i, a + 2], XA[i, a + 4], PA[i, c], PA[i, c + 1], PA[i, c + 2],
                PA[i, c + 3], PA[i, c + 4], PA[i, c + 5], v0, a0,
            )  # fmt: skip
            m0, _, _, c00, _, _, _, _, _ = _mix3(ss, vs, as_, *args)
            XS[i, a] = m0
            PS[i, a] = c00 + q_still * dt
            m0, m1, _, c00, c01, _, c11, _, _ = _mix3(sv, vv_, av, *args)
            q = _axis_q(G[i, a], q_base, q_man, g0)
            X[i, a] = m0 + m1 * dt
            X[i, a + 2] = m1
            P[i, b] = c00 + 2.0 * dt * c01 + dt * dt * c11 + q * dt * dt * dt / 3.0
            P[i, b + 1] = c01 + dt * c11 + q * dt * dt / 2.0
            P[i, b + 2] = c11 + q * dt
            (
                XA[i, a], XA[i, a + 2], XA[i, a + 4], PA[i, c], PA[i, c + 1], PA[i, c + 2],
                PA[i, c + 3], PA[i, c + 4], PA[i, c + 5],
            ) = _mix3(sa, va_, aa_, *args)  # fmt: skip
        # friction stops a braking piece: it rests where its speed reaches 0
        t_stop = _stop_ticks(XA[i, 2], XA[i, 3], XA[i, 4], XA[i, 5])
        for a in range(2):
            c = 6 * a
            x0, v0_, a0_ = XA[i, a], XA[i, a + 2], XA[i, a + 4]
            (
                XA[i, a], XA[i, a + 2], XA[i, a + 4], PA[i, c], PA[i, c + 1], PA[i, c + 2],
                PA[i, c + 3], PA[i, c + 4], PA[i, c + 5],
            ) = _ca_predict_axis(
                x0, v0_, a0_, PA[i, c], PA[i, c + 1], PA[i, c + 2], PA[i, c + 3], PA[i, c + 4],
                PA[i, c + 5], dt, q_jerk,
            )  # fmt: skip
            if t_stop < dt:
                XA[i, a] = x0 + v0_ * t_stop + 0.5 * a0_ * t_stop * t_stop
                XA[i, a + 2] = 0.0
                XA[i, a + 4] = 0.0
        MU[i] = cs
        MA[i] = ca if accel_on else 0.0


@njit(cache=True, nogil=True)
def _nis_capped(innov, s):
    """Squared innovation over its variance ``s``, at most ``NIS_CAP``: the
    likelihood is Gaussian up to there and flat beyond (a segmentation
    glitch costs both models alike; a moving piece's rest model still loses
    by the cap every frame)."""
    return min(innov * innov / s, NIS_CAP)


@njit(cache=True, nogil=True)
def _huber(innov, s, k):
    """The innovation clipped to ``k`` sigmas (``s`` its variance): Huber's
    robust Kalman update, so one wrong box cannot throw a track's velocity."""
    lim = k * math.sqrt(s)
    return min(max(innov, -lim), lim)


@njit(cache=True, nogil=True)
def _still_update(x, p, innov, r):
    """Scalar Kalman update of a still model's position -> (x, p)."""
    k = p / (p + r)
    return x + k * innov, p - k * p


@njit(cache=True, nogil=True)
def _mode_update(ms, ma, nis_s, nis_v, nis_a, ratio_v, ratio_a, mu_min, accel_on):
    """Probabilities of rest and of acceleration after a frame -> (ms, ma):
    ``nis_*`` the summed capped NIS of each model's innovations, ``ratio_v``
    (``ratio_a``) the product of the constant-velocity (-acceleration)
    model's innovation variances over the rest model's (the log-likelihood
    ratios of Gaussians); each probability at least ``mu_min`` (the
    acceleration model's 0 when it is off)."""
    lv = min(max(0.5 * (nis_s - nis_v) - 0.5 * math.log(ratio_v), -50.0), 50.0)
    wv = (1.0 - ms - ma) * math.exp(lv)
    wa = 0.0
    if accel_on:
        la = min(max(0.5 * (nis_s - nis_a) - 0.5 * math.log(ratio_a), -50.0), 50.0)
        wa = ma * math.exp(la)
    tot = ms + wv + wa
    if accel_on:
        ps = min(max(ms / tot, mu_min), 1.0 - 2.0 * mu_min)
        return ps, min(max(wa / tot, mu_min), 1.0 - ps - mu_min)
    return min(max(ms / tot, mu_min), 1.0 - mu_min), 0.0


@njit(cache=True, nogil=True)
def _nis(g, innov, pp, r, alpha):
    """The NIS average after one innovation (``pp`` the predicted position
    variance, ``r`` the measurement variance); an innovation counts at most
    9 (one outlier raises it a little, a run of them keeps it up)."""
    e = min(innov * innov / (pp + r), 9.0)
    return g + alpha * (e - g)


@njit(cache=True, nogil=True)
def _crossing(
    x, u, vx, vu, hu, pxx, pxv, pvvx, puu, puv, pvvu, qx, qu, t, travel, y_valve, mpt, ev
):
    """Predicted valve-line crossing of one track.

    Returns (on tick, off tick, sigma of the edges' ticks, sigma of the
    centre's tick, x at the crossing mm, sigma of the x edges mm, sigma of x
    mm): the leading edge reaches / the trailing edge leaves ``y_valve`` at
    the track's velocity relative to the belt; sigmas from the covariance
    propagated to the centre's crossing with each axis's process noise, the
    edges' adding the edge variance ``ev``.
    """
    vel = max(mpt + vu, 0.25 * mpt)
    yc = u + travel
    ton = t + (y_valve - yc - hu) / vel
    toff = t + (y_valve - yc + hu) / vel
    d = max(0.5 * (ton + toff) - t, 0.0)
    d3 = d * d * d / 3.0
    var_u = max(puu + 2.0 * d * puv + d * d * pvvu + qu * d3, 0.0)
    var_x = max(pxx + 2.0 * d * pxv + d * d * pvvx + qx * d3, 0.0)
    return (
        ton,
        toff,
        math.sqrt(var_u + ev) / vel,
        math.sqrt(var_u) / vel,
        x + vx * d,
        math.sqrt(var_x + ev),
        math.sqrt(var_x),
    )


@njit(cache=True, nogil=True)
def _crossing_imm(
    x, u, vx, vu, hu, pxx, pxv, pvvx, puu, puv, pvvu, qx, qu, xs, us, psx, psu, mu, q_still, t,
    travel, y_valve, mpt, ev, xa, ua, vxa, vua, axa, aua, qxx, qxv, qxa, qvvx, qvax, qaax, quu,
    quv, qua, qvvu, qvau, qaau, ma, q_jerk, cut,
):  # fmt: skip
    """The valve-line crossing of the three models combined by their
    probabilities (``mu`` rest, ``ma`` constant acceleration: ``xa`` .. ``aua``
    its state, ``qxx`` .. ``qaau`` its packed covariances per axis, ``q_jerk``):
    the same 7 values as ``_crossing``, the centre's tick and x the weighted
    means, their variances including the spread of the models' predictions;
    the edges' ticks are the centre's -+ the weighted half-durations. A
    model at most ``cut`` probable is left out (the others renormalised): a
    model the data hold at its floor only keeps the chance to come back, and
    a lying piece's crossing is its rest model's, not widened by a
    thousandth of an unsupported one. The most probable model always counts."""
    w_m = 1.0 - mu - ma
    top = max(mu, ma, w_m)
    w_s = mu if mu > cut or mu == top else 0.0
    w_a = ma if ma > cut or ma == top else 0.0
    w_m = w_m if w_m > cut or w_m == top else 0.0
    tot = w_s + w_m + w_a
    mu = w_s / tot
    ma = w_a / tot
    on_m, off_m, _, sct_m, xc_m, _, sx_m = _crossing(
        x, u, vx, vu, hu, pxx, pxv, pvvx, puu, puv, pvvu, qx, qu, t, travel, y_valve, mpt, 0.0
    )
    cs = t + (y_valve - us - travel) / mpt
    d = max(cs - t, 0.0)
    vt_s = (psu + q_still * d) / (mpt * mpt)
    vx_s = psx + q_still * d
    cm = 0.5 * (on_m + off_m)
    vel_m = max(mpt + vu, 0.25 * mpt)
    wm = w_m / tot
    ca = cm
    sct_a = sct_m
    vel_a = vel_m
    xc_a = xc_m
    sx_a = sx_m
    if ma > 0.0:
        ca, sct_a, vel_a, xc_a, sx_a = _crossing_ca(
            xa, ua, vxa, vua, axa, aua, hu, qxx, qxv, qxa, qvvx, qvax, qaax, quu, quv, qua, qvvu,
            qvau, qaau, q_jerk, t, travel, y_valve, mpt,
        )  # fmt: skip
    cc = mu * cs + wm * cm + ma * ca
    xc = mu * xs + wm * xc_m + ma * xc_a
    var_t = (
        mu * (vt_s + (cs - cc) ** 2) + wm * (sct_m * sct_m + (cm - cc) ** 2)
        + ma * (sct_a * sct_a + (ca - cc) ** 2)
    )  # fmt: skip
    var_x = (
        mu * (vx_s + (xs - xc) ** 2) + wm * (sx_m * sx_m + (xc_m - xc) ** 2)
        + ma * (sx_a * sx_a + (xc_a - xc) ** 2)
    )  # fmt: skip
    vel = mu * mpt + wm * vel_m + ma * vel_a
    half = hu * (mu / mpt + wm / vel_m + ma / vel_a)  # the models' half-durations, weighted
    return (
        cc - half,
        cc + half,
        math.sqrt(var_t + ev / (vel * vel)),
        math.sqrt(var_t),
        xc,
        math.sqrt(var_x + ev),
        math.sqrt(var_x),
    )


@njit(cache=True, nogil=True)
def _noise_estimate(r, sum_innov2, sum_pp, count, r_min, r_max, weight):
    """Measurement variance (mm^2) after one frame: the frame's estimate
    mean(innovation^2) - mean(predicted variance) over settled tracks' whole
    boxes, blended in with ``weight`` (scaled down below 20 samples)."""
    if count <= 0 or weight <= 0.0:
        return r
    est = min(max(sum_innov2 / count - sum_pp / count, r_min), r_max)
    w = weight * min(count / 20.0, 1.0)
    return r + w * (est - r)
