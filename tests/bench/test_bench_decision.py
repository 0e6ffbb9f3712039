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
        assert 0 < r["p50_ms"] <= r["p99_ms"]
    assert rows["sortline"]["live_tracks_mean"] > 30
