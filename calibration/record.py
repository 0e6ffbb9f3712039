"""``Calibration``: one versioned set of calibrated numbers for one line.

Stored as JSON (schema below, ``schema_version`` 1). ``apply(geometry)`` gives
the line geometry with these numbers in; ``camera_model()`` the lens and belt
homography. A file is checked for its schema version and line before it is
validated, so a wrong file gets a message that says what to do.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from calibration.camera_model import CameraModel, CameraModelError
from calibration.geometry import CameraGeometry, LineGeometry
from core.errors import InputFileError, validation_error

__all__ = [
    "SCHEMA_VERSION",
    "BeltSection",
    "Calibration",
    "CameraSection",
    "ValvesSection",
    "parse_calibration",
]

SCHEMA_VERSION: Literal[1] = 1
_MODEL = ConfigDict(extra="forbid", frozen=True)


def _finite(values: list[float], name: str) -> list[float]:
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name} holds NaN or infinity")
    return values


class CameraSection(BaseModel):
    model_config = _MODEL
    image_size_px: tuple[int, int]
    camera_matrix: list[list[float]] = Field(min_length=3, max_length=3)
    dist_coeffs: list[float] = Field(min_length=5, max_length=5)
    homography_px_to_mm: list[list[float]] = Field(min_length=3, max_length=3)

    @field_validator("camera_matrix", "homography_px_to_mm")
    @classmethod
    def _three_by_three(cls, v: list[list[float]]) -> list[list[float]]:
        if any(len(row) != 3 for row in v):
            raise ValueError("must be a 3x3 matrix")
        _finite([x for row in v for x in row], "matrix")
        return v


class BeltSection(BaseModel):
    model_config = _MODEL
    mm_per_tick: float = Field(gt=0, le=100)


class ValvesSection(BaseModel):
    model_config = _MODEL
    y_valve_mm: float = Field(gt=0)
    open_delay_ms: list[float] = Field(min_length=1)
    close_delay_ms: list[float] = Field(min_length=1)
    disabled_valves: list[int] = Field(default_factory=list)
    # optional (measured by the valve position sweep)
    x_first_mm: float | None = None
    pitch_mm: float | None = Field(default=None, gt=0)
    blast_width_mm: float | None = Field(default=None, gt=0)

    @field_validator("open_delay_ms", "close_delay_ms")
    @classmethod
    def _delays(cls, v: list[float]) -> list[float]:
        return _finite(v, "delay")


class Calibration(BaseModel):
    """version 0 means "not saved yet"; the store assigns 1, 2, ..."""

    model_config = _MODEL
    schema_version: Literal[1] = SCHEMA_VERSION
    line: str = Field(min_length=1, max_length=64)
    version: int = Field(default=0, ge=0)
    created_utc: str = ""
    created_by: str = ""
    source: str = ""
    passed: bool
    camera: CameraSection | None = None
    belt: BeltSection | None = None
    valves: ValvesSection | None = None
    quality: dict[str, Any] = Field(default_factory=dict)

    def camera_model(self, fallback: CameraGeometry | None = None) -> CameraModel:
        """The calibrated camera; ``CameraModel.nominal(fallback)`` when this
        calibration has no camera section (raises ValueError without a fallback)."""
        if self.camera is None:
            if fallback is None:
                raise ValueError(f"calibration v{self.version} has no camera section")
            return CameraModel.nominal(fallback)
        return CameraModel.from_dict(self.camera.model_dump())

    def apply(self, geometry: LineGeometry) -> LineGeometry:
        """``geometry`` with the calibrated numbers in (ValueError if they do not fit)."""
        data = geometry.model_dump()
        if self.belt is not None:
            data["belt"]["mm_per_tick"] = self.belt.mm_per_tick
        if self.valves is not None:
            data["valves"].update(self._valve_update(geometry))
        if self.camera is not None:
            data["camera"].update(self._camera_update(geometry.camera))
        return LineGeometry.model_validate(data)

    def _valve_update(self, geometry: LineGeometry) -> dict[str, Any]:
        v = self.valves
        assert v is not None
        n = geometry.valves.n_valves
        if len(v.open_delay_ms) != n or len(v.close_delay_ms) != n:
            raise ValueError(
                f"calibration v{self.version} has delays for {len(v.open_delay_ms)} valves, "
                f"the line has {n}: recalibrate the valves of this bar"
            )
        working = np.setdiff1d(np.arange(n), v.disabled_valves)
        opens = np.asarray(v.open_delay_ms)[working]
        closes = np.asarray(v.close_delay_ms)[working]
        return {
            "y_valve_mm": v.y_valve_mm,
            "open_delay_ms": float(np.median(opens)) if len(opens) else 0.0,
            "close_delay_ms": float(np.median(closes)) if len(closes) else 0.0,
            "open_delay_per_valve_ms": tuple(v.open_delay_ms),
            "close_delay_per_valve_ms": tuple(v.close_delay_ms),
            "disabled_valves": tuple(v.disabled_valves),
        } | {
            name: getattr(v, name)
            for name in ("x_first_mm", "pitch_mm", "blast_width_mm")
            if getattr(v, name) is not None
        }

    def _camera_update(self, camera: CameraGeometry) -> dict[str, Any]:
        model = self.camera_model()
        if (model.width_px, model.height_px) != (camera.width_px, camera.height_px):
            raise ValueError(
                f"calibration v{self.version} is for a {model.width_px}x{model.height_px} px "
                f"camera, the line's is {camera.width_px}x{camera.height_px}: recalibrate"
            )
        sx, sy = model.centre_scale_mm_per_px()
        xc, _ = model.px_to_mm((model.width_px - 1) / 2.0, (model.height_px - 1) / 2.0)
        width_mm = sx * camera.width_px
        return {
            "view_width_mm": width_mm,
            "view_length_mm": sy * camera.height_px,
            "x_offset_mm": float(xc) - width_mm / 2.0,
            "reference_row_px": None,
        }


def parse_calibration(text: str, path: str | Path, line: str | None = None) -> Calibration:
    """Validate JSON ``text`` read from ``path``; one-line ``InputFileError`` on any problem."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputFileError(path, f"not valid JSON: {exc}") from None
    if not isinstance(data, dict) or "schema_version" not in data:
        raise InputFileError(path, "not a sortline calibration file (no schema_version)")
    version = data["schema_version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise InputFileError(path, "must be an integer", field="schema_version")
    if version < SCHEMA_VERSION:
        raise InputFileError(
            path,
            f"schema_version {version} is older than this sortline's {SCHEMA_VERSION}: "
            "recalibrate (sortline calibrate ...) and save a new version",
            field="schema_version",
        )
    if version > SCHEMA_VERSION:
        raise InputFileError(
            path,
            f"schema_version {version} was written by a newer sortline (this one reads "
            f"{SCHEMA_VERSION}): upgrade sortline to use it",
            field="schema_version",
        )
    if line is not None and data.get("line") != line:
        raise InputFileError(
            path,
            f"calibration of line {data.get('line')!r}, not {line!r}: use --line "
            f"{data.get('line')} or the store of the right line",
            field="line",
        )
    try:
        cal = Calibration.model_validate_json(text, strict=True)
        if cal.camera is not None:
            cal.camera_model()
    except ValidationError as exc:
        raise validation_error(path, exc) from None
    except CameraModelError as exc:
        raise InputFileError(path, str(exc), field="camera") from None
    return cal
