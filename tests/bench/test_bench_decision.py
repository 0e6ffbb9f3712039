"""``bench/decision.py --quick`` runs and writes the documented JSON."""

from __future__ import annotations

import json

from bench import decision


def test_decision_bench_quick(tmp_path):
    out = tmp_path / "d.json"
    assert decision.main(["--quick", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["command"].startswith("sortline bench decision")
    rows = {r["impl"]: r for r in data["results"]}
    assert set(rows) == {"sortline", "scipy_lsa", "bytetrack"}
    for r in rows.values():
        assert r["n_tracks"] == 60
        assert r["n_in_view"] == decision.in_view_for(60) < 60
        assert 0 < r["p50_ms"] <= r["p99_ms"]
    # N counts live tracks (issue 7), not fragments in view: the stream is sized for it
    assert 0.9 * 60 <= rows["sortline"]["live_tracks_mean"] <= 1.1 * 60


def test_decision_bench_runs_the_aiming_variants_side_by_side(tmp_path):
    """``sortline_cut`` and ``sortline_strict`` (the search without its fallback)
    are the same controller with other aiming parameters, on the same scenes."""
    out = tmp_path / "d.json"
    args = ["--quick", "--impls", "sortline,sortline_cut,sortline_strict", "--json", str(out)]
    assert decision.main(args) == 0
    rows = {r["impl"]: r for r in json.loads(out.read_text())["results"]}
    assert set(rows) == {"sortline", "sortline_cut", "sortline_strict"}
    assert len({r["live_tracks_mean"] for r in rows.values()}) == 1  # one tracker, same scenes
