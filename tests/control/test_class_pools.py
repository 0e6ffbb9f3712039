"""A recipe's class pools (``pool_classes``): a fragment goes to the fraction it
belongs to when no single class is sure enough but the fraction's classes
together are; a class with a lower threshold acts on its own terms only."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from calibration.geometry import LineGeometry
from control.controller import Controller
from control.evidence import class_outlook
from control.recipe import Recipe, class_pools, load_recipe
from control.synthetic import SyntheticCamera, random_objects
from core.classes import DEFAULT_CLASSES
from core.errors import InputFileError
from core.types import Detections

from .conftest import RunFn

K = len(DEFAULT_CLASSES)
NAMES = ("copper", "brass", "battery", "aluminium", "pcb")
CU, BR, BAT, AL, PCB = (DEFAULT_CLASSES.index(c) for c in NAMES)


def _outlook(recipe: Recipe, probs: dict[int, float]) -> tuple[int, int]:
    """(fraction, target class) the recipe's outlook gives one view of ``probs``
    (the rest of the probability spread evenly over the other classes)."""
    p = np.full(K, (1.0 - sum(probs.values())) / (K - len(probs)))
    for c, v in probs.items():
        p[c] = v
    order = np.argsort(-recipe.priority, kind="stable")
    _, _, frac, tcls = class_outlook(
        np.log(p)[None, :], np.array([1]), recipe.class_fraction, recipe.threshold, order,
        recipe.pool,
    )  # fmt: skip
    return int(frac[0]), int(tcls[0])


def _recipe(tmp_path: Path, pool: bool | None) -> Recipe:
    text = (
        'name = "r"\nversion = 1\n[fractions]\neject = 0\n'
        '[classes.copper]\nfraction = "eject"\nthreshold = 0.5\npriority = 10\n'
        '[classes.brass]\nfraction = "eject"\nthreshold = 0.5\npriority = 10\n'
        '[classes.battery]\nfraction = "eject"\nthreshold = 0.3\npriority = 100\n'
        '[classes.aluminium]\nfraction = "eject"\nthreshold = 0.9\npriority = 1\n'
    )
    if pool is not None:
        text = f"pool_classes = {str(pool).lower()}\n" + text
    path = tmp_path / "r.toml"
    path.write_text(text)
    return load_recipe(path, DEFAULT_CLASSES)


def test_the_pools_of_a_recipe(tmp_path: Path) -> None:
    r = _recipe(tmp_path, None)  # pooling is the default
    assert r.pool_classes and r.pool.shape == (K, K)
    assert set(np.flatnonzero(r.pool[CU])) == {CU, BR, BAT}  # thresholds <= 0.5
    assert set(np.flatnonzero(r.pool[BAT])) == {BAT}  # the laxest: on its own terms
    assert set(np.flatnonzero(r.pool[AL])) == {CU, BR, BAT, AL}
    assert not r.pool[PCB].any()  # a pass-through class pools nothing
    assert not _recipe(tmp_path, False).pool.any()
    np.testing.assert_array_equal(class_pools(r.class_fraction, r.threshold), r.pool)


def test_copper_or_brass_together_are_sure_enough(tmp_path: Path) -> None:
    pooled, per_class = _recipe(tmp_path, True), _recipe(tmp_path, False)
    red = {CU: 0.45, BR: 0.40}
    assert _outlook(pooled, red) == (0, CU)  # red metal at 0.85: ejected, as copper
    assert _outlook(per_class, red) == (-1, -1)  # neither class alone at 0.5: passed
    # one class sure on its own: the same answer either way, by priority
    assert _outlook(pooled, {BR: 0.6}) == _outlook(per_class, {BR: 0.6}) == (0, BR)
    assert _outlook(pooled, {BAT: 0.35, CU: 0.5}) == (0, BAT)


def test_a_lax_class_acts_only_on_its_own_probability(tmp_path: Path) -> None:
    pooled = _recipe(tmp_path, True)
    # battery 0.25, copper 0.15, brass 0.075: the battery's own 0.3 is not met (its
    # pool is itself), nor copper's 0.5 by its pool (0.475): passed, and no battery
    # "always wins" at 0.25
    assert _outlook(pooled, {BAT: 0.25, CU: 0.15}) == (-1, -1)
    # battery 0.25 + copper 0.3 (+ brass 0.056): copper's pool meets copper's 0.5:
    # ejected, as copper (its priority, not the battery's)
    assert _outlook(pooled, {BAT: 0.25, CU: 0.3}) == (0, CU)
    # aluminium asks 0.9: 0.5 aluminium + 0.2 copper + 0.1 brass is 0.8, not enough,
    # but the red metals' own pool is not reached either
    assert _outlook(pooled, {AL: 0.5, CU: 0.2, BR: 0.1}) == (-1, -1)


@pytest.mark.parametrize("pool", [True, False])
def test_red_metal_the_classifier_cannot_name_is_ejected_when_pooled(
    geometry: LineGeometry, run_stream: RunFn, tmp_path: Path, pool: bool
) -> None:
    """A stream of copper pieces every view of which says copper 0.45, brass 0.40:
    the line ejects them with pools and passes them without."""
    recipe = _recipe(tmp_path, pool)
    obj = random_objects(geometry, 30, (-1500.0, -250.0), K, seed=11)
    obj = dataclasses.replace(obj, cls=np.full(len(obj), CU, np.int64))
    cam = SyntheticCamera(geometry, obj, K, seed=2)
    frame = cam.frame

    def unsure(frame_id: int) -> tuple[Detections, np.ndarray]:
        dets, vis = frame(frame_id)
        prob = np.full(dets.class_prob.shape, 0.15 / (K - 2), np.float32)
        prob[:, CU], prob[:, BR] = 0.45, 0.40
        return dataclasses.replace(dets, class_prob=prob, confidence=prob[:, CU]), vis

    cam.frame = unsure  # type: ignore[method-assign]
    ctl = Controller(geometry, recipe, DEFAULT_CLASSES)
    _, pulses = run_stream(ctl, cam, 400)
    seen = ctl.stats()["objects_seen"]
    assert seen >= 25
    if pool:
        assert ctl.stats()["objects_targeted"] == seen and len(pulses) > 0
    else:
        assert ctl.stats()["objects_targeted"] == 0 and len(pulses) == 0


def test_a_malformed_pool_setting_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('name = "r"\nversion = 1\npool_classes = "yes"\n[fractions]\neject = 0\n')
    with pytest.raises(InputFileError, match="pool_classes"):
        load_recipe(path, DEFAULT_CLASSES)
