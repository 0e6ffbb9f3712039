"""``LiveCalibration``: what the running line holds, swapped without a restart.

The application builds one at start-up from its store and nominal geometry,
calls ``poll()`` now and then (it costs one ``stat`` while nothing changed;
applying a new calibration tabulates its camera map, about half a second)
outside the frame loop, and reads ``geometry`` / ``camera_model`` / ``status()``.
A newly activated (or rolled-back-to) calibration is applied on the next
``poll()``; a damaged or unfitting one is refused and the line keeps what it
had, with the reason in ``status()["error"]``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from calibration.camera_model import CameraModel
from calibration.geometry import LineGeometry
from calibration.record import Calibration
from calibration.store import Activation, CalibrationStore
from core.errors import InputFileError

__all__ = ["LiveCalibration"]


@dataclasses.dataclass(frozen=True)
class _Applied:
    geometry: LineGeometry
    camera_model: CameraModel
    calibration: Calibration | None
    activation: Activation | None


class LiveCalibration:
    """The nominal ``base`` geometry with the store's active calibration applied."""

    def __init__(self, store: CalibrationStore, base: LineGeometry) -> None:
        self.store = store
        self.base = base
        self._applied = _Applied(base, CameraModel.nominal(base.camera), None, None)
        self._seen: tuple[int, int] | None = None
        self.error: str | None = None
        self.poll()

    @property
    def geometry(self) -> LineGeometry:
        return self._applied.geometry

    @property
    def camera_model(self) -> CameraModel:
        return self._applied.camera_model

    @property
    def calibration(self) -> Calibration | None:
        return self._applied.calibration

    def poll(self) -> bool:
        """Apply a newly activated calibration; True when ``geometry`` changed."""
        try:
            history = self.store.history()
        except InputFileError as exc:
            self.error = str(exc)
            return False
        key = (len(history), history[-1].version) if history else None
        if key is None or key == self._seen:
            return False
        self._seen = key
        record = history[-1]
        try:
            cal = self.store.load(record.version)
            geometry = cal.apply(self.base)
            model = cal.camera_model(fallback=geometry.camera)
            model.prepare_lookup()  # ~0.5 s here, so px_to_mm is cheap in the frame loop
        except (InputFileError, ValueError) as exc:
            self.error = f"v{record.version} not applied: {exc}"
            return False
        self._applied = _Applied(geometry, model, cal, record)
        self.error = None
        return True

    def status(self) -> dict[str, Any]:
        """For the status API: which calibration is active, who activated it and when."""
        applied = self._applied
        rec, cal = applied.activation, applied.calibration
        return {
            "line": self.store.line,
            "version": None if rec is None else rec.version,
            "activated_by": None if rec is None else rec.who,
            "activated_utc": None if rec is None else rec.when_utc,
            "action": None if rec is None else rec.action,
            "note": None if rec is None else rec.note,
            "source": None if cal is None else cal.source,
            "passed": None if cal is None else cal.passed,
            "mm_per_tick": applied.geometry.belt.mm_per_tick,
            "y_valve_mm": applied.geometry.valves.y_valve_mm,
            "disabled_valves": list(applied.geometry.valves.disabled_valves),
            "error": self.error,
        }
