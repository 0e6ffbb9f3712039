"""The feeder: when, where and what fragments drop onto the belt.

Arrivals are a Poisson process at ``feed.rate_obj_s``; a ``density`` share
of fragments lands touching (or, an ``overlap`` share of those, partly on top
of) a recently fed neighbour. Fragments land upstream of the camera's view.

How each moves relative to the belt (its motion kind, ``MOTION_KINDS``):

- ``rolling``: a ``roll_share`` of round parts (cells, wires and cable pieces,
  pebbles) land with a mismatch of ``roll_speed_min_frac..max_frac`` of the
  belt speed along it; of that only the component along the part's rolling
  direction (perpendicular to its axis) survives, so it rolls at up to +20 %
  along the belt with a steady sideways speed (axis oblique), slowing by its
  rolling resistance (``materials.rolling_resistance``) and curving
  (``shapes.curvature_sigma_per_mm``: sideways speed drifts, may reverse);
- ``sliding``: a ``slide_share`` of the other parts (not rubber) land slower
  than the belt and slide, decelerating at their kinetic friction
  (``materials.sliding_friction`` x g), coming to rest up to
  ``slide_time_max_s`` after landing, in or past the view;
- ``lying``: the rest land with a small drift and slip that friction stops
  within a few hundredths of a second, before the view;
- ``bouncing``: a ``bounce_share`` of any kind get kicked 40 mm before the
  valve line (``motion.Bodies.step``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from calibration.geometry import LineGeometry
from core.classes import DEFAULT_CLASSES
from sim.plant.materials import G_MM_S2, rolling_resistance, sliding_friction
from sim.plant.scenario import Scenario
from sim.plant.shapes import Shape, curvature_sigma_per_mm, make_shape

__all__ = ["MOTION_KINDS", "Drop", "Feeder"]

MOTION_KINDS = ("lying", "rolling", "sliding", "bouncing")

_LAND_MM = 200.0  # fragments land this far upstream of the camera's view


@dataclasses.dataclass(frozen=True, slots=True)
class Drop:
    """One fragment as it lands: class, shape and initial motion (belt mm, s).

    vx_mm_s, vy_mm_s: velocity relative to the belt surface; decel_mm_s2: the
    friction or rolling resistance that slows it (along its velocity);
    curvature_per_mm: a roller's path curvature (signed); motion: one of
    ``MOTION_KINDS``.
    """

    class_id: int
    shape: Shape
    size_mm: float
    x_mm: float
    y_mm: float
    vx_mm_s: float
    vy_mm_s: float
    angle_rad: float
    spin_rad_s: float
    rolls: bool
    bounces: bool
    decel_mm_s2: float = 0.0
    curvature_per_mm: float = 0.0
    motion: str = "lying"


class Feeder:
    def __init__(self, geometry: LineGeometry, scenario: Scenario, rng: np.random.Generator):
        self.geometry = geometry
        self.feed = scenario.feed
        self.motion = scenario.motion
        self.rng = rng
        weights = np.array([self.feed.class_mix.get(c, 0.0) for c in DEFAULT_CLASSES], float)
        self._p_class = weights / weights.sum()
        self._speed_mm_s = scenario.motion.speed_mm_s or geometry.belt.speed_mm_s
        top, _ = geometry.camera.view_y_range_mm
        self._y_entry = top
        self._recent: list[tuple[float, float, float]] = []  # x, y, radius of recent drops

    def arrivals(self, dt_s: float) -> int:
        return int(self.rng.poisson(self.feed.rate_obj_s * dt_s))

    def _size(self, class_name: str) -> float:
        f = self.feed
        s = f.size_median_mm * float(np.exp(self.rng.normal(0, 0.55)))
        if class_name == "residue":
            s *= 0.6
        return float(np.clip(s, f.size_min_mm, f.size_max_mm))

    def drop(self, travel_mm: float) -> Drop:
        """A new fragment; ``travel_mm`` only moves the remembered neighbours."""
        rng = self.rng
        cid = int(rng.choice(len(DEFAULT_CLASSES), p=self._p_class))
        name = DEFAULT_CLASSES[cid]
        size = self._size(name)
        shape = make_shape(rng, name, size)
        radius = max(shape.length_mm, shape.width_mm) / 2
        x, y = self._place(radius, travel_mm)
        m = self.motion
        angle = float(rng.uniform(0, 2 * np.pi))
        bounces = bool(rng.random() < m.bounce_share)
        rolls = shape.rolls and rng.random() < m.roll_share
        spin = float(np.deg2rad(rng.normal(0, m.spin_deg_s)))
        curvature = 0.0
        if rolls:  # the mismatch's component along the rolling direction survives
            mismatch = self._speed_mm_s * rng.uniform(m.roll_speed_min_frac, m.roll_speed_max_frac)
            roll = mismatch * np.cos(angle)
            vx, vy = -roll * np.sin(angle), roll * np.cos(angle)
            decel = rolling_resistance(name, shape.kind) * G_MM_S2
            curvature = float(rng.normal(0, curvature_sigma_per_mm(shape)))
            spin, motion = 0.0, "rolling"
        elif name != "rubber" and rng.random() < m.slide_share:
            decel = sliding_friction(name) * G_MM_S2  # lands slower than the belt
            speed = decel * rng.uniform(0.25, 1.0) * m.slide_time_max_s
            heading = rng.normal(0, np.deg2rad(20.0))
            vx, vy, motion = speed * np.sin(heading), -speed * np.cos(heading), "sliding"
        else:
            decel = sliding_friction(name) * G_MM_S2
            vx, vy, motion = rng.normal(0, m.drift_mm_s), rng.normal(0, m.slide_mm_s), "lying"
        return Drop(
            class_id=cid,
            shape=shape,
            size_mm=max(shape.length_mm, shape.width_mm),
            x_mm=x,
            y_mm=y,
            vx_mm_s=float(vx),
            vy_mm_s=float(vy),
            angle_rad=angle,
            spin_rad_s=spin,
            rolls=rolls,
            bounces=bounces,
            decel_mm_s2=float(decel),
            curvature_per_mm=curvature,
            motion="bouncing" if bounces else motion,
        )

    def _place(self, radius: float, travel_mm: float) -> tuple[float, float]:
        """Landing point (x, y) mm in a zone ``_LAND_MM`` upstream of the view,
        touching a neighbour still in that zone for a ``density`` share."""
        rng = self.rng
        width = self.geometry.belt.width_mm
        lo = self.feed.margin_mm + radius * 0.5
        hi = max(width - self.feed.margin_mm - radius * 0.5, lo + 1.0)
        y_last = self._y_entry - radius - 5.0  # still unseen
        self._recent = [(x, u, r) for x, u, r in self._recent if u + travel_mm < self._y_entry]
        if self._recent and rng.random() < self.feed.density:
            nx, nu, nr = self._recent[int(rng.integers(len(self._recent)))]
            over = rng.random() < self.feed.overlap
            touch = rng.uniform(0.45, 0.75) if over else rng.uniform(0.8, 1.0)
            ang = rng.uniform(0, 2 * np.pi)
            dist = (nr + radius) * touch
            x = float(np.clip(nx + dist * np.cos(ang), lo, hi))
            y = min(nu + travel_mm + dist * np.sin(ang), y_last)
        else:
            x = float(rng.uniform(lo, hi))
            y = self._y_entry - _LAND_MM - float(rng.uniform(0, 40.0))
        self._recent.append((x, y - travel_mm, radius))
        del self._recent[:-8]
        return x, y
