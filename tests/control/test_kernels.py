"""Every decision-core kernel against its readable twin in ``naive.py``.

Random and edge cases (no tracks, one, ties, boxes entering and leaving the
view together). ``test_kernels_nojit.py`` runs this file again with
``NUMBA_DISABLE_JIT=1`` so the kernels' Python bodies are exercised too.
"""

from __future__ import annotations

import numpy as np
import pytest

from control import kernels, kernels_assign, kernels_schedule
from control.assign import gated_assignment, min_cost_assignment
from control.evidence import class_outlook
from control.params import (
    N_SCHEDULE,
    RULE_MAX,
    RULE_SUM,
    S_FLOOR_U_MM,
    S_FLOOR_X_MM,
    S_LONG_MM,
    S_WINDOW_RULE,
    T_R_GATE_MM2,
)
from control.recipe import class_pools

from . import naive

SEEDS = [0, 1, 2]


def _random_state(rng, n):
    X = np.column_stack(
        [rng.uniform(0, 1000, n), rng.uniform(-300, 200, n), rng.normal(0, 3e-3, (n, 2))]
    )
    P = np.empty((n, 6))
    for a in range(2):
        pp = rng.uniform(0.5, 20, n)
        vv = rng.uniform(1e-7, 1e-4, n)
        pv = rng.uniform(-0.9, 0.9, n) * np.sqrt(pp * vv)
        P[:, 3 * a], P[:, 3 * a + 1], P[:, 3 * a + 2] = pp, pv, vv
    H = rng.uniform(2, 60, (n, 2))
    return X, P, H


