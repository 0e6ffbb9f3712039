"""Valve line distance and per-valve opening/closing delays by a timing sweep.

Test fragments are fed in every valve's lane at several belt speeds; for each
shot the valve is commanded on while the fragment is at belt ``a`` mm and off
at ``b = a + pulse``. A fragment is ejected when its centre crosses the valve
line while the air is on, so the hit rate against ``a`` is a window whose
*falling* edge (command too late) sits where ``a + open_delay * v = y_valve``
and whose *rising* edge (in ``b``) where ``b + close_delay * v = y_valve``.
Edges are fitted per valve and speed (logistic, with standard errors); one
weighted least-squares solve over all of them gives the common ``y_valve``
(intercept) and each valve's delays (slopes over speed). A coarse sweep finds
the window, a fine one pins the edges, and a final check fires every valve at
its best timing at the line's speed, flagging valves that do not fire.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from calibration.camera_model import CameraModel
from calibration.edge_fit import fit_edge, solve_line_and_delays
from calibration.fragments import ShotPlan, ShotResults, TestFragmentRig, run_shots
from calibration.geometry import ValveBar
from calibration.results import CalibrationError, Check, ValveLimits, checks_passed

__all__ = ["SweepPlan", "ValveTimingResult", "calibrate_valves"]


class SweepPlan(BaseModel):
    """How the sweep is run. Lengths in belt mm, speeds in mm/s."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    speeds_mm_s: tuple[float, ...] = Field(default=(500.0, 1500.0, 3000.0), strict=False)
    check_speed_mm_s: float = Field(default=2500.0, gt=0)
    pulse_ms: float = Field(default=8.0, gt=0, description="longer than any delay spread")
    coarse_margin_mm: float = Field(default=20.0, gt=0)
    coarse_step_mm: float = Field(default=2.0, gt=0)
    fine_half_mm: float = Field(default=3.0, gt=0)
    fine_step_mm: float = Field(default=0.5, gt=0)
    fine_repeats: int = Field(default=4, ge=1)
    check_shots: int = Field(default=10, ge=1)


@dataclasses.dataclass(frozen=True)
class ValveTimingResult:
    """Per-valve arrays are (n_valves,) float64, NaN where not measured."""

    y_valve_mm: float
    y_valve_se_mm: float
    open_delay_ms: np.ndarray
    open_delay_se_ms: np.ndarray
    close_delay_ms: np.ndarray
    close_delay_se_ms: np.ndarray
    fit_rms_mm: float
    best_on_mm: np.ndarray  # command-on position (belt y of the fragment) at check speed
    best_offset_ms: np.ndarray  # best command time vs the nominal config's, at check speed
    best_offset_se_ms: np.ndarray  # its standard error (the confidence of the best offset)
    margin_ms: np.ndarray  # half the hit window at check speed, less 3 standard errors
    hit_curves: tuple[dict[str, Any], ...]  # per speed: hit rate vs offset from best (ms)
    check_hit_rate: np.ndarray
    not_firing: tuple[int, ...]  # fired at their best timing, hit less than the limit
    not_seen: tuple[int, ...]  # lanes whose test fragments the camera never saw: unchecked
    check_speed_mm_s: float  # belt speed of the check (best_on_mm is for it)
    check_pulse_ticks: int  # pulse length of the check
    shots: int
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return checks_passed(self.checks)

    def to_dict(self) -> dict[str, Any]:
        def clean(a: np.ndarray) -> list[float | None]:
            return [None if not np.isfinite(v) else float(v) for v in a]

        return {
            "passed": self.passed,
            "y_valve_mm": self.y_valve_mm,
            "y_valve_se_mm": self.y_valve_se_mm,
            "open_delay_ms": clean(self.open_delay_ms),
            "open_delay_se_ms": clean(self.open_delay_se_ms),
            "close_delay_ms": clean(self.close_delay_ms),
            "close_delay_se_ms": clean(self.close_delay_se_ms),
            "fit_rms_mm": self.fit_rms_mm,
            "best_on_mm": clean(self.best_on_mm),
            "best_offset_ms": clean(self.best_offset_ms),
            "best_offset_se_ms": clean(self.best_offset_se_ms),
            "margin_ms": clean(self.margin_ms),
            "hit_curves": list(self.hit_curves),
            "check_hit_rate": clean(self.check_hit_rate),
            "not_firing": list(self.not_firing),
            "not_seen": list(self.not_seen),
            "shots": self.shots,
            "checks": [c.to_dict() for c in self.checks],
        }


