"""``bench/air.py --quick`` runs the controller on the virtual plant and writes
JSON; its interval helpers agree with textbook values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import _air_stats, air


def test_air_bench_quick(tmp_path):
    out = tmp_path / "air.json"
    assert air.main(["--quick", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["command"].startswith("sortline bench air")
    (entry,) = data["presets"]
    assert entry["preset"] == "default"
    assert entry["seeds"] == [7]
    for impl in ("adaptive", "baseline"):
        row = entry[impl]
        assert row["deadline_misses"] == 0 and row["plc_late"] == 0 and row["plc_refused"] == 0
        assert row["targeted"] > 0
        lo, hi = row["recovery_ci95"]
        assert 0.0 <= lo <= row["recovery"] <= hi <= 1.0
    paired = entry["recovery_paired"]
    assert paired["n"] > 0
    assert (
        paired["both"] + paired["only_adaptive"] + paired["only_baseline"] + paired["neither"]
        == paired["n"]
    )
    assert paired["low"] <= paired["diff"] <= paired["high"]
    assert {r["impl"] for r in data["results"]} == {"adaptive", "baseline"}


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [(81, 263, 0.2553, 0.3662), (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0)],
)
def test_wilson_matches_reference_values(k, n, low, high):
    got = _air_stats.wilson(k, n)
    assert got == pytest.approx((low, high), abs=1e-4)


def test_paired_difference_counts_and_symmetry():
    a = [True] * 12 + [True] * 9 + [False] * 2 + [False] * 13
    b = [True] * 12 + [False] * 9 + [True] * 2 + [False] * 13
    got = _air_stats.paired_difference(a, b)
    assert (got["both"], got["only_adaptive"], got["only_baseline"], got["neither"]) == (
        12,
        9,
        2,
        13,
    )
    assert got["diff"] == pytest.approx(7 / 36)
    assert got["low"] < got["diff"] < got["high"]
    swapped = _air_stats.paired_difference(b, a)
    assert (swapped["low"], swapped["high"]) == pytest.approx((-got["high"], -got["low"]))


def test_paired_difference_covers_the_true_difference():
    """Simulated paired recoveries (0.95 vs 0.96, correlated through shared
    fragments): the 95 % interval holds the true difference in 93-98 % of runs."""
    rng = np.random.default_rng(5)
    n, trials, hits = 300, 1500, 0
    for _ in range(trials):
        hard = rng.random(n) < 0.05  # fragments both schedulers find hard
        a = (~hard & (rng.random(n) < 0.9895)) | (hard & (rng.random(n) < 0.5))
        b = (~hard & (rng.random(n) < 1.0)) | (hard & (rng.random(n) < 0.5))
        true = (0.95 * 0.9895 + 0.05 * 0.5) - (0.95 * 1.0 + 0.05 * 0.5)
        got = _air_stats.paired_difference(a.tolist(), b.tolist())
        hits += got["low"] <= true <= got["high"]
    assert 0.93 <= hits / trials <= 0.98
