"""The feeder: when, where and what fragments drop onto the belt.

Arrivals are a Poisson process at ``feed.rate_obj_s``; a ``density`` share
of fragments lands touching (or, an ``overlap`` share of those, partly on top
of) a recently fed neighbour. Fragments land upstream of the camera's view
with a sideways drift, a slip along the belt and a spin that settle.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from calibration.geometry import LineGeometry
from core.classes import DEFAULT_CLASSES
from sim.plant.scenario import Scenario
from sim.plant.shapes import Shape, make_shape

__all__ = ["Drop", "Feeder"]

_LAND_MM = 200.0  # fragments land this far upstream of the camera's view


@dataclasses.dataclass(frozen=True, slots=True)
class Drop:
    """One fragment as it lands: class, shape and initial motion (belt mm, s)."""

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


class Feeder:
    def __init__(self, geometry: LineGeometry, scenario: Scenario, rng: np.random.Generator):
        self.geometry = geometry
        self.feed = scenario.feed
        self.motion = scenario.motion
        self.rng = rng
        weights = np.array([self.feed.class_mix.get(c, 0.0) for c in DEFAULT_CLASSES], float)
        self._p_class = weights / weights.sum()
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
        rolls = shape.rolls and rng.random() < m.roll_share
        slide = m.slide_mm_s * (2.0 if rolls else 1.0)
        return Drop(
            class_id=cid,
            shape=shape,
            size_mm=max(shape.length_mm, shape.width_mm),
            x_mm=x,
            y_mm=y,
            vx_mm_s=float(rng.normal(0, m.drift_mm_s)),
            vy_mm_s=float(rng.normal(0, slide)),
            angle_rad=float(rng.uniform(0, 2 * np.pi)),
            spin_rad_s=float(np.deg2rad(rng.normal(0, m.spin_deg_s))),
            rolls=rolls,
            bounces=bool(rng.random() < m.bounce_share),
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
