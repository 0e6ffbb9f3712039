# mypy: disallow-untyped-defs=False
"""Numba kernels of the motion model's third hypothesis: constant
acceleration relative to the belt, with the piece coming to rest when
friction has taken its relative speed (issue 16).

Why: on the virtual plant (and on a belt) a piece that is not lying still
either slides, braked by Coulomb friction at 0.3-0.45 g until it rests on
the belt a few frames later, or rolls, its path curving at 0.4-2 /m so its
sideways speed drifts at a nearly constant rate (kappa x speed^2). Over the
10 frames before the valve line, a constant-velocity prediction from the
true state misses the crossing x by 0.40 mm median (1.7 mm p95) on rollers
and 1.6 mm (7.1 mm) on sliders; the same prediction with the true
acceleration misses by 0.02 mm (0.21 mm) on rollers. Acceleration is hard
to estimate from a few noisy centroids (the reason TrackSort found constant
acceleration worse than constant velocity on its own), so it is one
hypothesis of three in the interacting multiple model
(``kernels_motion._predict``), taken when the innovations show it.

Its crossing trusts only the physical part of the acceleration: the part
along the velocity that brakes (friction; ``_physical`` drops a part that
would speed the piece up) and, across the velocity, what a curving path
explains, curvature N(0, ``CURV_SIGMA_PER_MM``) x speed^2 by Bayes' rule
against the filter's own variance there (``_shrink_turn``). A slider runs
straight, so the acceleration its few noisy frames show across its
velocity is noise that, extrapolated to its stop, threw its x by
millimetres: on bench predict's rolling preset (seeds 5 and 9, 10 frames
ahead) sliders' hit rate went from 0.55 to 0.69 with this, rollers' stayed
0.61 (their ceiling, a fit of the plant's own path form, 0.64); in the
published run (seed 21) sliders 0.62 -> 0.68, rollers 0.59 -> 0.60 (ceiling
0.62), lying pieces 0.999 as before. Conditioning
the position and velocity on the same prior through their correlations
(instead of the acceleration alone) did 0.72 there but left an in-view
kick outside 3 sigmas; taking it into the stored state every frame made the
per-axis covariance (which cannot hold a direction) over-confident.

Per track: ``XA`` (C, 6) x, u mm, vx, vu mm/tick, ax, au mm/tick^2;
``PA`` (C, 12) per axis the packed 3x3 covariance (pp, pv, pa, vv, va, aa),
x first; white jerk of density ``q_jerk`` mm^2/tick^5.
"""

from __future__ import annotations

import math

from numba import njit

BIG_TICKS = 1e18
# one sigma of a path's curvature (1/mm): a roller's cone or bend turns its
# path (the plant draws 0.4e-3 .. 2e-3 by shape), a slider runs straight
CURV_SIGMA_PER_MM = 1.0e-3


@njit(cache=True, nogil=True)
def _ca_predict_axis(x, v, a, pp, pv, pa, vv, va, aa, dt, q):
    """One axis of the constant-acceleration model by ``dt`` ticks -> the 9
    values (x, v, a, pp, pv, pa, vv, va, aa): ``F P F' + Q`` written out."""
    h = 0.5 * dt * dt
    r00 = pp + dt * pv + h * pa
    r01 = pv + dt * vv + h * va
    r02 = pa + dt * va + h * aa
    r11 = vv + dt * va
    r12 = va + dt * aa
    d2 = dt * dt
    d3 = d2 * dt
    return (
        x + v * dt + a * h,
        v + a * dt,
        a,
        r00 + dt * r01 + h * r02 + q * d3 * d2 / 20.0,
        r01 + dt * r02 + q * d2 * d2 / 8.0,
        r02 + q * d3 / 6.0,
        r11 + dt * r12 + q * d3 / 3.0,
        r12 + q * d2 / 2.0,
        aa + q * dt,
    )


@njit(cache=True, nogil=True)
def _ca_update(x, v, a, pp, pv, pa, vv, va, aa, innov, r):
    """Scalar Kalman update of one axis by its position (variance ``r``)."""
    s = pp + r
    kp = pp / s
    kv = pv / s
    ka = pa / s
    return (
        x + kp * innov,
        v + kv * innov,
        a + ka * innov,
        pp - kp * pp,
        pv - kp * pv,
        pa - kp * pa,
        vv - kv * pv,
        va - kv * pa,
        aa - ka * pa,
    )


@njit(cache=True, nogil=True)
def _physical(vx, vu, ax, au):
    """The acceleration without its component along the velocity when that
    component would speed the piece up relative to the belt -> (ax, au)."""
    s2 = vx * vx + vu * vu
    along = ax * vx + au * vu
    if along <= 0.0 or s2 <= 0.0:
        return ax, au
    return ax - along / s2 * vx, au - along / s2 * vu


