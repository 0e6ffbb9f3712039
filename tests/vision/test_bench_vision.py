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
    rows = res["speed"]
    assert [r["mode"] for r in rows] == ["sync", "pipelined"]
    for row in rows:
        assert row["fragments_target"] == 25 and row["frames_timed"] == 3
        assert row["fps_median"] > 0 and row["frame_ms_p99"] >= row["frame_ms_p50"]
        assert row["latency_ms_p99"] >= row["latency_ms_p50"] > 0
        assert row["detections_per_frame"] > 5  # every detection classified, none skipped
        assert set(row["stage_ms_mean"]) == {"segment", "crop_and_measure", "classify"}
        assert row["cpu_ms_per_frame"] > 0
        assert row["stage_cpu_ms_mean"]["prepare"] > 0 and row["stage_cpu_ms_mean"]["finish"] > 0
    assert rows[1]["threads"]["python_threads"] == 2 and rows[1]["threads"]["ort_intra_op"] == 1
    assert rows[0]["fps_bound_two_free_cores"] is None
    assert rows[1]["fps_bound_two_free_cores"] > 0
    assert set(res["targets_met"]) == {"sync", "pipelined"}
    for met in res["targets_met"].values():
        assert isinstance(met["fps_200_at_25"], bool)
        assert all(isinstance(v, bool) for v in met["objects_5000_at"].values())
    assert set(res["segmentation"]) == {"easy", "default", "crowded", "fast", "dirty"}
    for score in res["segmentation"].values():
        assert 0.0 <= score["recall"] <= 1.0 and score["frames"] == 1
