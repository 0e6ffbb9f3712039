"""Bad input to the procedures gets one clear CalibrationError saying what to do next."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from calibration.belt_plane import calibrate_belt_plane
from calibration.camera_model import CameraModel
from calibration.charuco import BoardSpec
from calibration.encoder_scale import calibrate_encoder_scale
from calibration.geometry import LineGeometry
from calibration.intrinsics import calibrate_intrinsics
from calibration.results import CalibrationError
from calibration.valve_timing import SweepPlan, calibrate_valves
from sim.benchrig.rig import BenchRig, RigTruth

BOARD = BoardSpec()
GEOM = LineGeometry()


@pytest.fixture(scope="module")
def truth() -> RigTruth:
    return RigTruth.make(GEOM, seed=7)


def _blank() -> np.ndarray:
    return np.full((512, 1280), 90, np.uint8)


def _views(rig: BenchRig, n: int) -> list[np.ndarray]:
    poses = [((10.0 * i - 15, 12.0 - 8 * i, 3.0), (40.0 * i - 60, 0.0, 800.0)) for i in range(n)]
    return [rig.capture_board_pose(r, c).image for r, c in poses]


@pytest.mark.parametrize(
    ("n_board", "n_blank", "match"),
    [
        (0, 0, "no images given"),
        (3, 0, r"only 3 of 3 images show the board .* need 6: take more views"),
        (2, 6, r"only 2 of 8 images"),
    ],
)
def test_intrinsics_too_few_views(truth: RigTruth, n_board: int, n_blank: int, match: str) -> None:
    rig = BenchRig(truth, BOARD, seed=1)
    images = _views(rig, n_board) + [_blank()] * n_blank
    with pytest.raises(CalibrationError, match=match):
        calibrate_intrinsics(images, BOARD)


def test_intrinsics_mixed_image_sizes(truth: RigTruth) -> None:
    rig = BenchRig(truth, BOARD, seed=1)
    images = [*_views(rig, 1), np.zeros((100, 100), np.uint8)]
    with pytest.raises(CalibrationError, match="same camera mode"):
        calibrate_intrinsics(images, BOARD)


def test_belt_plane_board_not_found(truth: RigTruth) -> None:
    cam = truth.camera
    with pytest.raises(CalibrationError, match=r"board not found .* lay the board flat"):
        calibrate_belt_plane(_blank(), BOARD, cam.K, cam.dist, 320.0)


def _encoder_frames(truth: RigTruth, ticks: int):
    rig = BenchRig(truth, BOARD, seed=2)
    rig.place_board(320.0, -190.0)
    before = rig.capture()
    rig.step_belt_ticks(ticks)
    return before, rig.capture()


@pytest.mark.parametrize(
    ("ticks", "match"),
    [
        (0, "counted 0 ticks .* check the encoder wiring"),
        (6000, r"only \d+ board corners seen in both frames .* jog fewer ticks"),
    ],
)
def test_encoder_scale_bad_moves(truth: RigTruth, ticks: int, match: str) -> None:
    before, after = _encoder_frames(truth, ticks)
    model = CameraModel.nominal(GEOM.camera)
    with pytest.raises(CalibrationError, match=match):
        calibrate_encoder_scale(before, after, BOARD, model, 0.1)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"dead_valves": tuple(range(80))}, "no test fragment was hit .* check the air supply"),
        ({"y_valve_mm": 360.0}, r"within 20 mm of the real valve line"),
    ],
)
def test_sweep_with_no_hits(truth: RigTruth, change: dict, match: str) -> None:
    rig = BenchRig(dataclasses.replace(truth, **change), BOARD, seed=3)
    model = truth.camera.camera_model()
    plan = SweepPlan(speeds_mm_s=(3000.0,))
    with pytest.raises(CalibrationError, match=match):
        calibrate_valves(rig, model, truth.mm_per_tick, GEOM.valves, plan)


def test_fragments_not_seen() -> None:
    class DarkRig:
        """A rig whose camera shows nothing (lights off)."""

        def feed_test_fragments(self, x_mm, y_mm, speed_mm_s):
            from core.frame import Frame

            return Frame(np.full((512, 1280), 40, np.uint8), 1, 0, 0.0)

        def fire(self, valve, on_tick, off_tick):
            raise AssertionError("nothing was seen, so nothing may be fired")

    with pytest.raises(CalibrationError, match=r"test fragments were seen .* check the lighting"):
        calibrate_valves(DarkRig(), CameraModel.nominal(GEOM.camera), 0.1, GEOM.valves)


def test_drive_speed_off_fails_the_encoder_check(truth: RigTruth) -> None:
    rig = BenchRig(dataclasses.replace(truth, speed_report_gain=1.05), BOARD, seed=2)
    model = truth.camera.camera_model()
    rig.place_board(320.0, -190.0)
    before = rig.capture()
    rig.step_belt_ticks(1500)
    after = rig.capture()
    running = rig.capture_running(500.0, 6, 0.03)
    result = calibrate_encoder_scale(
        before,
        after,
        BOARD,
        model,
        0.1,
        running=running,
        reported_speed_mm_s=rig.reported_speed_mm_s(),
    )
    failed = [c.name for c in result.checks if not c.passed]
    assert failed == ["drive_speed_mismatch"]
    assert not result.passed
    assert result.mm_per_tick == pytest.approx(truth.mm_per_tick, rel=0.002)


def test_lane_outside_the_view_is_reported_not_seen(truth: RigTruth) -> None:
    """A camera that misses the first lane: that valve is 'not seen', not 'dead'."""
    cam = dataclasses.replace(
        truth.camera, centre_mm=truth.camera.centre_mm + np.array([45.0, 0.0, 0.0])
    )
    shifted = dataclasses.replace(truth, camera=cam)
    rig = BenchRig(shifted, BOARD, seed=4)
    plan = SweepPlan(speeds_mm_s=(500.0, 3000.0), fine_repeats=1, check_shots=3)
    result = calibrate_valves(rig, cam.camera_model(), truth.mm_per_tick, GEOM.valves, plan)
    assert 0 in result.not_seen and 0 not in result.not_firing
    assert result.not_firing == truth.dead_valves
    assert np.isnan(result.check_hit_rate[0]) and np.isnan(result.open_delay_ms[0])
    assert abs(result.y_valve_mm - truth.y_valve_mm) < 1.0


def test_valve_position_needs_timed_valves(truth: RigTruth) -> None:
    from calibration.valve_position import calibrate_valve_x

    rig = BenchRig(truth, BOARD, seed=6)
    plan = SweepPlan(speeds_mm_s=(500.0, 3000.0), fine_repeats=1, check_shots=2)
    timing = calibrate_valves(
        rig, truth.camera.camera_model(), truth.mm_per_tick, GEOM.valves, plan
    )
    blind = dataclasses.replace(timing, best_on_mm=np.full(80, np.nan))
    with pytest.raises(CalibrationError, match="run the timing sweep first"):
        calibrate_valve_x(rig, truth.camera.camera_model(), truth.mm_per_tick, GEOM.valves, blind)
