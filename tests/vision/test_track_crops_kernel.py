"""The crop planner's association kernel (``vision.kernels_track._mutual_nearest``)
against its NumPy twin (the distance matrix it replaced): the same neighbours, the
same distances, ties and NaN taken as ``np.argmin`` takes them; and the planner's
plans on virtual-plant frames with the kernel and with the twin."""

from __future__ import annotations

import numpy as np
import pytest

from vision import track_crops
from vision.kernels_track import _mutual_nearest


def twin(cx: np.ndarray, cy: np.ndarray, mx: np.ndarray, my: np.ndarray) -> tuple[np.ndarray, ...]:
    with np.errstate(invalid="ignore"):  # inf - inf
        d = np.hypot(cx[:, None] - mx[None, :], cy[:, None] - my[None, :])
    near = d.argmin(axis=1)
    return near, d.argmin(axis=0), d[np.arange(cx.size), near]


def _points(rng: np.random.Generator, n: int, grid: bool) -> tuple[np.ndarray, np.ndarray]:
    x, y = rng.uniform(0.0, 800.0, n), rng.uniform(-400.0, 0.0, n)
    return (np.round(x / 20) * 20, np.round(y / 20) * 20) if grid else (x, y)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("grid", [False, True])  # on a grid: many exact ties
def test_mutual_nearest_equals_the_numpy_twin(seed: int, grid: bool) -> None:
    rng = np.random.default_rng(seed)
    for n, m in ((1, 1), (1, 40), (40, 1), (120, 110), (7, 300)):
        cx, cy = _points(rng, n, grid)
        mx, my = _points(rng, m, grid)
        for got, want in zip(_mutual_nearest(cx, cy, mx, my), twin(cx, cy, mx, my), strict=True):
            np.testing.assert_array_equal(got, want)


def test_mutual_nearest_takes_nan_and_infinity_as_argmin_does() -> None:
    cx = np.array([0.0, np.nan, 5.0, np.inf])
    cy = np.array([0.0, 1.0, 5.0, 0.0])
    mx = np.array([3.0, 1.0, np.nan, 1.0, np.inf])
    my = np.array([4.0, 1.0, 0.0, 1.0, 2.0])
    for got, want in zip(_mutual_nearest(cx, cy, mx, my), twin(cx, cy, mx, my), strict=True):
        np.testing.assert_array_equal(got, want)


def test_the_planner_makes_the_same_plans_with_the_twin_on_plant_frames(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bench.vision import _study_scenario
    from calibration.geometry import LineGeometry
    from sim.plant.plant import IdlePlc, VirtualPlant
    from vision.pipeline import VisionPipeline

    geo = LineGeometry()
    plant = VirtualPlant(geo, _study_scenario("shred", 1000.0), IdlePlc(), seed=4003)
    pipe = VisionPipeline(geo, None)
    scenes = []
    for i in range(40):
        prep = pipe.prepare(plant.step())
        if i < 28:  # fill the view
            continue
        seg = prep.segments
        scenes.append((prep.frame.tick, prep.centroid_mm, prep.extent_mm, prep.area_mm2,
                       seg.bbox_px, prep.merged))  # fmt: skip
    k = 4
    plans = {}
    for name in ("kernel", "twin"):
        if name == "twin":
            monkeypatch.setattr(track_crops, "_mutual_nearest", twin)
        planner = track_crops.CropPlanner(
            track_crops.CropPolicy(budget=30), geo.belt.mm_per_tick, geo.camera.height_px, k
        )
        rng = np.random.default_rng(7)
        out = []
        for tick, c, ext, area, bbox, merged in scenes:
            plan = planner.plan(tick, c, ext, area, bbox, merged)
            prob = rng.dirichlet(np.ones(k), plan.classify.size).astype(np.float32)
            planner.update(plan, c, ext, area, prob, np.zeros(plan.classify.size, bool))
            out.append(plan)
        plans[name] = out
    known = 0
    for a, b in zip(plans["kernel"], plans["twin"], strict=True):
        np.testing.assert_array_equal(a.prev, b.prev)
        np.testing.assert_array_equal(a.classify, b.classify)
        known += int((a.prev >= 0).sum())
    assert known > 800  # most segments were followed from the frame before
