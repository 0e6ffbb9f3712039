"""Camera intrinsics from ChArUco board images (OpenCV ``calibrateCamera``).

Views with too few corners are dropped. Then, one at a time, the worst view is
judged against the camera solved *without* it (so a bad view cannot hide by
bending the solution towards itself): it is rejected while its reprojection RMS
there exceeds ``max_view_rms_px`` or ``reject_factor`` times the median of the
other views.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from calibration.charuco import BoardSpec, BoardView, detect_board
from calibration.results import CalibrationError, Check, IntrinsicsLimits, checks_passed

__all__ = ["IntrinsicsResult", "calibrate_intrinsics"]


@dataclasses.dataclass(frozen=True)
class IntrinsicsResult:
    """camera_matrix: (3, 3); dist_coeffs: (5,) k1 k2 p1 p2 k3.
    view_rms_px: per input image, reprojection RMS (NaN for views not used).
    rejected: (image index, reason) of every view not used.
    """

    width_px: int
    height_px: int
    camera_matrix: np.ndarray
    dist_coeffs: np.ndarray
    rms_px: float
    view_rms_px: tuple[float, ...]
    used_views: tuple[int, ...]
    rejected: tuple[tuple[int, str], ...]
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return checks_passed(self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "rms_px": self.rms_px,
            "camera_matrix": self.camera_matrix.tolist(),
            "dist_coeffs": self.dist_coeffs.tolist(),
            "view_rms_px": [None if np.isnan(v) else v for v in self.view_rms_px],
            "used_views": list(self.used_views),
            "rejected": [{"view": i, "reason": r} for i, r in self.rejected],
            "checks": [c.to_dict() for c in self.checks],
        }


def _solve(
    views: list[BoardView], size: tuple[int, int]
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """-> (rms px, K, dist (5,), per-view RMS px)."""
    import cv2

    obj = [v.board_mm.astype(np.float32).reshape(-1, 1, 3) for v in views]
    img = [v.image_px.astype(np.float32).reshape(-1, 1, 2) for v in views]
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-10)
    rms, k, dist, rvecs, tvecs = cv2.calibrateCamera(obj, img, size, None, None, criteria=crit)
    per_view = np.empty(len(views))
    for i, view in enumerate(views):
        proj, _ = cv2.projectPoints(view.board_mm, rvecs[i], tvecs[i], k, dist)
        err = proj.reshape(-1, 2) - view.image_px
        per_view[i] = float(np.sqrt(np.mean(np.sum(err**2, axis=1))))
    return float(rms), np.asarray(k, np.float64), np.asarray(dist, np.float64).ravel()[:5], per_view


def _view_rms(view: BoardView, k: np.ndarray, dist: np.ndarray) -> float:
    """Reprojection RMS (px) of one view with the board pose fitted to fixed intrinsics."""
    import cv2

    ok, rvec, tvec = cv2.solvePnP(view.board_mm, view.image_px, k, dist)
    if not ok:
        return float("inf")
    proj, _ = cv2.projectPoints(view.board_mm, rvec, tvec, k, dist)
    err = proj.reshape(-1, 2) - view.image_px
    return float(np.sqrt(np.mean(np.sum(err**2, axis=1))))


def calibrate_intrinsics(
    images: Sequence[np.ndarray], board: BoardSpec, limits: IntrinsicsLimits | None = None
) -> IntrinsicsResult:
    """Camera matrix and distortion from ``images`` ((H, W) or (H, W, 3) uint8, one size)."""
    lim = limits or IntrinsicsLimits()
    if not images:
        raise CalibrationError("intrinsics: no images given: take 10-20 views of the board")
    h, w = images[0].shape[:2]
    rejected: list[tuple[int, str]] = []
    kept: list[int] = []
    views: list[BoardView] = []
    for i, image in enumerate(images):
        if image.shape[:2] != (h, w):
            raise CalibrationError(
                f"intrinsics: image {i} is {image.shape[1]}x{image.shape[0]} px, image 0 is "
                f"{w}x{h}: all views must come from the same camera mode"
            )
        view = detect_board(image, board)
        if len(view) < lim.min_corners_per_view:
            reason = "board not found" if len(view) == 0 else f"only {len(view)} corners"
            rejected.append((i, reason))
            continue
        kept.append(i)
        views.append(view)
    _need_views(len(views), len(images), lim)
    rms, k, dist, per_view = _solve(views, (w, h))
    while len(views) > lim.min_views:
        worst = int(np.argmax(per_view))
        # judge the worst view against a solution it did not take part in
        others = views[:worst] + views[worst + 1 :]
        rms2, k2, dist2, per_view2 = _solve(others, (w, h))
        alone = _view_rms(views[worst], k2, dist2)
        cut = min(lim.max_view_rms_px, lim.reject_factor * float(np.median(per_view2)))
        if alone <= cut:
            break
        rejected.append((kept[worst], f"reprojection RMS {alone:.2f} px > {cut:.2f}"))
        del views[worst], kept[worst]
        rms, k, dist, per_view = rms2, k2, dist2, per_view2
    view_rms = [float("nan")] * len(images)
    for idx, r in zip(kept, per_view, strict=True):
        view_rms[idx] = float(r)
    checks = (
        Check("reprojection_rms_px", rms, lim.max_rms_px),
        Check("views_used", float(len(views)), float(lim.min_views), at_least=True),
        Check("worst_view_rms_px", float(np.max(per_view)), lim.max_view_rms_px),
    )
    return IntrinsicsResult(
        w, h, k, dist, rms, tuple(view_rms), tuple(kept), tuple(sorted(rejected)), checks
    )


def _need_views(n_good: int, n_all: int, lim: IntrinsicsLimits) -> None:
    if n_good < lim.min_views:
        raise CalibrationError(
            f"intrinsics: only {n_good} of {n_all} images show the board with at least "
            f"{lim.min_corners_per_view} corners; need {lim.min_views}: take more views, "
            "board filling a good part of the image, tilted up to 30 degrees, well lit"
        )
