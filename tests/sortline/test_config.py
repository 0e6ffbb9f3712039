"""LineConfig: embedded default, overlays, and one-line errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import InputFileError
from sortline.config import load_config

from .conftest import configured_line


def test_embedded_default_is_the_virtual_plant() -> None:
    cfg = load_config()
    assert (cfg.belt.width_mm, cfg.belt.speed_mm_s) == (1000.0, 2500.0)
    assert (cfg.camera.width_px, cfg.camera.height_px, cfg.camera.fps) == (1280, 512, 100.0)
    assert (cfg.camera.view_width_mm, cfg.camera.view_length_mm) == (1000.0, 400.0)
    assert (cfg.valves.n_valves, cfg.valves.pitch_mm, cfg.valves.y_valve_mm) == (80, 12.5, 300.0)
    assert cfg.sim.enabled and cfg.api.port == 8000


def test_overlay_changes_only_what_it_names(tmp_path: Path) -> None:
    p = tmp_path / "line.toml"
    p.write_text('[belt]\nspeed_mm_s = 3500.0\n[vision]\nmodel = "m/x.onnx"\n')
    cfg = load_config(p)
    assert cfg.belt.speed_mm_s == 3500.0 and cfg.belt.width_mm == 1000.0
    assert cfg.resolve_path(cfg.vision.model) == tmp_path / "m" / "x.onnx"


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ("[valves]\npitch_mm = -1.0\n", "valves.pitch_mm", "greater than 0"),
        ("[valves]\npitch_mm = 'wide'\n", "valves.pitch_mm", "valid number"),
        ("[valvs]\npitch_mm = 1.0\n", "valvs", "unknown setting"),
        ("[belt]\nwidth_mm = 1000.0\ncolour = 1\n", "belt.colour", "unknown setting"),
        ("belt = 3\n", "belt", "must be a table"),
        ("[plc]\nport = 70000\n", "plc.port", "less than or equal to 65535"),
        ("[plc]\ntransport = 'carrier-pigeon'\n", "plc.transport", "'tcp' or 'rtu'"),
        ("[valves]\nn_valves = 200\n", "(top level)", "beyond the 1000.0 mm belt"),
        ("[control]\naim_rule = 'nearest'\n", "control.aim_rule", "'cut' or 'search'"),
        ("[control]\nlift_share = 1.5\n", "control.lift_share", "less than 1"),
        ("[control]\njet_length_mm = -2.0\n", "control.jet_length_mm", "greater than or equal"),
        ("[control]\nlift_share = 0.95\n", "control", "lift_share 0.95 must lie in (aim_margin"),
        ("[control]\naim_fallback_margin = 0.2\n", "control", "must not exceed aim_margin 0.1"),
        ("[control]\naim_last_resort = 'all'\n", "control.aim_last_resort", "'least' or 'cover'"),
        ("[control]\naim_last_k_sigma = 3\n", "control.aim_last_k_sigma", "less than or equal"),
        ("[records]\ntimezone = 'Mars/Olympus_Mons'\n", "records.timezone", "unknown time zone"),
        # found by the fuzz test: a zone name longer than a file name reached the
        # file system (OSError: file name too long) instead of a one-line refusal
        (f"[records]\ntimezone = '{'x' * 300}'\n", "records.timezone", "at most 64 characters"),
    ],
)
def test_bad_config_names_file_field_and_reason(
    tmp_path: Path, text: str, field: str, reason: str
) -> None:
    p = tmp_path / "line.toml"
    p.write_text(text)
    with pytest.raises(InputFileError) as info:
        load_config(p)
    msg = str(info.value)
    assert str(p) in msg and field in msg and reason in msg, msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "file not found"), ("[belt\n", "not valid TOML"), (b"\xff\xfe", "cannot read")],
)
def test_unreadable_config(tmp_path: Path, content: str | bytes | None, reason: str) -> None:
    p = tmp_path / "line.toml"
    if isinstance(content, bytes):
        p.write_bytes(content)
    elif content is not None:
        p.write_text(content)
    with pytest.raises(InputFileError, match=reason):
        load_config(p)


def test_vision_classify_and_merge_flag_reach_the_line(tmp_path: Path) -> None:
    assert load_config().vision.crop_policy().mode == "tracks"  # the default
    text = '[vision]\nclassify = "every"\ncrop_budget = 7\nmerge_flag = false\n'
    with configured_line(tmp_path, text) as line:
        vision = line.parts.vision
        assert vision.planner.policy.mode == "every" and vision.planner.policy.budget == 7
        assert vision.merges is None
    p = tmp_path / "line.toml"
    p.write_text('[vision]\nclassify = "all"\n')
    with pytest.raises(InputFileError, match=r"vision\.classify.*'tracks' or 'every'"):
        load_config(p)


def test_aiming_settings_reach_the_decision_core(tmp_path: Path) -> None:
    """``[control] aim_rule, lift_share, aim_margin, jet_length_mm,
    aim_fallback_margin, aim_last_resort`` are the controller's, on the line a config builds; the
    defaults are ControlParams'."""
    from control.params import ControlParams

    d = load_config().control.control_params()
    ref = ControlParams()
    names = (
        "aim_rule", "lift_share", "aim_margin", "jet_length_mm", "aim_fallback_margin",
        "aim_last_resort", "aim_last_k_sigma",
    )  # fmt: skip
    assert [getattr(d, k) for k in names] == [getattr(ref, k) for k in names]
    text = (
        '[control]\naim_rule = "cut"\nlift_share = 0.6\naim_margin = 0.15\njet_length_mm = 5.0\n'
        'aim_fallback_margin = 0.05\naim_last_resort = "cover"\naim_last_k_sigma = 2.0\n'
    )
    with configured_line(tmp_path, text) as line:
        got = line.parts.controller.params
        assert [getattr(got, k) for k in names] == ["cut", 0.6, 0.15, 5.0, 0.05, "cover", 2.0]
