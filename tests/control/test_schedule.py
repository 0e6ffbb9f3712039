"""Valve and diverter scheduling: merging, minimum times, co-ejection, diverters."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from control.controller import Controller
from control.params import ControlParams
from control.recipe import load_recipe
from control.synthetic import BeltObjects, SyntheticCamera, random_objects
from core.classes import DEFAULT_CLASSES

from .conftest import unwrap_near

C = {name: i for i, name in enumerate(DEFAULT_CLASSES)}


def _objects(rows):
    """rows: (x, u, hx, hu, class name)."""
    a = np.array([r[:4] for r in rows], float)
    cls = np.array([C[r[4]] for r in rows])
    z = np.zeros(len(rows))
    return BeltObjects(a[:, 0], a[:, 1], a[:, 2], a[:, 3], z, z.copy(), cls)


def _run(geometry, recipe, rows, run_stream, frames=80, params=None):
    obj = _objects(rows)
    cam = SyntheticCamera(geometry, obj, len(DEFAULT_CLASSES), seed=1)
    ctl = Controller(geometry, recipe, DEFAULT_CLASSES, params=params)
    ctl, pulses = run_stream(ctl, cam, frames)
    return ctl, pulses, cam


def _per_valve_intervals(pulses, ref, actuator=0):
    sel = pulses[pulses.actuator == actuator]
    on = unwrap_near(sel.on_tick, ref)
    off = unwrap_near(sel.off_tick, ref)
    out: dict[int, list[tuple[int, int]]] = {}
    for k in range(len(sel)):
        for v in range(int(sel.first_valve[k]), int(sel.last_valve[k]) + 1):
            out.setdefault(v, []).append((int(on[k]), int(off[k])))
    return {v: sorted(iv) for v, iv in out.items()}


def _min_times_ticks(geometry):
    tpm = geometry.belt.ticks_per_s() * 1e-3
    return geometry.valves.min_on_ms * tpm, geometry.valves.min_off_ms * tpm


@pytest.mark.parametrize("gap_mm", [0.5, 3.0, 8.0, 40.0])
def test_close_targets_on_one_valve_merge_without_short_gaps(geometry, recipe, run_stream, gap_mm):
    rows = [(500.0, -400.0, 10.0, 10.0, "copper"), (500.0, -420.0 - gap_mm, 10.0, 10.0, "brass")]
    ctl, pulses, cam = _run(geometry, recipe, rows, run_stream)
    per_valve = _per_valve_intervals(pulses, cam.start_tick + 8000)
    _min_on, min_off = _min_times_ticks(geometry)
    assert per_valve
    for ivs in per_valve.values():
        for (_a0, a1), (b0, _b1) in itertools.pairwise(ivs):
            assert b0 >= a1  # never overlapping on one valve
            assert b0 == a1 or b0 - a1 >= min_off  # back to back, or a real off time
    assert ctl.stats()["objects_targeted"] == 2


def test_random_stream_respects_valve_minimum_times(geometry, recipe, run_stream):
    obj = random_objects(
        geometry, 300, (-2500.0, -250.0), len(DEFAULT_CLASSES), seed=9, min_gap_mm=1.0
    )
    cam = SyntheticCamera(geometry, obj, len(DEFAULT_CLASSES), noise_mm=0.3, seed=2)
    ctl, pulses = run_stream(Controller(geometry, recipe, DEFAULT_CLASSES), cam, 140)
    min_on, min_off = _min_times_ticks(geometry)
    for ivs in _per_valve_intervals(pulses, cam.start_tick + 15000).values():
        merged = [list(ivs[0])]
        for s, e in ivs[1:]:
            assert s >= merged[-1][1]
            if s == merged[-1][1]:
                merged[-1][1] = e
            else:
                assert s - merged[-1][1] >= min_off
                merged.append([s, e])
        assert all(e - s >= min_on for s, e in merged)
    assert ctl.stats()["deadline_misses"] == 0


def _recipe(tmp_path, text):
    p = tmp_path / "r.toml"
    p.write_text(text)
    return load_recipe(p, DEFAULT_CLASSES)


NEIGHBOUR_ROWS = [(500.0, -400.0, 12.0, 12.0, "copper"), (521.0, -400.0, 12.0, 12.0, "pcb")]


@pytest.mark.parametrize(
    ("pcb_priority", "tolerance", "target", "fires", "counter"),
    [
        (5, 0.0, "copper", True, "co_ejections_accepted"),
        (50, 0.0, "copper", False, "co_ejections_avoided"),
        (50, 0.0, "battery", True, "co_ejections_accepted"),  # battery always wins
        (50, 1.0, "copper", True, None),  # tolerated: no conflict at all
    ],
)
def test_neighbour_weighed_by_priority(
    geometry, run_stream, tmp_path, pcb_priority, tolerance, target, fires, counter
):
    recipe = _recipe(
        tmp_path,
        f'name = "n"\nversion = 1\nco_ejection_tolerance = {tolerance}\n[fractions]\neject = 0\n'
        f'[classes.{target}]\nfraction = "eject"\npriority = 10\n'
        f"[classes.pcb]\npriority = {pcb_priority}\n",
    )
    rows = [(*NEIGHBOUR_ROWS[0][:4], target), NEIGHBOUR_ROWS[1]]
    # the cut rule: any touch beyond the tolerance is a conflict
    # (the search rule's lift criterion: tests/control/test_aim_search.py)
    ctl, pulses, _ = _run(geometry, recipe, rows, run_stream, params=ControlParams(aim_rule="cut"))
    st = ctl.stats()
    assert (len(pulses) > 0) == fires
    for name in ("co_ejections_accepted", "co_ejections_avoided"):
        assert st[name] == (1 if name == counter else 0)


DIVERTER_RECIPE = """
name = "flaps"
version = 1
[fractions]
metals = 1
[classes.steel]
fraction = "metals"
priority = 3
[classes.plastic]
priority = 1
[classes.pcb]
priority = 9
"""


@pytest.mark.parametrize(
    ("follower", "gap_mm", "n_pulses", "conflicts"),
    [
        ("steel", 30.0, 1, 0),  # same fraction, closer than the dead time: one flap run
        ("steel", 400.0, 2, 0),
        ("plastic", 30.0, 1, 1),  # lower priority follower rides along, counted
        ("pcb", 30.0, 1, 1),  # higher priority: the second steel gives way
    ],
)
def test_diverter_dead_time_and_conflicts(
    geometry, run_stream, tmp_path, follower, gap_mm, n_pulses, conflicts
):
    recipe = _recipe(tmp_path, DIVERTER_RECIPE)
    rows = [
        (300.0, -400.0, 15.0, 15.0, "steel"),
        (700.0, -430.0 - gap_mm, 15.0, 15.0, follower),
        (200.0, -460.0 - 2 * gap_mm, 15.0, 15.0, "steel"),
    ]
    if follower == "steel":
        rows = rows[:2]
    ctl, pulses, cam = _run(geometry, recipe, rows, run_stream, frames=90)
    assert set(pulses.actuator.tolist()) == {1}
    runs = _per_valve_intervals(pulses, cam.start_tick + 8000, actuator=1)[0]
    merged = [list(runs[0])]
    for s, e in runs[1:]:
        if s == merged[-1][1]:
            merged[-1][1] = e  # a continuation: the flap simply stays over
        else:
            merged.append([s, e])
    assert len(merged) == n_pulses
    assert ctl.stats()["diverter_conflicts"] == conflicts
    # the flap is over (dead time ahead) before the first leading edge arrives
    t_on, _t_off = cam.crossing_ticks()
    tpm = geometry.belt.ticks_per_s() * 1e-3
    on = unwrap_near(pulses.on_tick, cam.start_tick + 8000)
    assert on.min() <= t_on[0] - 30.0 * tpm
