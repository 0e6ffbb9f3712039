"""The controller's fast paths equal the slow, validated ones: trusted batches,
the pulse column kernel, and the outlook refreshed only where evidence changed."""

from __future__ import annotations

import numpy as np
import pytest

from control import kernels_intervals
from control.controller import Controller
from control.evidence import class_outlook
from control.recipe import parse_recipe
from control.synthetic import SyntheticCamera, random_objects
from core.classes import DEFAULT_CLASSES
from core.ticks import TICK_MODULUS
from core.types import Pulses, Tracks

SEEDS = [0, 1, 2]


def _assert_same_batch(got, cls) -> None:
    fields = {name: getattr(got, name) for name in cls._SCHEMA}
    extra = {"tick": got.tick} if cls is Tracks else {}
    want = cls(**fields, **extra)  # the validated constructor
    for name in cls._SCHEMA:
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert a.flags.c_contiguous and not a.flags.writeable, name
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("seed", SEEDS)
def test_controller_batches_equal_validated_ones(geometry, recipe, seed):
    obj = random_objects(geometry, 60, (-900.0, 200.0), len(DEFAULT_CLASSES), seed)
    cam = SyntheticCamera(geometry, obj, len(DEFAULT_CLASSES), p_true=0.8, seed=seed)
    ctl = Controller(geometry, recipe, DEFAULT_CLASSES)
    n_pulses = 0
    for f in range(60):
        tracks, pulses = ctl.update(cam.frame(f)[0])
        _assert_same_batch(tracks, Tracks)
        if len(pulses):
            _assert_same_batch(pulses, Pulses)
            n_pulses += len(pulses)
    assert n_pulses > 0


@pytest.mark.parametrize("seed", SEEDS)
def test_pulse_columns_equal_numpy(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 9))
    rows = np.column_stack(
        [
            rng.integers(0, 3, 12), rng.integers(0, 80, 12), rng.integers(0, 80, 12),
            rng.integers(-(1 << 33), 1 << 34, 12), rng.integers(-(1 << 33), 1 << 34, 12),
            rng.integers(0, 1 << 40, 12), rng.integers(-1, 4, 12),
        ]
    ).astype(np.int64)  # fmt: skip
    got = kernels_intervals._pulse_columns(rows, n, TICK_MODULUS)
    want = (
        rows[:n, 0].astype(np.int16), rows[:n, 1].astype(np.int16),
        rows[:n, 2].astype(np.int16), (rows[:n, 3] % TICK_MODULUS).astype(np.uint32),
        (rows[:n, 4] % TICK_MODULUS).astype(np.uint32), rows[:n, 5],
        rows[:n, 6].astype(np.int16),
    )  # fmt: skip
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("seed", SEEDS)
def test_incremental_outlook_equals_full(geometry, recipe, seed):
    """After every frame (births, deaths and row moves, decisions, recipe
    switches) the outlook of undecided rows equals a fresh computation."""
    obj = random_objects(geometry, 80, (-900.0, 200.0), len(DEFAULT_CLASSES), seed)
    cam = SyntheticCamera(geometry, obj, len(DEFAULT_CLASSES), p_true=0.6, seed=seed)
    ctl = Controller(geometry, recipe, DEFAULT_CLASSES)
    other = parse_recipe(
        'name = "steel"\nversion = 1\n[fractions]\nferrous = 0\n'
        '[classes.steel]\nfraction = "ferrous"\nthreshold = 0.3\n',
        "steel.toml",
        DEFAULT_CLASSES,
    )
    for f in range(70):
        if f % 5 == 4:  # recipe switches: rows without new evidence must be redone too
            ctl.set_recipe(other if f % 10 == 4 else recipe)
        ctl.update(cam.frame(f)[0])
        tab, n = ctl._tracker.table, ctl._tracker.table.n
        undecided = tab.DEC[:n] == 0
        want = class_outlook(tab.EV[:n], tab.NEV[:n], ctl._cls_frac, ctl._threshold, ctl._order)
        got = (tab.CLS[:n], tab.CPROB[:n], tab.FRAC[:n], tab.TCLS[:n])
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g[undecided], w[undecided])
