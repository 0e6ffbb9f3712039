"""``sortline calibrate camera``: the camera procedures on image files, as from a real rig."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from calibration.charuco import BoardSpec
from calibration.geometry import LineGeometry
from calibration.store import CalibrationStore
from sim.benchrig.rig import BenchRig, RigTruth
from sortline.cli import main

LINE = "rig-line"


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RigTruth, int]:
    """Images an engineer would have captured on the rig, as PNG files."""
    folder = tmp_path_factory.mktemp("captures")
    truth = RigTruth.make(LineGeometry(), seed=21)
    rig = BenchRig(truth, BoardSpec(), seed=21)
    rng = np.random.default_rng(5)
    for i in range(9):
        z = rng.uniform(750, 900)
        centre = ((i - 4) * 70.0, rng.uniform(-30, 30), z)
        rot = (rng.uniform(-25, 25), rng.uniform(-25, 25), rng.uniform(-10, 10))
        cv2.imwrite(str(folder / f"view{i}.png"), rig.capture_board_pose(rot, centre).image)
    rig.place_board(320.0, -100.0)
    cv2.imwrite(str(folder / "belt.png"), rig.capture().image)
    rig.remove_board()
    rig.place_board(320.0, -190.0)
    before = rig.capture()
    rig.step_belt_ticks(1600)
    after = rig.capture()
    cv2.imwrite(str(folder / "before.png"), before.image)
    cv2.imwrite(str(folder / "after.png"), after.image)
    return folder, truth, 1600


def _argv(folder: Path, *extra: str) -> list[str]:
    views = [str(p) for p in sorted(folder.glob("view*.png"))]
    return [
        "calibrate",
        "camera",
        "--views",
        *views,
        "--belt-image",
        str(folder / "belt.png"),
        "--board-x-mm",
        "320",
        "--store",
        str(folder / "store"),
        "--line",
        LINE,
        *extra,
    ]


def test_camera_files_calibrate_and_save(captured: tuple[Path, RigTruth, int]) -> None:
    folder, truth, ticks = captured
    out = folder / "camera.json"
    rc = main(
        _argv(
            folder,
            "--jog",
            str(folder / "before.png"),
            str(folder / "after.png"),
            str(ticks),
            "--json",
            str(out),
            "--save",
            "--activate",
            "--who",
            "erin",
        )
    )
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["passed"] and report["saved_version"] == 1 and report["activated"]
    assert set(report["procedures"]) == {"intrinsics", "belt_plane", "encoder_scale"}
    cal = CalibrationStore(folder / "store", LINE).active()
    assert cal is not None and cal.belt is not None and cal.valves is None
    assert cal.belt.mm_per_tick == pytest.approx(truth.mm_per_tick, rel=0.005)
    est = cal.camera_model().centre_scale_mm_per_px()
    true = truth.camera.scale_mm_per_px(639.5, 255.5)
    np.testing.assert_allclose(est, true, rtol=0.005)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"--belt-image": "missing.png"}, "missing.png: image file not found"),
        ({"--squares": "9by5"}, "--squares must look like 9x5"),
        ({"--marker-mm": "50"}, "marker_mm must be smaller than square_mm"),
    ],
)
def test_camera_bad_input(
    captured: tuple[Path, RigTruth, int],
    change: dict[str, str],
    match: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder, _, _ = captured
    argv = _argv(folder)
    for flag, value in change.items():
        if flag in argv:
            argv[argv.index(flag) + 1] = str(folder / value) if value.endswith(".png") else value
        else:
            argv += [flag, value]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1


def test_camera_views_without_board(
    captured: tuple[Path, RigTruth, int], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, _, _ = captured
    blank = folder / "blank.png"
    cv2.imwrite(str(blank), np.full((512, 1280), 80, np.uint8))
    argv = [
        "calibrate",
        "camera",
        "--views",
        *[str(blank)] * 7,
        "--belt-image",
        str(folder / "belt.png"),
        "--board-x-mm",
        "320",
        "--store",
        str(folder / "store2"),
        "--line",
        LINE,
    ]
    assert main(argv) == 2
    assert "only 0 of 7 images show the board" in capsys.readouterr().err


def test_limits_file_fails_and_does_not_activate(
    captured: tuple[Path, RigTruth, int], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, _, _ = captured
    strict = folder / "strict.toml"
    strict.write_text("[belt_plane]\nmax_residual_mm = 0.0001\n")
    store = folder / "store3"
    argv = _argv(folder, "--limits", str(strict), "--save", "--activate", "--who", "erin")
    argv[argv.index("--store") + 1] = str(store)
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "FAIL belt_plane: ['residual_rms_mm']" in out and "not activated" in out
    s = CalibrationStore(store, LINE)
    assert s.versions() == [1] and s.active_version() is None and not s.load(1).passed


def test_bad_limits_file(
    captured: tuple[Path, RigTruth, int], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, _, _ = captured
    bad = folder / "bad.toml"
    bad.write_text("[intrinsics]\nmax_rms = 1.0\n")
    assert main(_argv(folder, "--limits", str(bad))) == 2
    err = capsys.readouterr().err
    assert "bad.toml: intrinsics.max_rms: Extra inputs are not permitted" in err
