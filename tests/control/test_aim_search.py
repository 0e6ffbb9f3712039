"""Searching a target's air for the sub-window clear of its neighbours
(``ControlParams.aim_rule = "search"``): the kernel against a brute force over
every valve run and a grid of windows, hand-built scenes with known answers,
and whole streams through the controller."""

from __future__ import annotations

import numpy as np
import pytest

from control import kernels_aim as ka
from control import kernels_aim_search as ks
from control.controller import Controller
from control.kernels_schedule import NEIGHBOUR_BIN_MM, _bin_neighbours
from control.params import (
    AIM_RULE_SEARCH,
    N_SCHEDULE,
    S_AIM_FALLBACK,
    S_AIM_MARGIN,
    S_AIM_RULE,
    S_BLAST_MM,
    S_JET_MM,
    S_K_SIGMA,
    S_LIFT,
    S_MM_PER_TICK,
    S_PITCH_MM,
    S_SIGMA_X_K,
    S_TOLERANCE,
    S_X_FIRST_MM,
    ControlParams,
)
from control.synthetic import SyntheticCamera
from core.classes import DEFAULT_CLASSES

from . import naive
from .test_aim import RECIPE, TOUCHING, _air_of, _scene
from .test_controller import _covered
from .test_schedule import _objects, _recipe

PITCH, X_FIRST, BLAST, TOL, LIFT, MARGIN, K, KX = 6.25, 0.0, 8.0, 0.15, 0.5, 0.1, 2.0, 1.0
THIN = 0.0  # the fallback's thinnest margin (ControlParams.aim_fallback_margin)
STEP = 0.05  # its first step: halfway from MARGIN


def _sp(tol=TOL, lift=LIFT, margin=MARGIN, fallback=THIN):
    sp = np.zeros(N_SCHEDULE)
    sp[S_PITCH_MM], sp[S_X_FIRST_MM], sp[S_BLAST_MM] = PITCH, X_FIRST, BLAST
    sp[S_TOLERANCE], sp[S_K_SIGMA], sp[S_SIGMA_X_K] = tol, K, KX
    sp[S_LIFT], sp[S_AIM_MARGIN], sp[S_AIM_RULE] = lift, margin, AIM_RULE_SEARCH
    sp[S_AIM_FALLBACK] = fallback
    return tuple(sp.tolist())


N_VALVES = 160


def _committed_air(runs=()):
    """Valve command intervals (ivs, cnt, open, close delays 0) holding
    ``runs``: (first valve, last valve, on tick, off tick)."""
    ivs = np.zeros((N_VALVES, 32, 2), np.int64)
    cnt = np.zeros(N_VALVES, np.int64)
    for f, lst, on, off in runs:
        for v in range(f, lst + 1):
            ivs[v, cnt[v]] = on, off
            cnt[v] += 1
    return ivs, cnt, np.zeros(N_VALVES), np.zeros(N_VALVES)


