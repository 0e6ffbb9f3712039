"""What every calibration procedure returns: quality figures checked against limits.

A procedure raises ``CalibrationError`` (one line: what is wrong and what to do
next) when its input cannot give any result, and otherwise returns a result
whose ``checks`` say which limits held; ``passed`` is False if any failed, and a
failed result is never applied to a line.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BeltPlaneLimits",
    "CalibrationError",
    "CalibrationLimits",
    "Check",
    "EncoderLimits",
    "IntrinsicsLimits",
    "ValveLimits",
    "ValveXLimits",
    "checks_passed",
]

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


class CalibrationError(ValueError):
    """Input that cannot be calibrated; ``str(err)`` says what to do next."""


@dataclasses.dataclass(frozen=True)
class Check:
    """One quality figure against its limit: passes when ``value <= limit`` (or
    ``>= limit`` with ``at_least``)."""

    name: str
    value: float
    limit: float
    at_least: bool = False

    @property
    def passed(self) -> bool:
        return self.value >= self.limit if self.at_least else self.value <= self.limit

    def to_dict(self) -> dict[str, Any]:
        op = ">=" if self.at_least else "<="
        return {
            "name": self.name,
            "value": self.value,
            "limit": f"{op} {self.limit}",
            "passed": self.passed,
        }


def checks_passed(checks: tuple[Check, ...]) -> bool:
    return all(c.passed for c in checks)


class IntrinsicsLimits(BaseModel):
    model_config = _STRICT
    min_views: int = Field(default=6, ge=3)
    min_corners_per_view: int = Field(default=12, ge=6)
    max_rms_px: float = Field(default=0.5, gt=0)
    max_view_rms_px: float = Field(default=1.0, gt=0, description="views above this are rejected")
    reject_factor: float = Field(
        default=3.0, gt=1, description="... or above this times the median"
    )


class BeltPlaneLimits(BaseModel):
    model_config = _STRICT
    min_corners: int = Field(default=20, ge=4)
    max_residual_mm: float = Field(default=0.5, gt=0)


class EncoderLimits(BaseModel):
    model_config = _STRICT
    min_common_corners: int = Field(default=12, ge=3)
    max_linearity_mm: float = Field(default=0.5, gt=0, description="RMS of corner displacements")
    max_direction_deg: float = Field(
        default=3.0, gt=0, description="belt motion vs the board's y axis"
    )
    max_speed_mismatch: float = Field(default=0.01, gt=0, description="optical vs encoder speed")
    max_drive_speed_mismatch: float = Field(
        default=0.02, gt=0, description="speed the drive/PLC reports vs the encoder's"
    )
    max_change_vs_nominal: float = Field(default=0.1, gt=0, description="relative mm/tick change")


class ValveLimits(BaseModel):
    model_config = _STRICT
    max_line_se_mm: float = Field(default=0.3, gt=0)
    max_delay_se_ms: float = Field(default=0.3, gt=0)
    max_fit_rms_mm: float = Field(default=0.6, gt=0)
    min_check_hit_rate: float = Field(default=0.9, gt=0, le=1)


class ValveXLimits(BaseModel):
    model_config = _STRICT
    max_x_first_se_mm: float = Field(default=0.3, gt=0)
    max_fit_rms_mm: float = Field(default=1.0, gt=0)
    max_pitch_change: float = Field(default=0.01, gt=0, description="relative to nominal")
    min_valves: int = Field(default=3, ge=2)


class CalibrationLimits(BaseModel):
    """Configured limits of every procedure (defaults are the issue's targets)."""

    model_config = _STRICT
    intrinsics: IntrinsicsLimits = IntrinsicsLimits()
    belt_plane: BeltPlaneLimits = BeltPlaneLimits()
    encoder: EncoderLimits = EncoderLimits()
    valves: ValveLimits = ValveLimits()
    valve_x: ValveXLimits = ValveXLimits()
