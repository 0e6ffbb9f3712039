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


def test_drift_and_slip_settle_while_in_view():
    paths = [np.array(p) for p in tracks("default", 300).values() if len(p) >= 10]
    assert len(paths) >= 30
    early = np.concatenate([np.abs(np.diff(p[:4, :2], axis=0)) for p in paths])
    late = np.concatenate([np.abs(np.diff(p[-4:, :2], axis=0)) for p in paths])
    # sideways drift (mm per 10 ms frame) is there at first and decays
    assert np.median(early[:, 0]) > 0.1
    assert np.median(late[:, 0]) < 0.8 * np.median(early[:, 0])
    # along the belt, fragments slip relative to its surface at first too
    assert np.median(early[:, 1]) > 0.1


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
