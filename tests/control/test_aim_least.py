"""The search's last resort (``ControlParams.aim_last_resort = "least"``,
``kernels_aim_search._aim_least``): when no sub-window spares every
neighbour and the air goes out anyway, the window whose air over the
neighbours it lifts exceeds their spare share the least. The kernel against
a brute force (``naive.aim_least``) and hand-built scenes with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from control import kernels_aim as ka
from control import kernels_aim_search as ks
from control.controller import Controller
from control.kernels_schedule import NEIGHBOUR_BIN_MM, _bin_neighbours
from control.params import (
    AIM_LAST_COVER,
    AIM_LAST_LEAST,
    N_SCHEDULE,
    S_AIM_LAST,
    S_AIM_LAST_K,
    S_K_SIGMA,
    ControlParams,
)
from core.classes import DEFAULT_CLASSES

from . import naive
from .test_aim import RECIPE, _air_of, _scene
from .test_aim_search import BLAST, KX, LIFT, MARGIN, PITCH, THIN, TOL, X_FIRST, _committed_air
from .test_aim_search import _sp as _sp_search
from .test_schedule import _recipe

K_LAST = 1.0  # the last resort's sigmas along the belt (ControlParams.aim_last_k_sigma)
V = 80  # a valve whose centre the one-valve scenes sit on
X_V = X_FIRST + (V + 0.5) * PITCH


def _sp(last=AIM_LAST_LEAST, **kw):
    sp = list(_sp_search(**kw))
    assert len(sp) == N_SCHEDULE
    sp[S_AIM_LAST] = last
    sp[S_AIM_LAST_K] = K_LAST
    return tuple(sp)


def _bins(XC, H, FRAC):
    nbr = np.arange(len(FRAC), dtype=np.int64)
    n_bins = int(2000 // NEIGHBOUR_BIN_MM) + 1
    rows, start, _ = _bin_neighbours(nbr, XC, H, NEIGHBOUR_BIN_MM, n_bins)
    return rows, start, n_bins


def _least(i, rect, CROSS, XC, H, FRAC, margin=THIN, committed=()):
    rows, start, n_bins = _bins(XC, H, FRAC)
    return ks._aim_least(
        i, *rect, rows, start, 0, n_bins - 1, CROSS, XC, H, FRAC, _sp(),
        *_committed_air(committed), *ks.aim_work(), margin, 0.0,
    )  # fmt: skip


def _fallback(i, rect, CROSS, XC, H, FRAC, fires, last):
    rows, start, n_bins = _bins(XC, H, FRAC)
    return ks._aim_with_fallback(
        i, *rect, rows, start, 0, n_bins - 1, CROSS, XC, H, FRAC, _sp(last),
        *_committed_air(), *ks.aim_work(), fires,
    )  # fmt: skip


def _excess(i, rect, CROSS, XC, H, FRAC, window=None, margin=THIN):
    """The twin's excess of ``window`` (default: ``rect``) over the neighbours
    the full air ``rect`` lifts, and its target cover product."""
    return naive.aim_least(
        i, *rect, CROSS, XC, H, FRAC, K_LAST, KX, TOL, LIFT, margin, PITCH, X_FIRST, BLAST,
        [], window=rect if window is None else window,
    )  # fmt: skip


# ---------------------------------------------------------------- hand-built
# a target one valve wide (0..100 ticks, sigma 1) and a narrower pcb on the same
# valve over its middle (35..75): no valve run spares it across the belt and no
# window keeping half the target under air for a 2-sigma error spares its
# length: the full window (5..95) lifts all of it
MIDDLE = [(0, 100, 1.0, X_V, 0.3, 3.0, 0), (35, 75, 1.0, X_V, 0.3, 2.0, -1)]


def test_the_least_window_ends_as_early_as_the_target_allows():
    # (the target's cover for a 1-sigma error: K_LAST)
    CROSS, XC, H, FRAC = _scene(MIDDLE)
    rect = (V, V, 5.0, 95.0)
    f, lst, on, off, st = _least(0, rect, CROSS, XC, H, FRAC)
    # half the target for a 2-tick error from on = 5: off = 5 + 50; the pcb's
    # share is then (55 + 1 - 35) / 40 = 0.525, against (95 - 45 + 1) / 40 =
    # 0.775 for the window starting late and 1 for the full one
    assert st == ka.AIM_FAILED
    assert (f, lst, on) == (V, V, 5.0)
    assert off == pytest.approx(55.0, abs=1e-5)
    assert _excess(0, rect, CROSS, XC, H, FRAC, (f, lst, on, off))[0] == pytest.approx(
        0.025, abs=1e-5
    )


def test_the_mirrored_scene_starts_the_air_as_late_as_the_target_allows():
    rows = [(0, 100, 1.0, X_V, 0.3, 3.0, 0), (25, 65, 1.0, X_V, 0.3, 2.0, -1)]
    CROSS, XC, H, FRAC = _scene(rows)
    f, lst, on, off, st = _least(0, (V, V, 5.0, 95.0), CROSS, XC, H, FRAC)
    assert st == ka.AIM_FAILED and (f, lst, off) == (V, V, 95.0)
    assert on == pytest.approx(45.0, abs=1e-5)  # share (65 - 44) / 40 = 0.525


def test_the_last_resort_is_chosen_by_the_params_and_only_when_air_goes_out():
    CROSS, XC, H, FRAC = _scene(MIDDLE)
    rect = (V, V, 5.0, 95.0)
    least = _fallback(0, rect, CROSS, XC, H, FRAC, True, AIM_LAST_LEAST)
    cover = _fallback(0, rect, CROSS, XC, H, FRAC, True, AIM_LAST_COVER)
    assert least == _least(0, rect, CROSS, XC, H, FRAC)
    assert cover == (*rect, ka.AIM_FAILED)  # the earlier answer: the full window
    # purity leaves the target: no last resort is searched
    assert _fallback(0, rect, CROSS, XC, H, FRAC, False, AIM_LAST_LEAST) == cover


def test_a_neighbour_a_window_spares_never_reaches_the_last_resort():
    # the pcb over the target's leading part only: a late start spares it
    rows = [(0, 100, 1.0, X_V, 0.3, 3.0, 0), (-40, 20, 1.0, X_V, 0.3, 2.0, -1)]
    CROSS, XC, H, FRAC = _scene(rows)
    rect = (V, V, 5.0, 95.0)
    got = _fallback(0, rect, CROSS, XC, H, FRAC, True, AIM_LAST_LEAST)
    assert got[4] != ka.AIM_FAILED
    assert got == _fallback(0, rect, CROSS, XC, H, FRAC, True, AIM_LAST_COVER)


def test_air_already_sent_over_the_neighbour_counts():
    # the same middle pcb, with air already committed over its trailing part
    # (60..75 ticks) by another target: ending the air early no longer keeps
    # it under its spare share (0.525 + 15/40 of its length), starting late
    # adds less to what is there (44..75 of 35..75: 0.775)
    CROSS, XC, H, FRAC = _scene(MIDDLE)
    rect = (V, V, 5.0, 95.0)
    *_, on, off, st = _least(0, rect, CROSS, XC, H, FRAC, committed=[(V, V, 60, 75)])
    assert st == ka.AIM_FAILED
    assert on == pytest.approx(45.0, abs=1e-5) and off == 95.0


def test_nothing_to_spare_keeps_the_air():
    CROSS, XC, H, FRAC = _scene([(0, 100, 1.0, X_V, 0.3, 3.0, 0)])
    rect = (V, V, 5.0, 95.0)
    assert _least(0, rect, CROSS, XC, H, FRAC) == (*rect, ka.AIM_CLEAR)


# ---------------------------------------------------------------- brute force
def _crowd(seed):
    rng = np.random.default_rng(500 + seed)
    n = 14
    t0 = rng.uniform(0, 250, n)
    length = rng.uniform(20, 100, n)
    rows = np.column_stack(
        [t0, t0 + length, rng.uniform(0.2, 3, n), rng.uniform(440, 560, n),
         rng.uniform(0.1, 1.5, n), rng.uniform(4, 30, n), rng.integers(-1, 1, n)]
    )  # fmt: skip
    return _scene(rows.tolist())


@pytest.mark.parametrize("seed", range(6))
def test_kernel_is_as_good_as_a_brute_force_over_a_grid(seed):
    """Of every valve run and a 24-step grid of windows, the twin's least
    excess; the kernel's window (its own candidate edges) must keep the
    target's cover and put no more air over the neighbours than that (nor
    than the full window)."""
    CROSS, XC, H, FRAC = _crowd(seed)
    checked = 0
    for i in np.flatnonzero(FRAC == 0)[:6]:
        rect = _air_of(CROSS[i, 0], CROSS[i, 1], XC[i, 0], H[i, 0], share=0.9)
        f, lst, on, off, st = _least(i, rect, CROSS, XC, H, FRAC)
        grid = np.linspace(rect[2], rect[3], 25)
        twin = naive.aim_least(
            i, *rect, CROSS, XC, H, FRAC, K_LAST, KX, TOL, LIFT, THIN, PITCH, X_FIRST, BLAST, grid
        )
        if twin is None:
            assert st == ka.AIM_CLEAR
            continue
        e_full, e_best, _, _ = twin
        e_got, _ = _excess(i, rect, CROSS, XC, H, FRAC, (f, lst, on, off))
        assert st == ka.AIM_FAILED
        assert e_got <= e_full + 1e-9
        assert e_got <= e_best + 1e-9, (i, e_got, e_best)
        sp = list(_sp())
        sp[S_K_SIGMA] = K_LAST  # the target's cover for the last resort's error
        cu, cx = ka._target_cover(i, f, lst, on, off, CROSS, XC, H, tuple(sp))
        cu0, cx0 = ka._target_cover(i, *rect, CROSS, XC, H, tuple(sp))
        assert cu >= min(LIFT + THIN, cu0) - 1e-9 and cx >= min(LIFT + THIN, cx0) - 1e-9
        checked += 1
    assert checked >= 1


# ---------------------------------------------------------------- selection
def test_set_aim_rule_keeps_the_earlier_rules_selectable(geometry, tmp_path):
    recipe = _recipe(tmp_path, RECIPE.format(prefer="balanced", pcb=5))
    params = ControlParams(aim_fallback_margin=0.02)
    ctl = Controller(geometry, recipe, DEFAULT_CLASSES, params=params)
    assert ctl.params.aim_last_resort == "least"  # the default since session 14
    ctl.set_aim_rule("search-least")
    assert (ctl.params.aim_rule, ctl.params.aim_last_resort) == ("search", "least")
    assert ctl.params.aim_fallback_margin == pytest.approx(0.02)
    ctl.set_aim_rule("search-cover")
    assert (ctl.params.aim_rule, ctl.params.aim_last_resort) == ("search", "cover")
    assert ctl.params.aim_fallback_margin == pytest.approx(0.02)
    ctl.set_aim_rule("search-strict")
    assert ctl.params.aim_last_resort == "cover"
    assert ctl.params.aim_fallback_margin == ctl.params.aim_margin
    ctl.set_aim_rule("search")  # the params' own
    assert ctl.params.aim_last_resort == "least"
    assert ctl.params.aim_fallback_margin == pytest.approx(0.02)
    ctl = Controller(
        geometry, recipe, DEFAULT_CLASSES, params=ControlParams(aim_last_resort="cover")
    )
    ctl.set_aim_rule("search-strict")
    assert ctl.params.aim_last_resort == "cover"
    ctl.set_aim_rule("search")
    assert ctl.params.aim_last_resort == "cover"
    with pytest.raises(ValueError, match="search-cover"):
        ctl.set_aim_rule("least")


def test_params_refuse_an_unknown_last_resort():
    with pytest.raises(ValueError, match="aim_last_resort"):
        ControlParams(aim_last_resort="full")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="aim_last_k_sigma"):
        ControlParams(aim_last_k_sigma=3.0)
    assert MARGIN > THIN  # the last resort runs at the thin margin, below the full one
