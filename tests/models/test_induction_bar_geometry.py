"""An induction model knows the bar it was fitted on (coil pitch, coil radius, row
spacing): the line refuses a model whose bar is not its own, in one line, and a
model file says its bar or means the default one."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from core.classes import DEFAULT_CLASSES
from core.errors import InputFileError
from models.induction import BUILTIN, DEFAULT_BAR_MM, FEATURE_NAMES, InductionModel, resolve
from sortline.config import load_config
from sortline.sensor.cli import model_bar
from sortline.sensor.wiring import attach, bar_geometry_mm, plant_bar

FINE = (15.625, 7.5, 5.0)


def _model(bar_mm: tuple[float, float, float] = DEFAULT_BAR_MM) -> InductionModel:
    k, d = len(DEFAULT_CLASSES), len(FEATURE_NAMES)
    layers = ((np.zeros((4, d)), np.zeros(4)), (np.zeros((4, 4)), np.zeros(4)),
              (np.zeros((k, 4)), np.zeros(k)))  # fmt: skip
    return InductionModel("t", DEFAULT_CLASSES, np.zeros(d), np.ones(d), layers, bar_mm=bar_mm)


def test_the_bar_round_trips_and_an_old_file_means_the_default_bar(tmp_path: Path) -> None:
    fine = _model(FINE)
    fine.save(tmp_path / "fine.json")
    assert json.loads((tmp_path / "fine.json").read_text())["bar"] == {
        "pitch_mm": 15.625, "coil_radius_mm": 7.5, "row_mm": 5.0}  # fmt: skip
    assert InductionModel.load(tmp_path / "fine.json").bar_mm == FINE
    d = json.loads((tmp_path / "fine.json").read_text())
    del d["bar"]  # a model saved before the bar was recorded
    (tmp_path / "old.json").write_text(json.dumps(d))
    assert InductionModel.load(tmp_path / "old.json").bar_mm == DEFAULT_BAR_MM
    assert InductionModel.load(resolve(BUILTIN)).bar_mm == DEFAULT_BAR_MM


@pytest.mark.parametrize("bar", [{"pitch_mm": 31.25}, {"pitch_mm": 0, "coil_radius_mm": 15,
                                 "row_mm": 5}, "31.25"])  # fmt: skip
def test_a_malformed_bar_is_refused_naming_it(tmp_path: Path, bar: Any) -> None:
    d = _model().to_dict()
    d["bar"] = bar
    (tmp_path / "m.json").write_text(json.dumps(d))
    with pytest.raises(InputFileError) as exc:
        InductionModel.load(tmp_path / "m.json")
    assert "bar" in str(exc.value) and "m.json" in str(exc.value)
    assert "\n" not in str(exc.value)
    with pytest.raises(ValueError, match="bar_mm"):
        _model((31.25, -1.0, 5.0))


def test_check_bar_names_both_geometries() -> None:
    m = _model()
    assert m.check_bar((5000.0,), DEFAULT_BAR_MM) == ""
    assert m.check_bar((5000.0,), (31.25, 15.0, 5.000001)) == ""  # rounding is not a mismatch
    msg = m.check_bar((5000.0,), FINE)
    assert "31.25 mm coil pitch, 15 mm coil radius, a row every 5 mm" in msg
    assert "this bar has 15.625, 7.5, 5 mm" in msg and "\n" not in msg
    assert "reads [5000.0] Hz" in m.check_bar((10000.0,), DEFAULT_BAR_MM)  # frequencies still


def test_the_line_refuses_a_model_fitted_on_another_bar() -> None:
    cfg = load_config()
    s = cfg.sensor.model_copy(update={"enabled": True, "port": 0, "pitch_mm": 15.625,
                                      "channels": 64, "coil_radius_mm": 7.5})  # fmt: skip
    fine = cfg.model_copy(update={"sensor": s})
    assert bar_geometry_mm(fine) == FINE and bar_geometry_mm(cfg) == DEFAULT_BAR_MM
    with pytest.raises(ValueError) as exc:  # the shipped model, fitted on the 31.25 mm bar
        attach(fine, cast(Any, None), DEFAULT_CLASSES)
    text = str(exc.value)
    assert text.startswith("sensor.model / sensor.frequencies_hz, pitch_mm, coil_radius_mm")
    assert "fitted on a bar of 31.25 mm coil pitch" in text and "\n" not in text
    bar = plant_bar(fine.sensor)  # the embedded plant's bar is the configured one
    assert (bar.channels, bar.pitch_mm, bar.coil_radius_mm) == (64, 15.625, 7.5)


def test_model_bar_covers_the_belt_and_refuses_a_fractional_row() -> None:
    assert dataclasses.astuple(model_bar((5000.0,)))[:2] == (32, 31.25)
    fine = model_bar((5000.0, 50000.0), FINE)
    assert (fine.channels, fine.pitch_mm, fine.coil_radius_mm, fine.every_ticks) == (
        64, 15.625, 7.5, 50)  # fmt: skip
    assert model_bar((5000.0,), DEFAULT_BAR_MM) == model_bar((5000.0,))
    with pytest.raises(ValueError, match="not a whole number of encoder counts"):
        model_bar((5000.0,), (31.25, 15.0, 3.33))
