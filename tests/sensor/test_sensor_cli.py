"""``sortline model eval --held-out`` writes the documented JSON; ``train-sensor``
fits a loadable model; the shipped model loads and refuses a malformed file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.classes import DEFAULT_CLASSES
from core.errors import InputFileError
from models.induction import BUILTIN, InductionModel, resolve
from sortline.cli import main

pytestmark = pytest.mark.timeout(240)


def test_eval_held_out_json(tmp_path: Path) -> None:
    out = tmp_path / "fused.json"
    argv = ["model", "eval", "--held-out", "--presets", "dirty"]
    assert main([*argv, "--scenes", "1", "--frames", "30", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    for side in ("camera", "fused"):
        r = data[side]
        assert 0.0 <= r["per_fragment_top1"] <= 1.0 and r["fragments"] > 5
        assert 0.0 <= r["dirty_top1"] <= 1.0
        assert set(r["pairs"]) == {"aluminium/stainless", "copper/brass"}
        assert np.asarray(r["confusion"]).sum() == r["fragments"]
    assert data["camera"]["fragments"] == data["fused"]["fragments"]
    assert data["sensor_version"] == InductionModel.load(resolve(BUILTIN)).version


def test_train_sensor_small(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ind.json"
    argv = ["model", "train-sensor", "--scenes", "1", "--frames", "60", "--seed", "9"]
    small = ["--epochs", "3", "--val-scenes", "1", "--val-frames", "45"]
    assert main([*argv, *small, "--out", str(out), "--version", "t"]) == 0
    model = InductionModel.load(out)
    assert model.version == "t" and model.class_names == DEFAULT_CLASSES
    report = json.loads(capsys.readouterr().out)
    assert report["samples"] > 20
    grid = report["validation_grid"]
    ratios = [g for g in grid if "top1" in g]
    temps = [g for g in grid if "nll" in g]
    ratio = model.camera_temperature * model.sensor_weight
    # the ratio kept is the grid's best top-1, the temperature its least NLL
    assert max(g["top1"] for g in ratios) == next(
        g["top1"] for g in ratios if g["sensor_ratio"] == pytest.approx(ratio)
    )
    best = min(temps, key=lambda g: g["nll"])
    assert best["camera_temperature"] == pytest.approx(model.camera_temperature)


def test_malformed_model_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    d = InductionModel.load(resolve(BUILTIN)).to_dict()
    d["layers"][1]["weight"] = d["layers"][1]["weight"][:3]
    bad.write_text(json.dumps(d))
    with pytest.raises(InputFileError, match="layer 1"):
        InductionModel.load(bad)
    with pytest.raises(InputFileError, match="format"):
        bad.write_text("{}")
        InductionModel.load(bad)


def test_diagnose_sensor_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "causes.json"
    argv = ["model", "diagnose-sensor", "--val-scenes", "1", "--val-frames", "30"]
    assert main([*argv, "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["fragments"] > 5
    assert sum(data["causes"].values()) == data["fused_errors"]
    assert "| cause | fused errors |" in capsys.readouterr().out
