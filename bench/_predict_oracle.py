"""The ceiling of crossing prediction on ``bench predict``'s detections (issue 16).

An oracle that knows each fragment's true motion FAMILY, the plant's own path
form (``sim.plant.motion.Bodies.step``), but not its parameters, fits that
form by least squares to the same noisy centres over the track's whole
history and extrapolates it to the valve line. Relative to the belt a piece
moves along a circular arc (curvature ``kappa`` 1/mm, 0 for a slider) whose
arc length grows at a speed that falls at a constant deceleration ``d``
(rolling resistance or Coulomb friction) until it stops:

    l(tau) = s0 te - d te^2 / 2,  te = min(tau, s0 / d)
    (x, u)(tau) = (x0, u0) + R(theta0) (sin(k l) / k, (1 - cos(k l)) / k)

Families: ``rest`` (x0, u0: a lying piece keeps its place on the belt),
``slide`` (kappa = 0: x0, u0, vx0, vu0, d), ``roll`` (all six). Belt motion
is exact in encoder ticks; relative motion runs in the plant's time (the
oracle is given the frames' times), the future at the belt speed of the last
frames. ``oracle`` is the plain least-squares fit; ``oracle_bayes`` adds the
plant's spread of the parameters as Gaussian priors (curvature N(0, sigma of
the shape: ``shapes.curvature_sigma_per_mm``), deceleration N(mean, half
range) of the plant's coefficients): the maximum a posteriori path, about
the best any predictor can do that knows how the plant draws its fragments.
A bouncer's kick comes after the view: the oracle predicts its path before
the kick (the kick's mean is 0), ``roll`` when the piece rolls, else ``slide``.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
from scipy.optimize import least_squares

G_MM_S2 = 9810.0
# the plant's spread of deceleration coefficients (sim/plant/materials.py):
# rolling resistance 0.008 (cells) .. 0.04 (stones), sliding friction 0.3-0.45
ROLL_D_MM_S2 = (0.024 * G_MM_S2, 0.016 * G_MM_S2)
SLIDE_D_MM_S2 = (0.375 * G_MM_S2, 0.075 * G_MM_S2)
D_MAX_MM_S2 = 1.0 * G_MM_S2
STEP_S = 2e-4
HORIZON_S = 0.6


def family_of(motion: str, rolls: bool) -> str:
    """The path family of a fragment of ``motion`` kind (``rolls``: a round part rolling)."""
    if rolls:
        return "roll"
    return "rest" if motion == "lying" else "slide"


def kappa_sigma_per_mm(shape_kind: str) -> float:
    """The plant's sigma of a rolling ``shape_kind``'s path curvature (1/mm)."""
    from sim.plant.shapes import Shape, curvature_sigma_per_mm

    return curvature_sigma_per_mm(cast(Shape, SimpleNamespace(kind=shape_kind)))


def arc_path(p: np.ndarray, tau: np.ndarray, family: str) -> tuple[np.ndarray, np.ndarray]:
    """Positions (x, u) mm at times ``tau`` (s, >= 0) of the family's path with
    parameters ``p`` (x0, u0 mm, vx0, vu0 mm/s, then kappa 1/mm for ``roll``,
    then d mm/s^2)."""
    x0, u0 = p[0], p[1]
    if family == "rest":
        return np.full_like(tau, x0), np.full_like(tau, u0)
    vx, vu = p[2], p[3]
    kappa = p[4] if family == "roll" else 0.0
    d = p[-1]
    s0 = math.hypot(vx, vu)
    te = np.minimum(tau, s0 / d) if d > 0 else tau
    arc = s0 * te - 0.5 * d * te * te
    phi = kappa * arc
    along = arc * np.sinc(phi / np.pi)  # sin(phi) / kappa
    side = arc * np.sin(0.5 * phi) * np.sinc(phi / (2.0 * np.pi))  # (1 - cos phi) / kappa
    c, s = (vx / s0, vu / s0) if s0 > 0 else (1.0, 0.0)
    return x0 + c * along - s * side, u0 + s * along + c * side


def _fit(
    tau: np.ndarray, xu: np.ndarray, family: str, sigma_mm: float, prior: dict[str, float] | None
) -> np.ndarray:
    """Least-squares (``prior``: MAP) parameters of the family's path through
    the measured (x, u) at ``tau``."""
    if family == "rest" or len(tau) < 3:
        return np.array([xu[:, 0].mean(), xu[:, 1].mean(), 0.0, 0.0, 0.0])
    a = np.column_stack([np.ones_like(tau), tau])
    (x0, vx), (u0, vu) = np.linalg.lstsq(a, xu, rcond=None)[0].T
    d_mean, d_sd = ROLL_D_MM_S2 if family == "roll" else SLIDE_D_MM_S2

    def resid(p: np.ndarray) -> np.ndarray:
        x, u = arc_path(p, tau, family)
        r = np.concatenate([(x - xu[:, 0]) / sigma_mm, (u - xu[:, 1]) / sigma_mm])
        if prior is None:
            return r
        extra = [(p[-1] - d_mean) / d_sd]
        if family == "roll":
            extra.append(p[4] / prior["kappa_sigma"])
        return np.concatenate([r, extra])

    starts = [d_mean] if family == "roll" else [0.2 * d_mean, d_mean]
    best: Any = None
    for d0 in starts:
        p0 = [x0, u0, vx, vu] + ([0.0] if family == "roll" else []) + [d0]
        lo = [-np.inf] * (len(p0) - 1) + [0.0]
        hi = [np.inf] * (len(p0) - 1) + [D_MAX_MM_S2]
        res = least_squares(resid, np.asarray(p0), bounds=(lo, hi), x_scale="jac", max_nfev=200)
        if best is None or res.cost < best.cost:
            best = res
    return np.asarray(best.x)


def predict(
    ticks: np.ndarray,
    times_s: np.ndarray,
    xy: np.ndarray,
    family: str,
    y_line_mm: float,
    mm_per_tick: float,
    sigma_mm: float,
    prior: dict[str, float] | None = None,
) -> tuple[float, float]:
    """The family's path fitted to measured centres ``xy`` (N, 2) view mm at
    ``ticks`` and ``times_s`` (N,), extrapolated to the valve line ``y_line_mm``
    -> (crossing tick, x there mm); NaN when it does not get there within
    ``HORIZON_S``."""
    tau = times_s - times_s[0]
    xu = np.column_stack([xy[:, 0], xy[:, 1] - mm_per_tick * (ticks - ticks[-1])])
    p = _fit(tau, xu, family, sigma_mm, prior)
    k = min(3, len(ticks) - 1)
    tps = (ticks[-1] - ticks[-1 - k]) / max(times_s[-1] - times_s[-1 - k], 1e-9)
    fut = tau[-1] + np.arange(0.0, HORIZON_S, STEP_S)
    x, u = arc_path(p, fut, family)
    y = u + mm_per_tick * tps * (fut - tau[-1])
    past = np.nonzero(y >= y_line_mm)[0]
    if len(past) == 0:
        return math.nan, math.nan
    j = int(past[0])
    if j == 0:
        return float(ticks[-1]), float(x[0])
    w = (y_line_mm - y[j - 1]) / (y[j] - y[j - 1])
    tc = fut[j - 1] + w * STEP_S
    return float(ticks[-1] + tps * (tc - tau[-1])), float(x[j - 1] + w * (x[j] - x[j - 1]))


def priors(motion: str, rolls: bool, shape_kind: str) -> dict[str, float]:
    """The plant's parameter spread for a fragment (``oracle_bayes``)."""
    return {"kappa_sigma": kappa_sigma_per_mm(shape_kind) if rolls else 1.0}


