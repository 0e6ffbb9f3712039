"""Valve bar position across the belt: where each valve's jet really is.

With the timing known (``valve_timing``), every valve is fired at its best
timing at test fragments dropped at offsets across its nominal centre. The hit
rate against the fragment's measured ``x`` rises where the jet's edge begins
and falls where it ends; the edge midpoints are the valves' true centres, and
a straight-line fit over the bar gives its ``x_first_mm`` and pitch. The edge
distance is the jet's effective width across the belt.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from calibration.camera_model import CameraModel
from calibration.edge_fit import fit_edge
from calibration.fragments import ShotPlan, TestFragmentRig, run_shots
from calibration.geometry import ValveBar
from calibration.results import CalibrationError, Check, ValveXLimits, checks_passed
from calibration.valve_timing import ValveTimingResult

__all__ = ["ValveXPlan", "ValveXResult", "calibrate_valve_x"]

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


class ValveXPlan(BaseModel):
    model_config = _STRICT
    half_range_mm: float = Field(default=12.0, gt=0, description="offsets from nominal centre")
    step_mm: float = Field(default=1.0, gt=0)
    repeats: int = Field(default=1, ge=1)


@dataclasses.dataclass(frozen=True)
class ValveXResult:
    """centre_mm, width_mm: (n_valves,) float64 per valve, NaN where not measured."""

    x_first_mm: float
    x_first_se_mm: float
    pitch_mm: float
    jet_width_mm: float
    centre_mm: np.ndarray
    width_mm: np.ndarray
    fit_rms_mm: float
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return checks_passed(self.checks)

    def to_dict(self) -> dict[str, Any]:
        def clean(a: np.ndarray) -> list[float | None]:
            return [float(v) if np.isfinite(v) else None for v in a]

        return {
            "passed": self.passed,
            "x_first_mm": self.x_first_mm,
            "x_first_se_mm": self.x_first_se_mm,
            "pitch_mm": self.pitch_mm,
            "jet_width_mm": self.jet_width_mm,
            "centre_mm": clean(self.centre_mm),
            "width_mm": clean(self.width_mm),
            "fit_rms_mm": self.fit_rms_mm,
            "checks": [c.to_dict() for c in self.checks],
        }


def _edges_x(x_rel: np.ndarray, hit: np.ndarray) -> tuple[float, float] | None:
    """(left edge, right edge) of the hit band in ``x_rel``, or None."""
    if not hit.any():
        return None
    mid = float(np.mean(x_rel[hit]))
    left = fit_edge(x_rel[x_rel <= mid], hit[x_rel <= mid], rising=True)
    right = fit_edge(x_rel[x_rel >= mid], hit[x_rel >= mid], rising=False)
    if left is None or right is None:
        return None
    return left[0], right[0]


def calibrate_valve_x(
    rig: TestFragmentRig,
    model: CameraModel,
    mm_per_tick: float,
    nominal: ValveBar,
    timing: ValveTimingResult,
    plan: ValveXPlan | None = None,
    limits: ValveXLimits | None = None,
) -> ValveXResult:
    """Valve centres, bar offset and pitch, jet width, from an x sweep at best timing."""
    p = plan or ValveXPlan()
    lim = limits or ValveXLimits()
    n = nominal.n_valves
    usable = np.isfinite(timing.best_on_mm) & ~np.isin(np.arange(n), timing.not_firing)
    valves = np.flatnonzero(usable)
    if len(valves) < lim.min_valves:
        raise CalibrationError(
            f"valve position: only {len(valves)} valves have a known timing, need "
            f"{lim.min_valves}: run the timing sweep first and repair valves that do not fire"
        )
    offsets = np.tile(np.arange(-p.half_range_mm, p.half_range_mm + 1e-9, p.step_mm), p.repeats)
    valve = np.repeat(valves, len(offsets))
    nominal_x = nominal.valve_centre_mm(valve)
    shots = run_shots(
        rig,
        model,
        mm_per_tick,
        ShotPlan(
            valve,
            timing.best_on_mm[valve],
            nominal_x + np.tile(offsets, len(valves)),
            timing.check_speed_mm_s,
            timing.check_pulse_ticks,
            match_radius_mm=min(0.8 * nominal.pitch_mm, 10.0),
            row_stride=4,
        ),
    )
    centre = np.full(n, np.nan)
    width = np.full(n, np.nan)
    for j in valves.tolist():
        sel = shots.valve == j
        x0 = float(nominal.valve_centre_mm(j))
        edges = _edges_x(shots.x_mm[sel] - x0, shots.hit[sel])
        if edges is not None:
            centre[j] = x0 + 0.5 * (edges[0] + edges[1])
            width[j] = edges[1] - edges[0]
    return _fit_bar(centre, width, nominal, lim)


def _fit_bar(
    centre: np.ndarray, width: np.ndarray, nominal: ValveBar, lim: ValveXLimits
) -> ValveXResult:
    ok = np.flatnonzero(np.isfinite(centre))
    if len(ok) < lim.min_valves:
        raise CalibrationError(
            f"valve position: jet edges found for only {len(ok)} valves: widen "
            "half_range_mm so the sweep reaches both edges of each jet"
        )
    a = np.column_stack([np.ones(len(ok)), ok + 0.5])
    sol, *_ = np.linalg.lstsq(a, centre[ok], rcond=None)
    resid = centre[ok] - a @ sol
    dof = max(len(ok) - 2, 1)
    cov = np.linalg.inv(a.T @ a) * float(resid @ resid) / dof
    x_first, pitch = float(sol[0]), float(sol[1])
    rms = float(np.sqrt(np.mean(resid**2)))
    checks = (
        Check("x_first_se_mm", float(np.sqrt(cov[0, 0])), lim.max_x_first_se_mm),
        Check("fit_rms_mm", rms, lim.max_fit_rms_mm),
        Check("pitch_change", abs(pitch / nominal.pitch_mm - 1.0), lim.max_pitch_change),
    )
    return ValveXResult(
        x_first,
        float(np.sqrt(cov[0, 0])),
        pitch,
        float(np.nanmedian(width)),
        centre,
        width,
        rms,
        checks,
    )
