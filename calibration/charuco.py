"""ChArUco calibration board: its specification and detection in an image.

Board coordinates: mm, origin at the board's top-left corner as printed, ``x``
along ``squares_x``, ``y`` along ``squares_y``, ``z = 0`` on the board face.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["BoardSpec", "BoardView", "detect_board"]

_DICTIONARIES = ("DICT_4X4_100", "DICT_5X5_100", "DICT_5X5_250", "DICT_6X6_250")


class BoardSpec(BaseModel):
    """A printed ChArUco board (OpenCV's layout, not the legacy pattern)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    squares_x: int = Field(default=9, ge=3, le=40)
    squares_y: int = Field(default=5, ge=3, le=40)
    square_mm: float = Field(default=40.0, gt=0, le=1000)
    marker_mm: float = Field(default=30.0, gt=0, le=1000)
    dictionary: str = "DICT_5X5_100"

    @model_validator(mode="after")
    def _check(self) -> BoardSpec:
        if self.marker_mm >= self.square_mm:
            raise ValueError("marker_mm must be smaller than square_mm")
        if self.dictionary not in _DICTIONARIES:
            raise ValueError(f"dictionary must be one of {_DICTIONARIES}")
        return self

    @property
    def size_mm(self) -> tuple[float, float]:
        return self.squares_x * self.square_mm, self.squares_y * self.square_mm

    @property
    def n_corners(self) -> int:
        return (self.squares_x - 1) * (self.squares_y - 1)

    def cv_board(self) -> Any:
        """The ``cv2.aruco.CharucoBoard`` (built on each call; cheap)."""
        import cv2

        dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        return cv2.aruco.CharucoBoard(
            (self.squares_x, self.squares_y), self.square_mm, self.marker_mm, dictionary
        )

    def corner_points_mm(self) -> np.ndarray:
        """(n_corners, 3) float64 board coordinates of the inner corners, by corner id."""
        return np.asarray(self.cv_board().getChessboardCorners(), dtype=np.float64).reshape(-1, 3)

    def render(self, px_per_mm: float, margin_mm: float = 0.0) -> np.ndarray:
        """The board as printed: (H, W) uint8, white margin of ``margin_mm``.

        Pixel centre ``(i, j)`` shows board point
        ``((j + 0.5) / s - margin, (i + 0.5) / s - margin)``
        with ``s = px_per_mm``.
        """
        w_mm, h_mm = self.size_mm
        margin_px = round(margin_mm * px_per_mm)
        size = (round(w_mm * px_per_mm) + 2 * margin_px, round(h_mm * px_per_mm) + 2 * margin_px)
        return np.asarray(self.cv_board().generateImage(size, marginSize=margin_px, borderBits=1))


@dataclasses.dataclass(frozen=True)
class BoardView:
    """Inner corners of the board found in one image.

    ids:       (N,) int32 corner ids.
    image_px:  (N, 2) float64 raw pixel coordinates (col, row).
    board_mm:  (N, 3) float64 board coordinates of those corners.
    """

    ids: np.ndarray
    image_px: np.ndarray
    board_mm: np.ndarray

    def __len__(self) -> int:
        return int(self.ids.shape[0])


def detect_board(image: np.ndarray, spec: BoardSpec) -> BoardView:
    """ChArUco inner corners in ``image`` ((H, W) or (H, W, 3) uint8); may be empty."""
    import cv2

    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    board = spec.cv_board()
    corners, ids, _, _ = cv2.aruco.CharucoDetector(board).detectBoard(gray)
    if ids is None or corners is None or len(ids) == 0:
        empty = np.zeros((0,), np.int32)
        return BoardView(empty, np.zeros((0, 2)), np.zeros((0, 3)))
    obj, img = board.matchImagePoints(corners, ids)  # (N, 3) / (N, 2), shapes vary
    ids_arr = np.asarray(ids, dtype=np.int32).reshape(-1)
    image_px = np.asarray(img, dtype=np.float64).reshape(-1, 2)
    board_mm = np.asarray(obj, dtype=np.float64).reshape(-1, 3)
    if len(board_mm) != len(ids_arr):
        board_mm = spec.corner_points_mm()[ids_arr]
        image_px = np.asarray(corners, dtype=np.float64).reshape(-1, 2)
    return BoardView(ids_arr, image_px, board_mm)
