"""``kernels_cover``: box coverage through the grid equals the plain sum over
every associated box (``naive.covered_share``), huge boxes and boxes past the
grid's edges included."""

from __future__ import annotations

import numpy as np
import pytest

from control import kernels_cover as kc

from . import naive


def _boxes(rng, n, span_x=(-50.0, 1050.0), span_y=(-250.0, 250.0), size=(2.0, 60.0)):
    cx = rng.uniform(*span_x, n)
    cy = rng.uniform(*span_y, n)
    hw = rng.uniform(*size, (n, 2)) / 2
    return np.stack([cx - hw[:, 0], cx + hw[:, 0], cy - hw[:, 1], cy + hw[:, 1]], 1)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("cell_mm", [5.0, 14.0, 200.0])
def test_grid_share_equals_plain(seed, cell_mm):
    rng = np.random.default_rng(seed)
    nd = int(rng.integers(0, 300))
    dbox = _boxes(rng, nd)
    if nd:
        dbox[0] = (-300.0, 1400.0, -400.0, 400.0)  # one huge box past every edge
    owner = np.where(rng.random(nd) < 0.7, rng.integers(0, 50, nd), -1).astype(np.int64)
    x0, y0, nx, ny = 0.0, -200.0, int(1000 / cell_mm) + 1, int(400 / cell_mm) + 1
    start, items = kc._box_grid(dbox, owner, x0, y0, cell_mm, nx, ny)
    stamp = np.full(nd, -1, np.int64)
    queries = _boxes(rng, 200, size=(0.0, 80.0))
    queries[:3] = [
        (10.0, 10.0, 0.0, 5.0),
        (-90.0, -60.0, 300.0, 320.0),
        (0.0, 1000.0, -200.0, 200.0),
    ]
    for q, box in enumerate(queries):
        got = kc._grid_share(*box, dbox, start, items, stamp, q, x0, y0, cell_mm, nx, ny)
        assert got == pytest.approx(naive.covered_share(box, dbox, owner), rel=1e-12, abs=1e-12)


def test_no_boxes_and_no_owners():
    dbox = _boxes(np.random.default_rng(1), 20)
    for owner in (np.full(20, -1, np.int64), None):
        d = dbox if owner is not None else np.zeros((0, 4))
        o = owner if owner is not None else np.zeros(0, np.int64)
        start, items = kc._box_grid(d, o, 0.0, -200.0, 10.0, 101, 41)
        assert len(items) == 0
        stamp = np.full(len(d), -1, np.int64)
        share = kc._grid_share(
            0.0, 50.0, -10.0, 10.0, d, start, items, stamp, 0, 0.0, -200.0, 10.0, 101, 41
        )
        assert share == 0.0
