"""The co-ejection diagnosis (``bench/_coeject_diagnosis.py``): its copy of the
plant's cover rule against the plant's own, the separability test on
hand-built pairs, and a short stepped run whose causes add up."""

from __future__ import annotations

import numpy as np
import pytest

from bench import _coeject_diagnosis as cd
from calibration.geometry import ValveBar
from sim.plant.ejection import AirRuns, coverage

GRID = 2.0


def _square(x0: float, t0: float, size: float, step: float = 1.0) -> cd.Pts:
    """A square footprint: x mm, along-belt offset mm, tick (1 tick = 1 mm)."""
    g = np.arange(0.0, size, step) + step / 2
    xx, yy = np.meshgrid(g, g)
    x, dy = (x0 + xx).ravel(), yy.ravel()
    return x, dy, t0 + size - dy  # the leading (larger dy) edge crosses first


@pytest.mark.parametrize("seed", range(4))
def test_rule_cover_is_the_plants_coverage(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, dy, t = _square(100.0, 0.0, 30.0)
    rects = np.column_stack(
        [rng.uniform(90, 120, 20), rng.uniform(120, 140, 20), rng.uniform(-5, 15, 20),
         rng.uniform(15, 35, 20)]
    )  # fmt: skip
    w, ln = cd._rule_cover(x, dy, t, rects, GRID)
    for k, r in enumerate(rects):
        one = np.ones(1)
        runs = AirRuns(
            np.zeros(1, np.int16), one * r[0], one * r[1], one * r[2], one * r[3],
            np.zeros(1, np.int64), np.zeros(1, np.int64),
        )  # fmt: skip
        cov = coverage(x, dy, t, runs, GRID)
        assert (w[k], ln[k]) == pytest.approx((cov.width_share, cov.length_share))


def test_separable_pairs() -> None:
    valves = ValveBar(n_valves=80, pitch_mm=6.25)
    target = _square(100.0, 0.0, 40.0)
    beside = _square(141.0, 0.0, 30.0)  # alongside, 1 mm apart: the valves can leave it
    on_top = _square(105.0, 5.0, 30.0)  # inside the target's outline
    for margin in (0.0, 0.1):
        assert cd._separable(target, beside, valves, 8.0, GRID, 0.5, 0.5, margin)
    # on top: only a window edge falling between two footprint samples leaves
    # it under half while half of the target is under air; with a margin, none
    assert not cd._separable(target, on_top, valves, 8.0, GRID, 0.5, 0.5, margin=0.1)
    assert cd._gap_mm(target, beside, 1.0) == pytest.approx(2.0)


@pytest.mark.slow
def test_a_short_run_adds_up() -> None:
    res = cd.diagnose("crowded", 250, 101, "purity")
    assert sum(res["causes"].values()) == res["non_targets_ejected"]
    assert res["non_targets_ejected"] <= res["ejected"]
    if res["ejected"]:
        assert res["purity"] == pytest.approx(1 - res["non_targets_ejected"] / res["ejected"])
    assert "| crowded | 101 | purity |" in cd.table([res])