def _kernel(i, first, last, on, off, CROSS, XC, H, FRAC, sp=None, committed=(), margin=None):
    sp = sp or _sp()
    nbr = np.arange(len(FRAC), dtype=np.int64)
    n_bins = int(2000 // NEIGHBOUR_BIN_MM) + 1
    rows, start, _ = _bin_neighbours(nbr, XC, H, NEIGHBOUR_BIN_MM, n_bins)
    return ks._aim_search(
        i, first, last, on, off, rows, start, 0, n_bins - 1, CROSS, XC, H, FRAC, sp,
        *_committed_air(committed), *ks.aim_work(), sp[S_AIM_MARGIN] if margin is None else margin,
        0.0,
    )  # fmt: skip


def _twin(i, rect, CROSS, XC, H, FRAC, n_grid=40, margin=MARGIN):
    return naive.aim_search(
        i, *rect, CROSS, XC, H, FRAC, K, KX, TOL, LIFT, margin, PITCH, X_FIRST, BLAST, n_grid
    )


def _lifted_by(i, rect, CROSS, XC, H, FRAC, margin=MARGIN):
    """The twin's judgement of one rectangle: (neighbours lifted, cover product)."""
    n_full, _, cover, _ = naive.aim_search(
        i, *rect, CROSS, XC, H, FRAC, K, KX, TOL, LIFT, margin, PITCH, X_FIRST, BLAST, 1
    )
    return n_full, cover


def _fallback(i, rect, CROSS, XC, H, FRAC, fires, sp=None):
    """``_aim_with_fallback`` on a scene (no air committed)."""
    nbr = np.arange(len(FRAC), dtype=np.int64)
    n_bins = int(2000 // NEIGHBOUR_BIN_MM) + 1
    rows, start, _ = _bin_neighbours(nbr, XC, H, NEIGHBOUR_BIN_MM, n_bins)
    return ks._aim_with_fallback(
        i, *rect, rows, start, 0, n_bins - 1, CROSS, XC, H, FRAC, sp or _sp(),
        *_committed_air(), *ks.aim_work(), fires,
    )  # fmt: skip


# ---------------------------------------------------------------- hand-built
def test_a_neighbour_under_less_than_the_lift_share_needs_no_cut():
    """A pcb crossing just before the target, its last 20 % (one sigma
    included) under the air: the air does not lift it, nothing is cut (the
    cut rule clears it to the 15 % tolerance)."""
    CROSS, XC, H, FRAC = _scene([(0, 100, 1.0, 500, 0.3, 30, 0), (-50, 30, 1.0, 500, 0.3, 30, -1)])
    rect = _air_of(0, 100, 500, 30)
    out = _kernel(0, *rect, CROSS, XC, H, FRAC)
    assert out == (*rect, ka.AIM_CLEAR)


def test_a_neighbour_over_the_leading_half_gets_the_air_started_at_its_spare_share():
    # pcb -20..60 over the target's first 60 ticks: air 15..85 holds 45 of its 80
    CROSS, XC, H, FRAC = _scene([(0, 100, 1.0, 500, 0.3, 30, 0), (-20, 60, 1.0, 500, 0.3, 30, -1)])
    rect = _air_of(0, 100, 500, 30, share=0.9)
    f, lst, on, off, st = _kernel(0, *rect, CROSS, XC, H, FRAC)
    assert st == ka.AIM_CUT
    assert (f, lst, off) == (rect[0], rect[1], rect[3])
    # after the pcb (one sigma: ends at 61), up to 40 % of its 80 ticks under air
    assert on == pytest.approx(61.0 - (LIFT - MARGIN) * 80.0)
    cu, cx = ka._target_cover(0, f, lst, on, off, CROSS, XC, H, _sp())
    assert min(cu, cx) >= LIFT + MARGIN - 1e-9


def test_two_neighbours_on_two_sides_are_cut_together():
    """A pcb alongside on the right and one over the trailing end: one cut
    across the belt and one along it, in the same rectangle."""
    rows = [
        (0, 100, 1.0, 500, 0.3, 30, 0),
        (0, 100, 1.0, 530, 0.3, 15, -1),  # x 515..545, the whole crossing
        (50, 130, 1.0, 490, 0.3, 20, -1),  # over the trailing half
    ]
    CROSS, XC, H, FRAC = _scene(rows)
    rect = _air_of(0, 100, 500, 30, share=1.0)
    assert _lifted_by(0, rect, CROSS, XC, H, FRAC)[0] == 2
    f, lst, on, off, st = _kernel(0, *rect, CROSS, XC, H, FRAC)
    assert st == ka.AIM_CUT
    assert lst < rect[1] and off < rect[3] and f == rect[0] and on == rect[2]
    assert _lifted_by(0, (f, lst, on, off), CROSS, XC, H, FRAC)[0] == 0


def test_a_neighbour_on_the_middle_fails_and_keeps_the_full_window():
    CROSS, XC, H, FRAC = _scene([(0, 100, 1.0, 500, 0.3, 30, 0), (30, 70, 1.0, 500, 0.3, 15, -1)])
    rect = _air_of(0, 100, 500, 30)
    assert _kernel(0, *rect, CROSS, XC, H, FRAC) == (*rect, ka.AIM_FAILED)


def test_of_two_neighbours_the_one_that_can_be_spared_is():
    """One pcb on the middle (cannot be spared), one over the leading end (can):
    the search fails, but returns the window that lifts only the first."""
    rows = [
        (0, 100, 1.0, 500, 0.3, 30, 0),
        (35, 65, 1.0, 500, 0.3, 10, -1),
        (-40, 50, 1.0, 505, 0.3, 30, -1),
    ]
    CROSS, XC, H, FRAC = _scene(rows)
    rect = _air_of(0, 100, 500, 30, share=0.9)
    f, lst, on, off, st = _kernel(0, *rect, CROSS, XC, H, FRAC)
    assert st == ka.AIM_FAILED
    assert _lifted_by(0, rect, CROSS, XC, H, FRAC)[0] == 2
    assert _lifted_by(0, (f, lst, on, off), CROSS, XC, H, FRAC)[0] == 1


def test_an_uncertain_neighbour_is_given_a_wider_berth():
    rows = [(0, 100, 1.0, 500, 0.3, 30, 0), (-20, 60, 1.0, 500, 0.3, 30, -1)]
    rect = _air_of(0, 100, 500, 30, share=0.9)
    CROSS, XC, H, FRAC = _scene(rows)
    sure = _kernel(0, *rect, CROSS, XC, H, FRAC)
    CROSS[1, 2] = 6.0
    unsure = _kernel(0, *rect, CROSS, XC, H, FRAC)
    assert sure[4] == unsure[4] == ka.AIM_CUT
    assert unsure[2] == pytest.approx(sure[2] + 5.0)  # started 5 ticks (sigma) later


def test_the_jets_length_keeps_the_air_further_from_a_neighbour():
    rows = [(0, 100, 1.0, 500, 0.3, 30, 0), (-20, 60, 1.0, 500, 0.3, 30, -1)]
    rect = _air_of(0, 100, 500, 30, share=0.9)
    CROSS, XC, H, FRAC = _scene(rows)
    sp = np.array(_sp())
    sp[S_MM_PER_TICK], sp[S_JET_MM] = 0.5, 4.0  # 2 mm of jet each side: 4 ticks
    on = _kernel(0, *rect, CROSS, XC, H, FRAC, sp=tuple(sp.tolist()))[2]
    assert on == pytest.approx(61.0 + 4.0 - (LIFT - MARGIN) * 80.0)


def test_an_uncertain_target_is_not_cut_as_close():
    rows = [(0, 100, 1.0, 500, 0.3, 30, 0), (-20, 60, 1.0, 500, 0.3, 30, -1)]
    rect = _air_of(0, 100, 500, 30, share=0.9)
    CROSS, XC, H, FRAC = _scene(rows)
    assert _kernel(0, *rect, CROSS, XC, H, FRAC)[4] == ka.AIM_CUT
    CROSS[0, 2] = 12.0  # 2 sigma = 24 ticks: the cut leaves under 60 % for some errors
    assert _kernel(0, *rect, CROSS, XC, H, FRAC)[4] == ka.AIM_FAILED


def test_air_already_sent_over_a_neighbour_counts_with_the_new_air():
    """A pcb over the target's leading 20 %: spared by the target's air alone,
    but another target's air already covers its first 40 ticks: together
    they would lift it, so the air starts after it; had the earlier air
    lifted it by itself, nothing this target does could spare it."""
    rows = [(0, 100, 1.0, 500, 0.3, 30, 0), (-50, 30, 1.0, 500, 0.3, 30, -1)]
    CROSS, XC, H, FRAC = _scene(rows)
    rect = _air_of(0, 100, 500, 30, share=0.9)  # air 5..95: 26 of the pcb's 80 ticks
    assert _kernel(0, *rect, CROSS, XC, H, FRAC)[4] == ka.AIM_CLEAR
    earlier = [(rect[0], rect[1], -60, -20)]  # the pcb's first 31 of 80 ticks (+ sigma)
    *_, on, _off, st = _kernel(0, *rect, CROSS, XC, H, FRAC, committed=earlier)
    assert st == ka.AIM_CUT
    # together at most 40 % of its 80 ticks: 1 tick left for the new air (+ sigma)
    assert on == pytest.approx(30.0)
    lifted_already = [(rect[0], rect[1], -60, -5)]  # 46 of 80: lifted whatever we do
    assert _kernel(0, *rect, CROSS, XC, H, FRAC, committed=lifted_already) == (
        *rect,
        ka.AIM_CLEAR,
    )


def test_union_of_two_intervals():
    assert ks._union_len(0.0, 10.0, 5.0, 20.0) == 20.0
    assert ks._union_len(0.0, 10.0, 15.0, 20.0) == 15.0
    assert ks._union_len(0.0, 10.0, 1e300, -1e300) == 10.0  # an empty one
    assert ks._union_len(0.0, 10.0, 2.0, 3.0) == 10.0


def test_a_neighbour_of_the_same_fraction_is_no_conflict():
    CROSS, XC, H, FRAC = _scene([(0, 100, 1.0, 500, 0.3, 30, 0), (30, 70, 1.0, 500, 0.3, 15, 0)])
    rect = _air_of(0, 100, 500, 30)
    assert _kernel(0, *rect, CROSS, XC, H, FRAC) == (*rect, ka.AIM_CLEAR)


# a pcb over the target's trailing part (from ``pcb_at`` for 80 ticks): at the
# full margin the air must stop when 0.4 of the pcb (one sigma included) is
# under it, too early for 0.6 of the target (k sigma); the first step (0.05)
# stops it at 0.45 and needs 0.55, the second (0.0) at 0.5 and needs 0.5
TRAILING = [(0, 100, 1.0, 500, 0.3, 30, 0), (30, 110, 1.0, 500, 0.3, 30, -1)]


@pytest.mark.parametrize(("pcb_at", "margin"), [(30.0, STEP), (20.0, THIN)])
def test_the_fallback_spares_at_a_thinner_margin_what_the_full_one_cannot(pcb_at, margin):
    CROSS, XC, H, FRAC = _scene([TRAILING[0], (pcb_at, pcb_at + 80, 1.0, 500, 0.3, 30, -1)])
    rect = _air_of(0, 100, 500, 30, share=0.9)
    strict = _kernel(0, *rect, CROSS, XC, H, FRAC)
    assert strict[4] == ka.AIM_FAILED
    f, lst, on, off, st = _fallback(0, rect, CROSS, XC, H, FRAC, True)
    assert st == ka.AIM_CUT
    assert (f, lst, on) == (rect[0], rect[1], rect[2])
    assert off == pytest.approx(pcb_at - 1.0 + (LIFT - margin) * 80.0)
    assert _lifted_by(0, (f, lst, on, off), CROSS, XC, H, FRAC, margin=margin)[0] == 0
    assert _lifted_by(0, (f, lst, on, off), CROSS, XC, H, FRAC)[0] == 1  # by the full margin
    cu, cx = ka._target_cover(0, f, lst, on, off, CROSS, XC, H, _sp())
    assert LIFT + margin - 1e-9 <= cu < LIFT + margin + 0.05 and cx >= LIFT + MARGIN


def test_the_fallback_counts_the_jet_over_the_target_too():
    """With an 8 mm jet (4 ticks each side): the strict search keeps the pcb
    4 ticks further off and does not count the jet over the target; the
    fallback counts it (its air reaches the target as it reaches the pcb), so
    its first step (0.05) already holds 0.55 of the target: the air stops
    when 0.45 of the pcb, one sigma and the jet included, is under it."""
    CROSS, XC, H, FRAC = _scene([TRAILING[0], (25, 105, 1.0, 500, 0.3, 30, -1)])
    sp = np.array(_sp())
    sp[S_JET_MM], sp[S_MM_PER_TICK] = 8.0, 1.0
    sp = tuple(sp.tolist())
    rect = _air_of(0, 100, 500, 30, share=0.9)
    assert _kernel(0, *rect, CROSS, XC, H, FRAC, sp=sp)[4] == ka.AIM_FAILED
    f, lst, on, off, st = _fallback(0, rect, CROSS, XC, H, FRAC, True, sp)
    assert st == ka.AIM_CUT and on == rect[2]
    # without the jet over the target only the second step (0.0) holds it: off 60
    assert off == pytest.approx(25.0 - 1.0 - 4.0 + (LIFT - STEP) * 80.0)
    cu, _ = ka._target_cover(0, f, lst, on - 4.0, off + 4.0, CROSS, XC, H, sp)
    assert cu >= LIFT + STEP
    cu_no_jet, _ = ka._target_cover(0, f, lst, on, off, CROSS, XC, H, sp)
    assert cu_no_jet < LIFT + STEP


@pytest.mark.parametrize(
    ("fires", "thin"),
    [(False, THIN), (True, MARGIN)],  # purity leaves the target; thin = full: off
)
def test_no_fallback_keeps_the_strict_answer(fires, thin):
    CROSS, XC, H, FRAC = _scene(TRAILING)
    rect = _air_of(0, 100, 500, 30, share=0.9)
    strict = _kernel(0, *rect, CROSS, XC, H, FRAC)
    assert _fallback(0, rect, CROSS, XC, H, FRAC, fires, _sp(fallback=thin)) == strict


def test_a_neighbour_no_thin_window_spares_keeps_the_strict_answer():
    # a pcb on the middle of the target: no margin spares it
    CROSS, XC, H, FRAC = _scene([(0, 100, 1.0, 500, 0.3, 30, 0), (30, 70, 1.0, 500, 0.3, 15, -1)])
    rect = _air_of(0, 100, 500, 30)
    assert _fallback(0, rect, CROSS, XC, H, FRAC, True) == (*rect, ka.AIM_FAILED)


def test_a_target_the_full_margin_aims_does_not_fall_back():
    CROSS, XC, H, FRAC = _scene([(0, 100, 1.0, 500, 0.3, 30, 0), (-20, 60, 1.0, 500, 0.3, 30, -1)])
    rect = _air_of(0, 100, 500, 30, share=0.9)
    assert _fallback(0, rect, CROSS, XC, H, FRAC, True) == _kernel(0, *rect, CROSS, XC, H, FRAC)


# ---------------------------------------------------------------- brute force
@pytest.mark.parametrize("seed", range(5))
def test_kernel_is_as_good_as_a_brute_force_on_random_crowds(seed):
    rng = np.random.default_rng(seed)
    n = 16
    t0 = rng.uniform(0, 300, n)
    length = rng.uniform(20, 120, n)
    x = rng.uniform(420, 580, n)
    rows = np.column_stack(
        [t0, t0 + length, rng.uniform(0.2, 4, n), x, rng.uniform(0.1, 1.5, n),
         rng.uniform(4, 30, n), rng.integers(-1, 1, n)]
    )  # fmt: skip
    CROSS, XC, H, FRAC = _scene(rows.tolist())
    seen = set()
    for i in np.flatnonzero(FRAC == 0)[:5]:
        rect = _air_of(CROSS[i, 0], CROSS[i, 1], XC[i, 0], H[i, 0], share=0.9)
        f, lst, on, off, st = _kernel(i, *rect, CROSS, XC, H, FRAC)
        n_full, n_best, cover_best, _ = _twin(i, rect, CROSS, XC, H, FRAC)
        n_got, cover_got = _lifted_by(i, (f, lst, on, off), CROSS, XC, H, FRAC)
        assert (st == ka.AIM_CLEAR) == (n_full == 0)
        assert (st != ka.AIM_FAILED) == (n_got == 0)
        assert n_got <= n_best, (i, n_got, n_best)
        if n_got == n_best:
            assert cover_got >= cover_best - 1e-9
        cu, cx = ka._target_cover(i, f, lst, on, off, CROSS, XC, H, _sp())
        cu0, cx0 = ka._target_cover(i, *rect, CROSS, XC, H, _sp())
        assert cu >= min(LIFT + MARGIN, cu0) - 1e-9 and cx >= min(LIFT + MARGIN, cx0) - 1e-9
        seen.add(st)
    assert len(seen) >= 2, seen


def _fallback_crowd(seed):
    """One random crowd: ``_aim_with_fallback`` against the strict kernel and
    the brute force at the thin margin -> targets aimed at the thin margin."""
    rng = np.random.default_rng(100 + seed)
    n = 16
    t0 = rng.uniform(0, 300, n)
    length = rng.uniform(20, 120, n)
    rows = np.column_stack(
        [t0, t0 + length, rng.uniform(0.2, 4, n), rng.uniform(420, 580, n),
         rng.uniform(0.1, 1.5, n), rng.uniform(4, 30, n), rng.integers(-1, 1, n)]
    )  # fmt: skip
    CROSS, XC, H, FRAC = _scene(rows.tolist())
    thin_used = 0
    for i in np.flatnonzero(FRAC == 0)[:5]:
        rect = _air_of(CROSS[i, 0], CROSS[i, 1], XC[i, 0], H[i, 0], share=0.9)
        strict = _kernel(i, *rect, CROSS, XC, H, FRAC)
        got = _fallback(i, rect, CROSS, XC, H, FRAC, True)
        if strict[4] != ka.AIM_FAILED:
            assert got == strict
            continue
        _, n_best, _, _ = _twin(i, rect, CROSS, XC, H, FRAC, margin=THIN)
        if got[4] == ka.AIM_FAILED:
            assert got == strict and n_best >= 1
            continue
        thin_used += 1
        assert _lifted_by(i, got[:4], CROSS, XC, H, FRAC, margin=THIN)[0] == 0
        cu, cx = ka._target_cover(i, *got[:4], CROSS, XC, H, _sp())
        cu0, cx0 = ka._target_cover(i, *rect, CROSS, XC, H, _sp())
        assert cu >= min(LIFT + THIN, cu0) - 1e-9 and cx >= min(LIFT + THIN, cx0) - 1e-9
    return thin_used


def test_fallback_is_as_good_as_a_brute_force_at_the_thin_margin():
    assert sum(_fallback_crowd(seed) for seed in range(5)) >= 1


def test_empty_neighbourhood():
    CROSS, XC, H, FRAC = _scene([(0, 100, 1.0, 500, 0.3, 30, 0)])
    rect = _air_of(0, 100, 500, 30)
    assert _kernel(0, *rect, CROSS, XC, H, FRAC) == (*rect, ka.AIM_CLEAR)


# ---------------------------------------------------------------- whole streams
@pytest.mark.parametrize(
    ("prefer", "rule", "aimed", "counter", "pcb_lifted"),
    [
        ("recovery", "search", 0, "co_ejections_accepted", False),  # full window, no aiming
        # 30 % of the pcb's 20 mm under the window, and the jet reaches 4 mm
        # further: over the 40 % it may take, so the air starts later
        ("balanced", "search", 1, None, False),
        ("purity", "search", 1, None, False),
        ("balanced", "cut", 1, None, False),  # cut to the tolerance
    ],
)
def test_stream_on_a_touching_pair(
    geometry, run_stream, tmp_path, prefer, rule, aimed, counter, pcb_lifted
):
    recipe = _recipe(tmp_path, RECIPE.format(prefer=prefer, pcb=5))
    obj = _objects(TOUCHING)
    cam = SyntheticCamera(geometry, obj, len(DEFAULT_CLASSES), seed=1)
    ctl = Controller(geometry, recipe, DEFAULT_CLASSES, params=ControlParams(aim_rule=rule))
    ctl, pulses = run_stream(ctl, cam, 80)
    st = ctl.stats()
    assert len(pulses) > 0
    assert st["targets_aimed"] == aimed
    for name in ("co_ejections_accepted", "co_ejections_avoided"):
        assert st[name] == (1 if name == counter else 0), (name, st)
    covered = _covered(obj, cam, pulses, geometry)
    assert covered[0] and covered[1] == pcb_lifted


# a copper with a pcb alongside it over 60 % of its length: the full window
# lifts the pcb too; without the valves on the pcb's side it does not
ALONGSIDE = [(500.0, -425.0, 20.0, 40.0, "copper"), (522.0, -410.0, 12.0, 30.0, "pcb")]


@pytest.mark.parametrize(("prefer", "aimed"), [("recovery", 0), ("balanced", 1), ("purity", 1)])
def test_stream_aims_around_a_neighbour_alongside(geometry, run_stream, tmp_path, prefer, aimed):
    recipe = _recipe(tmp_path, RECIPE.format(prefer=prefer, pcb=5))
    obj = _objects(ALONGSIDE)
    cam = SyntheticCamera(geometry, obj, len(DEFAULT_CLASSES), seed=1)
    ctl, pulses = run_stream(Controller(geometry, recipe, DEFAULT_CLASSES), cam, 80)
    assert ctl.stats()["targets_aimed"] == aimed
    covered = _covered(obj, cam, pulses, geometry)
    assert covered[0]
    assert covered[1] == (aimed == 0)


def test_stream_purity_leaves_what_it_cannot_aim_around(geometry, run_stream, tmp_path):
    rows = [(500.0, -425.0, 25.0, 25.0, "copper"), (500.0, -425.0, 10.0, 10.0, "pcb")]
    for prefer, fires in (("purity", False), ("balanced", True)):
        recipe = _recipe(tmp_path, RECIPE.format(prefer=prefer, pcb=5))
        cam = SyntheticCamera(geometry, _objects(rows), len(DEFAULT_CLASSES), seed=1)
        ctl, pulses = run_stream(Controller(geometry, recipe, DEFAULT_CLASSES), cam, 80)
        assert (len(pulses) > 0) == fires, prefer
        counter = "co_ejections_avoided" if prefer == "purity" else "co_ejections_accepted"
        assert ctl.stats()[counter] == 1


def test_search_strict_turns_the_fallback_off_and_search_back_on(geometry, tmp_path):
    recipe = _recipe(tmp_path, RECIPE.format(prefer="balanced", pcb=5))
    params = ControlParams(aim_fallback_margin=0.02)
    ctl = Controller(geometry, recipe, DEFAULT_CLASSES, params=params)
    ctl.set_aim_rule("search-strict")
    assert ctl.params.aim_rule == "search"
    assert ctl.params.aim_fallback_margin == ctl.params.aim_margin
    ctl.set_aim_rule("search")
    assert ctl.params.aim_fallback_margin == pytest.approx(0.02)
    with pytest.raises(ValueError, match="aim_fallback_margin"):
        ControlParams(aim_margin=0.1, aim_fallback_margin=0.2)


def test_params_refuse_a_margin_that_swallows_the_lift_share():
    with pytest.raises(ValueError, match="aim_margin"):
        ControlParams(lift_share=0.5, aim_margin=0.5)
    with pytest.raises(ValueError, match="aim_rule"):
        ControlParams(aim_rule="greedy")  # type: ignore[arg-type]
