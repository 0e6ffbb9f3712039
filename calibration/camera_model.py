"""``CameraModel``: image pixels <-> belt millimetres through a calibrated lens.

A pixel ``(col, row)`` (pixel-centre coordinates: the first pixel's centre is
0, 0) is first undistorted with the camera matrix ``K`` and OpenCV's
five-coefficient lens model ``(k1, k2, p1, p2, k3)`` into an *undistorted
pixel* of the same ``K``; a plane homography ``H`` then maps undistorted pixels
to belt ``(x, y)`` mm (x across the belt from its left edge, y downstream of
the camera's reference line; see ``calibration/geometry.py``).

``CameraModel.nominal(camera)`` has no distortion and the nominal scale and
reproduces ``CameraGeometry.px_to_mm`` to floating-point rounding.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np
import numpy.typing as npt

from calibration.geometry import CameraGeometry

__all__ = ["CameraModel", "CameraModelError"]

_UNDISTORT_MAX_ITER = 30
_UNDISTORT_TOL = 1e-12  # normalised image units (about 1e-9 px)


class CameraModelError(ValueError):
    """A camera model with inconsistent or non-finite parameters."""


def _as_matrix(name: str, value: npt.ArrayLike, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.array(value, dtype=np.float64)
    if arr.shape != shape:
        raise CameraModelError(f"{name} must have shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise CameraModelError(f"{name} holds NaN or infinity")
    arr.setflags(write=False)
    return arr


def _distort_normalised(
    x: np.ndarray, y: np.ndarray, dist: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's radial + tangential model on normalised coordinates."""
    k1, k2, p1, p2, k3 = dist
    r2 = x * x + y * y
    radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
    yd = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
    return xd, yd


