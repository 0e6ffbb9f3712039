"""Logistic fit of one edge of a hit-rate curve, and the joint valve-timing solve."""

from __future__ import annotations

import numpy as np

__all__ = ["fit_edge", "solve_line_and_delays"]

_RIDGE = 0.02  # weak prior on the slope: keeps perfectly separated data finite
_SE_FLOOR_MM = 0.05


def _start_edge(pos: np.ndarray, hit: np.ndarray, rising: bool) -> float | None:
    """A first guess between the misses and the hits, or None without a transition."""
    hits, misses = pos[hit], pos[~hit]
    if rising:
        below = misses[misses < hits.max()]
        return None if len(below) == 0 else 0.5 * (hits.min() + below.max())
    above = misses[misses > hits.min()]
    return None if len(above) == 0 else 0.5 * (hits.max() + above.min())


def _penalised_loglik(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    z = theta[0] + theta[1] * x
    # log sigma(z) = -log(1 + exp(-z)), computed stably
    ll = np.sum(y * -np.logaddexp(0.0, -z) + (1.0 - y) * -np.logaddexp(0.0, z))
    return float(ll) - 0.5 * _RIDGE * float(theta[1]) ** 2


def fit_edge(pos_mm: np.ndarray, hit: np.ndarray, rising: bool) -> tuple[float, float] | None:
    """Edge of ``P(hit) = 1 / (1 + exp(-k (pos - edge)))`` (``k > 0`` rising, ``< 0`` falling).

    pos_mm: (N,) float64 positions; hit: (N,) bool. Returns (edge mm, standard
    error mm) or None when the data hold no transition in the expected direction.
    Newton's method with backtracking on the (concave) penalised log-likelihood.
    """
    pos = np.asarray(pos_mm, dtype=np.float64)
    y = np.asarray(hit, dtype=bool)
    if len(y) < 4 or y.all() or not y.any():
        return None
    start = _start_edge(pos, y, rising)
    if start is None:
        return None
    x = pos - start
    yf = y.astype(np.float64)
    theta = np.array([0.0, 3.0 if rising else -3.0])
    ll = _penalised_loglik(theta, x, yf)
    cov = np.eye(2)
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(theta[0] + theta[1] * x)))
        grad = np.array([np.sum(yf - p), np.sum((yf - p) * x) - _RIDGE * theta[1]])
        w = p * (1.0 - p)
        hess = np.array([[np.sum(w), np.sum(w * x)], [np.sum(w * x), np.sum(w * x * x) + _RIDGE]])
        cov = np.linalg.inv(hess)
        step = cov @ grad
        t = 1.0
        while t > 1e-6:
            trial = theta + t * step
            ll_trial = _penalised_loglik(trial, x, yf)
            if ll_trial >= ll - 1e-12:
                break
            t *= 0.5
        theta, ll = trial, ll_trial
        if np.max(np.abs(t * step)) < 1e-9:
            break
    alpha, beta = theta
    if (beta > 0) != rising or abs(beta) < 1e-6:
        return None
    jac = np.array([-1.0 / beta, alpha / beta**2])
    se = float(np.sqrt(max(float(jac @ cov @ jac), 0.0)))
    return start - float(alpha / beta), se


def solve_line_and_delays(
    valve: np.ndarray,
    speed_mm_ms: np.ndarray,
    edge_mm: np.ndarray,
    se_mm: np.ndarray,
    is_open: np.ndarray,
    n_valves: int,
) -> tuple[float, float, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """Weighted least squares of ``edge = y_valve - delay[valve, kind] * speed``.

    Observations (M,): falling edges (``is_open``: command-on position, opening
    delay) and rising edges (command-off position, closing delay). Returns
    (y_valve, se, open_delay (n,), open_se (n,), close_delay (n,), close_se (n,),
    rms residual mm); valves without both kinds of observation get NaN.
    """
    n_par = 1 + 2 * n_valves
    col = 1 + valve + np.where(is_open, 0, n_valves)
    a = np.zeros((len(edge_mm), n_par))
    a[:, 0] = 1.0
    a[np.arange(len(edge_mm)), col] = -speed_mm_ms
    w = 1.0 / np.maximum(se_mm, _SE_FLOOR_MM)
    used = np.flatnonzero(np.any(a[:, 1:] != 0, axis=0)) + 1
    keep = np.r_[0, used]
    aw = a[:, keep] * w[:, None]
    sol, *_ = np.linalg.lstsq(aw, edge_mm * w, rcond=None)
    resid = edge_mm - a[:, keep] @ sol
    dof = max(len(edge_mm) - len(keep), 1)
    chi2 = float(np.sum((resid * w) ** 2)) / dof
    cov = np.linalg.pinv(aw.T @ aw) * max(chi2, 1.0)
    params = np.full(n_par, np.nan)
    ses = np.full(n_par, np.nan)
    params[keep] = sol
    ses[keep] = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    rms = float(np.sqrt(np.mean(resid**2)))
    o = slice(1, 1 + n_valves)
    c = slice(1 + n_valves, n_par)
    return float(params[0]), float(ses[0]), params[o], ses[o], params[c], ses[c], rms