# -- Kalman --------------------------------------------------------------------
@pytest.mark.parametrize("dt", [0.0, 1.0, 250.0, 1e4])
@pytest.mark.parametrize("q", [0.0, 2e-10])
def test_predict_equals_full_matrices(dt, q):
    X, P, _ = _random_state(np.random.default_rng(3), 7)
    X2, P2 = X.copy(), P.copy()
    G = np.ones((7, 2))  # NIS averages at the threshold: every row has the base noise q
    MU = np.zeros(7)  # the moving model alone: plain constant-velocity prediction
    XS, PS = X2[:, :2].copy(), P2[:, [0, 3]].copy()
    XA, PA, MA = np.zeros((7, 6)), np.zeros((7, 12)), np.zeros(7)
    kernels._predict(
        X2, P2, G, XS, PS, MU, XA, PA, MA, 7, dt, q, 1e-6, 1.0, 1e-6, 0.97, 0.97, 1e-4, 1e-11,
        0.0, 0.97, True,
    )  # fmt: skip
    for i in range(7):
        x_ref, p_ref = naive.predict(X[i], P[i], dt, q)
        np.testing.assert_allclose(X2[i], x_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(P2[i], p_ref, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("seed", SEEDS)
def test_kalman_update_equals_full_matrices(axis, seed):
    rng = np.random.default_rng(seed)
    X, P, _ = _random_state(rng, 1)
    innov, r = rng.normal(0, 3), rng.uniform(0.5, 9)
    x, v, pp, pv, vv = kernels._kf_axis(
        X[0, axis], X[0, axis + 2], *P[0, 3 * axis : 3 * axis + 3], innov, r
    )
    x_ref, p_ref = naive.update_axis(X[0], P[0], axis, innov, r)
    np.testing.assert_allclose([x, v], x_ref[[axis, axis + 2]], rtol=1e-12)
    np.testing.assert_allclose([pp, pv, vv], p_ref[3 * axis : 3 * axis + 3], rtol=1e-10)


# -- gating ----------------------------------------------------------------------
def _prm(cell=40.0, gate=13.8):
    from control.params import ControlParams
    from control.tracker import tracker_vector
    from sortline.config import load_config

    v = tracker_vector(load_config().geometry, ControlParams(gate_chi2=gate))
    v[21] = cell  # T_CELL_MM
    return v


def _boxes_near(rng, X, H, travel, n_det, top=-200.0, bottom=200.0):
    """Boxes around some tracks (jittered) plus clutter, clipped to the view."""
    src = rng.integers(0, max(len(X), 1), n_det)
    if len(X):
        cx = X[src, 0] + rng.normal(0, 3, n_det)
        cy = X[src, 1] + travel + rng.normal(0, 3, n_det)
        hx, hy = H[src, 0], H[src, 1]
    else:
        cx, cy = rng.uniform(0, 1000, n_det), rng.uniform(-200, 200, n_det)
        hx, hy = rng.uniform(2, 30, n_det), rng.uniform(2, 30, n_det)
    box = np.column_stack([cx - hx, cx + hx, np.maximum(cy - hy, top), np.minimum(cy + hy, bottom)])
    ok = box[:, 3] > box[:, 2] + 0.5
    return np.ascontiguousarray(box[ok])


@pytest.mark.parametrize(
    ("n_tracks", "n_dets", "cell"),
    [(0, 5, 40.0), (5, 0, 40.0), (1, 1, 40.0), (30, 40, 40.0), (60, 60, 7.0), (40, 50, 200.0)],
)
@pytest.mark.parametrize("seed", SEEDS)
def test_gate_equals_all_pairs(n_tracks, n_dets, cell, seed):
    rng = np.random.default_rng(seed)
    X, P, H = _random_state(rng, n_tracks)
    travel = 12.5
    prm = _prm(cell=cell, gate=40.0)
    dbox = _boxes_near(rng, X, H, travel, n_dets)
    clip = kernels._clip_codes(dbox, prm[17], prm[18], prm[13])
    yc = X[:, 1] + travel
    observable = (yc + H[:, 1] > prm[17]) & (yc - H[:, 1] < prm[18])
    et, ed, ec = kernels._gate(X, P, H, n_tracks, observable, dbox, clip, travel, prm)
    got = {(int(i), int(j)): c for i, j, c in zip(et, ed, ec, strict=True)}
    want = naive.gate_all_pairs(
        X, P, H, observable, dbox, clip, travel, 40.0, prm[T_R_GATE_MM2],
        prm[T_R_GATE_MM2] + prm[15], prm[17], prm[12],
    )  # fmt: skip
    assert got.keys() == want.keys()
    for key, c in want.items():
        assert got[key] == pytest.approx(c, rel=1e-12)


def test_clip_codes_table():
    box = np.array(
        [[0, 1, -200, 10], [0, 1, -10, 199.5], [0, 1, -199.9, 199.9], [0, 1, -50, 50]], float
    )
    np.testing.assert_array_equal(kernels._clip_codes(box, -200.0, 200.0, 1.0), [1, 2, 3, 0])


# -- assignment -----------------------------------------------------------------
def _random_graph(rng, nr, nc, density, gate, integer=False):
    mask = rng.random((nr, nc)) < density
    er, ec = np.nonzero(mask)
    cost = rng.integers(0, 4, er.size).astype(float) if integer else rng.uniform(0, gate, er.size)
    return er.astype(np.int64), ec.astype(np.int64), cost


@pytest.mark.parametrize(
    ("nr", "nc", "density", "integer"),
    [
        (0, 0, 0.5, False),
        (0, 4, 0.5, False),
        (1, 1, 1.0, False),
        (5, 3, 0.6, True),  # ties everywhere
        (8, 8, 1.0, True),
        (12, 20, 0.15, False),
        (40, 35, 0.08, False),
        (30, 30, 0.5, False),
    ],
)
@pytest.mark.parametrize("seed", SEEDS)
def test_gated_assignment_total_equals_scipy(nr, nc, density, integer, seed):
    rng = np.random.default_rng(seed)
    gate = 5.0
    er, ec, cost = _random_graph(rng, nr, nc, density, gate, integer)
    r2c, c2r = gated_assignment(nr, nc, er, ec, cost, gate)
    edge_cost = {(int(a), int(b)): c for a, b, c in zip(er, ec, cost, strict=True)}
    matched = [(i, int(j)) for i, j in enumerate(r2c) if j >= 0]
    assert all(c2r[j] == i for i, j in matched)
    assert (c2r >= 0).sum() == len(matched)
    assert all(pair in edge_cost for pair in matched)
    total = sum(edge_cost[p] for p in matched) + gate * (min(nr, nc) - len(matched))
    assert total == pytest.approx(naive.assignment_total(nr, nc, er, ec, cost, gate), abs=1e-9)


@pytest.mark.parametrize(("nr", "nc"), [(1, 1), (2, 3), (3, 3), (4, 6), (5, 5)])
@pytest.mark.parametrize("seed", SEEDS)
def test_lsa_rect_equals_brute_force(nr, nc, seed):
    cost = np.random.default_rng(seed).integers(0, 4, (nr, nc)).astype(float)  # many ties
    cols = kernels_assign._lsa_rect(cost)
    assert len(set(cols.tolist())) == nr
    assert cost[np.arange(nr), cols].sum() == naive.lsa_brute(cost)


@pytest.mark.parametrize(("nr", "nc"), [(6, 4), (4, 6), (7, 7)])
def test_min_cost_assignment_matches_scipy_shape(nr, nc):
    from scipy.optimize import linear_sum_assignment

    cost = np.random.default_rng(5).uniform(0, 10, (nr, nc))
    rows, cols = min_cost_assignment(cost)
    r_ref, c_ref = linear_sum_assignment(cost)
    np.testing.assert_array_equal(rows, r_ref)
    assert cost[rows, cols].sum() == pytest.approx(cost[r_ref, c_ref].sum())


@pytest.mark.parametrize("seed", SEEDS)
def test_components_equal_scipy(seed):
    rng = np.random.default_rng(seed)
    er, ec, _ = _random_graph(rng, 25, 30, 0.05, 1.0)
    comp, g = kernels_assign._components(25, 30, er, ec)
    ref = naive.components(25, 30, er, ec)
    assert ((comp >= 0) == (ref >= 0)).all()
    assert g == len(np.unique(ref[ref >= 0]))
    pairs = {(int(a), int(b)) for a, b in zip(comp[comp >= 0], ref[ref >= 0], strict=True)}
    assert len(pairs) == g  # the same partition up to labels


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((2, 2, [0], [0], [6.0], 5.0), "below the gate"),
        ((2, 2, [0], [2], [1.0], 5.0), "outside"),
        ((2, 2, [0, 0], [1, 1], [1.0, 2.0], 5.0), "twice"),
        ((2, 2, [0], [1], [1.0], float("nan")), "gate"),
    ],
)
def test_gated_assignment_rejects_bad_edges(args, words):
    with pytest.raises(ValueError, match=words):
        gated_assignment(*args)


