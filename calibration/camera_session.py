"""Camera and encoder calibration from image files (a real rig, offline).

The engineer captures ChArUco views, one image of the board flat on the belt
against the fence, and optionally the board before and after jogging the belt
a counted number of ticks; ``calibrate_camera_files`` runs the procedures and
returns a ``Calibration`` holding the camera (and belt) sections, with the
valve section carried over from a base calibration when one is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from calibration.belt_plane import calibrate_belt_plane
from calibration.charuco import BoardSpec
from calibration.encoder_scale import calibrate_encoder_scale
from calibration.intrinsics import calibrate_intrinsics
from calibration.record import BeltSection, Calibration, CameraSection
from calibration.results import CalibrationLimits
from core.errors import InputFileError
from core.frame import Frame

__all__ = ["calibrate_camera_files", "read_gray"]


def read_gray(path: str | Path) -> np.ndarray:
    """An image file as (H, W) uint8; ``InputFileError`` if it cannot be read."""
    import cv2

    p = Path(path)
    if not p.is_file():
        raise InputFileError(p, "image file not found")
    image = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise InputFileError(p, "not an image OpenCV can read (use PNG, JPEG, BMP or TIFF)")
    return np.asarray(image)


def calibrate_camera_files(
    views: Sequence[str | Path],
    belt_image: str | Path,
    board: BoardSpec,
    board_x_mm: float,
    line: str,
    nominal_mm_per_tick: float,
    limits: CalibrationLimits | None = None,
    jog: tuple[str | Path, str | Path, int] | None = None,
    base: Calibration | None = None,
) -> tuple[Calibration, dict[str, Any]]:
    """Intrinsics, belt plane and (with ``jog = (before, after, ticks)``) encoder scale.

    Returns the new calibration (``passed`` only if every procedure passed) and
    the procedures' reports. Without a jog the belt section comes from ``base``.
    """
    lim = limits or CalibrationLimits()
    intr = calibrate_intrinsics([read_gray(v) for v in views], board, lim.intrinsics)
    plane = calibrate_belt_plane(
        read_gray(belt_image),
        board,
        intr.camera_matrix,
        intr.dist_coeffs,
        board_x_mm,
        lim.belt_plane,
    )
    quality: dict[str, Any] = {"intrinsics": intr.to_dict(), "belt_plane": plane.to_dict()}
    model = plane.camera_model
    passed = intr.passed and plane.passed
    belt = base.belt if base is not None else None
    if jog is not None:
        before_path, after_path, ticks = jog
        before = Frame(read_gray(before_path), 0, 0, 0.0)
        after = Frame(read_gray(after_path), 1, ticks % (1 << 32), 1.0)
        enc = calibrate_encoder_scale(
            before,
            after,
            board,
            model,
            nominal_mm_per_tick,
            lim.encoder,
            pivot_mm=plane.board_origin_mm,
        )
        quality["encoder_scale"] = enc.to_dict()
        model = enc.camera_model
        belt = BeltSection(mm_per_tick=enc.mm_per_tick)
        passed = passed and enc.passed
    cal = Calibration(
        line=line,
        source=f"camera from {len(views)} views + {Path(belt_image).name}",
        passed=passed,
        camera=CameraSection(**model.to_dict()),
        belt=belt,
        valves=base.valves if base is not None else None,
        quality=quality,
    )
    return cal, quality
