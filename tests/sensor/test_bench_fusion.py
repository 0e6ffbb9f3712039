"""``bench/fusion.py --quick`` runs and writes the documented JSON."""

from __future__ import annotations

import json
from pathlib import Path

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
