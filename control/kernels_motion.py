# mypy: disallow-untyped-defs=False
"""Numba kernels of the motion model: a constant-velocity Kalman filter per
axis whose process noise each track adapts from its own innovations, and the
valve-line crossing with an uncertainty that includes it.

Private: used by ``control.kernels._track_step``. State per track as in
``control.kernels`` (``X`` x, u mm and vx, vu mm/tick relative to the belt;
``P`` packed per-axis covariances); ``G`` (C, 2) per axis an exponential
average of the normalised innovation squared (NIS, 1 when the model fits).

Why (issue 16, and KIT's TrackSort line of work, Pfaff et al.: a
constant-velocity model beats constant acceleration on noisy centroids, and
per-particle motion has to come from the particle's own data): a fragment
that rolls at +15 % or whose sideways speed drifts must be followed by what
the camera sees within a few frames, and the crossing sigma must grow only
for fragments whose motion the model does not explain. So

- the velocity prior is wide (``init_speed_sigma_frac`` of the belt speed)
  and the measurement noise realistic (estimated from the innovations of all
  tracks, ``_noise_estimate``): two or three frames override the prior;
- a track's white-acceleration density is ``q_base + q_man * max(G - g0, 0)``
  per axis: a lying or steadily rolling fragment keeps ``q_base`` (its
  prediction and sigma stay tight), a decelerating, curving or bouncing one
  raises it at once, which both shortens the filter's memory and widens the
  crossing sigma by the model error it has shown.
"""

from __future__ import annotations

import math

from numba import njit

HUBER_K = 4.0  # innovations beyond this many sigmas move a state as if they were this far
NIS_CAP = 25.0  # a likelihood counts an innovation at most this many squared sigmas off


@njit(cache=True, nogil=True)
def _axis_q(g, q_base, q_man, g0):
    """White-acceleration density (mm^2/tick^3) of an axis whose NIS average is ``g``."""
    return q_base + q_man * max(g - g0, 0.0)


@njit(cache=True, nogil=True)
def _mix(xs, ps, xm, vm, pp, pv, vv, w_ss, w_ms, w_sm, w_mm, v0):
    """IMM mixing of one axis -> (still position, its variance, moving
    position, velocity, pp, pv, vv). The still model's velocity is 0 with the
    prior variance ``v0`` when it seeds the moving model (a piece at rest may
    start to move)."""
    x0s = w_ss * xs + w_ms * xm
    d1 = xs - x0s
    d2 = xm - x0s
    p0s = w_ss * (ps + d1 * d1) + w_ms * (pp + d2 * d2)
    x0m = w_sm * xs + w_mm * xm
    v0m = w_mm * vm
    ds, dvs = xs - x0m, -v0m
    dm, dvm = xm - x0m, vm - v0m
    pp0 = w_sm * (ps + ds * ds) + w_mm * (pp + dm * dm)
    pv0 = w_sm * (ds * dvs) + w_mm * (pv + dm * dvm)
    vv0 = w_sm * (v0 + dvs * dvs) + w_mm * (vv + dvm * dvm)
    return x0s, p0s, x0m, v0m, pp0, pv0, vv0


@njit(cache=True, nogil=True)
def _predict(X, P, G, XS, PS, MU, n, dt, q_base, q_man, g0, q_still, p_still, p_move, v0):
    """One IMM cycle's mixing and prediction of rows 0..n-1 by ``dt`` ticks,
    in place: the still model (``XS`` positions, ``PS`` variances; at rest
    on the belt, ``q_still`` mm^2/tick of diffusion) and the moving one
    (``X``, ``P``: constant velocity with each row's own process noise per
    axis, ``_axis_q``). ``MU`` becomes the predicted probability of the still
    model (``p_still``, ``p_move``: probabilities of staying in each model
    over one frame); ``dt`` 0 leaves every row as it is."""
    if dt <= 0.0:
        return
    for i in range(n):
        mu = MU[i]
        cs = min(max(p_still * mu + (1.0 - p_move) * (1.0 - mu), 1e-12), 1.0 - 1e-12)
        cm = 1.0 - cs
        w_ss = p_still * mu / cs
        w_sm = (1.0 - p_still) * mu / cm
        for a in range(2):
            b = 3 * a
            XS[i, a], PS[i, a], X[i, a], X[i, a + 2], P[i, b], P[i, b + 1], P[i, b + 2] = _mix(
                XS[i, a], PS[i, a], X[i, a], X[i, a + 2], P[i, b], P[i, b + 1], P[i, b + 2],
                w_ss, 1.0 - w_ss, w_sm, 1.0 - w_sm, v0,
            )  # fmt: skip
            PS[i, a] += q_still * dt
        MU[i] = cs
        for a in range(2):
            q = _axis_q(G[i, a], q_base, q_man, g0)
            X[i, a] += X[i, a + 2] * dt
            pp = P[i, 3 * a]
            pv = P[i, 3 * a + 1]
            vv = P[i, 3 * a + 2]
            P[i, 3 * a] = pp + 2.0 * dt * pv + dt * dt * vv + q * dt * dt * dt / 3.0
            P[i, 3 * a + 1] = pv + dt * vv + q * dt * dt / 2.0
            P[i, 3 * a + 2] = vv + q * dt


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
def _mode_update(mu, nis_still, nis_move, var_ratio, mu_min):
    """Probability of the still model after a frame: ``nis_*`` the summed
    capped NIS of each model's innovations, ``var_ratio`` the product of the
    moving model's innovation variances over the still model's (one log per
    track and frame: the log-likelihood ratio of Gaussians)."""
    d = min(max(0.5 * (nis_still - nis_move) - 0.5 * math.log(var_ratio), -50.0), 50.0)
    post = mu / (mu + (1.0 - mu) * math.exp(d))
    return min(max(post, mu_min), 1.0 - mu_min)


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
    travel, y_valve, mpt, ev,
):  # fmt: skip
    """The valve-line crossing of the two models combined by their
    probabilities (``mu`` the still model's): the same 7 values as
    ``_crossing``, means weighted and variances including the spread of the
    two models' predictions."""
    on_m, off_m, _, sct_m, xc_m, _, sx_m = _crossing(
        x, u, vx, vu, hu, pxx, pxv, pvvx, puu, puv, pvvu, qx, qu, t, travel, y_valve, mpt, 0.0
    )
    ycs = us + travel
    on_s = t + (y_valve - ycs - hu) / mpt
    off_s = t + (y_valve - ycs + hu) / mpt
    d = max(0.5 * (on_s + off_s) - t, 0.0)
    vt_s = (psu + q_still * d) / (mpt * mpt)
    vx_s = psx + q_still * d
    w = 1.0 - mu
    on = mu * on_s + w * on_m
    off = mu * off_s + w * off_m
    cs = 0.5 * (on_s + off_s)
    cm = 0.5 * (on_m + off_m)
    cc = 0.5 * (on + off)
    xc = mu * xs + w * xc_m
    var_t = mu * (vt_s + (cs - cc) ** 2) + w * (sct_m * sct_m + (cm - cc) ** 2)
    var_x = mu * (vx_s + (xs - xc) ** 2) + w * (sx_m * sx_m + (xc_m - xc) ** 2)
    vel = mu * mpt + w * max(mpt + vu, 0.25 * mpt)
    return (
        on,
        off,
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
