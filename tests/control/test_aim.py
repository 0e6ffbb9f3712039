"""Aiming a target's air around its neighbours (recipe ``prefer``): the kernel
against its readable twin, hand-built conflicts with known cuts, and whole
streams through the controller for each ``prefer``."""

from __future__ import annotations

import numpy as np
import pytest

from control import kernels_aim as ka
from control.controller import Controller
from control.kernels_schedule import NEIGHBOUR_BIN_MM, _bin_neighbours
from control.params import (
    N_SCHEDULE,
    S_AIM_COVER,
    S_BLAST_MM,
    S_K_SIGMA,
    S_PITCH_MM,
    S_SIGMA_X_K,
    S_TOLERANCE,
    S_X_FIRST_MM,
    ControlParams,
)
from control.synthetic import SyntheticCamera
from core.classes import DEFAULT_CLASSES

from . import naive
from .test_controller import _air, _covered
from .test_schedule import _objects, _recipe

PITCH, X_FIRST, BLAST, TOL, NEED, K, KX = 6.25, 0.0, 8.0, 0.15, 0.6, 2.0, 1.0
CUT = ControlParams(aim_rule="cut")  # the streams below pin the cut rule (search: test_aim_search)


def _sp(pitch=PITCH, tol=TOL, need=NEED):
    sp = np.zeros(N_SCHEDULE)
    sp[S_PITCH_MM], sp[S_X_FIRST_MM], sp[S_BLAST_MM] = pitch, X_FIRST, BLAST
    sp[S_TOLERANCE], sp[S_AIM_COVER], sp[S_K_SIGMA], sp[S_SIGMA_X_K] = tol, need, K, KX
    return tuple(sp.tolist())


def _scene(rows):
    """rows: (t_lead, t_trail, sigma_t, x, sigma_x, hx, fraction) -> CROSS, XC, H, FRAC."""
    a = np.array(rows, float)
    CROSS = np.ascontiguousarray(a[:, 0:3])
    XC = np.ascontiguousarray(a[:, [3, 4]])
    H = np.column_stack([a[:, 5], 0.5 * (a[:, 1] - a[:, 0])])
    return CROSS, XC, H, a[:, 6].astype(np.int64)


def _kernel(i, first, last, on, off, CROSS, XC, H, FRAC, sp):
    nbr = np.arange(len(FRAC), dtype=np.int64)
    n_bins = int(2000 // NEIGHBOUR_BIN_MM) + 1
    rows, start, _ = _bin_neighbours(nbr, XC, H, NEIGHBOUR_BIN_MM, n_bins)
    return ka._aim(i, first, last, on, off, rows, start, 0, n_bins - 1, CROSS, XC, H, FRAC, sp)


def _twin(i, first, last, on, off, CROSS, XC, H, FRAC, pitch=PITCH, tol=TOL, need=NEED):
    return naive.aim(
        i, first, last, on, off, CROSS, XC, H, FRAC, K, KX, tol, need, pitch, X_FIRST, BLAST
    )


def _air_of(t0, t1, x, hx, share=0.7):
    """A centred window over ``share`` of the piece, valves over ``share`` of its width."""
    tc, half = 0.5 * (t0 + t1), 0.5 * share * (t1 - t0)
    first = int(np.floor((x - share * hx + BLAST / 2 - X_FIRST) / PITCH - 0.5))
    last = int(np.ceil((x + share * hx - BLAST / 2 - X_FIRST) / PITCH - 0.5))
    return first, last, tc - half, tc + half


# ---------------------------------------------------------------- hand-built
def test_a_neighbour_crossing_just_before_gets_the_air_started_after_it():
    # target 0..100 ticks at x 500 (+-30 mm), air 15..85; a pcb (fraction -1)
    # crossing -50..30, over the target's leading part at the same x: only a
    # later start clears it
    CROSS, XC, H, FRAC = _scene([(0, 100, 1.0, 500, 0.3, 30, 0), (-50, 30, 1.0, 500, 0.3, 30, -1)])
    first, last, on, off = _air_of(0, 100, 500, 30)
    f, lst, a_on, a_off, st = _kernel(0, first, last, on, off, CROSS, XC, H, FRAC, _sp())
    assert st == ka.AIM_CUT
    assert (f, lst, a_off) == (first, last, off)  # the valves and the end stay
    # the pcb's widened footprint ends at 31; 15 % of its 80-tick crossing may be touched
    assert a_on == pytest.approx(31.0 - TOL * 80.0)
    assert ka._target_cover(0, f, lst, a_on, a_off, CROSS, XC, H, _sp())[0] >= NEED


def test_a_neighbour_beside_it_costs_the_valves_on_its_side():
    # target x 470..530; a pcb at x 524..564 alongside, same crossing
    CROSS, XC, H, FRAC = _scene([(0, 100, 1.0, 500, 0.3, 30, 0), (0, 100, 1.0, 544, 0.3, 20, -1)])
    first, last, on, off = _air_of(0, 100, 500, 30, share=1.0)
    f, lst, a_on, a_off, st = _kernel(0, first, last, on, off, CROSS, XC, H, FRAC, _sp())
    assert st == ka.AIM_CUT
    assert (f, a_on, a_off) == (first, on, off) and lst < last
    right_edge = X_FIRST + (lst + 0.5) * PITCH + BLAST / 2
    assert right_edge <= 524.0 - 0.3 + TOL * 40.0 + 1e-9  # within the tolerance of the pcb
    assert ka._target_cover(0, f, lst, a_on, a_off, CROSS, XC, H, _sp())[1] >= NEED


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # the pcb lies on the target's middle: any cut leaves too little air
        ([(0, 100, 1.0, 500, 0.3, 30, 0), (30, 70, 1.0, 500, 0.3, 15, -1)], ka.AIM_FAILED),
        # the neighbour is of the target's own fraction: no conflict
        ([(0, 100, 1.0, 500, 0.3, 30, 0), (-50, 30, 1.0, 500, 0.3, 30, 0)], ka.AIM_CLEAR),
        # touched within the tolerance (its widened footprint reaches 4.5 ticks into
        # the air: 7 % of its crossing)
        ([(0, 100, 1.0, 500, 0.3, 30, 0), (-50, 18.5, 1.0, 500, 0.3, 30, -1)], ka.AIM_CLEAR),
    ],
)
def test_conflicts_that_cannot_or_need_not_be_cut(rows, expected):
    CROSS, XC, H, FRAC = _scene(rows)
    first, last, on, off = _air_of(0, 100, 500, 30)
    out = _kernel(0, first, last, on, off, CROSS, XC, H, FRAC, _sp())
    assert out[4] == expected
    assert out[:4] == (first, last, on, off)  # unchanged unless cut


