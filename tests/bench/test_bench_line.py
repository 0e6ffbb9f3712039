from __future__ import annotations

import json
from pathlib import Path

from bench import line


def test_line_bench_quick_writes_its_json(tmp_path: Path) -> None:
    out = tmp_path / "line.json"
    assert line.main(["--quick", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["command"].startswith("sortline bench line")
    (row,) = data["results"]
    assert row["preset"] == "default" and row["frames"] == 60
    assert row["latency_ms"]["p99"] >= row["latency_ms"]["p50"] > 0