# -- crossing and outlook ------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_crossing_equals_full_matrices(seed):
    X, P, H = _random_state(np.random.default_rng(seed), 6)
    for i in range(6):
        on, off, sig, _sig_c, x, sx, _sx_c = kernels._crossing(
            X[i, 0], X[i, 1], X[i, 2], X[i, 3], H[i, 1], *P[i], 2e-10, 2e-10, 1000.0, 40.0,
            300.0, 0.1, 2.25,
        )  # fmt: skip
        got = (on, off, sig, x, sx)
        want = naive.crossing(*X[i], H[i, 1], P[i], 1000.0, 40.0, 300.0, 0.1, 2e-10, 2.25)
        np.testing.assert_allclose(got, want, rtol=1e-9)


@pytest.mark.parametrize("pooled", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
def test_outlook_equals_loop(seed, pooled):
    rng = np.random.default_rng(seed)
    n, k = 40, 10
    ev = np.log(rng.dirichlet(np.ones(k), n)) * rng.integers(1, 6, n)[:, None]
    nev = rng.integers(0, 6, n)
    ev[nev == 0] = 0.0
    ev[3] = ev[4] = np.log(np.full(k, 1 / k)) * 2  # ties: uniform evidence
    nev[3] = nev[4] = 2
    cls_frac = np.array([-1, -1, -1, 0, 0, -1, 0, 1, -1, -1])
    thr = rng.uniform(0.05, 0.6, k)
    priority = rng.integers(0, 4, k)
    order = np.argsort(-priority, kind="stable")
    pool = class_pools(cls_frac, thr) if pooled else None
    got = class_outlook(ev, nev, cls_frac, thr, order, pool)
    for i in range(n):
        want = naive.outlook(ev[i], nev[i], cls_frac, thr, priority, pooled)
        assert (got[0][i], got[2][i], got[3][i]) == (want[0], want[2], want[3])
        assert got[1][i] == pytest.approx(want[1], rel=1e-12)


# -- valves ----------------------------------------------------------------------
def _sp(mode=0.0, rule=RULE_SUM, floors=(0.0, 0.0), long_mm=0.0):
    sp = np.zeros(N_SCHEDULE)
    sp[S_LONG_MM] = long_mm
    sp[S_WINDOW_RULE] = rule
    sp[S_FLOOR_U_MM], sp[S_FLOOR_X_MM] = floors
    sp[0] = 2.0  # k sigma
    sp[1], sp[2], sp[3] = 75.0, 50.0, 50.0  # open, close, min on ticks
    sp[7], sp[8], sp[9], sp[10] = 12.5, 0.0, 16.0, 80  # pitch, x0, blast, n valves
    sp[11] = sp[12] = 1.0
    sp[15] = mode
    sp[16], sp[17], sp[18] = 4.8, 3.3, 10.0
    sp[21] = 0.1
    sp[22] = 1.0
    return tuple(sp.tolist())


@pytest.mark.parametrize("seed", SEEDS)
def test_valve_cover_is_the_fewest_valves(seed):
    rng = np.random.default_rng(seed)
    sp = _sp()
    for _ in range(60):
        x, hx, sx = rng.uniform(80, 920), rng.uniform(0.5, 70), rng.uniform(0, 3)
        first, last, on, off = kernels_schedule._valve_request(
            5000.0, 5600.0, 20.0, x, sx, hx, 30.0, sp
        )
        half = hx + sx
        assert (first, last) == naive.valve_cover(x - half, x + half, x, 12.5, 0.0, 16.0, 80)
        assert on == np.floor(5000.0 - 2 * 20.0 - 75.0)
        assert off == np.ceil(5600.0 + 2 * 20.0 - 50.0)


@pytest.mark.parametrize("long_mm", [0.0, 60.0])
@pytest.mark.parametrize("seed", SEEDS)
def test_max_rule_window_is_the_larger_of_share_and_tolerance(seed, long_mm):
    """Max rule: half-length max(share x half length, k sigma + floor), centred;
    half-width max(share x hx, k_x sigma_x + floor_x), or the full width plus
    k_x sigma_x for a piece longer than ``long_mm`` (0: never), then the fewest valves."""
    rng = np.random.default_rng(seed)
    sp = list(_sp(rule=RULE_MAX, floors=(6.0, 4.0), long_mm=long_mm))
    sp[11], sp[12] = 0.7, 0.7  # cover x, u shares
    sp = tuple(sp)
    for _ in range(60):
        ton = 5000.0
        toff = ton + rng.uniform(20, 1500)  # 2..150 mm long
        sig, x, hx, sx = (
            rng.uniform(5, 60),
            rng.uniform(80, 920),
            rng.uniform(0.5, 70),
            rng.uniform(0, 3),
        )
        hu = rng.uniform(2, 60)
        first, last, on, off = kernels_schedule._valve_request(ton, toff, sig, x, sx, hx, hu, sp)
        half = max(0.35 * (toff - ton), 2.0 * sig + 6.0 / 0.1)
        tc = 0.5 * (ton + toff)
        assert on == np.floor(tc - half - 75.0)
        assert off == max(np.ceil(tc + half - 50.0), on + 50)
        half_w = max(0.7 * hx, sx + 4.0)
        if long_mm and 2 * max(hx, hu) > long_mm:
            half_w = max(half_w, hx + sx)
        assert (first, last) == naive.valve_cover(x - half_w, x + half_w, x, 12.5, 0.0, 16.0, 80)


def test_baseline_window_rule():
    """Nearest nozzle plus neighbours closer than half width + half pitch, length
    rounded up to 4.8 mm plus 3.3 mm plus the tuned margin, centred."""
    sp = _sp(mode=1.0)
    first, last, on, off = kernels_schedule._valve_request(
        5000.0, 5200.0, 99.0, 506.0, 0, 20.0, 10.0, sp
    )
    centres = (np.arange(80) + 0.5) * 12.5
    near = np.nonzero(np.abs(centres - 506.0) < 20.0 + 6.25)[0]
    assert (first, last) == (near[0], near[-1])
    length_mm = np.ceil(20.0 / 4.8) * 4.8 + 3.3 + 10.0
    assert on == np.floor(5100.0 - length_mm / 2 / 0.1 - 75.0)
    assert off == np.ceil(5100.0 + length_mm / 2 / 0.1 - 50.0)


@pytest.mark.parametrize("min_off", [0, 5, 40])
@pytest.mark.parametrize("seed", SEEDS)
def test_interval_merge_equals_naive(min_off, seed):
    rng = np.random.default_rng(seed)
    ivs = np.zeros((1, 32, 2), np.int64)
    cnt = np.zeros(1, np.int64)
    seg = np.zeros((34, 3), np.int64)
    ref: list[tuple[int, int]] = []
    for _ in range(25):
        a = int(rng.integers(0, 600))
        b = a + int(rng.integers(1, 80))
        s_all, e_all, lo, hi, nseg = kernels_schedule._plan(ivs, cnt, 0, a, b, min_off, seg)
        ref, want, flags = naive.merge_interval(ref, a, b, min_off)
        assert [tuple(x) for x in seg[:nseg, :2].tolist()] == want
        assert [bool(c) for c in seg[:nseg, 2]] == flags
        kernels_schedule._commit(ivs, cnt, 0, s_all, e_all, lo, hi)
        assert [tuple(x) for x in ivs[0, : cnt[0]].tolist()] == ref


@pytest.mark.parametrize(
    "keep",
    [[], [True], [False], [True, False, True, False, False, True], [False] * 5 + [True] * 5,
     [True] * 5 + [False] * 5],
)  # fmt: skip
@pytest.mark.parametrize("seed", SEEDS)
def test_fill_holes_keeps_exactly_the_live_rows(keep, seed):
    rng = np.random.default_rng(seed)
    keep = np.array(keep + list(rng.random(20) < 0.5), bool)
    rows = np.arange(len(keep)).astype(np.int64)
    table = np.column_stack([rows, rows * 10]).astype(float)
    dst, src = kernels._fill_holes(keep, len(keep))
    kernels._move_1d(rows, dst, src)
    kernels._move_2d(table, dst, src)
    n = int(keep.sum())
    assert sorted(rows[:n].tolist()) == np.nonzero(keep)[0].tolist()
    np.testing.assert_array_equal(table[:n, 1], rows[:n] * 10)
    assert len(dst) <= len(keep) - n  # one move per dropped row at most


# -- occlusion -----------------------------------------------------------------
def _random_boxes(rng, n, y_span=(-190.0, 190.0), x_span=400.0):
    x0 = rng.uniform(0, x_span, n)
    y0 = rng.uniform(*y_span, n)
    w = rng.choice([0.0, 1.8, 10.0, 60.0], n) * rng.uniform(0.5, 1.5, n)
    h = rng.uniform(0.5, 50.0, n)
    return np.column_stack([x0, x0 + w, y0, np.minimum(y0 + h, y_span[1] + 10)])


@pytest.mark.parametrize("seed", [*SEEDS, 3, 4])
def test_covered_share_equals_naive(geometry, seed):
    """Coverage through the frame's grid of taken boxes equals the plain sum."""
    from control.params import T_CELL_MM, ControlParams
    from control.tracker import tracker_vector

    rng = np.random.default_rng(seed)
    dbox = _random_boxes(rng, 40)
    owner = np.where(rng.random(40) < 0.6, rng.integers(0, 9, 40), -1).astype(np.int64)
    probes = np.vstack([_random_boxes(rng, 30), dbox[:5], [[5.0, 5.0, 0.0, 9.0]]])
    prm = tracker_vector(geometry, ControlParams())
    for cell_mm in (3.0, 14.0, 60.0):
        prm[T_CELL_MM] = cell_mm
        index = kernels._cover_index(dbox, owner, prm)
        for q, b in enumerate(probes):
            got = kernels._covered(b[0], b[1], b[2], b[3], dbox, *index[:3], q, index[3])
            assert got == pytest.approx(naive.covered_share(b, dbox, owner), abs=1e-12)
    empty = kernels._cover_index(dbox[:0], owner[:0], prm)
    assert kernels._covered(0.0, 10.0, 0.0, 10.0, dbox[:0], *empty[:3], 0, empty[3]) == 0.0


@pytest.mark.parametrize("occluded", [0.0, 0.5, 0.2])
@pytest.mark.parametrize("seed", SEEDS)
def test_miss_and_birth_scores_equal_naive(geometry, seed, occluded):
    """Unmatched tracks wholly in view lose ``miss_loss`` unless occluded; unowned
    boxes are born with the entry score near the top edge or when occluded."""
    import dataclasses

    from control.params import ControlParams
    from control.tracker import tracker_vector

    params = dataclasses.replace(ControlParams(), occluded_share=occluded)
    prm = tracker_vector(geometry, params)
    rng = np.random.default_rng(seed)
    n, nd, k = 30, 25, 3
    dbox = _random_boxes(rng, nd, (-150.0, 150.0), 200.0)  # crowded: boxes overlap
    cap = n + nd
    X, P, H = (np.zeros((cap, w)) for w in (4, 6, 2))
    X[:n], P[:n], H[:n] = _random_state(rng, n)
    X[:n, 0] = rng.uniform(0, 200, n)
    X[:n, 1] = rng.uniform(-150, 150, n)  # travel 0: u is the view y
    H[:n] = rng.uniform(1, 40, (n, 2))
    # half the tracks take a box (a random pairing), the rest missed it
    t2d = np.full(n, -1, np.int64)
    d2t = np.full(nd, -1, np.int64)
    pairs = rng.permutation(nd)[: n // 2]
    for i, j in enumerate(pairs):
        t2d[2 * i], d2t[j] = j, 2 * i
    # three unowned boxes coming out from under owned ones
    spare = np.nonzero(d2t < 0)[0][:3]
    big = pairs[np.argsort(-(dbox[pairs, 1] - dbox[pairs, 0]) * (dbox[pairs, 3] - dbox[pairs, 2]))]
    for j, b in zip(spare, big[:3], strict=True):
        cx, cy = 0.5 * (dbox[b, 0] + dbox[b, 1]), 0.5 * (dbox[b, 2] + dbox[b, 3])
        dbox[j] = cx - 1.0, cx + 1.0, cy - 0.2, cy + 0.2
    EV, NEV = np.zeros((cap, k)), np.zeros(cap, np.int64)
    SCORE = np.zeros(cap)
    SCORE[:n] = 3.0
    TID, CONF, DEC, NVIEW, MISS = (np.zeros(cap, np.int64) for _ in range(5))
    clip = kernels._clip_codes(dbox, prm[17], prm[18], prm[13])
    logp, has = np.zeros((nd, k), np.float32), np.ones(nd, np.bool_)
    observable = np.ones(n, np.bool_)
    before = SCORE[:n].copy()
    index = kernels._cover_index(dbox, d2t, prm)
    G, XS, PS, MU = np.ones((cap, 2)), X[:, :2].copy(), P[:, [0, 3]].copy(), np.full(cap, 0.5)
    XA, MA = np.zeros((cap, 6)), np.full(cap, 0.1)
    XA[:, :4] = X
    PA = np.zeros((cap, 12))
    PA[:, [0, 1, 3, 6, 7, 9]] = P
    PA[:, [5, 11]] = 1e-11
    kernels._update_matched(
        X, P, H, G, XS, PS, MU, XA, PA, MA, EV, NEV, SCORE, NVIEW, MISS, t2d, observable, dbox,
        clip, logp, has, 0.0, prm, *index,
    )  # fmt: skip
    counters = np.array([1, 0, 0, 0], np.int64)
    m = kernels._births(
        X, P, H, G, XS, PS, MU, XA, PA, MA, EV, NEV, TID, CONF, DEC, SCORE, NVIEW, MISS, n, d2t,
        dbox, clip, logp, has, 0.0, prm, counters, *index,
    )  # fmt: skip
    top, bottom, tol = prm[17], prm[18], prm[13]
    whole = (X[:n, 1] - H[:n, 1] > top + tol) & (X[:n, 1] + H[:n, 1] < bottom - tol)
    boxes = np.column_stack(
        [X[:n, 0] - H[:n, 0], X[:n, 0] + H[:n, 0], X[:n, 1] - H[:n, 1], X[:n, 1] + H[:n, 1]]
    )
    want_d, want_b = naive.miss_and_birth_scores(
        boxes, (t2d < 0) & whole, dbox, d2t, occluded, params.miss_loss,
        params.birth_entry_score, params.birth_mid_score, top + params.entry_band_mm,
    )  # fmt: skip
    got_d = (SCORE[:n] - before)[(t2d < 0) & whole]
    assert np.allclose(got_d, want_d)
    missed = (t2d < 0) & whole
    assert np.array_equal(MISS[:n][missed], (np.asarray(want_d) < 0).astype(np.int64))
    assert not MISS[:n][~missed].any()
    assert np.allclose(SCORE[n:m], want_b)
    if occluded == 0.0:
        assert np.all(got_d == -params.miss_loss)
    else:  # the case exercises both outcomes
        assert (got_d == 0).any() and (got_d < 0).any()
        assert (SCORE[n:m] == params.birth_entry_score).any()


@pytest.mark.parametrize("seed", SEEDS)
def test_mahal2_of_grown_boxes_equals_naive(seed):
    """Whole boxes longer than the track near the top edge (the leading-edge
    rule) and elsewhere, against the written-out twin."""
    rng = np.random.default_rng(seed)
    prm = _prm()
    r, ru, top, band = prm[1], prm[1] + prm[15], prm[17], prm[12]
    n_lead = 0
    for _ in range(300):
        hu = rng.uniform(2, 40)
        u = rng.uniform(top - 10, top + 80) + hu  # trailing edge near the top, travel 0
        grow = rng.choice([0.0, 1.0, 5.0, 15.0]) * rng.uniform(0.5, 1.5)
        lead = u + hu + rng.normal(0, 2)
        box = np.array([0.0, 10.0, max(lead - 2 * (hu + grow), top + 1.0), lead])
        puu = rng.uniform(0.5, 20)
        c = int(kernels._clip_codes(box[None], top, prm[18], prm[13])[0])
        got = kernels._mahal2(5.0, u, hu, 3.0, puu, 5.0, box[2], box[3], c, 0.0, r, ru, top, band)
        want = naive.mahal2(5.0, u, hu, 3.0, puu, box, c, 0.0, r, ru, top, band)
        assert got == pytest.approx(want, rel=1e-12)
        n_lead += kernels._lead_clip(u, hu, puu, box[2], box[3], c, 0.0, r, ru, top, band) != c
    assert n_lead >= 5  # the rule was exercised
