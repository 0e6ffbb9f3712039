"""``sortline bench vision --cpu`` (issue 15's frame CPU per stage) runs, writes the
JSON it promises, runs a git revision's segmentation beside the tree's on the same
frames, and refuses bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.vision import main

STAGES = {"split", "segment_rest", "measure_flags", "crops", "classify", "total"}


def test_bench_vision_cpu_quick_against_a_baseline_revision(tmp_path: Path) -> None:
    out = tmp_path / "cpu.json"
    assert main(["--cpu", "shred:500", "--quick", "--baseline", "HEAD", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["command"].startswith("sortline bench vision --cpu shred:500")
    (row,) = res["cpu"]
    assert row["preset"] == "shred" and row["feed_obj_s"] == 500 and row["frames"] == 5
    assert row["same_detections"] is True
    assert set(row) >= {"now", "baseline HEAD"}
    for k in ("now", "baseline HEAD"):
        cpu = row[k]["cpu_ms"]
        assert set(cpu) == STAGES
        assert cpu["total"]["p50"] > 0 and cpu["split"]["p50"] > 0
        assert cpu["total"]["p99"] >= cpu["total"]["p50"]
        assert row[k]["segments_per_frame"] > 10 and row[k]["crops_per_frame"] > 0
    # the same frames and the same segmentation: the same counts
    assert row["now"]["segments_per_frame"] == row["baseline HEAD"]["segments_per_frame"]


def test_bench_vision_cpu_refuses_bad_cells_and_revisions() -> None:
    with pytest.raises(SystemExit):
        main(["--cpu", "shred:lots"])
    with pytest.raises(SystemExit, match="no-such-revision"):
        main(["--cpu", "shred:500", "--quick", "--baseline", "no-such-revision"])


def test_bench_vision_cpu_with_another_crop_budget_beside_the_line(tmp_path: Path) -> None:
    out = tmp_path / "cpu.json"
    assert main(["--cpu", "shred:1000", "--quick", "--crop-budget", "8", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["cpu"]
    assert row["crop_budget"] == 8
    now, fewer = row["now"], row["now, budget 8"]
    assert set(fewer["cpu_ms"]) == STAGES
    assert fewer["segments_per_frame"] == now["segments_per_frame"]
    assert fewer["crops_per_frame"] <= 8 < now["crops_per_frame"]
    with pytest.raises(SystemExit):
        main(["--cpu", "shred:500", "--quick", "--crop-budget", "0"])


def test_bench_vision_cpu_with_the_chroma_split_beside_a_baseline(tmp_path: Path) -> None:
    """``--cpu-chroma`` (session 14's chroma split and one-material flag) against the
    tree's own revision without them: both run on the same frames; the frames
    where they differ are counted, not refused."""
    out = tmp_path / "cpu.json"
    argv = ["--cpu", "shred:500", "--quick", "--cpu-chroma", "--baseline", "HEAD"]
    assert main([*argv, "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["cpu"]
    assert set(row["frames_differing"]) == {"baseline HEAD"}
    assert 0 <= row["frames_differing"]["baseline HEAD"] <= 30 + 5  # warm-up frames too
    assert row["same_detections"] == (row["frames_differing"]["baseline HEAD"] == 0)
    with pytest.raises(SystemExit):
        main(["--cpu", "shred:500", "--quick", "--cpu-chroma", "--cpu-learned"])
