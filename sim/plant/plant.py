"""``VirtualPlant``: belt, feeder, fragments, camera and ejection, in stepped time.

The plant advances only when called: ``step()`` runs one camera frame period
of sim time and renders (a free-running camera); ``run_to_tick()`` runs the
belt to an exact encoder count and ``render()`` exposes a frame there (a
camera the PLC triggers); ``run_for()`` runs the belt with no exposure. Physics
goes in sub-steps of at most ``_SUBSTEP_MM`` of belt travel. At
every sub-step it tells the PLC the true encoder count and collects the valve
runs that completed; a fragment's fate is decided from the air that actually
covered it once it is ``decide_after_mm`` past the valve line.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from calibration.geometry import LineGeometry
from core.classes import DEFAULT_CLASSES
from core.frame import Frame
from core.types import Pulses
from sim.plant.camera import CameraRenderer, blend
from sim.plant.chutes import WAIT_CAP_MM, Chutes, Crossing
from sim.plant.feed import Drop, Feeder
from sim.plant.motion import Bodies
from sim.plant.scenario import Scenario
from sim.plant.score import Score, Scorer, fragment_outcomes
from sim.plant.sprites import LocalArt, Sprite, make_art, render_sprite
from sim.plant.truth import FragmentRecord, FrameTruth, RunLog, centre_crossing

__all__ = ["IdlePlc", "PlcLike", "VirtualPlant"]

_SUBSTEP_MM = 2.5
_RESPRITE_RAD = math.radians(5.0)
_NEAR_VALVE_MM = 250.0


def _travel_of_count(count: int, mm_per_tick: float) -> float:
    """The smallest travel (mm) with ``floor(travel / mm_per_tick) == count``
    (``count * mm_per_tick`` may round to just below the count)."""
    x = count * mm_per_tick
    while math.floor(x / mm_per_tick) < count:
        x = math.nextafter(x, math.inf)
    while x > 0 and math.floor(math.nextafter(x, -math.inf) / mm_per_tick) >= count:
        x = math.nextafter(x, -math.inf)
    return x


class PlcLike(Protocol):
    def advance(self, tick_u32: int, speed_mm_s: float, now_s: float) -> Pulses:
        """Tell the PLC the encoder count; return the runs completed since the last call."""
        ...


class IdlePlc:
    """A PLC with no valve commands: the belt runs, nothing is ever fired."""

    def advance(self, tick_u32: int, speed_mm_s: float, now_s: float) -> Pulses:
        return Pulses.empty()


@dataclasses.dataclass(slots=True)
class _Live:
    """A fragment on the belt: its drawing and its path across the valve line
    (its motion state is the same row of ``VirtualPlant._bodies``)."""

    rec: FragmentRecord
    art: LocalArt
    sprite: Sprite
    path_t: list[float] = dataclasses.field(default_factory=list)
    path_x: list[float] = dataclasses.field(default_factory=list)
    path_y: list[float] = dataclasses.field(default_factory=list)


class VirtualPlant:
    """The virtual sorting line. ``seed`` overrides ``scenario.seed``.

    ``keep_fragments`` bounds memory on long runs: beyond it (+10 %) the oldest
    settled fragments are dropped from ``fragments`` after being tallied for
    every recipe scored so far (about 1.6 h of the default feed at 200 000).
    """

    def __init__(
        self,
        geometry: LineGeometry,
        scenario: Scenario,
        plc: PlcLike,
        seed: int | None = None,
        *,
        keep_fragments: int = 200_000,
        feed_gate: Callable[[], bool] | None = None,
    ) -> None:
        cam = geometry.camera
        if abs(cam.mm_per_px_x - cam.mm_per_px_y) > 0.02 * cam.mm_per_px_x:
            raise ValueError(
                f"the virtual camera needs square pixels; got {cam.mm_per_px_x:.4f} x "
                f"{cam.mm_per_px_y:.4f} mm/px"
            )
        self.geometry = geometry
        self.scenario = scenario
        self.plc = plc
        self.feed_gate = feed_gate
        self.seed = scenario.seed if seed is None else seed
        root = np.random.SeedSequence(self.seed)
        rng_feed, rng_art, rng_eject, rng_motion, rng_belt = (
            np.random.default_rng(s) for s in root.spawn(5)
        )
        self._rng_art, self._rng_motion = rng_art, rng_motion
        self._rng_speed_phase = rng_motion.uniform(0, 2 * np.pi, 2)
        self.mm_per_px = cam.mm_per_px_x
        self.nominal_speed_mm_s = scenario.motion.speed_mm_s or geometry.belt.speed_mm_s
        exposure_mm = self.nominal_speed_mm_s * scenario.appearance.exposure_us * 1e-6
        self.blur_px = round(exposure_mm / self.mm_per_px)
        self._feeder = Feeder(geometry, scenario, rng_feed)
        self._camera = CameraRenderer(cam, scenario.appearance, self.blur_px, rng_belt)
        self._live: list[_Live] = []
        self._bodies = Bodies()
        self._records: list[FragmentRecord] = []
        self._next_id = 0
        self._chutes = Chutes(geometry, scenario.ejection, rng_eject)
        self._scorer = Scorer(final_after_mm=WAIT_CAP_MM + 2000.0)
        if keep_fragments < 1:
            raise ValueError(f"keep_fragments {keep_fragments} must be >= 1")
        self._keep_fragments = keep_fragments
        self._now_s = 0.0
        self._travel_mm = 0.0
        self._speed_mm_s = self.nominal_speed_mm_s
        self._frame_id = -1
        self._truth: FrameTruth | None = None
        # sensors beside the camera (e.g. ``sim.plant.induction.InductionSensor``):
        # each gets ``after_move(self)`` once per physics sub-step
        self.sensors: list[Any] = []

    # ---- public state -------------------------------------------------------------------
    @property
    def now_s(self) -> float:
        return self._now_s

    @property
    def travel_mm(self) -> float:
        return self._travel_mm

    @property
    def frame_id(self) -> int:
        """Id of the last frame rendered (-1 before the first); the next is this + 1."""
        return self._frame_id

    @property
    def tick_unwrapped(self) -> int:
        """The encoder count before the 32-bit wrap (starts at ``motion.encoder_start``)."""
        start = self.scenario.motion.encoder_start
        return start + math.floor(self._travel_mm / self.geometry.belt.mm_per_tick)

    def _ticks_exact(self) -> float:
        """Unwrapped encoder position with the fraction of a tick (for crossings)."""
        start = self.scenario.motion.encoder_start
        return start + self._travel_mm / self.geometry.belt.mm_per_tick

    @property
    def tick(self) -> int:
        """The encoder count, uint32: (start + floor(travel / mm_per_tick)) mod 2**32."""
        return self.tick_unwrapped % (1 << 32)

    @property
    def speed_mm_s(self) -> float:
        return self._speed_mm_s

    @property
    def fragments(self) -> list[FragmentRecord]:
        """Ground truth of every fragment fed so far (live ones still changing;
        the oldest dropped beyond ``keep_fragments``)."""
        return self._records

    @property
    def keep_fragments(self) -> int:
        """Fragments whose ground truth is kept (the oldest settled ones dropped beyond)."""
        return self._keep_fragments

    @keep_fragments.setter
    def keep_fragments(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"keep_fragments {n} must be >= 1")
        self._keep_fragments = int(n)

    @property
    def runs(self) -> RunLog:
        """Completed actuator runs by run id, in completion order (the oldest
        dropped with the fragments they hit, beyond ``keep_fragments``)."""
        return self._chutes.runs

    # ---- stepping -----------------------------------------------------------------------
    def step(self) -> Frame:
        """Advance one frame period of sim time and render the frame at exposure."""
        self.run_for(self.geometry.camera.frame_period_s)
        return self.render()

    def run_for(self, dt_s: float) -> None:
        """Advance ``dt_s`` of sim time (s) without exposing a frame."""
        if dt_s <= 0:
            return
        n_sub = max(1, math.ceil(self._speed_mm_s * dt_s / _SUBSTEP_MM))
        dt = dt_s / n_sub
        for _ in range(n_sub):
            self._substep(dt)

    def run_to_tick(self, tick_unwrapped: int) -> None:
        """Advance the belt until the encoder reads exactly ``tick_unwrapped``
        (unwrapped count, >= ``tick_unwrapped`` now) without exposing a frame.

        The last sub-step lands on the first travel (mm) whose count is that
        tick, and the PLC is told that count; sim time advances by each
        sub-step's distance over the belt speed of the moment.
        """
        start = self.scenario.motion.encoder_start
        k = int(tick_unwrapped) - start
        here = self.tick_unwrapped - start
        if k < here:
            raise ValueError(
                f"the belt does not run backwards: at tick {start + here}, "
                f"asked for {tick_unwrapped}"
            )
        if k == here:
            return
        goal = _travel_of_count(k, self.geometry.belt.mm_per_tick)
        n_sub = max(1, math.ceil((goal - self._travel_mm) / _SUBSTEP_MM))
        for left in range(n_sub, 1, -1):
            self._substep_mm(self._travel_mm + (goal - self._travel_mm) / left)
        self._substep_mm(goal)

    def render(self) -> Frame:
        """Expose a frame at the present instant (``frame_id`` +1)."""
        self._frame_id += 1
        self._forget_old()
        image, truth = self._render()
        self._truth = truth
        return Frame(image=image, frame_id=self._frame_id, tick=self.tick, t_s=self._now_s)

    def visible_truth(self) -> FrameTruth:
        """Ground truth of the last frame ``step()`` returned."""
        if self._truth is None:
            raise RuntimeError("visible_truth() before the first step()")
        return self._truth

    def score(self, targets: Mapping[str, str] | None = None) -> Score:
        """Purity, recovery, co-ejection... of the fragments that crossed so far.

        ``targets`` maps class name -> fraction (bin) name; unnamed classes
        belong to ``pass``. Default: copper, brass, battery -> ``eject``.
        """
        return self._scorer.score(len(self._records), self._chutes.runs, self._travel_mm, targets)

    def footprints_near(
        self, y_lo_mm: float, y_hi_mm: float
    ) -> list[tuple[int, str, str, float, float, float, float, np.ndarray, np.ndarray, float]]:
        """Live fragments reaching into belt y ``y_lo_mm..y_hi_mm`` now: (id, class,
        kind, length mm, width mm, x, y of the reference point, footprint samples
        x, y relative to it (P,) mm, angle drawn at, rad), for sensors."""
        b = self._bodies
        near = np.nonzero((b.y + b.lead >= y_lo_mm) & (b.y + b.trail <= y_hi_mm))[0]
        out = []
        for i in near.tolist():
            f = self._live[i]
            r, s = f.rec, f.sprite
            out.append(
                (r.fragment_id, r.class_name, r.kind, r.length_mm, r.width_mm, float(b.x[i]),
                 float(b.y[i]), s.foot_x_mm, s.foot_y_mm, s.angle_rad)
            )  # fmt: skip
        return out

    def _forget_old(self) -> None:
        """Drop the oldest settled fragments once memory holds too many."""
        excess = len(self._records) - self._keep_fragments
        if excess <= self._keep_fragments // 10:
            return
        ids = self._scorer.forget(excess, self._chutes.runs, self._travel_mm)
        if ids:
            self._records = [r for r in self._records if r.fragment_id not in ids]
            self._forget_runs()

    def _forget_runs(self) -> None:
        """Drop the runs that no fragment in memory refers to and whose air can
        reach no fragment any more (their air use is counted first)."""
        runs = self._chutes.runs
        oldest = self._chutes.oldest_air_run()
        for r in self._records:
            for k in r.run_match or r.run_hits:
                oldest = min(oldest, k)
        self._scorer.count_air(runs)
        runs.drop_before(oldest)

    def bins(self) -> dict[str, list[int]]:
        """Output bin -> ids of the fragments in it so far (``pass``, ``eject``, ``divertK``)."""
        out: dict[str, list[int]] = {}
        for r in self._records:
            if r.bin is not None:
                out.setdefault(r.bin, []).append(r.fragment_id)
        return out

    def outcomes(self, targets: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Every fragment fed so far: ground truth, target and what became of it."""
        return fragment_outcomes(self._records, self._chutes.runs, targets)

    def _speed_at(self, t_s: float) -> float:
        m = self.scenario.motion
        p1, p2 = self._rng_speed_phase
        w = 2 * math.pi * t_s / m.speed_fluct_period_s
        swing = 0.7 * math.sin(w + p1) + 0.3 * math.sin(w * 2.7 + p2)
        return self.nominal_speed_mm_s * (1.0 + m.speed_fluct_frac * swing)

    def _substep(self, dt: float) -> None:
        self._now_s += dt
        self._speed_mm_s = self._speed_at(self._now_s)
        self._travel_mm += self._speed_mm_s * dt
        self._after_move(dt)

    def _substep_mm(self, travel_mm: float) -> None:
        """A sub-step ending at belt travel ``travel_mm``; it lasts the distance
        over the belt speed at its start."""
        if self._speed_mm_s <= 0:
            raise RuntimeError("the belt stands: it cannot be run to a tick")
        dt = (travel_mm - self._travel_mm) / self._speed_mm_s
        self._now_s += dt
        self._speed_mm_s = self._speed_at(self._now_s)
        self._travel_mm = travel_mm
        self._after_move(dt)

    def _after_move(self, dt: float) -> None:
        if self.feed_gate is None or self.feed_gate():  # the feeder's interlock
            for _ in range(self._feeder.arrivals(dt)):
                self._spawn(self._feeder.drop(self._travel_mm))
        self._move(dt)
        for sensor in self.sensors:
            sensor.after_move(self)
        pulses = self.plc.advance(self.tick, self._speed_mm_s, self._now_s)
        if len(pulses):
            self._chutes.add(pulses, self.tick_unwrapped, self._speed_mm_s)
        self._decide()

    # ---- fragments ----------------------------------------------------------------------
    def _spawn(self, d: Drop) -> None:
        look = self.scenario.appearance
        name = DEFAULT_CLASSES[d.class_id]
        art = make_art(
            self._rng_art, name, d.shape, 1.0 / self.mm_per_px, look.oxidation, look.dirt
        )
        rec = FragmentRecord(
            fragment_id=self._next_id,
            class_name=name,
            class_id=d.class_id,
            kind=d.shape.kind,
            size_mm=d.size_mm,
            length_mm=d.shape.length_mm,
            width_mm=d.shape.width_mm,
            spawn_t_s=self._now_s,
            spawn_tick=self.tick_unwrapped,
            x_feed_mm=d.x_mm,
            rolls=d.rolls,
            bounces=d.bounces,
            motion=d.motion,
        )
        self._records.append(rec)
        self._next_id += 1
        sprite = self._sprite(art, d.angle_rad, 0)
        self._live.append(_Live(rec, art, sprite))
        self._bodies.add(
            x=d.x_mm,
            y=d.y_mm,
            vx=d.vx_mm_s,
            vy=d.vy_mm_s,
            angle=d.angle_rad,
            spin=d.spin_rad_s,
            roll_px=0.0,
            half_w=sprite.half_width_mm,
            lead=sprite.lead_mm,
            trail=sprite.trail_mm,
            rolls=d.rolls,
            bounces=d.bounces,
            kicked=False,
            decel=d.decel_mm_s2,
            kappa=d.curvature_per_mm,
        )

    def _sprite(self, art: LocalArt, angle: float, roll_px: int) -> Sprite:
        look = self.scenario.appearance
        grid = self.scenario.ejection.grid_mm
        return render_sprite(art, angle, roll_px, self.blur_px, look.shadow, self.mm_per_px, grid)

    def _move(self, dt: float) -> None:
        b = self._bodies
        y_valve = self.geometry.valves.y_valve_mm
        b.step(
            dt,
            self._speed_mm_s,
            self.scenario.motion,
            self.geometry.belt.width_mm,
            y_valve,
            self.mm_per_px,
            self._rng_motion,
        )
        near = np.nonzero(b.y + b.lead > y_valve - _NEAR_VALVE_MM)[0]
        t = self._ticks_exact()
        for i in near.tolist():
            f = self._live[i]
            f.path_t.append(t)
            f.path_x.append(float(b.x[i]))
            f.path_y.append(float(b.y[i]))

    # ---- ejection -----------------------------------------------------------------------
    def _decide(self) -> None:
        """Settle fragments whose trailing edge is far enough past the valve line."""
        b = self._bodies
        past = (
            b.y
            + b.trail
            - (self.geometry.valves.y_valve_mm + self.scenario.ejection.decide_after_mm)
        )
        ready = np.nonzero(past > 0)[0]
        if ready.size == 0:
            return
        keep = np.ones(len(self._live), bool)
        for i in ready.tolist():
            f = self._live[i]
            self._resprite(i)  # the footprint as it lies now, just past the line
            x, half = float(b.x[i]), float(b.half_w[i])
            if len(f.path_t) < 2 or (
                past[i] < WAIT_CAP_MM and self._chutes.busy(self.plc, x - half, x + half)
            ):
                continue  # a run over it is still open: wait for it to complete
            crossing = Crossing(
                f.sprite.foot_x_mm,
                f.sprite.foot_y_mm,
                np.asarray(f.path_t),
                np.asarray(f.path_x),
                np.asarray(f.path_y),
            )
            self._chutes.settle(f.rec, crossing, self._now_s)
            ox, oy = f.sprite.centroid_px * self.mm_per_px  # the centroid's own crossing
            f.rec.cross_tick, f.rec.x_cross_mm = centre_crossing(
                crossing.path_tick,
                crossing.path_y_mm + oy,
                crossing.path_x_mm + ox,
                self.geometry.valves.y_valve_mm,
            )
            self._scorer.settled(f.rec, self._travel_mm)
            keep[i] = False
        if not keep.all():
            self._live = [f for f, k in zip(self._live, keep, strict=True) if k]
            b.keep(keep)
        forget_mm = WAIT_CAP_MM + 1000.0
        self._chutes.forget_before(self._ticks_exact() - forget_mm / self.geometry.belt.mm_per_tick)

    # ---- rendering ----------------------------------------------------------------------
    def _render(self) -> tuple[np.ndarray, FrameTruth]:
        cam = self.geometry.camera
        b = self._bodies
        frame = self._camera.belt(self._travel_mm / cam.mm_per_px_y)
        top, bottom = cam.view_y_range_mm
        sizes = np.array([f.rec.size_mm for f in self._live])
        seen = np.nonzero((b.y + sizes >= top) & (b.y - sizes <= bottom))[0]
        cols, rows_px = cam.mm_to_px(b.x[seen], b.y[seen])
        placed: list[tuple[_Live, int, int, float, float]] = []
        for i, col, row in zip(seen.tolist(), cols.tolist(), rows_px.tolist(), strict=True):
            f = self._live[i]
            self._resprite(i)
            c0 = round(col - f.sprite.anchor_px[0])
            r0 = round(row - f.sprite.anchor_px[1])
            blend(frame, f.sprite.premult, f.sprite.inv_alpha, c0, r0)
            f.rec.frames_seen += 1
            placed.append((f, c0, r0, float(b.x[i]), float(b.y[i])))
        truth = self._truth_of(placed)
        self._camera.finish(frame, self._now_s)
        return frame, truth

    def _resprite(self, i: int) -> None:
        """Re-draw fragment ``i`` if it turned or rolled since it was last drawn."""
        f, b = self._live[i], self._bodies
        s = f.sprite
        roll = round(float(b.roll_px[i]))
        angle = float(b.angle[i])
        if abs(angle - s.angle_rad) > _RESPRITE_RAD or (f.rec.rolls and abs(roll - s.roll_px) >= 2):
            f.sprite = self._sprite(f.art, angle, roll)
            b.set_extents(i, f.sprite.half_width_mm, f.sprite.lead_mm, f.sprite.trail_mm)

    def _truth_of(self, rows: list[tuple[_Live, int, int, float, float]]) -> FrameTruth:
        from sim.plant.visible import frame_truth

        return frame_truth(rows, self.geometry.camera, self._frame_id, self.tick, self._travel_mm)
