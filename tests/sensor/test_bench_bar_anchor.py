"""``sortline bench bar_anchor``: a short run writes per-fragment placements at the
bar against the plant's crossings, and a summary per motion kind."""

from __future__ import annotations

import json
from pathlib import Path

from bench import bar_anchor


def test_bar_anchor_bench_short_run(tmp_path: Path) -> None:
    out = tmp_path / "a.json"
    assert bar_anchor.main(["--seed", "3003", "--frames", "200", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["command"].startswith("sortline bench bar_anchor")
    summary, *rows = data["results"]
    assert rows, "no track was matched to a fragment that crossed the bar"
    lying = summary["summary"]["lying"]
    assert lying["fragments"] == sum(r["motion"] == "lying" for r in rows)
    assert all(r["per_frame_mm"] >= 0 and r["used_mm"] >= 0 for r in rows)
    # a piece lying still is read where it crossed, to the segmentation's few mm
    assert lying["used_median_mm"] < 8.0
