"""``Controller``: one call per frame from detections to the pulses to send.

Pipeline per ``update`` (all in Numba kernels): predict every track to the
frame's encoder count, associate detections (spatial hash, squared
Mahalanobis gate, exact assignment per independent group), Kalman update,
births and deaths, class evidence, crossing prediction with its uncertainty,
then decide the tracks whose command deadline is near and schedule their
valves or diverter flaps (merged per valve, minimum on/off times, co-ejection
weighed by recipe priority).

Ticks: ``Detections.tick`` and ``now_tick_u32`` are the PLC's uint32 counts;
inside, counts are unwrapped to int64 (``core.ticks.TickUnwrapper``).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from typing import Literal

import numpy as np

from calibration.geometry import LineGeometry
from control.evidence import EvidenceHook, merged_evidence, pools
from control.params import ControlParams
from control.recipe import Recipe
from control.scheduler import (
    COUNTER_NAMES,
    Scheduler,
    frame_ticks_nominal,
    schedule_vector,
    valve_vectors,
)
from control.tracker import Tracker
from core.ticks import TickUnwrapper, tick_diff
from core.types import Detections, Pulses, Tracks

__all__ = ["Controller"]

_SPEED_EMA = 0.2
# ``Controller.set_aim_rule``: the rules a bench may compare (the last three are
# the search with parts turned off, for before/after runs)
AIM_RULES = ("search", "cut", "search-least", "search-cover", "search-strict")
_SPEED_REFRESH = 0.002  # rebuild the scheduler vector when speed moves by 0.2 %
# a belt may be jogged backwards, but not faster than this many nominal frame
# travels per frame: a larger backward step is a reset encoder count
_MAX_REVERSE_FRAMES = 2.0


class Controller:
    """Tracks fragments and schedules their actuators (see module docstring).

    geometry:           nominal or calibrated line geometry.
    recipe:             bound to ``class_names`` (``control.recipe.load_recipe``).
    class_names:        the model's class list, in its index order.
    deadline_margin_ms: safety margin before a pulse's on tick minus the valve
                        open delay by which the PLC must have it.
    params:             tracker and scheduler tuning (``ControlParams``).
    """

    def __init__(
        self,
        geometry: LineGeometry,
        recipe: Recipe,
        class_names: Sequence[str],
        deadline_margin_ms: float = 5.0,
        params: ControlParams | None = None,
    ) -> None:
        if deadline_margin_ms < 0:
            raise ValueError(f"deadline_margin_ms must be >= 0, got {deadline_margin_ms}")
        self.geometry = geometry
        self.class_names = tuple(class_names)
        self.params = params or ControlParams()
        self._fallback_margin = self.params.aim_fallback_margin  # for set_aim_rule
        self._last_resort = self.params.aim_last_resort  # ditto
        self.deadline_margin_ms = float(deadline_margin_ms)
        self._check_recipe(recipe)
        self._recipe = recipe
        self._pending: Recipe | None = None
        self._pending_geometry: LineGeometry | None = None
        self._lock = threading.Lock()
        self._tracker = Tracker(geometry, len(self.class_names), self.params)
        self._sched = Scheduler(geometry, recipe.n_diverters)
        self._unwrap = TickUnwrapper()
        self._frame_ticks = frame_ticks_nominal(geometry)
        self._speed_override_mm_s: float | None = None
        self._last_frame: tuple[int, int] | None = None
        self._last_seen: tuple[int, int] | None = None  # (frame id, uint32 tick)
        self._count_space_changed = False
        self.encoder_resets = 0
        self._sp_key: tuple[float, int] | None = None
        self._sp = np.zeros(0)
        self._valves: tuple[np.ndarray, np.ndarray, np.ndarray] = valve_vectors(geometry, 1.0)
        self._order = np.zeros(0, np.int64)
        self._evidence_hook: EvidenceHook | None = None
        self._bind_recipe(recipe)
        self._publish_stats()

    # -- recipe -------------------------------------------------------------
    def _check_recipe(self, recipe: Recipe) -> None:
        if recipe.class_names != self.class_names:
            raise ValueError(
                f"recipe {recipe.name!r} is bound to classes {list(recipe.class_names)}, "
                f"the model has {list(self.class_names)}"
            )

    def _bind_recipe(self, recipe: Recipe) -> None:
        self._recipe = recipe
        self._order = np.argsort(-recipe.priority, kind="stable").astype(np.int64)
        self._cls_frac = recipe.class_fraction.astype(np.int64)
        self._threshold = np.ascontiguousarray(recipe.threshold, np.float64)
        self._pool = pools(recipe.pool, len(recipe.class_names))
        self._tracker.pool = self._pool
        self._sched.ensure_diverters(recipe.n_diverters)
        self._tracker.invalidate_outlook()
        self._sp_key = None

    def set_recipe(self, recipe: Recipe) -> None:
        """Switch recipes while running (thread-safe); applies at the next ``update``.

        Tracks already decided keep their decision; the others are judged by
        the new recipe from then on.
        """
        self._check_recipe(recipe)
        with self._lock:
            self._pending = recipe

    def apply_geometry(self, geometry: LineGeometry) -> None:
        """Use a new (calibrated) geometry from the next ``update`` on (thread-safe).

        Nothing is tracked afresh: live tracks (belt mm), their class evidence
        and decisions, the committed valve intervals of pulses already sent and
        every counter are kept, so a fragment decided before the swap is never
        scheduled again. Rebuilt from ``geometry``: the camera's view (births,
        deaths, clipping), belt travel per tick (continued from the travel at
        the swap, so belt positions stay put), valve bar, per-valve delays and
        disabled valves (never commanded by pulses scheduled after the swap),
        and the scheduler vector. A later call before the next update wins.
        """
        if not isinstance(geometry, LineGeometry):
            raise TypeError(f"apply_geometry needs a LineGeometry, got {type(geometry).__name__}")
        with self._lock:
            self._pending_geometry = geometry

    def _bind_geometry(self, geometry: LineGeometry) -> None:
        self.geometry = geometry
        self._tracker.rebind(geometry)
        self._sched.rebind(geometry)
        self._sp_key = None

    def set_evidence_hook(self, hook: EvidenceHook | None) -> None:
        """A second sensor's evidence (``control.evidence.EvidenceHook``), applied
        after the tracker's step in every ``update``; None removes it."""
        with self._lock:
            self._evidence_hook = hook

    @property
    def recipe(self) -> Recipe:
        return self._recipe

    def set_aim_rule(self, aim_rule: str) -> None:
        """Aim around neighbours by ``"search"`` or ``"cut"`` (``ControlParams.aim_rule``)
        from the next ``update`` on (the search with the params' own last
        resort); ``"search-least"`` / ``"search-cover"``: the search with the
        last resort ``aim_last_resort = "least"`` (issue 15: the window putting
        the least air over the neighbours it lifts) / ``"cover"`` (the one
        lifting the fewest, then covering the most of the target);
        ``"search-strict"``: the cover rule without its thinner fallback
        margin either (``aim_fallback_margin = aim_margin``, the rule before
        both). For side-by-side comparisons."""
        if aim_rule not in AIM_RULES:
            raise ValueError(f"aim_rule must be one of {', '.join(AIM_RULES)}, not {aim_rule!r}")
        with self._lock:
            p = self.params
            fallback = min(self._fallback_margin, p.aim_margin)
            last = self._last_resort
            if aim_rule == "search-strict":
                p = dataclasses.replace(
                    p, aim_rule="search", aim_fallback_margin=p.aim_margin, aim_last_resort="cover"
                )
            elif aim_rule in ("search-cover", "search-least"):
                last_resort: Literal["least", "cover"] = (
                    "least" if aim_rule == "search-least" else "cover"
                )
                p = dataclasses.replace(
                    p, aim_rule="search", aim_fallback_margin=fallback, aim_last_resort=last_resort
                )
            else:
                rule: Literal["cut", "search"] = "cut" if aim_rule == "cut" else "search"
                p = dataclasses.replace(
                    p, aim_rule=rule, aim_fallback_margin=fallback, aim_last_resort=last
                )
            self.params = p
            self._sp_key = None

    def set_belt_speed(self, speed_mm_s: float | None) -> None:
        """Belt speed measured by the PLC (mm/s) for delay conversion; ``None``
        estimates it from encoder counts between frames (the default)."""
        if speed_mm_s is not None and not speed_mm_s > 0:
            raise ValueError(f"belt speed must be positive, got {speed_mm_s}")
        with self._lock:
            self._speed_override_mm_s = speed_mm_s

    # -- per frame ----------------------------------------------------------
    def _encoder_reset(self, frame_id: int, tick_u32: int) -> bool:
        """Did the encoder count jump back further than the belt can run?

        That happens when the PLC restarts or its counter is reset: every
        track's belt position and every committed valve interval refers to a
        count that no longer means the same place. A smaller backward step is
        a belt jogged backwards, which tracking in belt coordinates follows.
        """
        last, self._last_seen = self._last_seen, (frame_id, tick_u32)
        if last is None:
            return False
        frames = max(frame_id - last[0], 1)
        limit = _MAX_REVERSE_FRAMES * frames * frame_ticks_nominal(self.geometry)
        return tick_diff(tick_u32, last[1]) < -limit

    def new_count_space(self) -> None:
        """The encoder counts from here on belong to a new count space (the PLC
        restarted: its boot id changed). Said by whoever knows, before the next
        frame's update; unlike the backward-jump check it does not depend on
        how far the new counter has run by the time frames flow again."""
        with self._lock:
            self._count_space_changed = True

    def _restart_time_base(self) -> None:
        """Forget the old count space: tracks (undecided confirmed ones count as
        lost), committed valve and flap intervals, tick unwrapping and speed."""
        self._tracker.reset()
        self._sched.forget_commitments()
        self._unwrap = TickUnwrapper()
        self._last_frame = None
        self.encoder_resets += 1

    def _measure_speed(self, frame_id: int, t_tick: int) -> None:
        last = self._last_frame
        self._last_frame = (frame_id, t_tick)
        if last is None or frame_id <= last[0] or t_tick <= last[1]:
            return
        per_frame = (t_tick - last[1]) / (frame_id - last[0])
        self._frame_ticks += _SPEED_EMA * (per_frame - self._frame_ticks)

    def ticks_per_ms(self) -> float:
        """Encoder ticks per millisecond used to convert valve delays."""
        override = self._speed_override_mm_s
        if override is not None:
            return self.geometry.belt.ticks_per_s(override) * 1e-3
        return self._frame_ticks * self.geometry.camera.fps * 1e-3

    def _schedule_vector(self) -> np.ndarray:
        tpm = self.ticks_per_ms()
        key = self._sp_key
        if key is None or abs(tpm - key[0]) > _SPEED_REFRESH * key[0]:
            self._sp = schedule_vector(
                self.geometry,
                self.params,
                self._recipe,
                tpm,
                tpm * 1e3 / self.geometry.camera.fps,
                self.deadline_margin_ms,
            )
            self._valves = valve_vectors(self.geometry, tpm)
            self._sp_key = (tpm, 0)
        return self._sp

    def update(self, dets: Detections, now_tick_u32: int | None = None) -> tuple[Tracks, Pulses]:
        """Take one frame's detections; return the live tracks and the NEW pulses.

        now_tick_u32: the PLC encoder count estimated at this moment (default:
        the frame's tick). Pulses that could no longer reach the PLC before
        their on tick minus open delay and margin are dropped and counted.
        """
        with self._lock:
            pending, self._pending = self._pending, None
            geometry, self._pending_geometry = self._pending_geometry, None
            changed, self._count_space_changed = self._count_space_changed, False
        if geometry is not None:
            self._bind_geometry(geometry)
        if pending is not None:
            self._bind_recipe(pending)
        if changed or self._encoder_reset(int(dets.frame_id), int(dets.tick)):
            self._restart_time_base()
            self._last_seen = (int(dets.frame_id), int(dets.tick))
        t_tick = self._unwrap(int(dets.tick))
        now = t_tick if now_tick_u32 is None else t_tick + tick_diff(int(now_tick_u32), dets.tick)
        self._measure_speed(int(dets.frame_id), t_tick)
        dets = merged_evidence(dets, self._recipe.prefer)  # probable merges, as preferred
        hook = self._evidence_hook  # the tracks' sizes have one reader: a fusion hook
        self._tracker.step(
            dets, t_tick, self._cls_frac, self._threshold, self._order, hook is not None
        )
        if hook is not None:
            travel = self._tracker.travel_mm(t_tick)
            hook.apply(self._tracker.table, int(dets.tick), travel, self._cls_frac,
                       self._threshold, self._order, self._pool)  # fmt: skip
        sp = self._schedule_vector()
        pulses = self._sched.schedule(self._tracker.table, now, self._recipe, sp, self._valves)
        tracks = self._tracker.tracks(int(dets.tick))
        self._publish_stats()
        return tracks, pulses

    # -- counters -----------------------------------------------------------
    def _publish_stats(self) -> None:
        # one small fresh array per frame; the dict is built when someone asks
        tc, sc = self._tracker.counters, self._sched.counters
        counts = np.empty(len(tc) + len(sc) + 1, np.int64)
        counts[: len(tc) - 1] = tc[1:]
        counts[len(tc) - 1] = self._tracker.table.n
        counts[len(tc) : -1] = sc
        counts[-1] = self.encoder_resets
        self._counts = counts

    def stats(self) -> dict[str, int]:
        """Counters since start: tracks_born, tracks_confirmed, tracks_lost,
        tracks_live, objects_seen (confirmed tracks decided), objects_targeted,
        pulses_scheduled, deadline_misses, co_ejections_accepted/avoided,
        diverter_conflicts, valve_open_ticks, targets_off_bar, targets_aimed (air cut
        clear of a neighbour: recipe ``prefer``), encoder_resets
        (backward jumps of the encoder count: all tracks and committed valve
        intervals were dropped). Safe to call from another thread (returns the
        snapshot of the last update)."""
        counts = self._counts
        names = (
            "tracks_born", "tracks_confirmed", "tracks_lost", "tracks_live", *COUNTER_NAMES,
            "encoder_resets",
        )  # fmt: skip
        return {name: int(v) for name, v in zip(names, counts, strict=True)}