@dataclasses.dataclass(frozen=True)
class _Context:
    rig: TestFragmentRig
    model: CameraModel
    mm_per_tick: float
    bar: ValveBar
    plan: SweepPlan

    def pulse_ticks(self, speed_mm_s: float) -> int:
        return max(1, round(self.plan.pulse_ms * speed_mm_s / 1000.0 / self.mm_per_tick))

    def pulse_mm(self, speed_mm_s: float) -> float:
        return self.pulse_ticks(speed_mm_s) * self.mm_per_tick

    def drop_x_mm(self, valve: np.ndarray) -> np.ndarray:
        """Where to drop each valve's fragment: the valve centre, moved inwards (by at
        most 0.3 pitch, still well inside its jet) where the camera's view ends."""
        m = self.model
        rows = np.array([0.0, (m.height_px - 1) / 2.0, m.height_px - 1.0])
        left = float(np.max(m.px_to_mm(np.zeros(3), rows)[0]))
        right = float(np.min(m.px_to_mm(np.full(3, m.width_px - 1.0), rows)[0]))
        centre = self.bar.valve_centre_mm(valve)
        inset = 10.0  # fragment radius and placement scatter
        shift = 0.3 * self.bar.pitch_mm
        return np.clip(np.clip(centre, left + inset, right - inset), centre - shift, centre + shift)

    def shots(self, valve: np.ndarray, a_mm: np.ndarray, speed_mm_s: float) -> ShotResults:
        lane_x = self.drop_x_mm(valve)
        pulse = self.pulse_ticks(speed_mm_s)
        plan = ShotPlan(valve, a_mm, lane_x, speed_mm_s, pulse, 0.8 * self.bar.pitch_mm)
        return run_shots(self.rig, self.model, self.mm_per_tick, plan)


def _coarse(ctx: _Context, speed: float) -> ShotResults:
    bar, p = ctx.bar, ctx.plan
    v = speed / 1000.0
    lo = bar.y_valve_mm - ctx.pulse_mm(speed) - bar.close_delay_ms * v - p.coarse_margin_mm
    hi = bar.y_valve_mm - bar.open_delay_ms * v + p.coarse_margin_mm
    grid = np.arange(lo, hi + 1e-9, p.coarse_step_mm)
    valves = np.arange(bar.n_valves)
    return ctx.shots(np.repeat(valves, len(grid)), np.tile(grid, bar.n_valves), speed)


def _fine(ctx: _Context, coarse: ShotResults, speed: float) -> ShotResults:
    p = ctx.plan
    offsets = np.arange(-p.fine_half_mm, p.fine_half_mm + 1e-9, p.fine_step_mm)
    offsets = np.tile(offsets, p.fine_repeats)
    valve_l, a_l = [], []
    for j in np.unique(coarse.valve[coarse.hit]):
        a_hit = coarse.a_mm[(coarse.valve == j) & coarse.hit]
        for edge in (a_hit.max() + p.coarse_step_mm / 2, a_hit.min() - p.coarse_step_mm / 2):
            valve_l.append(np.full(len(offsets), j))
            a_l.append(edge + offsets)
    if not valve_l:
        empty = np.zeros(0)
        return ShotResults(np.zeros(0, np.int64), empty, empty, np.zeros(0, bool), empty, speed, 0)
    return ctx.shots(np.concatenate(valve_l), np.concatenate(a_l), speed)