def _undistort_normalised(
    xd: np.ndarray, yd: np.ndarray, dist: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of ``_distort_normalised`` by fixed-point iteration (as OpenCV)."""
    k1, k2, p1, p2, k3 = dist
    x, y = xd.copy(), yd.copy()
    for _ in range(_UNDISTORT_MAX_ITER):
        r2 = x * x + y * y
        radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
        dx = 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
        dy = p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
        x_new = (xd - dx) / radial
        y_new = (yd - dy) / radial
        step = max(
            float(np.max(np.abs(x_new - x), initial=0.0)),
            float(np.max(np.abs(y_new - y), initial=0.0)),
        )
        x, y = x_new, y_new
        if step < _UNDISTORT_TOL:
            break
    return x, y


def _apply_homography(h: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w = h[2, 0] * u + h[2, 1] * v + h[2, 2]
    return (h[0, 0] * u + h[0, 1] * v + h[0, 2]) / w, (h[1, 0] * u + h[1, 1] * v + h[1, 2]) / w


def _bilinear(table: np.ndarray, c: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear interpolation of a (2, H, W) table at pixel coordinates inside it."""
    h, w = table.shape[1:]
    c0 = np.minimum(np.floor(c).astype(np.intp), w - 2)
    r0 = np.minimum(np.floor(r).astype(np.intp), h - 2)
    tc = c - c0
    tr = r - r0
    top = table[:, r0, c0] * (1.0 - tc) + table[:, r0, c0 + 1] * tc
    bottom = table[:, r0 + 1, c0] * (1.0 - tc) + table[:, r0 + 1, c0 + 1] * tc
    out = top * (1.0 - tr) + bottom * tr
    return out[0], out[1]


@dataclasses.dataclass(frozen=True, eq=False)
class CameraModel:
    """A calibrated camera looking at the belt plane.

    width_px, height_px: image size the model was calibrated for.
    camera_matrix:       (3, 3) float64 ``K`` (fx, fy, cx, cy in px).
    dist_coeffs:         (5,) float64 ``k1, k2, p1, p2, k3`` (OpenCV order).
    homography:          (3, 3) float64, undistorted px (col, row, 1) -> belt mm (x, y, 1).
    """

    width_px: int
    height_px: int
    camera_matrix: np.ndarray
    dist_coeffs: np.ndarray
    homography: np.ndarray

    def __post_init__(self) -> None:
        if self.width_px <= 0 or self.height_px <= 0:
            raise CameraModelError(f"image size {self.width_px}x{self.height_px} px")
        k = _as_matrix("camera_matrix", self.camera_matrix, (3, 3))
        if k[0, 0] <= 0 or k[1, 1] <= 0 or k[2, 2] != 1.0:
            raise CameraModelError("camera_matrix needs fx, fy > 0 and K[2, 2] == 1")
        d = np.zeros(5)
        given = np.asarray(self.dist_coeffs, dtype=np.float64).ravel()
        if given.size not in (4, 5):
            raise CameraModelError(f"dist_coeffs needs 4 or 5 values, got {given.size}")
        d[: given.size] = given
        h = _as_matrix("homography", self.homography, (3, 3))
        if abs(np.linalg.det(h)) < 1e-15:
            raise CameraModelError("homography is singular")
        object.__setattr__(self, "camera_matrix", k)
        object.__setattr__(self, "dist_coeffs", _as_matrix("dist_coeffs", d, (5,)))
        object.__setattr__(self, "homography", h / h[2, 2] if h[2, 2] != 0 else h)

    # ------------------------------------------------------------ construction
    @classmethod
    def nominal(cls, camera: CameraGeometry) -> CameraModel:
        """No lens distortion and the nominal scale of ``camera``."""
        sx, sy = camera.mm_per_px_x, camera.mm_per_px_y
        h = np.array(
            [
                [sx, 0.0, camera.x_offset_mm + 0.5 * sx],
                [0.0, sy, (0.5 - camera.ref_row_px) * sy],
                [0.0, 0.0, 1.0],
            ]
        )
        f = float(camera.width_px)  # any focal length: without distortion K cancels
        k = np.array(
            [
                [f, 0.0, (camera.width_px - 1) / 2.0],
                [0.0, f, (camera.height_px - 1) / 2.0],
                [0, 0, 1],
            ]
        )
        return cls(camera.width_px, camera.height_px, k, np.zeros(5), h)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CameraModel:
        """Inverse of ``to_dict``; raises ``CameraModelError`` or ``KeyError``."""
        w, h = data["image_size_px"]
        return cls(
            int(w),
            int(h),
            np.asarray(data["camera_matrix"], dtype=np.float64),
            np.asarray(data["dist_coeffs"], dtype=np.float64),
            np.asarray(data["homography_px_to_mm"], dtype=np.float64),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "image_size_px": [self.width_px, self.height_px],
            "camera_matrix": self.camera_matrix.tolist(),
            "dist_coeffs": self.dist_coeffs.tolist(),
            "homography_px_to_mm": self.homography.tolist(),
        }

    # --------------------------------------------------------------- mapping
    @property
    def has_distortion(self) -> bool:
        return bool(np.any(self.dist_coeffs != 0.0))

    @functools.cached_property
    def _homography_inv(self) -> np.ndarray:
        inv = np.linalg.inv(self.homography)
        return inv / inv[2, 2]

    def undistort_px(
        self, col_px: npt.ArrayLike, row_px: npt.ArrayLike
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raw pixel coordinates -> undistorted pixel coordinates (same ``K``); float64."""
        c = np.asarray(col_px, dtype=np.float64)
        r = np.asarray(row_px, dtype=np.float64)
        if not self.has_distortion:
            return c, r
        k = self.camera_matrix
        xd = (c - k[0, 2] - k[0, 1] * (r - k[1, 2]) / k[1, 1]) / k[0, 0]
        yd = (r - k[1, 2]) / k[1, 1]
        x, y = _undistort_normalised(xd, yd, self.dist_coeffs)
        return k[0, 0] * x + k[0, 1] * y + k[0, 2], k[1, 1] * y + k[1, 2]

    def distort_px(
        self, col_px: npt.ArrayLike, row_px: npt.ArrayLike
    ) -> tuple[np.ndarray, np.ndarray]:
        """Undistorted pixel coordinates -> raw pixel coordinates; float64."""
        c = np.asarray(col_px, dtype=np.float64)
        r = np.asarray(row_px, dtype=np.float64)
        if not self.has_distortion:
            return c, r
        k = self.camera_matrix
        y = (r - k[1, 2]) / k[1, 1]
        x = (c - k[0, 2] - k[0, 1] * y) / k[0, 0]
        xd, yd = _distort_normalised(x, y, self.dist_coeffs)
        return k[0, 0] * xd + k[0, 1] * yd + k[0, 2], k[1, 1] * yd + k[1, 2]

    def px_to_mm(
        self, col_px: npt.ArrayLike, row_px: npt.ArrayLike
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raw pixel coordinates, any shape -> belt (x_mm, y_mm) float64 of that shape.

        After ``prepare_lookup()``, points inside the image are interpolated from
        the table (error below 1e-4 mm) instead of undistorted iteratively.
        """
        table = self.__dict__.get("_lookup")
        if table is None:
            u, v = self.undistort_px(col_px, row_px)
            return _apply_homography(self.homography, u, v)
        c, r = np.broadcast_arrays(
            np.asarray(col_px, dtype=np.float64), np.asarray(row_px, dtype=np.float64)
        )
        shape = c.shape
        c, r = c.ravel(), r.ravel()
        inside = (c >= 0) & (c <= self.width_px - 1) & (r >= 0) & (r <= self.height_px - 1)
        if np.all(inside):
            x, y = _bilinear(table, c, r)
        else:
            u, v = self.undistort_px(c, r)
            x, y = _apply_homography(self.homography, u, v)
            x[inside], y[inside] = _bilinear(table, c[inside], r[inside])
        return x.reshape(shape), y.reshape(shape)

    def prepare_lookup(self) -> None:
        """Tabulate belt mm at every pixel centre (2 x H x W float64: 10 MB and about
        0.5 s for 1280 x 512) so ``px_to_mm`` costs tens of microseconds per call.
        Call once at start-up, outside the frame loop; a no-op without distortion."""
        if not self.has_distortion or "_lookup" in self.__dict__:
            return
        cols, rows = np.meshgrid(
            np.arange(self.width_px, dtype=np.float64), np.arange(self.height_px, dtype=np.float64)
        )
        u, v = self.undistort_px(cols, rows)
        x, y = _apply_homography(self.homography, u, v)
        self.__dict__["_lookup"] = np.stack([x, y])

    def mm_to_px(self, x_mm: npt.ArrayLike, y_mm: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Belt (x, y) mm, any shape -> raw pixel coordinates (col, row) float64."""
        x = np.asarray(x_mm, dtype=np.float64)
        y = np.asarray(y_mm, dtype=np.float64)
        u, v = _apply_homography(self._homography_inv, x, y)
        return self.distort_px(u, v)

    def scale_mm_per_px(
        self, col_px: npt.ArrayLike, row_px: npt.ArrayLike
    ) -> tuple[np.ndarray, np.ndarray]:
        """Local scale at pixels: (mm per px along a row, mm per px down a column).

        Central differences of ``px_to_mm`` over one pixel; lengths of the
        Jacobian's columns, so a rotated camera still gives lengths.
        """
        c = np.asarray(col_px, dtype=np.float64)
        r = np.asarray(row_px, dtype=np.float64)
        x1, y1 = self.px_to_mm(c + 0.5, r)
        x0, y0 = self.px_to_mm(c - 0.5, r)
        sx = np.hypot(x1 - x0, y1 - y0)
        x1, y1 = self.px_to_mm(c, r + 0.5)
        x0, y0 = self.px_to_mm(c, r - 0.5)
        return sx, np.hypot(x1 - x0, y1 - y0)

    def centre_scale_mm_per_px(self) -> tuple[float, float]:
        """``scale_mm_per_px`` at the image centre."""
        sx, sy = self.scale_mm_per_px((self.width_px - 1) / 2.0, (self.height_px - 1) / 2.0)
        return float(sx), float(sy)

    # ---------------------------------------------------------------- images
    @functools.cached_property
    def _undistort_maps(self) -> tuple[np.ndarray, np.ndarray]:
        cols, rows = np.meshgrid(
            np.arange(self.width_px, dtype=np.float64), np.arange(self.height_px, dtype=np.float64)
        )
        mx, my = self.distort_px(cols, rows)
        return mx.astype(np.float32), my.astype(np.float32)

    def undistort_maps(self) -> tuple[np.ndarray, np.ndarray]:
        """(map_x, map_y): (H, W) float32 for ``cv2.remap`` raw -> undistorted image.

        Computed once and cached; do not modify them.
        """
        return self._undistort_maps

    def undistort_image(self, image: np.ndarray) -> np.ndarray:
        """The image as an ideal pinhole camera with the same ``K`` would see it."""
        import cv2

        if image.shape[:2] != (self.height_px, self.width_px):
            raise CameraModelError(
                f"image is {image.shape[1]}x{image.shape[0]} px, model is "
                f"{self.width_px}x{self.height_px}"
            )
        if not self.has_distortion:
            return image
        mx, my = self._undistort_maps
        return cv2.remap(image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
