"""The motion model (``control/kernels_motion.py``, ``kernels_motion_ca.py``):
kernels against the readable twins of ``tests/control/naive.py`` (a
textbook three-model IMM in full matrices, a stepped constant-acceleration
crossing). Hand-built tracks through the whole controller:
``test_motion_tracks.py``. ``test_kernels_nojit.py`` runs this file again
without the JIT."""

from __future__ import annotations

import math

import numpy as np
import pytest

from control import kernels_motion as km
from control import kernels_motion_ca as kca

from . import naive

SEEDS = [0, 1, 2]
MM_PER_TICK = 0.1
Y_VALVE = 300.0
PRM = dict(
    q_base=2e-11, q_man=2e-9, g0=1.5, q_still=1e-6, p_still=0.97, p_move=0.95, v0=3.6e-5,
    a0=1e-11, q_jerk=4e-16, p_accel=0.96,
)  # fmt: skip


def _args(on: bool) -> tuple:
    p = PRM
    return (p["q_base"], p["q_man"], p["g0"], p["q_still"], p["p_still"], p["p_move"], p["v0"],
            p["a0"], p["q_jerk"], p["p_accel"], on)  # fmt: skip


def crossing_twin(x, p6, hu, q, t, travel, y_valve, mpt, ev):
    """Moving model alone: propagate the full covariance to the centre's crossing."""
    vel = max(mpt + x[3], 0.25 * mpt)
    yc = x[1] + travel
    on, off = t + (y_valve - yc - hu) / vel, t + (y_valve - yc + hu) / vel
    d = max(0.5 * (on + off) - t, 0.0)
    _, p_at = naive.predict(np.asarray(x, float), p6, d, 0.0)
    _, Q = naive.cv_matrices(d, 1.0)
    vx = p_at[0] + q[0] * Q[0, 0]
    vu = p_at[3] + q[1] * Q[1, 1]
    return on, off, math.sqrt(vu + ev) / vel, math.sqrt(vu) / vel, x[0] + x[2] * d, \
        math.sqrt(vx + ev), math.sqrt(vx)  # fmt: skip


def shrink_turn_twin(state, cx, cu, curv=kca.CURV_SIGMA_PER_MM):
    """Bayes' rule on the acceleration across the velocity alone: the
    estimate ``n.a`` (variance ``n' diag(aa_x, aa_u) n``) times the prior
    N(0, (curv x speed^2)^2) -> the state with that part replaced by the
    posterior mean (the part along the velocity kept), covariances as given."""
    x, u, vx, vu, ax, au = state
    v = np.array([vx, vu])
    s2 = float(v @ v)
    if s2 == 0.0:
        return tuple(state), cx, cu
    n = np.array([-vu, vx]) / math.sqrt(s2)
    a = np.array([ax, au])
    est, var = float(n @ a), float(n**2 @ np.array([cx[5], cu[5]]))
    prior = (curv * s2) ** 2
    post = est * prior / (prior + var)  # the product of the two Gaussians' mean
    a = a + (post - est) * n
    return (x, u, vx, vu, a[0], a[1]), cx, cu


def ca_crossing_twin(state, cx, cu, q_jerk, t, travel):
    """The acceleration model's crossing: the turn prior, then the stepped twin."""
    return naive.ca_crossing(*shrink_turn_twin(state, cx, cu), q_jerk, t, travel, Y_VALVE,
                             MM_PER_TICK)  # fmt: skip


def _cov3(rng):
    m = rng.normal(size=(3, 3)) * np.array([1.0, 3e-3, 2e-5])[:, None]
    return naive.pack3(m @ m.T + np.diag([0.01, 1e-8, 1e-13]))


def _row(rng):
    x = np.array([rng.uniform(0, 1000), rng.uniform(-250, 150), *rng.normal(0, 5e-3, 2)])
    p6 = np.empty(6)
    for a in range(2):
        pp, vv = rng.uniform(0.01, 5), rng.uniform(1e-8, 1e-4)
        p6[3 * a : 3 * a + 3] = pp, rng.uniform(-0.9, 0.9) * math.sqrt(pp * vv), vv
    xs = x[:2] + rng.normal(0, 1, 2)
    ps = rng.uniform(0.005, 2, 2)
    xa = np.array(
        [*(x[:2] + rng.normal(0, 1, 2)), *rng.normal(0, 5e-3, 2), *rng.normal(0, 3e-6, 2)]
    )
    pa = np.concatenate([_cov3(rng), _cov3(rng)])
    return x, p6, xs, ps, xa, pa


# -- kernels against twins -----------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("mu", "ma"), [(1e-3, 1e-3), (0.3, 0.2), (0.5, 0.0), (0.97, 0.01),
                                        (1e-3, 0.998), (0.2, 0.79)])  # fmt: skip
