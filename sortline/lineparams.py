"""One set of derived line parameters, computed in one place and applied to
the controller, the vision pipeline and the PLC bridge together.

From the line config and the active calibration: the geometry (belt, camera,
valve bar with per-valve delays and disabled valves), the encoder scale, the
valve line, and the deadline lead the bridge checks every pulse against (the
slowest valve's open delay plus the safety margin: a pulse must be in the
PLC that long before its on tick).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, Protocol

import numpy as np

from calibration.camera_model import CameraModel
from calibration.geometry import LineGeometry

__all__ = ["LineParams", "derive", "with_disabled"]


@dataclasses.dataclass(frozen=True)
class LineParams:
    """geometry: what vision and control believe (config + calibration).
    camera_model: the calibrated camera (None: nominal scale from the geometry).
    mm_per_tick: encoder scale; y_valve_mm: valve line downstream of the
    camera's reference line; open_delay_max_ms: the slowest enabled valve;
    deadline_lead_ms: open_delay_max_ms + deadline_margin_ms.
    calibration_version: the store version applied (None: nominal)."""

    geometry: LineGeometry
    camera_model: CameraModel | None
    mm_per_tick: float
    y_valve_mm: float
    open_delay_max_ms: float
    deadline_margin_ms: float
    deadline_lead_ms: float
    calibration_version: int | None

    def summary(self) -> dict[str, float | int | None]:
        return {
            "mm_per_tick": self.mm_per_tick,
            "y_valve_mm": self.y_valve_mm,
            "open_delay_max_ms": self.open_delay_max_ms,
            "deadline_lead_ms": self.deadline_lead_ms,
            "calibration_version": self.calibration_version,
        }


def derive(
    geometry: LineGeometry,
    camera_model: CameraModel | None,
    deadline_margin_ms: float,
    calibration_version: int | None = None,
) -> LineParams:
    valves = geometry.valves
    enabled = np.setdiff1d(np.arange(valves.n_valves), np.asarray(valves.disabled_valves, int))
    delays = valves.open_delay_of(enabled if enabled.size else np.arange(valves.n_valves))
    open_max = float(np.max(delays))
    return LineParams(
        geometry=geometry,
        camera_model=camera_model,
        mm_per_tick=geometry.belt.mm_per_tick,
        y_valve_mm=valves.y_valve_mm,
        open_delay_max_ms=open_max,
        deadline_margin_ms=float(deadline_margin_ms),
        deadline_lead_ms=open_max + float(deadline_margin_ms),
        calibration_version=calibration_version,
    )


def with_disabled(params: LineParams, valves: Iterable[int]) -> LineParams:
    """``params`` with ``valves`` disabled as well as the calibration's (indices
    the bar does not have are ignored: a later calibration's shorter bar),
    re-derived (the slowest enabled valve may change)."""
    bar = params.geometry.valves
    extra = {int(v) for v in valves if 0 <= v < bar.n_valves}
    off = tuple(sorted(set(bar.disabled_valves) | extra))
    if off == tuple(bar.disabled_valves):
        return params
    geometry = params.geometry.model_copy(
        update={"valves": bar.model_copy(update={"disabled_valves": off})}
    )
    return derive(
        geometry, params.camera_model, params.deadline_margin_ms, params.calibration_version
    )


class _Controller(Protocol):
    def apply_geometry(self, geometry: LineGeometry) -> None: ...


class _Vision(Protocol):
    geometry: LineGeometry
    camera_model: Any


class _Bridge(Protocol):
    def set_line_params(self, *, mm_per_tick: float, deadline_lead_ms: float) -> None: ...


def apply(params: LineParams, controller: _Controller, vision: _Vision, bridge: _Bridge) -> None:
    """Hand ``params`` to all three (real-time thread: the controller and vision
    take them at their next frame; the bridge at its next deadline check)."""
    controller.apply_geometry(params.geometry)
    vision.geometry = params.geometry
    vision.camera_model = params.camera_model or params.geometry.camera
    bridge.set_line_params(mm_per_tick=params.mm_per_tick, deadline_lead_ms=params.deadline_lead_ms)
