"""How fragments move relative to the belt (``sim.plant.feed``, ``motion``):
rollers run faster than the belt and may curve, sliders lag and come to rest,
lying parts are still; the ground truth keeps each fragment's motion kind and
its centroid's true crossing of the valve line."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.geometry import LineGeometry
from sim.plant.motion import Bodies
from sim.plant.plant import IdlePlc, VirtualPlant
from sim.plant.scenario import MotionSection, load_scenario
from sim.plant.shapes import make_shape

GEOM = LineGeometry()
SPEED = 2500.0


def _run(preset: str, frames: int, seed: int = 4):
    """(plant, fragment id -> [(tick, x, y view mm, travel)] of its centroid)."""
    plant = VirtualPlant(GEOM, load_scenario(preset), IdlePlc(), seed=seed)
    paths: dict[int, list[tuple[float, float, float, float]]] = {}
    for _ in range(frames):
        plant.step()
        t = plant.visible_truth()
        for i in np.nonzero(~t.truncated)[0]:
            x, y = t.centroid_mm[i]
            paths.setdefault(int(t.fragment_id[i]), []).append(
                (plant.tick_unwrapped, x, y, t.travel_mm)
            )
    return plant, {f: np.array(p) for f, p in paths.items() if len(p) >= 4}


@pytest.fixture(scope="module")
def rolling_run():
    return _run("rolling", 320)


def _rel_speed(p: np.ndarray) -> np.ndarray:
    """(S-1, 2) speed relative to the belt, mm/s (x, along), between frames."""
    dt = np.diff(p[:, 0]) * GEOM.belt.mm_per_tick / SPEED  # s, near enough at 2 % swing
    return np.column_stack([np.diff(p[:, 1]), np.diff(p[:, 2] - p[:, 3])]) / dt[:, None]


def test_rollers_run_up_to_20_percent_faster_and_some_drift_sideways(rolling_run):
    plant, paths = rolling_run
    kind = {r.fragment_id: r for r in plant.fragments}
    rollers = [_rel_speed(p) for f, p in paths.items() if kind[f].motion == "rolling"]
    assert len(rollers) >= 15
    along = np.array([np.median(v[:, 1]) for v in rollers])
    side = np.array([np.median(np.abs(v[:, 0])) for v in rollers])
    assert along.min() > -5.0 and along.max() < 0.21 * SPEED  # mismatch up to +20 %
    assert np.median(along) > 0.03 * SPEED
    assert (side > 30.0).sum() >= 3  # a rolling direction oblique to the belt
    assert all(kind[f].rolls for f in paths if kind[f].motion == "rolling")


def test_sliders_lag_and_decelerate_lying_parts_are_still(rolling_run):
    plant, paths = rolling_run
    kind = {r.fragment_id: r.motion for r in plant.fragments}
    sliders = [_rel_speed(p) for f, p in paths.items() if kind[f] == "sliding"]
    assert len(sliders) >= 3
    for v in sliders:
        speed = np.hypot(v[:, 0], v[:, 1])
        assert np.all(np.diff(speed) <= 1.0)  # friction only ever slows it
    assert any(np.median(v[:2, 1]) < -50.0 for v in sliders)  # behind the belt
    lying = np.concatenate([_rel_speed(p) for f, p in paths.items() if kind[f] == "lying"])
    assert np.percentile(np.abs(lying), 99) < 1.0


def test_presets_carry_the_kinds_rolling_has_many_rollers():
    shares = {}
    for preset in ("default", "rolling"):
        plant, _ = _run(preset, 200, seed=6)
        kinds = [r.motion for r in plant.fragments]
        shares[preset] = {k: kinds.count(k) / len(kinds) for k in set(kinds)}
        assert set(kinds) <= {"lying", "rolling", "sliding", "bouncing"}
        assert shares[preset]["lying"] > 0.4
    assert shares["rolling"]["rolling"] > max(0.15, 2 * shares["default"]["rolling"])


def test_truth_keeps_the_centroid_crossing(rolling_run):
    plant, paths = rolling_run
    crossed = [r for r in plant.fragments if r.cross_tick is not None]
    assert len(crossed) >= 30
    for r in crossed:
        assert r.cross_lead_tick <= r.cross_tick <= r.cross_trail_tick
    # a lying fragment's centroid keeps its x and crosses when the belt has
    # carried it to the valve line
    y_valve = GEOM.valves.y_valve_mm
    mpt = GEOM.belt.mm_per_tick
    checked = 0
    for r in crossed:
        p = paths.get(r.fragment_id)
        if r.motion != "lying" or p is None:
            continue
        tick, x, y, _ = p[-1]
        assert r.x_cross_mm == pytest.approx(x, abs=1e-6)
        assert r.cross_tick == pytest.approx(tick + (y_valve - y) / mpt, abs=2.0)
        checked += 1
    assert checked >= 10


def test_a_roller_curves_and_friction_stops_motion_in_finite_time():
    b = Bodies()
    common = dict(angle=0.0, spin=0.0, roll_px=0.0, half_w=5.0, lead=20.0, trail=-20.0,
                  bounces=False, kicked=False)  # fmt: skip
    b.add(x=500.0, y=0.0, vx=0.0, vy=300.0, decel=0.0, kappa=1e-3, rolls=True, **common)
    b.add(x=300.0, y=0.0, vx=0.0, vy=-400.0, decel=4000.0, kappa=0.0, rolls=False, **common)
    m = MotionSection()
    rng = np.random.default_rng(0)
    dt, n = 0.001, 200
    for _ in range(n):
        b.step(dt, SPEED, m, 1000.0, 10_000.0, 0.78, rng)
    # the roller keeps its speed and turns by speed x curvature x time
    assert np.hypot(b.vx[0], b.vy[0]) == pytest.approx(300.0)
    heading = np.arctan2(-b.vx[0], b.vy[0])
    assert abs(heading) == pytest.approx(300.0 * 1e-3 * n * dt, rel=1e-6)
    assert b.angle[0] == pytest.approx(heading)
    # the slider stops after 400 / 4000 = 0.1 s, having lagged 400^2 / 8000 = 20 mm
    assert b.vx[1] == 0.0 and b.vy[1] == 0.0
    assert b.y[1] == pytest.approx(SPEED * n * dt - 20.0, abs=0.5)


def test_bent_wires_do_not_roll_straight_ones_do():
    rng = np.random.default_rng(3)
    shapes = [make_shape(rng, "copper", 60.0) for _ in range(200)]
    wires = [s for s in shapes if s.kind == "wire"]
    straight = [all(len(line) == 2 for line, _ in s.lines) for s in wires]
    assert 0 < sum(straight) < len(wires)
    assert [s.rolls for s in wires] == straight
