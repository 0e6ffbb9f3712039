"""``sortline sim record`` writes a readable video and a consistent JSON truth."""

from __future__ import annotations

import json

import cv2
import pytest

from sortline.cli import main


def test_record_writes_video_and_truth(tmp_path):
    out = tmp_path / "belt.mp4"
    rc = main(["sim", "record", "--out", str(out), "--seconds", "0.3", "--rate", "60",
               "--speed", "3.0", "--seed", "2"])  # fmt: skip
    assert rc == 0
    cap = cv2.VideoCapture(str(out))
    n = 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        assert img.shape == (512, 1280, 3)
        n += 1
    assert n == 30
    doc = json.loads(out.with_suffix(".json").read_text())
    assert len(doc["frames"]) == 30 and doc["seed"] == 2
    assert doc["scenario"]["motion"]["speed_mm_s"] == 3000.0
    ticks = {f["frame_id"]: f["tick"] for f in doc["frames"]}
    # 10 ms at ~3 m/s = ~300 ticks of 0.1 mm between frames
    steps = [ticks[i + 1] - ticks[i] for i in range(29)]
    assert all(250 < s < 350 for s in steps)
    assert doc["fragments"], "no fragment was visible"
    for frag in doc["fragments"]:
        assert frag["class"] in doc["classes"]
        for view in frag["frames"]:
            assert view["tick"] == ticks[view["frame_id"]]
            assert len(view["polygon_px"]) >= 1 and len(view["polygon_px"][0]) == 2


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--seconds", "0"], "--seconds"),
        (["--speed", "-1"], "speed_mm_s"),
        (["--rate", "1e9"], "rate_obj_s"),
        (["--scenario", "nosuch"], "no such preset"),
        (["--seed", "-4"], "--seed"),
    ],
)
def test_record_bad_input_is_one_line(tmp_path, capsys, args, words):
    rc = main(["sim", "record", "--out", str(tmp_path / "x.mp4"), *args])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err and "Traceback" not in err


def test_record_refuses_other_containers(tmp_path, capsys):
    assert main(["sim", "record", "--out", str(tmp_path / "x.avi")]) == 2
    assert ".mp4" in capsys.readouterr().err


def test_record_to_an_impossible_place(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["sim", "record", "--out", str(blocker / "sub" / "x.mp4"), "--seconds", "0.1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot create its folder" in err and "\n" not in err