def test_an_uncertain_crossing_is_not_cut_as_close():
    """The same neighbour, a target whose crossing is uncertain by 15 ticks: the
    cut that suited a sure one would leave too little of it under air for an
    error within k sigma."""
    rows = [(0, 100, 1.0, 500, 0.3, 30, 0), (-50, 30, 1.0, 500, 0.3, 30, -1)]
    first, last, on, off = _air_of(0, 100, 500, 30)
    CROSS, XC, H, FRAC = _scene(rows)
    assert _kernel(0, first, last, on, off, CROSS, XC, H, FRAC, _sp())[4] == ka.AIM_CUT
    CROSS[0, 2] = 15.0
    assert _kernel(0, first, last, on, off, CROSS, XC, H, FRAC, _sp())[4] == ka.AIM_FAILED


# ---------------------------------------------------------------- twin
@pytest.mark.parametrize("seed", range(6))
def test_kernel_matches_its_twin_on_random_crowds(seed):
    rng = np.random.default_rng(seed)
    n = 40
    t0 = rng.uniform(0, 600, n)
    length = rng.uniform(20, 150, n)
    x = rng.uniform(100, 400, n)
    rows = np.column_stack(
        [t0, t0 + length, rng.uniform(0.2, 6, n), x, rng.uniform(0.1, 2, n),
         rng.uniform(4, 40, n), rng.integers(-1, 2, n)]
    )  # fmt: skip
    CROSS, XC, H, FRAC = _scene(rows.tolist())
    outcomes = set()
    for i in range(n):
        if FRAC[i] < 0:
            continue
        first, last, on, off = _air_of(CROSS[i, 0], CROSS[i, 1], XC[i, 0], H[i, 0])
        got = _kernel(i, first, last, on, off, CROSS, XC, H, FRAC, _sp())
        want = _twin(i, first, last, on, off, CROSS, XC, H, FRAC)
        assert got[4] == want[4], (i, got, want)
        assert got[:2] == want[:2]
        np.testing.assert_allclose(got[2:4], want[2:4], atol=1e-9)
        outcomes.add(got[4])
    assert len(outcomes) >= 2  # the crowd exercises more than one outcome


@pytest.mark.parametrize("s", [0.0, 0.5, 7.0, 40.0])
def test_worst_cover_is_at_an_end_of_the_shift_range(s):
    rng = np.random.default_rng(int(s * 10))
    for _ in range(200):
        lo, a = rng.uniform(0, 100, 2)
        hi, b = lo + rng.uniform(0, 80), a + rng.uniform(1, 80)
        assert ka._worst_cover(lo, hi, a, b, s) == pytest.approx(
            naive.worst_cover(lo, hi, a, b, s), abs=1e-9
        )


