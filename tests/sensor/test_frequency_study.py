"""The frequency study: the plant's coil response reads f x sigma, so a brass twin of
every copper piece reads the same at every frequency (``sortline.sensor.frequency_study``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.plant.induction import layer_response
from sortline.sensor.frequency_study import (
    bar_features,
    check_identity,
    degenerate_twin,
    draw_pieces,
    knn_accuracy,
    mlp_accuracy,
)

LAM_COIL = 1e3 / 15.0


@pytest.mark.parametrize(
    ("thick_mm", "a_mm", "frequency_hz"),
    [(0.5, 5.0, 500.0), (1.0, 10.0, 5000.0), (1.5, 20.0, 50000.0), (2.0, 40.0, 2e5)],
)
def test_brass_twin_reads_as_copper(thick_mm: float, a_mm: float, frequency_hz: float) -> None:
    lam = math.hypot(LAM_COIL, 3.8317e3 / a_mm)
    t2, lam2 = degenerate_twin(5.8e7, thick_mm, lam, 1.55e7)
    assert t2 == pytest.approx(thick_mm * math.sqrt(5.8 / 1.55))
    r_cu = layer_response(5.8e7, 1.0, thick_mm, lam, frequency_hz)
    r_twin = layer_response(1.55e7, 1.0, t2, lam2, frequency_hz)
    assert abs(r_cu - r_twin) < 1e-12
    # the same thickness and size in brass reads differently: the identity is not trivial
    assert abs(r_cu - layer_response(1.55e7, 1.0, thick_mm, lam, frequency_hz)) > 1e-3


def test_identity_over_the_grid() -> None:
    assert check_identity() < 1e-12


@pytest.mark.parametrize(
    ("sigma", "thick", "lam", "twin"),
    [(0.0, 1.0, 100.0, 1e7), (5e7, -1.0, 100.0, 1e7), (5e7, 1.0, 0.0, 1e7), (5e7, 1.0, 1.0, 0.0)],
)
def test_twin_refuses_non_positive(sigma: float, thick: float, lam: float, twin: float) -> None:
    with pytest.raises(ValueError, match="degenerate_twin"):
        degenerate_twin(sigma, thick, lam, twin)


def test_pieces_as_the_plant_draws_them() -> None:
    p = draw_pieces(60, (5000.0, 50000.0), seed=5)
    assert p.label.shape == (120,) and p.resp.shape == (120, 2) and p.box.shape == (120, 2)
    assert (p.box[:, 0] <= p.box[:, 1]).all() and (p.area > 0).all()
    # non-ferrous: negative in-phase, phase between 90 and 180 degrees at both frequencies
    assert (p.resp.real < 0).all() and (p.resp.imag < 0).all()
    assert p.wire[p.label == 1].sum() == 0  # the plant's brass is never a wire
    with pytest.raises(ValueError, match="draw_pieces"):
        draw_pieces(0, (5000.0,), seed=5)


def test_knn_separates_what_differs_and_not_what_does_not() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 400)
    apart = np.concatenate([rng.normal(0, 1, (400, 2)), rng.normal(6, 1, (400, 2))])
    assert knn_accuracy(apart, y) > 0.99
    same = rng.normal(0, 1, (800, 2))
    assert 0.35 < knn_accuracy(same, y) < 0.65


def test_true_size_separates_copper_from_brass_where_the_box_does_not() -> None:
    """The study's claim on a small draw: the bar with the piece's true lambda tells
    the pair apart almost always, the bar alone far less often."""
    p = draw_pieces(500, (5000.0, 50000.0), seed=3004)
    bar = bar_features(p, [0, 1], noise_units=1.0, gain=1000.0, seed=1)
    alone = knn_accuracy(bar, p.label)
    with_lam = knn_accuracy(np.concatenate([bar, np.log(p.lam)[:, None]], axis=1), p.label)
    assert with_lam > 0.97
    assert alone < with_lam - 0.08


def test_mlp_cross_check_separates_what_differs() -> None:
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 200)
    x = np.concatenate([rng.normal(0, 1, (200, 2)), rng.normal(5, 1, (200, 2))])
    assert mlp_accuracy(x, y, epochs=150) > 0.97