@pytest.mark.parametrize("dt", [1.0, 250.0, 2500.0])
@pytest.mark.parametrize("on", [True, False])
def test_imm_predict_equals_textbook(seed, mu, ma, dt, on):
    """Mixing and prediction of three models (two with the acceleration model off)."""
    rng = np.random.default_rng(seed)
    n = 4
    rows = [_row(rng) for _ in range(n)]
    X, P, XS, PS, XA, PA = (np.array([r[k] for r in rows]) for k in range(6))
    G = rng.uniform(0, 4, (n, 2))
    ma = ma if on else 0.0
    MU, MA = np.full(n, mu), np.full(n, ma)
    prm = {**PRM, "on": on}
    want = [naive.imm3_predict(X[i], P[i], G[i], XS[i], PS[i], mu, XA[i], PA[i], ma, dt, prm)
            for i in range(n)]  # fmt: skip
    km._predict(X, P, G, XS, PS, MU, XA, PA, MA, n, dt, *_args(on))
    for i in range(n):
        x, p6, xs, ps, mu_s, xa, pa, mu_a = want[i]
        np.testing.assert_allclose(X[i], x, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(P[i], p6, rtol=1e-8, atol=1e-14)
        np.testing.assert_allclose(XS[i], xs, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(PS[i], ps, rtol=1e-8, atol=1e-14)
        assert MU[i] == pytest.approx(mu_s, rel=1e-12)
        assert MA[i] == pytest.approx(mu_a, rel=1e-12, abs=1e-300)
        if on or ma > 0:
            np.testing.assert_allclose(XA[i], xa, rtol=1e-9, atol=1e-14)
            np.testing.assert_allclose(PA[i], pa, rtol=1e-7, atol=1e-20)


def test_predict_with_zero_dt_changes_nothing():
    X, P, XS, PS, XA, PA = (a[None].copy() for a in _row(np.random.default_rng(4)))
    before = [a.copy() for a in (X, P, XS, PS, XA, PA)]
    MU, MA = np.array([0.4]), np.array([0.2])
    km._predict(X, P, np.ones((1, 2)), XS, PS, MU, XA, PA, MA, 1, 0.0, *_args(True))
    for a, b in zip((X, P, XS, PS, XA, PA), before, strict=True):
        np.testing.assert_array_equal(a, b)
    assert MU[0] == 0.4 and MA[0] == 0.2


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dt", [0.0, 1.0, 250.0, 3000.0])
def test_ca_predict_axis_equals_full_matrices(seed, dt):
    rng = np.random.default_rng(seed)
    m = np.array([rng.uniform(-100, 100), *rng.normal(0, [5e-3, 3e-6])])
    c = _cov3(rng)
    got = kca._ca_predict_axis(*m, *c, dt, 4e-16)
    F, Q = naive.ca_matrices(dt, 4e-16)
    np.testing.assert_allclose(got[:3], F @ m, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got[3:], naive.pack3(F @ naive.sym3(c) @ F.T + Q), rtol=1e-9,
                               atol=1e-22)  # fmt: skip


@pytest.mark.parametrize("seed", SEEDS)
def test_ca_update_equals_full_matrices(seed):
    rng = np.random.default_rng(seed)
    m = np.array([rng.uniform(-100, 100), *rng.normal(0, [5e-3, 3e-6])])
    c = naive.sym3(_cov3(rng))
    innov, r = rng.normal(0, 1), rng.uniform(0.01, 4)
    got = kca._ca_update(*m, *naive.pack3(c), innov, r)
    h = np.array([[1.0, 0.0, 0.0]])
    k = c @ h.T / (h @ c @ h.T + r)
    np.testing.assert_allclose(got[:3], m + k.ravel() * innov, rtol=1e-10, atol=1e-18)
    np.testing.assert_allclose(got[3:], naive.pack3((np.eye(3) - k @ h) @ c), rtol=1e-8,
                               atol=1e-22)  # fmt: skip


@pytest.mark.parametrize("seed", SEEDS)
def test_crossing_equals_full_covariance(seed):
    rng = np.random.default_rng(seed)
    for _ in range(6):
        x, p6, *_ = _row(rng)
        q = rng.uniform(0, 1e-8, 2)
        got = km._crossing(*x, 12.0, *p6, q[0], q[1], 1000.0, 40.0, Y_VALVE, MM_PER_TICK, 2.25)
        want = crossing_twin(x, p6, 12.0, q, 1000.0, 40.0, Y_VALVE, MM_PER_TICK, 2.25)
        np.testing.assert_allclose(got, want, rtol=1e-9)


# (x, u, vx, vu, ax, au) mm, mm/tick, mm/tick^2: the cases the stop rule must get right
CA_CASES = [
    (500.0, -100.0, 0.0, 0.015, 0.0, 0.0),  # rolling at +15 %, steady
    (500.0, -100.0, 0.004, 0.015, -2e-6, -6e-7),  # +15 % decelerating and curving
    (500.0, -100.0, 0.006, -0.02, -1.2e-6, 4e-6),  # a slider braking: at rest before the line
    (500.0, 10.0, -0.003, -0.005, 2e-6, 3.3e-6),  # stops within a frame or two
    (500.0, 250.0, 0.001, 0.01, 0.0, -1e-6),  # centre already past the line
    (500.0, -100.0, 0.0, 0.0, 1e-6, 2e-6),  # at rest with an acceleration: stays at rest
    (500.0, -150.0, 0.01, 0.005, -4e-6, 1e-7),  # sideways speed reverses (not braking along)
    (500.0, -100.0, 0.002, -0.01, 1e-6, -2e-6),  # "speeding up" upstream: only the turn is kept
    (500.0, -100.0, 0.0, 0.01, 0.0, 3e-6),  # speeding up along the belt: constant velocity
]


@pytest.mark.parametrize("state", CA_CASES)
@pytest.mark.parametrize("seed", SEEDS[:2])
def test_crossing_ca_equals_stepped_twin(state, seed):
    rng = np.random.default_rng(seed)
    cx, cu = _cov3(rng), _cov3(rng)
    got = kca._crossing_ca(*state, 12.0, *cx, *cu, 4e-16, 1000.0, 40.0, Y_VALVE, MM_PER_TICK)
    want = ca_crossing_twin(state, cx, cu, 4e-16, 1000.0, 40.0)
    assert got[0] == pytest.approx(want[0], abs=1e-5)  # ticks
    assert got[2] == pytest.approx(want[2], rel=1e-4)
    assert got[3] == pytest.approx(want[3], abs=1e-6)  # mm
    assert got[1] == pytest.approx(want[1], rel=1e-6)
    assert got[4] == pytest.approx(want[4], rel=1e-6)


def test_a_braking_piece_rests_instead_of_running_backwards():
    """A slider 2 % slower than the belt braking at 0.4 g rests after 0.5 mm:
    the crossing is where the belt brings it from there (a plain parabola
    would have it turn and run upstream)."""
    mpt, tick_s = MM_PER_TICK, MM_PER_TICK / 2500.0
    vu = -0.02 * mpt
    au = 0.4 * 9810.0 * tick_s**2  # braking: against the (negative) velocity
    zero = np.zeros(6)
    t, _, vel, _, _ = kca._crossing_ca(0.0, -100.0, 0.0, vu, 0.0, au, 5.0, *zero, *zero, 0.0,
                                       0.0, 0.0, Y_VALVE, mpt)  # fmt: skip
    rest_u = -100.0 - vu * vu / (2 * au)
    assert t == pytest.approx((Y_VALVE - rest_u) / mpt, rel=1e-9)
    assert vel == mpt


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("mu", "ma"), [(0.0, 0.0), (0.2, 0.3), (0.5, 0.0), (1.0, 0.0),
                                        (0.001, 0.997), (0.998, 0.001)])  # fmt: skip
def test_crossing_of_three_models_is_their_moment_match(seed, mu, ma):
    rng = np.random.default_rng(seed)
    x, p6, xs, ps, xa, pa = _row(rng)
    q = (3e-10, 1e-10)
    t, travel, ev, q_still, q_jerk, cut = 1000.0, 40.0, 2.25, 1e-6, 4e-16, 2e-3
    got = km._crossing_imm(
        *x, 12.0, *p6, *q, xs[0], xs[1], ps[0], ps[1], mu, q_still, t, travel, Y_VALVE,
        MM_PER_TICK, ev, *xa, *pa, ma, q_jerk, cut,
    )  # fmt: skip
    on_m, off_m, _, st_m, x_m, _, sx_m = crossing_twin(
        x, p6, 12.0, q, t, travel, Y_VALVE, MM_PER_TICK, 0.0
    )
    ta, sta, vel_a, x_a, sx_a = ca_crossing_twin(xa, pa[:6], pa[6:], q_jerk, t, travel)
    t_s = t + (Y_VALVE - xs[1] - travel) / MM_PER_TICK
    d = t_s - t
    w = np.array([mu, 1 - mu - ma, ma])
    w[(w <= cut) & (w < w.max())] = 0.0  # models held at their floor are left out
    w /= w.sum()
    means_t = np.array([t_s, 0.5 * (on_m + off_m), ta])
    vars_t = np.array([(ps[1] + q_still * d) / MM_PER_TICK**2, st_m**2, sta**2])
    means_x = np.array([xs[0], x_m, x_a])
    vars_x = np.array([ps[0] + q_still * d, sx_m**2, sx_a**2])
    mt, mx = w @ means_t, w @ means_x
    vt = w @ (vars_t + (means_t - mt) ** 2)
    vx = w @ (vars_x + (means_x - mx) ** 2)
    vel_m = max(MM_PER_TICK + x[3], 0.25 * MM_PER_TICK)
    half = 12.0 * (w @ (1.0 / np.array([MM_PER_TICK, vel_m, vel_a])))
    assert 0.5 * (got[0] + got[1]) == pytest.approx(mt, rel=1e-9)
    assert 0.5 * (got[1] - got[0]) == pytest.approx(half, rel=1e-6)
    assert got[3] == pytest.approx(math.sqrt(vt), rel=1e-5)
    assert got[4] == pytest.approx(mx, rel=1e-9)
    assert got[6] == pytest.approx(math.sqrt(vx), rel=1e-6)
    assert got[5] == pytest.approx(math.sqrt(vx + ev), rel=1e-6)
    assert got[2] > got[3]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("on", [True, False])
def test_mode_update_equals_bayes_rule(seed, on):
    rng = np.random.default_rng(seed)
    for _ in range(30):
        ms = rng.uniform(1e-3, 0.9)
        ma = rng.uniform(1e-3, 1 - ms - 1e-3) if on else 0.0
        nis = rng.uniform(0, 25, 3)
        log_det = rng.normal(0, 2, 3)
        got = km._mode_update(ms, ma, *nis, math.exp(log_det[1] - log_det[0]),
                              math.exp(log_det[2] - log_det[0]), 1e-3, on)  # fmt: skip
        want = naive.mode_posterior(ms, ma, nis, log_det, 1e-3, on)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize(
    ("nis", "want"),
    [
        ((1.0, 1.0, 1.0), None),  # same evidence, same spread: the priors stay
        ((25.0, 1.0, 25.0), "v"),  # only constant velocity fits
        ((25.0, 25.0, 1.0), "a"),  # only constant acceleration fits
        ((1.0, 25.0, 25.0), "s"),  # only rest fits
    ],
)
def test_mode_update_table(nis, want):
    ms, ma = km._mode_update(0.3, 0.3, *nis, 1.0, 1.0, 1e-3, True)
    got = {"s": ms, "a": ma, "v": 1 - ms - ma}
    if want is None:
        assert (ms, ma) == pytest.approx((0.3, 0.3))
    else:
        assert got[want] > 0.99


@pytest.mark.parametrize(
    ("innov", "s", "k", "want"),
    [(0.5, 1.0, 4.0, 0.5), (9.0, 1.0, 4.0, 4.0), (-9.0, 4.0, 4.0, -8.0), (0.0, 1.0, 4.0, 0.0)],
)
def test_huber_clips_at_k_sigma(innov, s, k, want):
    assert km._huber(innov, s, k) == want


def test_nis_average_and_process_noise():
    g = 1.0
    for _ in range(10):  # a run of 3-sigma innovations raises it towards 9
        g = km._nis(g, 3.0, 0.5, 0.5, 0.3)
    assert 8.0 < g <= 9.0
    assert km._nis(1.0, 100.0, 0.5, 0.5, 0.3) == pytest.approx(1.0 + 0.3 * 8.0)  # capped at 9
    assert km._axis_q(1.0, 2e-11, 2e-9, 1.5) == 2e-11
    assert km._axis_q(3.5, 2e-11, 2e-9, 1.5) == pytest.approx(2e-11 + 4e-9)


@pytest.mark.parametrize(
    ("args", "want"),
    [
        ((0.09, 0.0, 0.0, 0, 0.01, 4.0, 0.05), 0.09),  # no sample: unchanged
        ((0.09, 40 * 0.07, 40 * 0.01, 40, 0.01, 4.0, 0.05), 0.09 + 0.05 * (0.06 - 0.09)),
        ((0.09, 10 * 0.07, 10 * 0.01, 10, 0.01, 4.0, 0.05), 0.09 + 0.025 * (0.06 - 0.09)),
        ((0.09, 40 * 0.001, 40 * 0.01, 40, 0.01, 4.0, 1.0), 0.01),  # floor
        ((0.09, 40 * 0.07, 40 * 0.01, 40, 0.01, 4.0, 0.0), 0.09),  # adaptation off
    ],
)
def test_noise_estimate_table(args, want):
    assert km._noise_estimate(*args) == pytest.approx(want)
