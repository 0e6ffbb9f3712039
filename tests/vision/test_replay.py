"""``sortline replay`` on a video recorded from the virtual plant, and bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from calibration.geometry import LineGeometry
from sortline.cli import main

N_FRAMES = 80


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """An MJPG video of the default scene, and how many fragments crossed the whole view."""
    from sim.plant.plant import IdlePlc, VirtualPlant
    from sim.plant.scenario import load_scenario

    path = tmp_path_factory.mktemp("replay") / "belt.avi"
    plant = VirtualPlant(LineGeometry(), load_scenario("default"), IdlePlc(), seed=10_900)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 100.0, (1280, 512))
    first_row: dict[int, float] = {}
    last_row: dict[int, float] = {}
    for _ in range(N_FRAMES):
        frame = plant.step()
        writer.write(np.ascontiguousarray(frame.image))
        truth = plant.visible_truth()
        for fid, c in zip(truth.fragment_id, truth.centroid_px, strict=True):
            first_row.setdefault(int(fid), float(c[1]))
            last_row[int(fid)] = float(c[1])
    writer.release()
    # fragments seen over at least a quarter of the view: the tracker confirms those
    crossed = sum(1 for f in first_row if last_row[f] - first_row[f] > 128)
    return path, crossed


def test_replay_counts_distinct_fragments(
    recording: tuple[Path, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video, crossed = recording
    out = tmp_path / "replay.json"
    assert main(["replay", str(video), "--json", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == summary
    assert summary["frames"] == N_FRAMES and summary["error"] is None
    assert summary["tick_estimated"] is True
    assert crossed >= 8
    # without an encoder the ticks are estimated from the nominal speed, and
    # replay over-counts: 0 to 52 % more tracks than fragments crossing a quarter
    # of the view over five plant seeds, before and after the plant of issue 16
    # (ID switches); the bound catches a tracker that falls apart, not that
    assert crossed * 0.8 <= summary["objects"] <= crossed * 1.6
    assert sum(summary["per_class"].values()) + summary["unclassified"] == summary["objects"]
    assert summary["throughput_fps"] > 0


@pytest.mark.parametrize(
    ("content", "words"),
    [(None, "video file not found"), (b"garbage" * 100, "cannot open|no frame")],
)
def test_replay_bad_video_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, words: str
) -> None:
    import re

    video = tmp_path / "v.mp4"
    if content is not None:
        video.write_bytes(content)
    assert main(["replay", str(video)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(video) in err and re.search(words, err)
