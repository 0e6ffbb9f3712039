"""Where fragments end up: the air and flap runs the PLC executed, and the
fate of each fragment once it has crossed the valve line.

``Chutes`` keeps the completed runs (air at the belt in unwrapped ticks: the
valves' delays, the jet's length along the belt and a timing jitter per
opening applied to valve runs, the dead time to flap runs) and settles a
fragment from its footprint and the path its centre took across the line.
A fragment is settled when its trailing edge is ``decide_after_mm`` past the
line and, if the PLC reports its actuator state (``valves_open()`` /
``diverters_on()``), no valve over it and no flap is still on, so that a run
still open when it crossed is counted once it completes; after
``WAIT_CAP_MM`` more travel it is settled anyway.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from calibration.geometry import LineGeometry
from core.types import Pulses
from sim.plant.ejection import AirRuns, air_runs, coverage, crossing_ticks
from sim.plant.scenario import EjectionSection
from sim.plant.truth import FragmentRecord, RunLog, RunRecord

__all__ = ["Chutes", "Crossing"]

WAIT_CAP_MM = 5000.0  # longest wait for a run still open when a fragment crossed


@dataclasses.dataclass(frozen=True, slots=True)
class Crossing:
    """A fragment's footprint and its centre's path across the valve line.

    foot_x_mm, foot_y_mm: (P,) float64 footprint samples relative to the centre.
    path_tick:            (S,) float64 unwrapped ticks; path_x_mm, path_y_mm: (S,).
    """

    foot_x_mm: np.ndarray
    foot_y_mm: np.ndarray
    path_tick: np.ndarray
    path_x_mm: np.ndarray
    path_y_mm: np.ndarray


class Chutes:
    def __init__(
        self, geometry: LineGeometry, ejection: EjectionSection, rng: np.random.Generator
    ) -> None:
        self.geometry = geometry
        self.ej = ejection
        self._rng = rng  # valve jitter
        # tumbling is drawn per fragment (keyed by its id), not from the jitter
        # stream, so two schedules on the same plant seed see the same tumbles
        self._tumble_key = int(rng.integers(1 << 62))
        self.runs = RunLog()  # index = run id
        self._air = AirRuns.empty()
        self._ids = np.zeros(0, np.int64)  # run id of each row of _air
        self._forget_tick = -math.inf  # air that stopped before this reaches nothing
        bad = [v for v in ejection.dead_valves if not 0 <= v < geometry.valves.n_valves]
        if bad:
            raise ValueError(f"ejection.dead_valves {bad} outside the valve bar")

    def add(self, pulses: Pulses, now_tick: int, speed_mm_s: float) -> None:
        """Record runs that completed at ``now_tick`` (unwrapped)."""
        belt, v = self.geometry.belt, self.geometry.valves
        air = air_runs(
            pulses, v, now_tick, speed_mm_s, belt.mm_per_tick, tuple(self.ej.dead_valves)
        )
        ticks_per_ms = speed_mm_s * 1e-3 / belt.mm_per_tick
        dead = self.ej.diverter_dead_ms * ticks_per_ms
        flap = air.actuator >= 1  # a flap's own dead time replaces the valves' delays
        on = np.where(flap, air.on_tick - v.open_delay_ms * ticks_per_ms + dead, air.on_tick)
        off = np.where(flap, air.off_tick - v.close_delay_ms * ticks_per_ms + dead, air.off_tick)
        # a jet has a length along the belt too, and each opening its own timing jitter
        jet = np.where(flap, 0.0, self.ej.jet_length_mm / 2 / belt.mm_per_tick)
        jitter = self._rng.normal(0.0, self.ej.valve_jitter_ms, (2, len(air))) * ticks_per_ms
        jitter[:, flap] = 0.0
        on, off = on - jet + jitter[0], off + jet + jitter[1]
        off = np.maximum(off, on)
        air = dataclasses.replace(air, on_tick=on, off_tick=off)
        run_ids = np.arange(len(self.runs), len(self.runs) + len(pulses), dtype=np.int64)
        for i in range(len(pulses)):
            mine = air.run_row == i
            a_on = float(on[mine].min()) if mine.any() else float("nan")
            a_off = float(off[mine].max()) if mine.any() else float("nan")
            self.runs.append(
                RunRecord(
                    run_id=int(run_ids[i]),
                    actuator=int(pulses.actuator[i]),
                    first_valve=int(pulses.first_valve[i]),
                    last_valve=int(pulses.last_valve[i]),
                    air_on_tick=a_on,
                    air_off_tick=a_off,
                    air_ms=0.0 if not mine.any() else (a_off - a_on) / ticks_per_ms,
                    track_id=int(pulses.track_id[i]),
                )
            )
        self._air = self._air.concat(air)
        self._ids = np.concatenate([self._ids, run_ids[air.run_row]])

    def oldest_air_run(self) -> int:
        """Id of the oldest run whose air can still reach a fragment
        (``len(runs)`` if none)."""
        live = self._air.off_tick >= self._forget_tick
        return int(self._ids[live].min()) if live.any() else len(self.runs)

    def forget_before(self, tick: float) -> None:
        """Drop air that stopped before ``tick`` (nothing can still use it)."""
        self._forget_tick = max(self._forget_tick, tick)
        if len(self._air) > 256:
            keep = self._air.off_tick >= tick
            self._air, self._ids = self._air.rows(keep), self._ids[keep]

    def busy(self, plc: Any, x_lo_mm: float, x_hi_mm: float) -> bool:
        """True while the PLC still has a valve over ``x_lo..x_hi`` or any flap on."""
        valves_open = getattr(plc, "valves_open", None)
        if valves_open is not None:
            v = self.geometry.valves
            reach = v.blast_width_mm / 2
            a, b = v.valve_at_mm(x_lo_mm - reach), v.valve_at_mm(x_hi_mm + reach)
            if np.any(np.asarray(valves_open())[int(a) : int(b) + 1]):
                return True
        flaps_on = getattr(plc, "diverters_on", None)
        return bool(flaps_on is not None and np.any(np.asarray(flaps_on())))

    def settle(self, rec: FragmentRecord, c: Crossing, now_s: float) -> None:
        """Decide ``rec``'s bin from the runs known now."""
        y_valve = self.geometry.valves.y_valve_mm
        t_pts = crossing_ticks(c.foot_y_mm, c.path_tick, c.path_y_mm, y_valve)
        x_pts = np.interp(t_pts, c.path_tick, c.path_x_mm) + c.foot_x_mm
        t_mid = float(np.median(t_pts))
        rec.cross_lead_tick, rec.cross_trail_tick = float(t_pts.min()), float(t_pts.max())
        rec.x_cross_mm = float(np.interp(t_mid, c.path_tick, c.path_x_mm))
        rec.bin, rec.decided_t_s = "pass", now_s
        bar = self._air.actuator == 0
        cov = coverage(
            x_pts, c.foot_y_mm, t_pts, self._air.rows(bar), self.ej.grid_mm, self._ids[bar]
        )
        rec.width_share, rec.length_share = cov.width_share, cov.length_share
        rec.hit_share = cov.hit_share
        rec.hit_u_centre = None if math.isnan(cov.hit_u_centre) else cov.hit_u_centre
        rec.run_hits = {
            int(k): float(s) for k, s in zip(cov.run_keys, cov.run_hit_share, strict=True)
        }
        area_mm2 = c.foot_x_mm.size * self.ej.grid_mm**2
        rec.run_match = {k: self._match(k, s, area_mm2) for k, s in rec.run_hits.items()}
        if cov.ejected(self.ej.cover_width_frac, self.ej.cover_length_frac):
            rec.tumbled = self._tumbles(rec.fragment_id)
            rec.bin = "pass" if rec.tumbled else "eject"
        else:
            self._divert(rec, t_mid)

    def _tumbles(self, fragment_id: int) -> bool:
        """Whether a covered fragment falls back anyway: a fixed draw per fragment."""
        draw = np.random.default_rng((self._tumble_key, fragment_id)).random()
        return bool(draw < self.ej.tumble_share)

    def _match(self, run_id: int, share: float, area_mm2: float) -> float:
        """Overlap / union of a footprint and run ``run_id``'s air rectangle."""
        run, v = self.runs[run_id], self.geometry.valves
        width = float(v.valve_centre_mm(run.last_valve) - v.valve_centre_mm(run.first_valve))
        run_mm2 = (width + v.blast_width_mm) * (
            (run.air_off_tick - run.air_on_tick) * self.geometry.belt.mm_per_tick
        )
        inter = share * area_mm2
        return inter / max(area_mm2 + run_mm2 - inter, 1e-9)

    def _divert(self, rec: FragmentRecord, t_centre: float) -> None:
        """A flap that is over when the centre crosses takes the fragment."""
        a = self._air
        on = np.nonzero((a.actuator >= 1) & (a.on_tick <= t_centre) & (a.off_tick >= t_centre))[0]
        if on.size:
            rec.bin = f"divert{int(a.actuator[on[0]])}"
            rec.run_hits.update({int(self._ids[i]): 1.0 for i in on})
            rec.run_match.update({int(self._ids[i]): 1.0 for i in on})