def noise_ceiling(
    paths: list[dict[str, Any]],
    sigmas_mm: tuple[float, ...],
    draws: int,
    y_line_mm: float,
    mm_per_tick: float,
    per_frame_ticks: float,
    hit_t_frames: float,
    hit_x_mm: float,
    seed: int = 16,
) -> list[dict[str, Any]]:
    """What noise alone leaves of the ceiling: each path's true centres
    re-measured ``draws`` times with N(0, sigma) per axis, the oracle (MAP)
    fitted each time -> per motion kind, horizon and sigma: the expected hit
    rate (mean over fragments of each one's hit probability), the share of
    fragments hit in fewer than half of the draws (``unreachable``: no
    predictor of this family does better than a coin on them) and the x error
    a 0.97 hit rate would need (the time criterion kept)."""
    rng = np.random.default_rng(seed)
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for p in paths:
        groups.setdefault((p["motion"], p["horizon_frames"]), []).append(p)
    rows = []
    for (motion, h), sel in sorted(groups.items()):
        for sigma in sigmas_mm:
            p_hit, t_err, x_err = [], [], []
            for p in sel:
                hits = 0
                for _ in range(draws):
                    xy = p["true_xy"] + rng.normal(0.0, sigma, p["true_xy"].shape)
                    tc, xc = predict(p["ticks"], p["times"], xy, p["family"], y_line_mm,
                                     mm_per_tick, max(sigma, 0.01), p["prior"])  # fmt: skip
                    te = abs(tc - p["cross_tick"]) / per_frame_ticks
                    xe = abs(xc - p["x_cross_mm"])
                    hits += bool(te <= hit_t_frames and xe <= hit_x_mm)
                    t_err.append(te if math.isfinite(te) else 99.0)
                    x_err.append(xe if math.isfinite(xe) else 99.0)
                p_hit.append(hits / draws)
            te_a, xe_a = np.asarray(t_err), np.asarray(x_err)
            x_ok = np.where(te_a <= hit_t_frames, xe_a, np.inf)
            x_need = float(np.quantile(x_ok, 0.97, method="higher"))
            rows.append({
                "motion": motion, "horizon_frames": h, "sigma_mm": sigma, "n": len(sel),
                "draws": draws, "hit_rate": round(float(np.mean(p_hit)), 4),
                "unreachable_share": round(float(np.mean(np.asarray(p_hit) < 0.5)), 4),
                "x_err_p95_mm": round(float(np.percentile(xe_a, 95)), 4),
                "x_mm_for_0_97": round(x_need, 3) if math.isfinite(x_need) else None,
            })  # fmt: skip
    return rows
