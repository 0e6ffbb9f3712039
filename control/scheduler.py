"""Actuator scheduling: the public shell of ``kernels_schedule._schedule``.

Keeps the committed future on/off intervals of every valve and diverter flap
(so overlapping pulses merge and minimum on/off times hold across frames) and
turns the tracks whose deadline is near into ``Pulses`` (uint32 ticks).
"""

from __future__ import annotations

import numpy as np

from calibration.geometry import LineGeometry
from control import kernels_schedule as ks
from control import params as ix
from control.fastbatch import trusted_batch
from control.params import MODE_ADAPTIVE, MODE_BASELINE, ControlParams
from control.recipe import Recipe
from control.tracker import TrackTable
from core.ticks import TICK_MODULUS
from core.types import Pulses

__all__ = ["COUNTER_NAMES", "Scheduler", "schedule_vector", "valve_vectors"]

COUNTER_NAMES = (
    "objects_seen",
    "objects_targeted",
    "pulses_scheduled",
    "deadline_misses",
    "co_ejections_accepted",
    "co_ejections_avoided",
    "diverter_conflicts",
    "valve_open_ticks",
    "targets_off_bar",
    "targets_aimed",
)
_INTERVALS_PER_VALVE = 32
_PREFER = {
    "recovery": ix.PREFER_RECOVERY,
    "balanced": ix.PREFER_BALANCED,
    "purity": ix.PREFER_PURITY,
}
_EMPTY_PULSES = Pulses.empty()
_PULSE_FIELDS = tuple(Pulses._SCHEMA)  # the order ``_pulse_columns`` returns


def schedule_vector(
    geometry: LineGeometry,
    params: ControlParams,
    recipe: Recipe,
    ticks_per_ms: float,
    frame_ticks: float,
    deadline_margin_ms: float,
) -> np.ndarray:
    """The kernel parameter vector; delays converted at ``ticks_per_ms``."""
    v = geometry.valves
    open_ms, close_ms = _delays_ms(geometry)
    s = np.zeros(ix.N_SCHEDULE)
    s[ix.S_K_SIGMA] = params.k_sigma
    s[ix.S_SIGMA_X_K] = params.k_sigma_x
    # per-valve delays: the bar's scalars are the longest (decision timing, bounds)
    s[ix.S_OPEN_TICKS] = float(open_ms.max()) * ticks_per_ms
    s[ix.S_CLOSE_TICKS] = float(close_ms.max()) * ticks_per_ms
    s[ix.S_MIN_ON_TICKS] = v.min_on_ms * ticks_per_ms
    s[ix.S_MIN_OFF_TICKS] = v.min_off_ms * ticks_per_ms
    s[ix.S_LEAD_TICKS] = (float(open_ms.max()) + deadline_margin_ms) * ticks_per_ms
    s[ix.S_GUARD_TICKS] = params.decide_frames_ahead * frame_ticks
    s[ix.S_PITCH_MM] = v.pitch_mm
    s[ix.S_X_FIRST_MM] = v.x_first_mm
    s[ix.S_BLAST_MM] = v.blast_width_mm
    s[ix.S_N_VALVES] = v.n_valves
    s[ix.S_COVER_X] = params.cover_x_share
    s[ix.S_COVER_U] = params.cover_u_share
    s[ix.S_TOLERANCE] = recipe.co_ejection_tolerance
    s[ix.S_BATTERY] = recipe.battery_id
    s[ix.S_MODE] = MODE_BASELINE if params.mode == "baseline" else MODE_ADAPTIVE
    s[ix.S_BASE_STEP_MM] = params.baseline_step_mm
    s[ix.S_BASE_PAD_MM] = params.baseline_pad_mm
    s[ix.S_BASE_MARGIN_MM] = params.baseline_margin_mm
    s[ix.S_DIV_DEAD_TICKS] = params.diverter_dead_ms * ticks_per_ms
    s[ix.S_DIV_DWELL_TICKS] = params.diverter_dwell_ms * ticks_per_ms
    s[ix.S_MM_PER_TICK] = geometry.belt.mm_per_tick
    s[ix.S_BELT_WIDTH_MM] = geometry.belt.width_mm
    s[ix.S_WINDOW_RULE] = ix.RULE_MAX if params.window_rule == "max" else ix.RULE_SUM
    s[ix.S_FLOOR_U_MM] = params.tolerance_floor_mm
    s[ix.S_FLOOR_X_MM] = params.tolerance_floor_x_mm
    s[ix.S_LONG_MM] = params.long_full_width_mm
    s[ix.S_PREFER] = _PREFER[recipe.prefer]
    s[ix.S_AIM_COVER] = params.aim_min_cover
    s[ix.S_AIM_RULE] = ix.AIM_RULE_SEARCH if params.aim_rule == "search" else ix.AIM_RULE_CUT
    s[ix.S_LIFT] = params.lift_share
    s[ix.S_AIM_MARGIN] = params.aim_margin
    s[ix.S_JET_MM] = params.jet_length_mm
    s[ix.S_AIM_FALLBACK] = params.aim_fallback_margin
    s[ix.S_AIM_LAST] = ix.AIM_LAST_LEAST if params.aim_last_resort == "least" else ix.AIM_LAST_COVER
    s[ix.S_AIM_LAST_K] = params.aim_last_k_sigma
    return s