@njit(cache=True, nogil=True)
def _shrink_turn(vx, vu, ax, au, paax, paau, curv_sigma):
    """The acceleration with its part across the velocity shrunk towards 0
    by Bayes' rule -> (ax, au): friction acts along the velocity, only a
    curving path turns it, by curvature x speed^2 with the curvature
    N(0, ``curv_sigma``) 1/mm, while the filter's estimate of that part has
    the variance of the accelerations (``paax``, ``paau``) across the
    velocity. The part along the velocity (the braking) is kept, and so are
    the variances (the crossing's sigma does not take credit for it). Used
    for the crossing only: the stored state keeps its free acceleration."""
    s2 = vx * vx + vu * vu
    if s2 <= 0.0:
        return ax, au
    s = math.sqrt(s2)
    nx, nu = -vu / s, vx / s
    perp = nx * ax + nu * au
    var = nx * nx * paax + nu * nu * paau
    prior = (curv_sigma * s2) ** 2
    keep = prior / (prior + var) if prior + var > 0.0 else 1.0
    return ax - (1.0 - keep) * perp * nx, au - (1.0 - keep) * perp * nu


@njit(cache=True, nogil=True)
def _stop_ticks(vx, vu, ax, au):
    """Ticks until the relative speed reaches 0 when the acceleration brakes
    it (its component against the velocity: friction), else ``BIG_TICKS``."""
    s = math.sqrt(vx * vx + vu * vu)
    if s <= 0.0:
        return 0.0
    brake = -(ax * vx + au * vu) / s
    if brake <= 0.0:
        return BIG_TICKS
    return s / brake


@njit(cache=True, nogil=True)
def _ca_centre_ticks(u, vu, au, t_stop, dist, mpt):
    """Ticks until the centre (belt-relative ``u`` mm) has gone ``dist`` mm
    further downstream than now (belt ``mpt`` mm/tick plus its own motion,
    which stops at ``t_stop``) -> (ticks, speed mm/tick there). Newton on a
    monotone function: the speed is held at least a quarter of the belt's."""
    lo = 0.25 * mpt
    if dist <= 0.0:
        vel = max(mpt + vu, lo)
        return dist / vel, vel
    tau = dist / max(mpt + vu, lo)
    for _ in range(6):
        te = min(tau, t_stop)
        f = mpt * tau + vu * te + 0.5 * au * te * te - dist
        vel = max(mpt + (vu + au * tau if tau < t_stop else 0.0), lo)
        step = f / vel
        tau = max(tau - step, 0.0)
        if abs(step) < 1e-6:
            break
    vel = max(mpt + (vu + au * tau if tau < t_stop else 0.0), lo)
    return tau, vel


@njit(cache=True, nogil=True)
def _var_at(pp, pv, pa, vv, va, aa, d, q):
    """Position variance of one axis ``d`` ticks ahead (constant acceleration)."""
    h = 0.5 * d * d
    return max(
        pp + 2.0 * d * pv + 2.0 * h * pa + d * d * vv + 2.0 * d * h * va + h * h * aa
        + q * d * d * d * d * d / 20.0,
        0.0,
    )  # fmt: skip


@njit(cache=True, nogil=True)
def _crossing_ca(
    x, u, vx, vu, ax, au, hu, pxx, pxv, pxa, pvvx, pvax, paax, puu, puv, pua, pvvu, pvau, paau,
    q, t, travel, y_valve, mpt,
):  # fmt: skip
    """The constant-acceleration model's valve-line crossing, the piece
    coming to rest relative to the belt when friction stops it (``_stop_ticks``)
    -> (centre tick, its sigma ticks, speed there mm/tick, x mm, its sigma mm).
    The covariance is propagated to the crossing or to the stop, whichever
    comes first (a piece at rest gathers no more error of its own). Nothing
    speeds a piece up relative to the belt (friction brakes, a curving path
    turns): an acceleration along the velocity is noise and is dropped
    (``_physical``)."""
    ax, au = _shrink_turn(vx, vu, ax, au, paax, paau, CURV_SIGMA_PER_MM)
    ax, au = _physical(vx, vu, ax, au)
    t_stop = _stop_ticks(vx, vu, ax, au)
    tau, vel = _ca_centre_ticks(u, vu, au, t_stop, y_valve - u - travel, mpt)
    te = min(max(tau, 0.0), t_stop)
    var_u = _var_at(puu, puv, pua, pvvu, pvau, paau, te, q)
    var_x = _var_at(pxx, pxv, pxa, pvvx, pvax, paax, te, q)
    return t + tau, math.sqrt(var_u) / vel, vel, x + vx * te + 0.5 * ax * te * te, math.sqrt(var_x)
