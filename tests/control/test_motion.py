"""The motion model (``control/kernels_motion.py``): kernels against readable
twins, and hand-built tracks through the whole controller: a piece rolling
at +15 % of the belt speed, one whose sideways speed reverses, one lying
still. ``test_kernels_nojit.py`` runs this file again without the JIT."""

from __future__ import annotations

import math

import numpy as np
import pytest

from control import kernels_motion as km
from control.controller import Controller
from control.params import ControlParams
from core.classes import DEFAULT_CLASSES
from core.types import Detections

SEEDS = [0, 1, 2]
MM_PER_TICK = 0.1
FRAME_TICKS = 250
Y_VALVE = 300.0
# the motion model's defaults before issue 16 (2 mm noise, a 4 % prior, fixed q)
PREV = ControlParams(
    gate_sigma_mm=2.0, meas_sigma_mm=2.0, meas_sigma_min_mm=2.0, meas_adapt=0.0,
    accel_q_mm2_tick3=2e-10, maneuver_q_mm2_tick3=0.0, init_speed_sigma_frac=0.04,
)  # fmt: skip


# -- readable twins ------------------------------------------------------------
def cv_propagate(m: np.ndarray, c: np.ndarray, dt: float, q: float) -> tuple:
    """One axis (position, velocity): F m, F C F' + q [[dt^3/3, dt^2/2], [dt^2/2, dt]]."""
    f = np.array([[1.0, dt], [0.0, 1.0]])
    qm = q * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
    return f @ m, f @ c @ f.T + qm


def imm_predict_twin(x, p6, g, xs, ps, mu, dt, q_base, q_man, g0, q_still, p_s, p_m, v0):
    """Textbook IMM: mode transition, mixing (the rest model as a 2-state one
    with velocity 0 and variance ``v0``), per-model prediction. One row."""
    trans = np.array([[p_s, 1 - p_s], [1 - p_m, p_m]])  # from (still, moving) to ...
    prior = np.array([mu, 1 - mu])
    c = prior @ trans
    w = trans * prior[:, None] / c[None, :]  # w[i, j]: model i's share in model j's start
    x, p6, xs, ps = x.copy(), p6.copy(), xs.copy(), ps.copy()
    for a in range(2):
        ms = np.array([xs[a], 0.0])
        cs = np.diag([ps[a], v0])
        mm = np.array([x[a], x[a + 2]])
        cm = np.array([[p6[3 * a], p6[3 * a + 1]], [p6[3 * a + 1], p6[3 * a + 2]]])
        # into the still model: positions only
        pos = w[0, 0] * ms[0] + w[1, 0] * mm[0]
        var = w[0, 0] * (cs[0, 0] + (ms[0] - pos) ** 2) + w[1, 0] * (cm[0, 0] + (mm[0] - pos) ** 2)
        # into the moving model
        m0 = w[0, 1] * ms + w[1, 1] * mm
        c0 = sum(
            wi * (ci + np.outer(mi - m0, mi - m0))
            for wi, mi, ci in ((w[0, 1], ms, cs), (w[1, 1], mm, cm))
        )
        q = q_base + q_man * max(g[a] - g0, 0.0)
        m1, c1 = cv_propagate(m0, c0, dt, q)
        x[a], x[a + 2] = m1
        p6[3 * a], p6[3 * a + 1], p6[3 * a + 2] = c1[0, 0], c1[0, 1], c1[1, 1]
        xs[a], ps[a] = pos, var + q_still * dt
    return x, p6, xs, ps, c[0]


def crossing_twin(x, p6, hu, q, t, travel, y_valve, mpt, ev):
    """Moving model alone: propagate the full covariance to the centre's crossing."""
    vel = max(mpt + x[3], 0.25 * mpt)
    yc = x[1] + travel
    on, off = t + (y_valve - yc - hu) / vel, t + (y_valve - yc + hu) / vel
    d = max(0.5 * (on + off) - t, 0.0)
    out = []
    for a in range(2):
        m, c = cv_propagate(
            np.array([x[a], x[a + 2]]),
            np.array([[p6[3 * a], p6[3 * a + 1]], [p6[3 * a + 1], p6[3 * a + 2]]]),
            d,
            q[a],
        )
        out.append((m[0], c[0, 0]))
    (xc, vx), (_, vu) = out
    return (
        on,
        off,
        math.sqrt(vu + ev) / vel,
        math.sqrt(vu) / vel,
        xc,
        math.sqrt(vx + ev),
        math.sqrt(vx),
    )