def _edges(shots: ShotResults, n_valves: int) -> list[tuple[int, float, float, bool]]:
    """(valve, edge mm, se mm, is_open) for each edge that could be fitted."""
    out = []
    for j in range(n_valves):
        sel = shots.valve == j
        if not np.any(shots.hit[sel]):
            continue
        a, b, hit = shots.a_mm[sel], shots.b_mm[sel], shots.hit[sel]
        middle = 0.5 * (a[hit].min() + a[hit].max())
        fall = fit_edge(a[a >= middle], hit[a >= middle], rising=False)
        rise = fit_edge(b[a <= middle], hit[a <= middle], rising=True)
        if fall is not None:
            out.append((j, fall[0], fall[1], True))
        if rise is not None:
            out.append((j, rise[0], rise[1], False))
    return out


def calibrate_valves(
    rig: TestFragmentRig,
    model: CameraModel,
    mm_per_tick: float,
    nominal: ValveBar,
    plan: SweepPlan | None = None,
    limits: ValveLimits | None = None,
) -> ValveTimingResult:
    """Run the sweep on ``rig`` with the calibrated camera and encoder scale."""
    model.prepare_lookup()  # hundreds of frames of fragment pixels go through it
    ctx = _Context(rig, model, mm_per_tick, nominal, plan or SweepPlan())
    lim = limits or ValveLimits()
    rows: list[tuple[int, float, float, bool, float]] = []
    swept: list[ShotResults] = []
    for speed in ctx.plan.speeds_mm_s:
        coarse = _coarse(ctx, speed)
        if not np.any(coarse.hit):
            raise CalibrationError(
                f"valve sweep: no test fragment was hit at {speed:g} mm/s in any lane: check the "
                "air supply and valve power, and that valves.y_valve_mm "
                f"({nominal.y_valve_mm:g} mm) is within {ctx.plan.coarse_margin_mm:g} mm of the "
                "real valve line (or widen coarse_margin_mm)"
            )
        swept.append(ShotResults.concat([coarse, _fine(ctx, coarse, speed)]))
        rows += [(*e, speed / 1000.0) for e in _edges(swept[-1], nominal.n_valves)]
    if not rows:
        raise CalibrationError(
            "valve sweep: hits were seen but no hit-rate edge could be fitted: raise "
            "coarse_margin_mm or fine_half_mm so the sweep spans both edges of the window"
        )
    arr = np.array(rows, dtype=object)
    fit = _Fit(
        *solve_line_and_delays(
            arr[:, 0].astype(np.int64),
            arr[:, 4].astype(float),
            arr[:, 1].astype(float),
            arr[:, 2].astype(float),
            arr[:, 3].astype(bool),
            nominal.n_valves,
        )
    )
    curves = tuple(_hit_curve(ctx, fit, s) for s in swept)
    return _check(ctx, lim, sum(len(s.hit) for s in swept), fit, curves)


@dataclasses.dataclass(frozen=True)
class _Fit:
    y: float
    y_se: float
    d_o: np.ndarray
    d_o_se: np.ndarray
    d_c: np.ndarray
    d_c_se: np.ndarray
    rms: float

    @property
    def measured(self) -> np.ndarray:
        return np.isfinite(self.d_o) & np.isfinite(self.d_c)

    def window(self, speed_mm_s: float, pulse_mm: float) -> tuple[np.ndarray, np.ndarray]:
        """(n,) command-on positions of the hit window's falling and rising edges;
        valves not measured get the median delays."""
        v = speed_mm_s / 1000.0
        any_ok = bool(np.any(self.measured))
        d_o = np.where(self.measured, self.d_o, np.nanmedian(self.d_o) if any_ok else 0.0)
        d_c = np.where(self.measured, self.d_c, np.nanmedian(self.d_c) if any_ok else 0.0)
        return self.y - d_o * v, self.y - d_c * v - pulse_mm