# ---------------------------------------------------------------- whole streams
# copper (80 mm long) with a pcb over its leading edge: air centred on the
# copper (70 % of its length) would touch 30 % of the pcb's length
TOUCHING = [(500.0, -425.0, 25.0, 40.0, "copper"), (500.0, -393.0, 25.0, 10.0, "pcb")]
RECIPE = (
    'name = "aim"\nversion = 1\nco_ejection_tolerance = 0.15\nprefer = "{prefer}"\n'
    '[fractions]\neject = 0\n[classes.copper]\nfraction = "eject"\npriority = 10\n'
    "[classes.pcb]\npriority = {pcb}\n"
)


def _touch_share(pulses, cam, obj, geometry, j):
    """The largest share of object j's footprint (time x width) under one pulse's air."""
    t_on, t_off = cam.crossing_ticks()
    on, off, xl, xr = _air(pulses, geometry, cam.start_tick + 20_000)
    ov_t = np.clip(np.minimum(off, t_off[j]) - np.maximum(on, t_on[j]), 0, None)
    x, hx = obj.x_mm[j], obj.hx_mm[j]
    ov_x = np.clip(np.minimum(xr, x + hx) - np.maximum(xl, x - hx), 0, None)
    return float((ov_t / (t_off[j] - t_on[j]) * ov_x / (2 * hx)).max(initial=0.0))


@pytest.mark.parametrize(
    ("prefer", "pcb", "fires", "aimed", "counter"),
    [
        ("recovery", 5, True, 0, "co_ejections_accepted"),  # full window, copper wins
        ("recovery", 50, False, 0, "co_ejections_avoided"),  # full window, pcb wins
        ("balanced", 50, True, 1, None),  # aimed clear: both kept
        ("purity", 5, True, 1, None),
    ],
)
def test_stream_prefer_on_a_touching_pair(
    geometry, run_stream, tmp_path, prefer, pcb, fires, aimed, counter
):
    recipe = _recipe(tmp_path, RECIPE.format(prefer=prefer, pcb=pcb))
    obj = _objects(TOUCHING)
    cam = SyntheticCamera(geometry, obj, len(DEFAULT_CLASSES), seed=1)
    ctl = Controller(geometry, recipe, DEFAULT_CLASSES, params=CUT)
    ctl, pulses = run_stream(ctl, cam, 80)
    st = ctl.stats()
    assert (len(pulses) > 0) == fires
    assert st["targets_aimed"] == aimed
    for name in ("co_ejections_accepted", "co_ejections_avoided"):
        assert st[name] == (1 if name == counter else 0), (name, st)
    if fires:
        assert _covered(obj, cam, pulses, geometry)[0]  # the copper is lifted
        touched = _touch_share(pulses, cam, obj, geometry, 1)
        assert (touched <= 0.15) == (aimed == 1), touched


def test_stream_purity_leaves_a_target_it_cannot_aim_around(geometry, run_stream, tmp_path):
    """A pcb over the copper's middle: purity leaves the copper, balanced lets the
    higher priority (copper) decide, and a battery is ejected whatever the setting."""
    rows = [(500.0, -425.0, 25.0, 25.0, "copper"), (500.0, -425.0, 10.0, 10.0, "pcb")]
    for prefer, fires in (("purity", False), ("balanced", True)):
        recipe = _recipe(tmp_path, RECIPE.format(prefer=prefer, pcb=5))
        cam = SyntheticCamera(geometry, _objects(rows), len(DEFAULT_CLASSES), seed=1)
        ctl = Controller(geometry, recipe, DEFAULT_CLASSES, params=CUT)
        ctl, pulses = run_stream(ctl, cam, 80)
        assert (len(pulses) > 0) == fires, prefer
        counter = "co_ejections_avoided" if prefer == "purity" else "co_ejections_accepted"
        assert ctl.stats()[counter] == 1
    text = RECIPE.format(prefer="purity", pcb=5) + '[classes.battery]\nfraction = "eject"\n'
    recipe = _recipe(tmp_path, text)
    rows[0] = (*rows[0][:4], "battery")
    cam = SyntheticCamera(geometry, _objects(rows), len(DEFAULT_CLASSES), seed=1)
    ctl, pulses = run_stream(Controller(geometry, recipe, DEFAULT_CLASSES), cam, 80)
    assert len(pulses) > 0
