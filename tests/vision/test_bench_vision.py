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


def test_bench_vision_study_quick(tmp_path: Path) -> None:
    out = tmp_path / "study.json"
    assert main(["--study", "crowded:0", "--quick", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["study"]
    assert row["preset"] == "crowded" and row["frames"] == 5
    assert set(row) >= {"every", "tracks", "tracks_colour", "tracks_learned"}
    for k in ("every", "tracks", "tracks_colour", "tracks_learned"):
        m = row[k]["merges"]
        assert m["segments"] > 0 and 0.0 <= m["touching_merged_share"] <= 1.0
        assert row[k]["crops_per_frame"] > 0
    # the same segmentation: every view has at least as many crops as tracks
    assert row["every"]["crops_per_frame"] >= row["tracks"]["crops_per_frame"]


def test_bench_vision_study_refuses_a_bad_cell() -> None:
    import pytest

    with pytest.raises(SystemExit):
        main(["--study", "crowded:lots"])
    with pytest.raises(SystemExit):
        main(["--study", "crowded:0", "--variants", "tracks,magic"])
