"""``sortline bench line_sensor --visions``: the camera-alone line decomposed by
stage (true segments and classes; the line's segmentation with true classes),
each pooled under its own name beside the line as it is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import line_sensor

pytestmark = pytest.mark.timeout(300)


def test_truth_segments_stage_is_run_and_pooled_apart(tmp_path: Path) -> None:
    out = tmp_path / "l.json"
    argv = ["--quick", "--no-camera", "--visions", "truth-segments", "--json", str(out)]
    assert line_sensor.main(argv) == 0
    rows = json.loads(out.read_text())["results"]
    truth, fused = (r for r in rows if not r.get("pooled"))
    assert truth["vision"] == "truth-segments" and truth["sensor"] is False
    assert fused["vision"] == "model" and fused["sensor"]["fused"]
    pooled = {r["config"]: r for r in rows if r.get("pooled")}
    assert set(pooled) == {"camera, truth-segments", "3.0 anchor 4"}
    # true classes: no run is ever meant for a piece that is not aluminium
    assert all(w["outcome"] != "false_eject" for w in truth["wrong"]), truth["wrong"]
    assert truth["aluminium"].get("ok", 0) > 0
    assert pooled["camera, truth-segments"]["al"] == sum(truth["aluminium"].values())


def test_an_unknown_stage_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        line_sensor.main(["--quick", "--visions", "model,truth"])
    assert "--visions: 'truth' is not one of model, truth-classes, truth-segments" in (
        capsys.readouterr().err
    )