def _hit_curve(
    ctx: _Context, fit: _Fit, shots: ShotResults, bin_ms: float = 0.25
) -> dict[str, Any]:
    """Hit rate against command timing offset (ms) from each valve's best timing,
    pooled over the valves, for one speed."""
    v = shots.speed_mm_s / 1000.0
    fall, rise_on = fit.window(shots.speed_mm_s, ctx.pulse_mm(shots.speed_mm_s))
    offset_ms = (shots.a_mm - 0.5 * (fall + rise_on)[shots.valve]) / v
    keep = fit.measured[shots.valve]
    bins = np.rint(offset_ms[keep] / bin_ms).astype(np.int64)
    hits = shots.hit[keep]
    out_bins = [b for b in np.unique(bins) if np.sum(bins == b) >= 5]
    return {
        "speed_mm_s": shots.speed_mm_s,
        "offset_ms": [float(b * bin_ms) for b in out_bins],
        "hit_rate": [float(np.mean(hits[bins == b])) for b in out_bins],
        "shots": [int(np.sum(bins == b)) for b in out_bins],
    }


def _check(
    ctx: _Context, lim: ValveLimits, n_shots: int, fit: _Fit, curves: tuple[dict[str, Any], ...]
) -> ValveTimingResult:
    """Fire every valve at its best timing at the check speed; assemble the result."""
    speed = ctx.plan.check_speed_mm_s
    v = speed / 1000.0
    n = ctx.bar.n_valves
    measured = fit.measured
    fall, rise_on = fit.window(speed, ctx.pulse_mm(speed))
    best = 0.5 * (fall + rise_on)
    se_ms = np.hypot(fit.d_o_se, fit.d_c_se)
    margin = np.where(measured, 0.5 * (fall - rise_on) / v - 3.0 * se_ms, np.nan)
    bar = ctx.bar
    nominal_best = bar.y_valve_mm - 0.5 * (bar.open_delay_ms + bar.close_delay_ms) * v
    nominal_best -= 0.5 * ctx.pulse_mm(speed)
    offset_se = np.hypot(fit.y_se / v, 0.5 * se_ms)
    valves = np.repeat(np.arange(n), ctx.plan.check_shots)
    shots = ctx.shots(valves, best[valves], speed)
    made = np.bincount(shots.valve, minlength=n)
    hits = np.bincount(shots.valve, shots.hit.astype(float), minlength=n)
    rate = np.where(made > 0, hits / np.maximum(made, 1), np.nan)
    not_firing = tuple(int(j) for j in np.flatnonzero((made > 0) & (rate < lim.min_check_hit_rate)))
    not_seen = tuple(int(j) for j in np.flatnonzero(made == 0))
    working = measured & (rate >= lim.min_check_hit_rate)
    worst_se = float(np.nanmax(np.r_[fit.d_o_se[working], fit.d_c_se[working]], initial=0.0))
    checks = (
        Check("y_valve_se_mm", fit.y_se, lim.max_line_se_mm),
        Check("worst_delay_se_ms", worst_se, lim.max_delay_se_ms),
        Check("fit_rms_mm", fit.rms, lim.max_fit_rms_mm),
        Check("valves_measured", float(np.sum(working)), 1.0, at_least=True),
    )
    return ValveTimingResult(
        y_valve_mm=fit.y,
        y_valve_se_mm=fit.y_se,
        open_delay_ms=fit.d_o,
        open_delay_se_ms=fit.d_o_se,
        close_delay_ms=fit.d_c,
        close_delay_se_ms=fit.d_c_se,
        fit_rms_mm=fit.rms,
        best_on_mm=np.where(measured, best, np.nan),
        best_offset_ms=np.where(measured, (best - nominal_best) / v, np.nan),
        best_offset_se_ms=np.where(measured, offset_se, np.nan),
        margin_ms=margin,
        hit_curves=curves,
        check_hit_rate=rate,
        not_firing=not_firing,
        not_seen=not_seen,
        check_speed_mm_s=speed,
        check_pulse_ticks=ctx.pulse_ticks(speed),
        shots=n_shots + len(shots.hit),
        checks=checks,
    )
