"""``sortline bench vision --quick`` runs and writes the JSON it promises."""

from __future__ import annotations

import json
from pathlib import Path

from bench.vision import main


def test_bench_vision_quick(tmp_path: Path) -> None:
    out = tmp_path / "vision.json"
    assert main(["--quick", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["command"].startswith("sortline bench vision --quick")
    (row,) = res["speed"]
    assert row["fragments_target"] == 25 and row["frames_timed"] == 3
    assert row["fps_median"] > 0 and row["frame_ms_p99"] >= row["frame_ms_median"]
    assert set(res["segmentation"]) == {"easy", "default", "crowded", "fast", "dirty"}
    for score in res["segmentation"].values():
        assert 0.0 <= score["recall"] <= 1.0 and score["frames"] == 1
