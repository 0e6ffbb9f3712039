"""Belt-plane homography from the board lying flat on the belt.

The operator lays the board with its x axis across the belt and its origin
corner against a fence at a known belt ``x`` (``board_x_mm``). Corners are
undistorted with the intrinsics and a homography fitted from undistorted
pixels to belt mm; ``y`` is then shifted so that the image's centre pixel sees
``y = 0`` (the reference line). The encoder-scale procedure later turns the
frame so that ``+y`` is the belt's true direction of travel (``align_to_motion``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from calibration.camera_model import CameraModel
from calibration.charuco import BoardSpec, detect_board
from calibration.results import BeltPlaneLimits, CalibrationError, Check, checks_passed

__all__ = ["BeltPlaneResult", "align_to_motion", "calibrate_belt_plane", "zero_y_at_centre"]


@dataclasses.dataclass(frozen=True)
class BeltPlaneResult:
    camera_model: CameraModel
    n_corners: int
    residual_rms_mm: float
    residual_max_mm: float
    mm_per_px: tuple[float, float]  # at the image centre: along a row, down a column
    board_origin_mm: tuple[float, float]  # the board corner at the fence, in belt mm
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return checks_passed(self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "n_corners": self.n_corners,
            "residual_rms_mm": self.residual_rms_mm,
            "residual_max_mm": self.residual_max_mm,
            "mm_per_px": list(self.mm_per_px),
            "board_origin_mm": list(self.board_origin_mm),
            "homography_px_to_mm": self.camera_model.homography.tolist(),
            "checks": [c.to_dict() for c in self.checks],
        }


def zero_y_at_centre(model: CameraModel) -> CameraModel:
    """The same model with ``y`` shifted so the centre pixel sees ``y = 0``."""
    _, yc = model.px_to_mm((model.width_px - 1) / 2.0, (model.height_px - 1) / 2.0)
    shift = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, -float(yc)], [0.0, 0.0, 1.0]])
    return dataclasses.replace(model, homography=shift @ model.homography)


def align_to_motion(
    model: CameraModel, direction_rad: float, pivot_mm: tuple[float, float] | None = None
) -> CameraModel:
    """Turn belt coordinates by ``direction_rad`` so that a displacement seen at angle
    ``atan2(dx, dy) = direction_rad`` becomes +y. The turn is about ``pivot_mm`` (the
    point whose x is known, e.g. the board corner at the fence; default the centre
    pixel's point); ``y`` is then zeroed at the centre pixel again."""
    if pivot_mm is None:
        xc, yc = model.px_to_mm((model.width_px - 1) / 2.0, (model.height_px - 1) / 2.0)
        pivot_mm = (float(xc), float(yc))
    px, py = pivot_mm
    c, s = math.cos(direction_rad), math.sin(direction_rad)
    to_origin = np.array([[1.0, 0.0, -px], [0.0, 1.0, -py], [0.0, 0.0, 1.0]])
    turn = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    back = np.array([[1.0, 0.0, px], [0.0, 1.0, py], [0.0, 0.0, 1.0]])
    turned = dataclasses.replace(model, homography=back @ turn @ to_origin @ model.homography)
    return zero_y_at_centre(turned)


def calibrate_belt_plane(
    image: np.ndarray,
    board: BoardSpec,
    camera_matrix: np.ndarray,
    dist_coeffs: np.ndarray,
    board_x_mm: float,
    limits: BeltPlaneLimits | None = None,
) -> BeltPlaneResult:
    """Homography from one image of the board lying on the belt."""
    import cv2

    lim = limits or BeltPlaneLimits()
    h, w = image.shape[:2]
    view = detect_board(image, board)
    if len(view) < lim.min_corners:
        raise CalibrationError(
            f"belt plane: board not found ({len(view)} corners, need {lim.min_corners}): lay "
            "the board flat on the belt, fully in view, evenly lit, and capture again"
        )
    lens = CameraModel(w, h, camera_matrix, dist_coeffs, np.eye(3))
    u, v = lens.undistort_px(view.image_px[:, 0], view.image_px[:, 1])
    src = np.stack([u, v], axis=1)
    dst = np.stack([board_x_mm + view.board_mm[:, 0], view.board_mm[:, 1]], axis=1)
    hom, _ = cv2.findHomography(src, dst, 0)
    if hom is None:
        raise CalibrationError("belt plane: the corners are degenerate (collinear): capture again")
    model = zero_y_at_centre(dataclasses.replace(lens, homography=hom))
    fitted = dataclasses.replace(lens, homography=hom)
    fit = np.stack(fitted.px_to_mm(view.image_px[:, 0], view.image_px[:, 1]), axis=1)
    err = np.hypot(*(fit - dst).T)
    rms = float(np.sqrt(np.mean(err**2)))
    checks = (
        Check("residual_rms_mm", rms, lim.max_residual_mm),
        Check("corners", float(len(view)), float(lim.min_corners), at_least=True),
    )
    _, y_shift = model.px_to_mm(*fitted.mm_to_px(board_x_mm, 0.0))
    return BeltPlaneResult(
        model,
        len(view),
        rms,
        float(err.max()),
        model.centre_scale_mm_per_px(),
        (board_x_mm, float(y_shift)),
        checks,
    )
