"""The bench rig's true camera: a tilted pinhole with lens distortion over the belt.

Belt frame: ``x`` mm across the belt from its left edge, ``y`` mm downstream,
``z`` mm *down* into the belt (right-handed; the belt surface is ``z = 0``).
Camera frame (OpenCV): ``x`` along image rows, ``y`` down the image, ``z``
along the optical axis. ``X_cam = R @ (X_belt - centre)``.

The belt frame's ``y = 0`` is the belt line seen by the image's centre pixel,
the same convention the calibration procedures use (calibration/geometry.py).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from calibration.camera_model import CameraModel

__all__ = ["TrueCamera", "rotation_xyz_deg"]


def rotation_xyz_deg(ax: float, ay: float, az: float) -> np.ndarray:
    """(3, 3) rotation ``Rz @ Ry @ Rx`` from angles in degrees."""
    a, b, c = np.radians([ax, ay, az])
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


@dataclasses.dataclass(frozen=True, eq=False)
class TrueCamera:
    """width_px, height_px: image size. K: (3, 3). dist: (5,) OpenCV order.
    rotation: (3, 3) belt -> camera. centre_mm: (3,) camera centre in the belt frame.
    """

    width_px: int
    height_px: int
    K: np.ndarray
    dist: np.ndarray
    rotation: np.ndarray
    centre_mm: np.ndarray

    @functools.cached_property
    def _lens(self) -> CameraModel:
        # only its (validated) distortion maths are used; the homography is unused
        return CameraModel(self.width_px, self.height_px, self.K, self.dist, np.eye(3))

    def project_cam(self, pts_cam: np.ndarray) -> np.ndarray:
        """(N, 3) camera-frame mm -> (N, 2) raw pixel (col, row)."""
        x = pts_cam[:, 0] / pts_cam[:, 2]
        y = pts_cam[:, 1] / pts_cam[:, 2]
        u = self.K[0, 0] * x + self.K[0, 2]
        v = self.K[1, 1] * y + self.K[1, 2]
        c, r = self._lens.distort_px(u, v)
        return np.stack([c, r], axis=1)

    def project_belt(self, pts_belt: np.ndarray) -> np.ndarray:
        """(N, 3) belt-frame mm -> (N, 2) raw pixel (col, row)."""
        return self.project_cam((pts_belt - self.centre_mm) @ self.rotation.T)

    @functools.cached_property
    def pixel_rays(self) -> np.ndarray:
        """(H, W, 3) float64 camera-frame rays (z = 1) through every pixel centre."""
        cols, rows = np.meshgrid(
            np.arange(self.width_px, dtype=np.float64), np.arange(self.height_px, dtype=np.float64)
        )
        u, v = self._lens.undistort_px(cols, rows)
        x = (u - self.K[0, 2]) / self.K[0, 0]
        y = (v - self.K[1, 2]) / self.K[1, 1]
        return np.stack([x, y, np.ones_like(x)], axis=2)

    def pixel_to_belt(self, col_px: np.ndarray, row_px: np.ndarray) -> np.ndarray:
        """Raw pixels (N,) -> (N, 2) belt (x, y) mm where their rays meet the belt."""
        u, v = self._lens.undistort_px(col_px, row_px)
        rays = np.stack(
            [(u - self.K[0, 2]) / self.K[0, 0], (v - self.K[1, 2]) / self.K[1, 1], np.ones_like(u)],
            axis=1,
        )
        d = rays @ self.rotation  # camera -> belt frame: R.T @ ray, as row vectors
        s = -self.centre_mm[2] / d[:, 2]
        return self.centre_mm[:2] + s[:, None] * d[:, :2]

    @functools.cached_property
    def belt_map(self) -> tuple[np.ndarray, np.ndarray]:
        """(H, W) belt x and y mm seen by each pixel (belt surface, z = 0)."""
        d = self.pixel_rays @ self.rotation
        s = -self.centre_mm[2] / d[..., 2]
        return self.centre_mm[0] + s * d[..., 0], self.centre_mm[1] + s * d[..., 1]

    def plane_maps(
        self, rot_board_cam: np.ndarray, t_board_cam: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(H, W) board (x, y) mm seen by each pixel for a board posed in the camera
        frame (``X_cam = R @ X_board + t``); NaN where the ray misses the plane."""
        rays = self.pixel_rays
        normal = rot_board_cam[:, 2]
        denom = rays @ normal
        with np.errstate(divide="ignore", invalid="ignore"):
            s = float(normal @ t_board_cam) / denom
        pts = rays * s[..., None] - t_board_cam
        board = pts @ rot_board_cam  # R.T @ (X - t) for row vectors
        bad = ~np.isfinite(s) | (s <= 0)
        bx, by = board[..., 0], board[..., 1]
        bx[bad] = np.nan
        by[bad] = np.nan
        return bx, by

    def camera_model(self) -> CameraModel:
        """The exact ``CameraModel`` of this camera (what a perfect calibration gives)."""
        belt_to_px = self.K @ np.column_stack(
            [self.rotation[:, 0], self.rotation[:, 1], -self.rotation @ self.centre_mm]
        )
        return CameraModel(
            self.width_px, self.height_px, self.K, self.dist, np.linalg.inv(belt_to_px)
        )

    def scale_mm_per_px(self, col_px: float, row_px: float) -> tuple[float, float]:
        """True local belt scale at a pixel: (mm per px along a row, down a column)."""
        c = np.array([col_px - 0.5, col_px + 0.5, col_px, col_px])
        r = np.array([row_px, row_px, row_px - 0.5, row_px + 0.5])
        p = self.pixel_to_belt(c, r)
        return float(np.hypot(*(p[1] - p[0]))), float(np.hypot(*(p[3] - p[2])))

    @classmethod
    def make(
        cls,
        width_px: int,
        height_px: int,
        mm_per_px: float,
        x_centre_mm: float,
        rng: np.random.Generator,
        height_mm: float = 1000.0,
    ) -> TrueCamera:
        """A camera ``height_mm`` above the belt with a random small tilt, principal
        point offset and barrel distortion; ``y = 0`` at the centre pixel."""
        f = height_mm / mm_per_px * (1.0 + rng.uniform(-0.01, 0.01))
        k = np.array(
            [
                [f, 0.0, (width_px - 1) / 2 + rng.uniform(-6, 6)],
                [
                    0.0,
                    f * (1.0 + rng.uniform(-0.002, 0.002)),
                    (height_px - 1) / 2 + rng.uniform(-4, 4),
                ],
                [0.0, 0.0, 1.0],
            ]
        )
        dist = np.array(
            [
                rng.uniform(-0.13, -0.08),
                rng.uniform(0.02, 0.05),
                rng.uniform(-5e-4, 5e-4),
                rng.uniform(-5e-4, 5e-4),
                rng.uniform(-0.01, 0.0),
            ]
        )
        rot = rotation_xyz_deg(
            rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0), rng.uniform(-0.8, 0.8)
        )
        centre = np.array([x_centre_mm, 0.0, -height_mm])
        cam = cls(width_px, height_px, k, dist, rot, centre)
        seen = cam.pixel_to_belt(np.array([(width_px - 1) / 2]), np.array([(height_px - 1) / 2]))
        centre = centre - np.array([0.0, seen[0, 1], 0.0])
        return cls(width_px, height_px, k, dist, rot, centre)
