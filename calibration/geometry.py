"""Line geometry: the numbers that tie camera, belt, encoder and valves together.

These are nominal values from the line config; calibration procedures refine
them (``calibration/`` owns both). All lengths in millimetres, times in
milliseconds unless the name says otherwise.

Coordinates: ``x`` across the belt from its left edge looking downstream,
``y`` downstream of the camera's reference line (the image row
``reference_row_px``). The belt runs down the image: row 0 is upstream.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


class BeltGeometry(BaseModel):
    model_config = _STRICT

    width_mm: float = Field(default=1000.0, gt=0, le=5000)
    speed_mm_s: float = Field(default=2500.0, gt=0, le=10000, description="nominal belt speed")
    mm_per_tick: float = Field(
        default=0.1, gt=0, le=100, description="belt travel per encoder tick"
    )

    def ticks_per_s(self, speed_mm_s: float | None = None) -> float:
        return (self.speed_mm_s if speed_mm_s is None else speed_mm_s) / self.mm_per_tick


class CameraGeometry(BaseModel):
    """A line-scan-like area camera looking straight down at the belt."""

    model_config = _STRICT

    width_px: int = Field(default=1280, gt=0, le=16384)
    height_px: int = Field(default=512, gt=0, le=16384)
    fps: float = Field(default=100.0, gt=0, le=10000)
    view_width_mm: float = Field(
        default=1000.0, gt=0, description="belt width seen across the image"
    )
    view_length_mm: float = Field(
        default=400.0, gt=0, description="belt length seen down the image"
    )
    x_offset_mm: float = Field(default=0.0, description="belt x of the left edge of column 0")
    reference_row_px: float | None = Field(
        default=None, description="image row of y = 0; default: the centre row"
    )

    @property
    def mm_per_px_x(self) -> float:
        return self.view_width_mm / self.width_px

    @property
    def mm_per_px_y(self) -> float:
        return self.view_length_mm / self.height_px

    @property
    def ref_row_px(self) -> float:
        return self.height_px / 2.0 if self.reference_row_px is None else self.reference_row_px

    @property
    def frame_period_s(self) -> float:
        return 1.0 / self.fps

    @property
    def view_y_range_mm(self) -> tuple[float, float]:
        """(y at the top edge, y at the bottom edge) of the view, mm."""
        top = -self.ref_row_px * self.mm_per_px_y
        return top, top + self.view_length_mm

    def px_to_mm(self, col_px: np.ndarray, row_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel centres -> belt (x, y) mm with the nominal scale (no lens model)."""
        x = self.x_offset_mm + (np.asarray(col_px, dtype=np.float64) + 0.5) * self.mm_per_px_x
        y = (np.asarray(row_px, dtype=np.float64) + 0.5 - self.ref_row_px) * self.mm_per_px_y
        return x, y

    def mm_to_px(self, x_mm: np.ndarray, y_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        col = (np.asarray(x_mm, dtype=np.float64) - self.x_offset_mm) / self.mm_per_px_x - 0.5
        row = np.asarray(y_mm, dtype=np.float64) / self.mm_per_px_y + self.ref_row_px - 0.5
        return col, row


class ValveBar(BaseModel):
    """A bar of air-jet valves across the belt at the ejection line."""

    model_config = _STRICT

    n_valves: int = Field(default=80, gt=0, le=1024)
    pitch_mm: float = Field(default=12.5, gt=0, le=200)
    x_first_mm: float = Field(default=0.0, description="belt x of the left edge of valve 0's zone")
    y_valve_mm: float = Field(
        default=300.0, gt=0, description="ejection line, mm downstream of y = 0"
    )
    open_delay_ms: float = Field(
        default=3.0, ge=0, le=100, description="command to air at the belt"
    )
    close_delay_ms: float = Field(
        default=2.0, ge=0, le=100, description="command off to air stopped"
    )
    min_on_ms: float = Field(default=2.0, ge=0, le=1000)
    min_off_ms: float = Field(default=2.0, ge=0, le=1000)
    blast_width_mm: float = Field(
        default=16.0, gt=0, description="width across the belt that one open valve's jet clears"
    )
    # Added by calibration (optional; absent = every valve uses the scalar delays above)
    open_delay_per_valve_ms: tuple[float, ...] | None = Field(
        default=None, strict=False, description="calibrated opening delay of each valve"
    )
    close_delay_per_valve_ms: tuple[float, ...] | None = Field(
        default=None, strict=False, description="calibrated closing delay of each valve"
    )
    disabled_valves: tuple[int, ...] = Field(
        default=(), strict=False, description="valves found not firing: never command them"
    )

    @model_validator(mode="after")
    def _per_valve(self) -> ValveBar:
        for name in ("open_delay_per_valve_ms", "close_delay_per_valve_ms"):
            values = getattr(self, name)
            if values is not None and (
                len(values) != self.n_valves or not all(0 <= v <= 100 for v in values)
            ):
                raise ValueError(f"{name} needs {self.n_valves} delays in 0..100 ms")
        if any(not 0 <= v < self.n_valves for v in self.disabled_valves):
            raise ValueError(f"disabled_valves must lie in 0..{self.n_valves - 1}")
        return self

    def open_delay_of(self, valve: np.ndarray | int) -> np.ndarray:
        """Opening delay (ms, float64) of each valve index in ``valve``."""
        if self.open_delay_per_valve_ms is None:
            return np.full(np.shape(valve), self.open_delay_ms)
        return np.asarray(self.open_delay_per_valve_ms, dtype=np.float64)[valve]

    def close_delay_of(self, valve: np.ndarray | int) -> np.ndarray:
        """Closing delay (ms, float64) of each valve index in ``valve``."""
        if self.close_delay_per_valve_ms is None:
            return np.full(np.shape(valve), self.close_delay_ms)
        return np.asarray(self.close_delay_per_valve_ms, dtype=np.float64)[valve]

    def valve_centre_mm(self, valve: np.ndarray | int) -> np.ndarray:
        return self.x_first_mm + (np.asarray(valve, dtype=np.float64) + 0.5) * self.pitch_mm

    def valve_at_mm(self, x_mm: np.ndarray | float) -> np.ndarray:
        """Index of the valve whose zone holds ``x_mm`` (clipped to the bar)."""
        v = np.floor((np.asarray(x_mm, dtype=np.float64) - self.x_first_mm) / self.pitch_mm)
        return np.clip(v, 0, self.n_valves - 1).astype(np.int64)


class LineGeometry(BaseModel):
    model_config = _STRICT

    belt: BeltGeometry = BeltGeometry()
    camera: CameraGeometry = CameraGeometry()
    valves: ValveBar = ValveBar()

    @model_validator(mode="after")
    def _consistent(self) -> LineGeometry:
        bar_end = self.valves.x_first_mm + self.valves.n_valves * self.valves.pitch_mm
        if self.valves.x_first_mm < -self.valves.pitch_mm or bar_end > self.belt.width_mm + (
            self.valves.pitch_mm
        ):
            raise ValueError(
                f"valve bar spans x = {self.valves.x_first_mm}..{bar_end} mm, "
                f"beyond the {self.belt.width_mm} mm belt"
            )
        _, view_bottom = self.camera.view_y_range_mm
        if self.valves.y_valve_mm <= view_bottom - self.camera.view_length_mm:
            raise ValueError("valves.y_valve_mm lies upstream of the camera's view")
        return self
