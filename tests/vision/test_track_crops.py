"""``CropPlanner``: hand-built scenes with known answers (which views get a crop)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from vision.track_crops import CropPlanner, CropPolicy, Plan

MM_PER_TICK = 0.1
HEIGHT = 512
K = 3


Scene = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _scene(
    xs: list[float], ys: list[float], rows: list[tuple[float, float]] | None = None
) -> Scene:
    """Centroids, extents (10 mm squares), areas and bboxes (rows y0, y1 px) of fragments."""
    c = np.column_stack([xs, ys]).astype(np.float64)
    ext = np.column_stack([c[:, 0] - 5, c[:, 0] + 5, c[:, 1] - 5, c[:, 1] + 5])
    area = np.full(len(xs), 100.0)
    r = rows or [(100.0, 140.0)] * len(xs)
    bbox = np.array([[0.0, y0, 10.0, y1] for y0, y1 in r], np.float32)
    return c, ext, area, bbox


def _step(
    pl: CropPlanner,
    tick: int,
    scene: Scene,
    prob: Callable[[int], np.ndarray] | None = None,
    merged: list[bool] | None = None,
) -> Plan:
    c, ext, area, bbox = scene
    m = np.zeros(len(c), bool) if merged is None else np.asarray(merged)
    plan = pl.plan(tick, c, ext, area, bbox, m)
    n = plan.classify.size
    p = np.tile([0.98, 0.01, 0.01], (n, 1)) if prob is None else prob(n)
    pl.update(plan, c, ext, area, p, np.zeros(n, bool))
    return plan


def test_a_confident_fragment_gets_views_per_track_crops_then_none() -> None:
    pl = CropPlanner(CropPolicy(views_per_track=3), MM_PER_TICK, HEIGHT, K)
    chosen = []
    for f in range(8):  # the belt moves 25 mm (250 ticks) a frame
        plan = _step(pl, 250 * f, _scene([100.0], [20.0 + 25.0 * f]))
        chosen.append(plan.classify.size)
        if f:
            assert plan.prev.tolist() == [0]  # followed
    assert chosen == [1, 1, 1, 0, 0, 0, 0, 0]


def test_an_uncertain_fragment_gets_up_to_max_views() -> None:
    pl = CropPlanner(CropPolicy(views_per_track=2, max_views=5), MM_PER_TICK, HEIGHT, K)

    def unsure(n: int) -> np.ndarray:
        return np.tile([0.4, 0.35, 0.25], (n, 1))

    got = [_step(pl, 250 * f, _scene([100.0], [25.0 * f]), unsure).classify.size for f in range(8)]
    assert got == [1, 1, 1, 1, 1, 0, 0, 0]


def test_every_mode_classifies_every_view() -> None:
    pl = CropPlanner(CropPolicy(mode="every"), MM_PER_TICK, HEIGHT, K)
    for f in range(5):
        plan = _step(pl, 250 * f, _scene([50.0, 150.0], [25.0 * f, 25.0 * f]))
        assert plan.classify.tolist() == [0, 1]


def test_a_partial_view_is_classified_only_while_the_fragment_has_none() -> None:
    pl = CropPlanner(CropPolicy(views_per_track=1), MM_PER_TICK, HEIGHT, K)
    top = [(0.0, 30.0)]  # cut by the top edge
    assert _step(pl, 0, _scene([100.0], [0.0], top)).classify.tolist() == [0]
    assert _step(pl, 250, _scene([100.0], [25.0], top)).classify.tolist() == []  # 1 view
    assert _step(pl, 500, _scene([100.0], [50.0])).classify.tolist() == []


def test_a_segment_whose_area_jumps_is_new() -> None:
    pl = CropPlanner(CropPolicy(views_per_track=1), MM_PER_TICK, HEIGHT, K)
    s = _scene([100.0], [0.0])
    _step(pl, 0, s)
    c, ext, area, bbox = _scene([100.0], [25.0])
    plan = _step(pl, 250, (c, ext, area * 2.0, bbox))  # a merge or a split: a new segment
    assert plan.prev.tolist() == [-1] and plan.classify.tolist() == [0]


def test_the_budget_takes_unclassified_and_clean_segments_first() -> None:
    pl = CropPlanner(CropPolicy(budget=2, views_per_track=1), MM_PER_TICK, HEIGHT, K)
    _step(pl, 0, _scene([20.0], [0.0]))  # fragment at x=20 has one view
    scene = _scene([20.0, 60.0, 100.0, 140.0], [25.0, 25.0, 25.0, 25.0])
    plan = _step(pl, 250, scene, merged=[False, True, False, False])
    assert plan.classify.tolist() == [2, 3]  # new and clean first; x=20 needs none


def test_a_cap_below_the_budget_takes_the_same_order() -> None:
    """``plan(..., cap)``: the frame's own budget (``CropPolicy.frame_cap``) cuts the
    same ranking as the budget does; a cap above the budget changes nothing."""
    pl = CropPlanner(CropPolicy(budget=3, views_per_track=1), MM_PER_TICK, HEIGHT, K)
    _step(pl, 0, _scene([20.0], [0.0]))
    scene = _scene([20.0, 60.0, 100.0, 140.0], [25.0, 25.0, 25.0, 25.0])
    c, ext, area, bbox = scene
    merged = np.array([False, True, False, False])
    state = (pl._tick, pl._xy, pl._area, pl._views, pl._logp, pl._rejected)
    assert pl.plan(250, c, ext, area, bbox, merged, cap=2).classify.tolist() == [2, 3]
    pl._tick, pl._xy, pl._area, pl._views, pl._logp, pl._rejected = state
    assert pl.plan(250, c, ext, area, bbox, merged, cap=10).classify.tolist() == [1, 2, 3]


def test_frame_cap_fits_the_crops_in_what_is_left_of_the_frame() -> None:
    pol = CropPolicy(frame_ms=9.0, crop_ms=0.1, reserve_ms=1.0, min_crops=8)
    assert pol.frame_cap(5.0) == 30  # (9 - 5 - 1) / 0.1
    assert pol.frame_cap(7.5) == 8  # 5 fit: never below min_crops
    assert pol.frame_cap(20.0) == 8
    assert CropPolicy().frame_cap(100.0) is None  # off by default


def test_a_rejected_segment_stays_rejected_without_a_crop() -> None:
    pl = CropPlanner(CropPolicy(), MM_PER_TICK, HEIGHT, K)
    c, ext, area, bbox = _scene([100.0], [0.0])
    plan = pl.plan(0, c, ext, area, bbox, np.zeros(1, bool))
    pl.update(plan, c, ext, area, np.tile([0.5, 0.3, 0.2], (1, 1)), np.array([True]))
    plan = _step(pl, 250, _scene([100.0], [25.0]))
    assert plan.rejected.tolist() == [True] and plan.classify.size == 0


def test_neighbours_are_not_swapped() -> None:
    """Two fragments 12 mm apart across the belt keep their own histories."""
    pl = CropPlanner(CropPolicy(), MM_PER_TICK, HEIGHT, K)
    _step(pl, 0, _scene([100.0, 112.0], [0.0, 0.0]))
    plan = _step(pl, 250, _scene([100.5, 112.0], [25.0, 25.3]))
    assert plan.prev.tolist() == [0, 1]


@pytest.mark.parametrize(
    ("kw", "what"),
    [
        ({"mode": "some"}, "mode"),
        ({"views_per_track": 0}, "views_per_track"),
        ({"views_per_track": 4, "max_views": 3}, "max_views"),
        ({"budget": 0}, "budget"),
        ({"gate_mm": 0.0}, "gate_mm"),
        ({"frame_ms": -1.0}, "frame_ms"),
        ({"crop_ms": 0.0}, "crop_ms"),
        ({"min_crops": -1}, "min_crops"),
    ],
)
def test_bad_policy_is_refused_naming_the_field(kw: dict, what: str) -> None:
    with pytest.raises(ValueError, match=what):
        CropPolicy(**kw)