def _row(rng):
    x = np.array([rng.uniform(0, 1000), rng.uniform(-250, 150), *rng.normal(0, 5e-3, 2)])
    p6 = np.empty(6)
    for a in range(2):
        pp, vv = rng.uniform(0.01, 5), rng.uniform(1e-8, 1e-4)
        p6[3 * a : 3 * a + 3] = pp, rng.uniform(-0.9, 0.9) * math.sqrt(pp * vv), vv
    xs = x[:2] + rng.normal(0, 1, 2)
    ps = rng.uniform(0.005, 2, 2)
    return x, p6, xs, ps


# -- kernels against twins -----------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mu", [1e-3, 0.3, 0.5, 0.97, 1 - 1e-3])
@pytest.mark.parametrize("dt", [1.0, 250.0, 2500.0])
def test_imm_predict_equals_textbook(seed, mu, dt):
    rng = np.random.default_rng(seed)
    n = 5
    rows = [_row(rng) for _ in range(n)]
    X = np.array([r[0] for r in rows])
    P = np.array([r[1] for r in rows])
    XS = np.array([r[2] for r in rows])
    PS = np.array([r[3] for r in rows])
    G = rng.uniform(0, 4, (n, 2))
    MU = np.full(n, mu)
    args = (2e-11, 2e-9, 1.5, 1e-6, 0.97, 0.95, 3.6e-5)
    want = [imm_predict_twin(X[i], P[i], G[i], XS[i], PS[i], mu, dt, *args) for i in range(n)]
    km._predict(X, P, G, XS, PS, MU, n, dt, *args)
    for i in range(n):
        np.testing.assert_allclose(X[i], want[i][0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(P[i], want[i][1], rtol=1e-8, atol=1e-14)
        np.testing.assert_allclose(XS[i], want[i][2], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(PS[i], want[i][3], rtol=1e-8, atol=1e-14)
        assert MU[i] == pytest.approx(want[i][4], rel=1e-12)


def test_predict_with_zero_dt_changes_nothing():
    X, P, XS, PS = (a[None].copy() for a in _row(np.random.default_rng(4)))
    before = [a.copy() for a in (X, P, XS, PS)]
    MU = np.array([0.4])
    km._predict(X, P, np.ones((1, 2)), XS, PS, MU, 1, 0.0, 2e-11, 2e-9, 1.5, 1e-6, 0.97, 0.97, 1e-5)
    for a, b in zip((X, P, XS, PS), before, strict=True):
        np.testing.assert_array_equal(a, b)
    assert MU[0] == 0.4


@pytest.mark.parametrize("seed", SEEDS)
def test_crossing_equals_full_covariance(seed):
    rng = np.random.default_rng(seed)
    for _ in range(6):
        x, p6, _, _ = _row(rng)
        q = rng.uniform(0, 1e-8, 2)
        got = km._crossing(*x, 12.0, *p6, q[0], q[1], 1000.0, 40.0, Y_VALVE, MM_PER_TICK, 2.25)
        want = crossing_twin(x, p6, 12.0, q, 1000.0, 40.0, Y_VALVE, MM_PER_TICK, 2.25)
        np.testing.assert_allclose(got, want, rtol=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mu", [0.0, 0.2, 0.5, 1.0])
def test_crossing_of_both_models_is_their_moment_match(seed, mu):
    rng = np.random.default_rng(seed)
    x, p6, xs, ps = _row(rng)
    q = (3e-10, 1e-10)
    t, travel, ev, q_still = 1000.0, 40.0, 2.25, 1e-6
    got = km._crossing_imm(
        *x, 12.0, *p6, *q, xs[0], xs[1], ps[0], ps[1], mu, q_still, t, travel, Y_VALVE,
        MM_PER_TICK, ev,
    )  # fmt: skip
    on_m, off_m, _, st_m, x_m, _, sx_m = crossing_twin(
        x, p6, 12.0, q, t, travel, Y_VALVE, MM_PER_TICK, 0.0
    )
    yc = xs[1] + travel
    on_s, off_s = t + (Y_VALVE - yc - 12.0) / MM_PER_TICK, t + (Y_VALVE - yc + 12.0) / MM_PER_TICK
    d = 0.5 * (on_s + off_s) - t
    means_t = np.array([0.5 * (on_s + off_s), 0.5 * (on_m + off_m)])
    vars_t = np.array([(ps[1] + q_still * d) / MM_PER_TICK**2, st_m**2])
    means_x = np.array([xs[0], x_m])
    vars_x = np.array([ps[0] + q_still * d, sx_m**2])
    w = np.array([mu, 1 - mu])
    mt, mx = w @ means_t, w @ means_x
    vt = w @ (vars_t + (means_t - mt) ** 2)
    vx = w @ (vars_x + (means_x - mx) ** 2)
    assert 0.5 * (got[0] + got[1]) == pytest.approx(mt, rel=1e-12)
    assert got[3] == pytest.approx(math.sqrt(vt), rel=1e-9)
    assert got[4] == pytest.approx(mx, rel=1e-12)
    assert got[6] == pytest.approx(math.sqrt(vx), rel=1e-9)
    assert got[5] == pytest.approx(math.sqrt(vx + ev), rel=1e-9)
    assert got[2] > got[3]


@pytest.mark.parametrize(
    ("mu", "nis_still", "nis_move", "ratio", "want"),
    [
        (0.5, 1.0, 1.0, 1.0, 0.5),  # same evidence: unchanged
        (0.5, 25.0, 1.0, 2.0, None),  # the rest model misses by the cap: moving wins
        (0.5, 1.0, 1.0, 4.0, None),  # equal fit, wider moving model: rest wins
        (1e-9, 0.0, 0.0, 1.0, 1e-3),  # floors
        (1 - 1e-9, 0.0, 0.0, 1.0, 1 - 1e-3),
    ],
)
def test_mode_update_table(mu, nis_still, nis_move, ratio, want):
    got = km._mode_update(mu, nis_still, nis_move, ratio, 1e-3)
    like_s = math.exp(-0.5 * nis_still)
    like_m = math.exp(-0.5 * nis_move) / math.sqrt(ratio)
    exact = mu * like_s / (mu * like_s + (1 - mu) * like_m)
    assert got == pytest.approx(want if want is not None else min(max(exact, 1e-3), 1 - 1e-3))


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


# -- hand-built tracks through the controller ------------------------------------
def _dets(tick: int, xy: list[tuple[float, float]], half: float = 9.0) -> Detections:
    n = len(xy)
    c = np.asarray(xy, np.float64).reshape(n, 2)
    ext = np.column_stack([c[:, 0] - half, c[:, 0] + half, c[:, 1] - half, c[:, 1] + half])
    ext[:, 2] = np.maximum(ext[:, 2], -200.0)
    ext[:, 3] = np.minimum(ext[:, 3], 200.0)
    prob = np.full((n, len(DEFAULT_CLASSES)), 0.1 / (len(DEFAULT_CLASSES) - 1), np.float32)
    prob[:, 2] = 0.9
    return Detections(
        frame_id=tick // FRAME_TICKS, tick=tick, bbox_px=np.zeros((n, 4), np.float32),
        centroid_mm=c, extent_mm=ext, area_mm2=np.full(n, 4 * half * half, np.float32),
        class_id=np.full(n, 2, np.int16), confidence=np.full(n, 0.9, np.float32),
        class_prob=prob,
    )  # fmt: skip


def _run(geometry, recipe, params, path, frames: int, seed: int = 5):
    """Feed one piece along ``path(k) -> (x, y view mm)`` with 0.25 mm of
    centroid noise; per frame (x, y, centre crossing tick, x at the crossing,
    sigmas t (ticks) and x (mm), probability of rest) of its track."""
    rng = np.random.default_rng(seed)
    ctl = Controller(geometry, recipe, DEFAULT_CLASSES, params=params)
    out = []
    for k in range(frames):
        x, y = path(k)
        if y - 9.0 > 200.0:
            break
        tick = 10_000 + k * FRAME_TICKS
        ctl.update(_dets(tick, [(x + rng.normal(0, 0.25), y + rng.normal(0, 0.25))]), tick)
        tab = ctl._tracker.table
        if tab.n:
            c = tab.CROSS[0]
            out.append((x, y, 0.5 * (c[0] + c[1]), tab.XC[0, 0], c[3], tab.XC[0, 2], tab.MU[0]))
    return np.array(out)


def _truth(x0, y0, vx_mm_tick, vu_mm_tick):
    t = 10_000 + (Y_VALVE - y0) / (MM_PER_TICK + vu_mm_tick)
    return t, x0 + vx_mm_tick * (t - 10_000)


@pytest.mark.parametrize("vx_frac", [0.0, 0.05, -0.08])
def test_a_piece_rolling_at_15_percent_is_followed(geometry, recipe, vx_frac):
    """+15 % of the belt speed along, a steady sideways speed: from the fifth
    frame on the crossing time is within half a frame, x within 0.85 mm from
    10 frames ahead, both inside 3 sigmas; the earlier defaults predicted it
    where a lying piece would be."""
    vu, vx = 0.15 * MM_PER_TICK, vx_frac * MM_PER_TICK
    step = (MM_PER_TICK + vu) * FRAME_TICKS

    def path(k):
        return 500.0 + vx * FRAME_TICKS * k, -190.0 + step * k

    t_true, _ = _truth(500.0, -190.0, vx, vu)
    rows = _run(geometry, recipe, ControlParams(), path, 40)
    x_true = 500.0 + vx * (t_true - 10_000)
    late = rows[4:]
    ten = late[(t_true - 10_000) / FRAME_TICKS - np.arange(4, 4 + len(late)) <= 10.0]
    assert len(ten) >= 5  # frames at most 10 frames before the crossing
    assert np.abs(late[:, 2] - t_true).max() < 0.5 * FRAME_TICKS
    assert np.abs(ten[:, 3] - x_true).max() < 0.85
    assert late[:, 6].max() < 0.05  # not at rest
    assert np.all(np.abs(late[:, 2] - t_true) < 3 * late[:, 4])  # honest sigmas
    assert np.all(np.abs(late[:, 3] - x_true) < 3 * late[:, 5])
    prev = _run(geometry, recipe, PREV, path, 40)
    assert np.abs(prev[4:, 2] - t_true).max() > 0.5 * FRAME_TICKS


def test_a_piece_whose_sideways_speed_reverses(geometry, recipe):
    """Sideways +6 % of the belt speed turning to -6 % over frames 2-8 (a
    cylinder rolling on a curve): from 3 frames after the turn the crossing x
    is within 0.85 mm (median; 1.2 mm at worst, 0.25 mm of centroid noise) and
    3 sigmas, and the x sigma grew while the motion was not explained (against
    the same piece going straight on)."""
    v = 0.06 * MM_PER_TICK * FRAME_TICKS  # mm per frame sideways
    step = MM_PER_TICK * 1.1 * FRAME_TICKS

    def runs(turn: bool) -> tuple[np.ndarray, np.ndarray]:
        def vx_at(k: int) -> float:
            return v * math.cos(math.pi * min(max(k - 2, 0), 6) / 6) if turn else v

        xs = np.cumsum([500.0] + [vx_at(k) for k in range(1, 40)])
        rows = _run(
            geometry, recipe, ControlParams(), lambda k: (float(xs[k]), -190.0 + step * k), 40
        )
        return rows, xs

    rows, xs = runs(True)
    straight, _ = runs(False)
    k_cross = (Y_VALVE + 190.0) / step
    x_true = xs[8] - v * (k_cross - 8)
    after = rows[11:]
    assert len(after) >= 3
    err = np.abs(after[:, 3] - x_true)
    assert err.max() < 1.2 and np.median(err) < 0.85
    assert np.all(err < 3 * after[:, 5])  # honest
    assert (rows[4:9, 5] / straight[4:9, 5]).max() > 1.5  # sigma widened while it turned


def test_a_lying_piece_keeps_a_tight_sigma(geometry, recipe):
    """At rest on the belt: the rest model takes over, x and time sigmas stay
    small and the prediction is right to a tenth of the tolerance."""

    def path(k):
        return 321.0, -190.0 + MM_PER_TICK * FRAME_TICKS * k

    rows = _run(geometry, recipe, ControlParams(), path, 40)
    t_true = 10_000 + (Y_VALVE + 190.0) / MM_PER_TICK
    late = rows[4:]
    assert late[:, 6].min() > 0.9
    assert late[:, 5].max() < 0.6 and rows[8:, 5].max() < 0.3  # mm
    assert late[:, 4].max() < 10.0 and rows[8:, 4].max() < 3.0  # ticks: 1 and 0.3 mm of travel
    assert np.abs(late[:, 3] - 321.0).max() < 0.3
    assert np.abs(late[:, 2] - t_true).max() < 0.1 * FRAME_TICKS
