"""Motion on the belt: drift and slip settle, round parts roll, some bounce,
the belt speed swings slowly and the encoder follows it."""

from __future__ import annotations

import numpy as np

from calibration.geometry import LineGeometry
from sim.plant.plant import IdlePlc, VirtualPlant
from sim.plant.scenario import load_scenario

GEOM = LineGeometry()


def tracks(
    scenario: str, frames: int, seed: int = 2
) -> dict[int, list[tuple[float, float, float]]]:
    """fragment id -> [(x mm, u mm, y mm)] per frame it was fully in view."""
    plant = VirtualPlant(GEOM, load_scenario(scenario), IdlePlc(), seed=seed)
    out: dict[int, list[tuple[float, float, float]]] = {}
    for _ in range(frames):
        plant.step()
        t = plant.visible_truth()
        for i in np.nonzero(~t.truncated)[0]:
            x, y = t.centroid_mm[i]
            out.setdefault(int(t.fragment_id[i]), []).append((x, y - t.travel_mm, y))
    return out


def test_lying_parts_have_settled_and_others_move_in_view():
    """Friction stops a lying part's landing drift before the view; rollers
    and sliders still move relative to the belt there (``sim.plant.feed``)."""
    plant = VirtualPlant(GEOM, load_scenario("default"), IdlePlc(), seed=2)
    paths: dict[int, list[tuple[float, float]]] = {}
    for _ in range(300):
        plant.step()
        t = plant.visible_truth()
        for i in np.nonzero(~t.truncated)[0]:
            x, y = t.centroid_mm[i]
            paths.setdefault(int(t.fragment_id[i]), []).append((x, y - t.travel_mm))
    motion = {r.fragment_id: r.motion for r in plant.fragments}
    steps = {
        kind: [np.abs(np.diff(np.array(p), axis=0)) for f, p in paths.items() if motion[f] == kind]
        for kind in ("lying", "rolling", "sliding")
    }
    lying = np.concatenate([s for s in steps["lying"] if len(s)])
    assert len(steps["lying"]) >= 30 and np.percentile(lying, 99.5) < 1e-6
    moving = [s.max() for kind in ("rolling", "sliding") for s in steps[kind] if len(s)]
    assert len(moving) >= 5 and np.median(moving) > 0.5  # mm per 10 ms frame


def test_easy_parts_ride_almost_still():
    paths = [np.array(p) for p in tracks("easy", 200).values() if len(p) >= 10]
    steps = np.concatenate([np.abs(np.diff(p[-4:, :2], axis=0)) for p in paths])
    assert np.percentile(steps, 90) < 1.0  # under 1 mm per frame near the bottom of the view


def test_some_round_parts_roll_and_some_parts_bounce():
    plant = VirtualPlant(GEOM, load_scenario("crowded"), IdlePlc(), seed=3)
    for _ in range(200):
        plant.step()
    recs = plant.fragments
    assert any(r.rolls for r in recs) and not any(r.rolls and r.kind == "plate" for r in recs)
    bouncers = [r for r in recs if r.bounces]
    assert 0 < len(bouncers) < 0.1 * len(recs)


def test_speed_swings_slowly_and_the_encoder_follows():
    plant = VirtualPlant(GEOM, load_scenario("dirty"), IdlePlc(), seed=1)  # 4 % swing
    speeds, ticks = [], []
    for _ in range(400):
        f = plant.step()
        speeds.append(plant.speed_mm_s)
        ticks.append(f.tick)
    v = np.array(speeds)
    assert 0.94 * 2500 < v.min() < v.max() < 1.06 * 2500
    assert v.max() - v.min() > 0.02 * 2500  # it does swing
    assert np.abs(np.diff(v)).max() < 0.005 * 2500  # slowly
    d = np.diff(np.array(ticks, dtype=np.int64))
    assert np.all(np.abs(d - v[1:] * 0.01 / 0.1) < 0.03 * 250)