def _delays_ms(geometry: LineGeometry) -> tuple[np.ndarray, np.ndarray]:
    """(V,) float64 open and close delay of every valve, ms (calibrated or scalar)."""
    valves = np.arange(geometry.valves.n_valves)
    return geometry.valves.open_delay_of(valves), geometry.valves.close_delay_of(valves)


def valve_vectors(
    geometry: LineGeometry, ticks_per_ms: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per valve: open and close delay in ticks (float64) at ``ticks_per_ms`` and
    enabled (int64 0/1; 0 for ``ValveBar.disabled_valves``), each (V,)."""
    open_ms, close_ms = _delays_ms(geometry)
    enabled = np.ones(geometry.valves.n_valves, np.int64)
    enabled[list(geometry.valves.disabled_valves)] = 0
    return open_ms * ticks_per_ms, close_ms * ticks_per_ms, enabled


class Scheduler:
    """Per-valve and per-flap committed intervals plus the decision counters."""

    def __init__(self, geometry: LineGeometry, n_diverters: int) -> None:
        self.geometry = geometry
        m = _INTERVALS_PER_VALVE
        self.ivs = np.zeros((geometry.valves.n_valves, m, 2), np.int64)
        self.cnt = np.zeros(geometry.valves.n_valves, np.int64)
        self.div_ivs = np.zeros((max(n_diverters, 1), m, 2), np.int64)
        self.div_cnt = np.zeros(max(n_diverters, 1), np.int64)
        self.counters = np.zeros(ks.N_COUNTERS, np.int64)
        self._act_for: Recipe | None = None
        self._act = np.zeros(0, np.int64)
        self._sp_for: np.ndarray | None = None
        self._sp_t: tuple[float, ...] = ()

    def rebind(self, geometry: LineGeometry) -> None:
        """A new geometry (calibration): the committed intervals of valves that
        still exist are kept (pulses already sent stay in force), counters too."""
        nv_old, nv = self.ivs.shape[0], geometry.valves.n_valves
        if nv != nv_old:
            keep = min(nv, nv_old)
            ivs = np.zeros((nv, *self.ivs.shape[1:]), np.int64)
            cnt = np.zeros(nv, np.int64)
            ivs[:keep], cnt[:keep] = self.ivs[:keep], self.cnt[:keep]
            self.ivs, self.cnt = ivs, cnt
        self.geometry = geometry

    def forget_commitments(self) -> None:
        """Drop every committed valve and flap interval (a reset encoder count:
        they were ticks of the old count, and a restarted PLC lost them)."""
        self.cnt[:] = 0
        self.div_cnt[:] = 0

    def ensure_diverters(self, n_diverters: int) -> None:
        """Grow the flap table when a new recipe names more diverters."""
        have = self.div_ivs.shape[0]
        if n_diverters > have:
            ivs = np.zeros((n_diverters, _INTERVALS_PER_VALVE, 2), np.int64)
            cnt = np.zeros(n_diverters, np.int64)
            ivs[:have] = self.div_ivs
            cnt[:have] = self.div_cnt
            self.div_ivs, self.div_cnt = ivs, cnt

    def _actuators(self, recipe: Recipe) -> np.ndarray:
        if self._act_for is not recipe:
            self._act = recipe.fraction_actuator.astype(np.int64)
            self._act_for = recipe
        return self._act

    def _sp_tuple(self, sp: np.ndarray) -> tuple[float, ...]:
        if self._sp_for is not sp:
            self._sp_t = tuple(sp.tolist())
            self._sp_for = sp
        return self._sp_t

    def schedule(
        self,
        table: TrackTable,
        now_tick: int,
        recipe: Recipe,
        sp: np.ndarray,
        valves: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> Pulses:
        """Decide due tracks in ``table`` and return their new pulses (uint32 ticks).

        sp: ``schedule_vector``; valves: ``valve_vectors`` at the same speed."""
        n = table.n
        if n == 0:
            return _EMPTY_PULSES
        rows, n_rows = ks._schedule(
            n, table.TID, table.CONF, table.DEC, table.FRAC, table.TCLS, table.CLS,
            table.NVIEW, table.CROSS, table.XC, table.H, int(now_tick),
            self._actuators(recipe), recipe.priority, self._sp_tuple(sp),
            self.ivs, self.cnt, self.div_ivs, self.div_cnt, self.counters, *valves,
        )  # fmt: skip
        if n_rows == 0:
            return _EMPTY_PULSES
        cols = ks._pulse_columns(rows, n_rows, TICK_MODULUS)
        return trusted_batch(Pulses, **dict(zip(_PULSE_FIELDS, cols, strict=True)))

    def stats(self) -> dict[str, int]:
        return {name: int(v) for name, v in zip(COUNTER_NAMES, self.counters, strict=True)}


def frame_ticks_nominal(geometry: LineGeometry) -> float:
    """Encoder ticks per camera frame at the nominal belt speed."""
    return geometry.belt.ticks_per_s() / geometry.camera.fps
