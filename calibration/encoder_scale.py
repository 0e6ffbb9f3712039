"""Encoder scale: mm per tick from the board before and after a known tick move.

The board lies on the belt; the belt is jogged by some ticks; every ChArUco
corner seen in both frames gives a displacement in belt mm (through the
calibrated camera). Their mean length over the counted ticks is the scale,
their angle the belt's true direction of travel in the camera's belt frame
(used to align ``+y`` with the motion), their spread a check of the camera
model. Optionally a run of frames at speed checks that the optical speed
(board displacement over exposure time) matches the encoder speed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from calibration.belt_plane import align_to_motion
from calibration.camera_model import CameraModel
from calibration.charuco import BoardSpec, BoardView, detect_board
from calibration.results import CalibrationError, Check, EncoderLimits, checks_passed
from core.frame import Frame
from core.ticks import tick_diff

__all__ = ["EncoderScaleResult", "calibrate_encoder_scale"]


@dataclasses.dataclass(frozen=True)
class EncoderScaleResult:
    mm_per_tick: float
    ticks_moved: int
    n_corners: int
    direction_deg: float  # belt motion vs +y of the board-derived frame, + towards +x
    linearity_mm: float  # RMS of corner displacements about their mean
    speed_optical_mm_s: float | None
    speed_encoder_mm_s: float | None
    speed_reported_mm_s: float | None
    camera_model: CameraModel  # the input model turned so that +y is the belt motion
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return checks_passed(self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "mm_per_tick": self.mm_per_tick,
            "ticks_moved": self.ticks_moved,
            "n_corners": self.n_corners,
            "direction_deg": self.direction_deg,
            "linearity_mm": self.linearity_mm,
            "speed_optical_mm_s": self.speed_optical_mm_s,
            "speed_encoder_mm_s": self.speed_encoder_mm_s,
            "speed_reported_mm_s": self.speed_reported_mm_s,
            "checks": [c.to_dict() for c in self.checks],
        }


def _board_mm(view: BoardView, model: CameraModel) -> dict[int, np.ndarray]:
    x, y = model.px_to_mm(view.image_px[:, 0], view.image_px[:, 1])
    return {int(i): np.array([a, b]) for i, a, b in zip(view.ids, x, y, strict=True)}


def _displacement(a: dict[int, np.ndarray], b: dict[int, np.ndarray]) -> np.ndarray:
    """(N, 2) displacement of the corners seen in both."""
    common = sorted(set(a) & set(b))
    return np.array([b[i] - a[i] for i in common]).reshape(-1, 2)


def _speed_check(
    frames: Sequence[Frame], board: BoardSpec, model: CameraModel, mm_per_tick: float
) -> tuple[float, float]:
    """(optical, encoder) belt speed in mm/s over ``frames`` at a steady speed."""
    first = _board_mm(detect_board(frames[0].image, board), model)
    travel, ticks, times = [], [], []
    for f in frames:
        d = _displacement(first, _board_mm(detect_board(f.image, board), model))
        if len(d) < 4:
            continue
        travel.append(float(np.hypot(*d.mean(axis=0))))
        ticks.append(tick_diff(f.tick, frames[0].tick))
        times.append(f.t_s - frames[0].t_s)
    if len(times) < 3 or max(times) <= 0:
        raise CalibrationError(
            "encoder scale: the board was seen in fewer than 3 running frames: run the belt "
            "slower or capture frames closer together while the board is in view"
        )
    t = np.array(times)
    optical = float(np.polyfit(t, np.array(travel), 1)[0])
    encoder = float(np.polyfit(t, np.array(ticks) * mm_per_tick, 1)[0])
    return optical, encoder


def calibrate_encoder_scale(
    before: Frame,
    after: Frame,
    board: BoardSpec,
    model: CameraModel,
    nominal_mm_per_tick: float,
    limits: EncoderLimits | None = None,
    running: Sequence[Frame] = (),
    reported_speed_mm_s: float | None = None,
    pivot_mm: tuple[float, float] | None = None,
) -> EncoderScaleResult:
    """mm per tick from ``before``/``after`` (board on the belt, belt jogged between).

    ``pivot_mm``: the point whose belt x is known (``BeltPlaneResult.board_origin_mm``),
    kept in place when the frame is turned to the belt's direction of travel."""
    lim = limits or EncoderLimits()
    ticks = tick_diff(after.tick, before.tick)
    if ticks <= 0:
        raise CalibrationError(
            f"encoder scale: the encoder counted {ticks} ticks between the two frames: "
            "check the encoder wiring and jog the belt forward between the captures"
        )
    seen = [_board_mm(detect_board(f.image, board), model) for f in (before, after)]
    d = _displacement(*seen)
    if len(d) < lim.min_common_corners:
        which = "before" if len(seen[0]) < len(seen[1]) else "after"
        raise CalibrationError(
            f"encoder scale: only {len(d)} board corners seen in both frames (fewest in the "
            f"'{which}' frame), need {lim.min_common_corners}: jog fewer ticks so the board "
            "stays in view, or start with it nearer the top of the image"
        )
    mean = d.mean(axis=0)
    length = float(np.hypot(*mean))
    mm_per_tick = length / ticks
    direction = math.atan2(float(mean[0]), float(mean[1]))
    linearity = float(np.sqrt(np.mean(np.sum((d - mean) ** 2, axis=1))))
    aligned = align_to_motion(model, direction, pivot_mm)
    checks = [
        Check("linearity_mm", linearity, lim.max_linearity_mm),
        Check("direction_deg", abs(math.degrees(direction)), lim.max_direction_deg),
        Check(
            "change_vs_nominal",
            abs(mm_per_tick / nominal_mm_per_tick - 1.0),
            lim.max_change_vs_nominal,
        ),
    ]
    optical = encoder = None
    if running:
        optical, encoder = _speed_check(running, board, aligned, mm_per_tick)
        checks.append(Check("speed_mismatch", abs(optical / encoder - 1.0), lim.max_speed_mismatch))
        if reported_speed_mm_s is not None:
            mismatch = abs(reported_speed_mm_s / encoder - 1.0)
            checks.append(Check("drive_speed_mismatch", mismatch, lim.max_drive_speed_mismatch))
    return EncoderScaleResult(
        mm_per_tick,
        ticks,
        len(d),
        math.degrees(direction),
        linearity,
        optical,
        encoder,
        reported_speed_mm_s,
        aligned,
        tuple(checks),
    )
