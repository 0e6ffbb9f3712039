"""``sim.plant.ejection.coverage`` against an obvious loop version on random cases."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.plant.ejection import AirRuns, coverage


def naive(xs, dys, ts, runs, keys, grid):
    hit = [False] * len(xs)
    per_key: dict[int, set[int]] = {}
    for p, (x, t) in enumerate(zip(xs, ts, strict=True)):
        for r in range(len(runs)):
            if (
                runs.x_left_mm[r] <= x <= runs.x_right_mm[r]
                and runs.on_tick[r] <= t <= runs.off_tick[r]
            ):
                hit[p] = True
                per_key.setdefault(int(keys[r]), set()).add(p)
    if not any(hit):
        return 0.0, 0.0, 0.0, {}
    xb = [math.floor(x / grid) for x in xs]
    yb = [math.floor(y / grid) for y in dys]
    width = len({b for b, h in zip(xb, hit, strict=True) if h}) / len(set(xb))
    length = len({b for b, h in zip(yb, hit, strict=True) if h}) / len(set(yb))
    shares = {k: len(v) / len(xs) for k, v in per_key.items()}
    return width, length, sum(hit) / len(xs), shares


floats = st.floats(-50, 50, allow_nan=False)


@settings(max_examples=150, deadline=None)
@given(
    pts=st.lists(st.tuples(floats, floats, floats), min_size=1, max_size=40),
    runs=st.lists(
        st.tuples(floats, st.floats(0, 40), floats, st.floats(0, 40), st.integers(0, 3)), max_size=6
    ),
)
def test_coverage_equals_naive(pts, runs):
    xs = np.array([p[0] for p in pts])
    dys = np.array([p[1] for p in pts])
    ts = np.array([p[2] for p in pts])
    n = len(runs)
    air = AirRuns(
        actuator=np.zeros(n, np.int16),
        x_left_mm=np.array([r[0] for r in runs], float),
        x_right_mm=np.array([r[0] + r[1] for r in runs], float),
        on_tick=np.array([r[2] for r in runs], float),
        off_tick=np.array([r[2] + r[3] for r in runs], float),
        run_row=np.arange(n, dtype=np.int64),
        track_id=np.zeros(n, np.int64),
    )
    keys = np.array([r[4] for r in runs], np.int64)
    cov = coverage(xs, dys, ts, air, 2.0, keys)
    width, length, share, shares = naive(xs, dys, ts, air, keys, 2.0)
    assert np.isclose(cov.width_share, width) and np.isclose(cov.length_share, length)
    assert np.isclose(cov.hit_share, share)
    got = dict(zip(cov.run_keys.tolist(), cov.run_hit_share.tolist(), strict=True))
    assert got.keys() == shares.keys()
    assert all(np.isclose(got[k], shares[k]) for k in shares)
