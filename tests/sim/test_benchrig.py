"""The virtual bench rig renders what its hidden truth says and fires valves by the rule."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.charuco import BoardSpec, detect_board
from calibration.fragments import detect_fragments
from calibration.geometry import LineGeometry
from core.ticks import TICK_MODULUS, tick_diff, wrap_tick
from sim.benchrig.camera import rotation_xyz_deg
from sim.benchrig.rig import BenchRig, RigTruth

BOARD = BoardSpec()


@pytest.fixture(scope="module")
def truth() -> RigTruth:
    return RigTruth.make(LineGeometry(), seed=11)


def test_true_camera_model_and_reference_line(truth: RigTruth) -> None:
    cam = truth.camera
    model = cam.camera_model()
    rng = np.random.default_rng(0)
    col, row = rng.uniform(0, 1279, 300), rng.uniform(0, 511, 300)
    np.testing.assert_allclose(
        np.stack(model.px_to_mm(col, row), 1), cam.pixel_to_belt(col, row), atol=1e-6
    )
    pts = np.column_stack([cam.pixel_to_belt(col, row), np.zeros(300)])
    np.testing.assert_allclose(cam.project_belt(pts), np.stack([col, row], 1), atol=1e-6)
    centre = cam.pixel_to_belt(np.array([639.5]), np.array([255.5]))
    assert abs(centre[0, 1]) < 1e-9  # y = 0 is the line the centre pixel sees


def test_board_on_belt_renders_where_the_truth_says(truth: RigTruth) -> None:
    rig = BenchRig(truth, BOARD, seed=1)
    rig.place_board(320.0, -100.0)
    view = detect_board(rig.capture().image, BOARD)
    assert len(view) == BOARD.n_corners
    rot = rotation_xyz_deg(0.0, 0.0, truth.board_angle_deg)
    origin = np.array([320.0 + truth.board_x_error_mm, -100.0, 0.0])
    belt = view.board_mm @ rot.T + origin
    err = np.hypot(*(truth.camera.project_belt(belt) - view.image_px).T)
    assert err.max() < 0.5, err.max()


def test_encoder_wraps_and_steps_exactly(truth: RigTruth) -> None:
    rig = BenchRig(truth, BOARD, seed=1)
    start = rig.tick
    assert start > TICK_MODULUS - 30_000
    rig.step_belt_ticks(50_000)
    assert rig.tick < 40_000  # wrapped past 2**32
    assert tick_diff(rig.tick, start) == 50_000


def _one_shot(rig: BenchRig, truth: RigTruth, valve: int, shift_mm: float) -> bool:
    speed = 2000.0
    frame = rig.feed_test_fragments(
        np.array([truth.valve_centre_mm(np.array(valve))]), np.array([0.0]), speed
    )
    x, y = detect_fragments(frame.image, truth.camera.camera_model())
    assert len(x) == 1
    v = speed / 1000.0
    # centre of the hit window: air on from a + d_open*v to b + d_close*v around y_valve
    pulse_mm = 20.0
    a = truth.y_valve_mm - 0.5 * (truth.open_delay_ms[valve] + truth.close_delay_ms[valve]) * v
    a -= pulse_mm / 2 - shift_mm
    on = wrap_tick(frame.tick + round((a - y[0]) / truth.mm_per_tick))
    off = wrap_tick(on + round(pulse_mm / truth.mm_per_tick))
    return bool(rig.fire(np.array([valve]), np.array([on]), np.array([off]))[0])


@pytest.mark.parametrize(
    ("which", "shift_mm", "expect"),
    [("alive", 0.0, True), ("alive", 25.0, False), ("alive", -25.0, False), ("dead", 0.0, False)],
)
def test_valves_fire_by_the_rule(
    truth: RigTruth, which: str, shift_mm: float, expect: bool
) -> None:
    rig = BenchRig(truth, BOARD, seed=5)
    dead = truth.dead_valves[0]
    valve = dead if which == "dead" else (dead + 7) % truth.n_valves
    assert _one_shot(rig, truth, valve, shift_mm) is expect


def test_fire_rejects_bad_commands(truth: RigTruth) -> None:
    rig = BenchRig(truth, BOARD, seed=5)
    frame = rig.feed_test_fragments(np.array([100.0]), np.array([0.0]), 1000.0)
    with pytest.raises(ValueError, match="outside the bar"):
        rig.fire(np.array([truth.n_valves]), np.array([frame.tick]), np.array([frame.tick + 9]))
    early = wrap_tick(frame.tick - 100)
    with pytest.raises(ValueError, match="before the frame"):
        rig.fire(np.array([3]), np.array([early]), np.array([frame.tick]))
