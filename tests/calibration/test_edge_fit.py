"""Logistic edge fit and the joint line/delay solve on data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.edge_fit import fit_edge, solve_line_and_delays


@pytest.mark.parametrize(
    ("edge", "width", "rising", "n", "tol"),
    [
        (302.4, 0.2, True, 400, 0.1),
        (298.1, 0.2, False, 400, 0.1),
        (10.0, 0.0, True, 60, 0.3),  # perfectly separated: the edge lies in the gap
        (-3.0, 1.0, False, 2000, 0.2),
    ],
)
def test_fit_edge_recovers_the_edge(
    edge: float, width: float, rising: bool, n: int, tol: float
) -> None:
    rng = np.random.default_rng(1)
    pos = edge + rng.uniform(-4, 4, n)
    noise = rng.logistic(0.0, width, n) if width else np.zeros(n)
    hit = (pos + noise > edge) if rising else (pos + noise < edge)
    got = fit_edge(pos, hit, rising)
    assert got is not None
    assert abs(got[0] - edge) < tol, got
    assert 0 < got[1] < 1.0


@pytest.mark.parametrize(
    ("hit", "rising"),
    [
        (np.ones(20, bool), True),
        (np.zeros(20, bool), False),
        (np.r_[np.ones(10, bool), np.zeros(10, bool)], True),
    ],  # falls, but a rise was asked for
)
def test_fit_edge_without_a_transition(hit: np.ndarray, rising: bool) -> None:
    assert fit_edge(np.arange(20.0), hit, rising) is None


def test_solve_line_and_delays_exact() -> None:
    rng = np.random.default_rng(2)
    n, y_valve = 6, 303.3
    d_open, d_close = rng.uniform(2, 4.5, n), rng.uniform(1, 3, n)
    rows = []
    for v in (0.5, 1.5, 3.0):
        for j in range(n - 1):  # the last valve is never seen
            rows.append((j, v, y_valve - d_open[j] * v, True))
            rows.append((j, v, y_valve - d_close[j] * v, False))
    valve, speed, edge, is_open = (np.array(c) for c in zip(*rows, strict=True))
    y, y_se, o, o_se, c, c_se, rms = solve_line_and_delays(
        valve.astype(np.int64),
        speed.astype(float),
        edge.astype(float),
        np.full(len(edge), 0.1),
        is_open.astype(bool),
        n,
    )
    assert y == pytest.approx(y_valve, abs=1e-9) and rms < 1e-9
    np.testing.assert_allclose(o[:-1], d_open[:-1], atol=1e-9)
    np.testing.assert_allclose(c[:-1], d_close[:-1], atol=1e-9)
    assert np.isnan(o[-1]) and np.isnan(c[-1]) and np.all(o_se[:-1] > 0) and y_se > 0
    assert np.all(c_se[:-1] > 0)
