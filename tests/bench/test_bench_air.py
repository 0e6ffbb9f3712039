"""``bench/air.py --quick`` runs the controller on the virtual plant and writes JSON."""

from __future__ import annotations

import json

from bench import air


def test_air_bench_quick(tmp_path):
    out = tmp_path / "air.json"
    assert air.main(["--quick", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["command"].startswith("sortline bench air")
    (entry,) = data["presets"]
    assert entry["preset"] == "default"
    for impl in ("adaptive", "baseline"):
        row = entry[impl]
        assert row["deadline_misses"] == 0 and row["plc_late"] == 0 and row["plc_refused"] == 0
        assert row["crossed"] > 0
    assert {r["impl"] for r in data["results"]} == {"adaptive", "baseline"}
