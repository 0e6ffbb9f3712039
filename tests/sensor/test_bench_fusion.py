"""``bench/fusion.py --quick`` runs and writes the documented JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import fusion


def test_fusion_bench_quick(tmp_path: Path) -> None:
    out = tmp_path / "f.json"
    assert fusion.main(["--quick", "--tracks", "10,40", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["command"].startswith("sortline bench fusion")
    rows = data["results"]
    assert [r["tracks"] for r in rows] == [10, 40]
    for r in rows:
        assert r["fused_per_call"] == r["tracks"]  # every footprint was fused
        assert 0 < r["p50_ms"] <= r["p99_ms"] <= r["max_ms"]


def test_fusion_bench_single_frequency_model(tmp_path: Path) -> None:
    out = tmp_path / "f.json"
    argv = ["--quick", "--tracks", "10", "--model", "builtin:induction-v2", "--json", str(out)]
    assert fusion.main(argv) == 0
    row = json.loads(out.read_text())["results"][0]
    assert row["frequencies"] == 1 and row["model"] == "2.0" and row["fused_per_call"] == 10


def test_fusion_bench_before_after(tmp_path: Path) -> None:
    """``--baseline``: the other tree's code times the same case in a child process,
    rounds alternate, each side's quietest round is kept with every round."""
    tree = Path(__file__).resolve().parents[2]  # this tree against itself
    out = tmp_path / "cmp.json"
    argv = [
        "--quick",
        "--tracks",
        "10",
        "--rounds",
        "2",
        "--baseline",
        str(tree),
        "--json",
        str(out),
    ]
    assert fusion.main(argv) == 0
    row = json.loads(out.read_text())["results"][0]
    assert row["tracks"] == 10 and row["baseline"] == str(tree)
    for side in ("before", "after"):
        assert len(row["rounds"][side]) == 2
        assert row[side] in row["rounds"][side]
        assert row[side]["fused_per_call"] == 10 and row[side]["p50_ms"] > 0


def test_fusion_bench_refuses_a_baseline_that_is_not_a_tree(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        fusion.main(["--quick", "--baseline", str(tmp_path)])
