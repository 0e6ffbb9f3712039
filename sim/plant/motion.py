"""Motion of the fragments on the belt, vectorised over all of them.

``Bodies`` is a struct of arrays (one row per live fragment, the plant keeps
its fragment list in the same order). Positions are belt mm (``x`` across,
``y`` downstream of the camera's reference line), velocities relative to the
belt surface in mm/s, angles in radians.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sim.plant.scenario import MotionSection

__all__ = ["Bodies"]

_FLOATS = ("x", "y", "vx", "vy", "angle", "spin", "roll_px", "half_w", "lead", "trail")
_BOOLS = ("rolls", "bounces", "kicked")


@dataclasses.dataclass(slots=True)
class Bodies:
    """x, y: (N,) mm; vx, vy: (N,) mm/s relative to the belt; angle (rad),
    spin (rad/s); roll_px: texture roll of round parts; half_w, lead, trail:
    footprint extents from the reference point (mm); rolls, bounces, kicked:
    (N,) bool."""

    x: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    y: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    vx: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    vy: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    angle: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    spin: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    roll_px: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    half_w: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    lead: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    trail: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    rolls: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, bool))
    bounces: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, bool))
    kicked: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, bool))

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def add(self, **row: float | bool) -> None:
        """Append one body; every field must be given."""
        for name in _FLOATS + _BOOLS:
            arr = getattr(self, name)
            setattr(self, name, np.append(arr, np.asarray([row[name]], arr.dtype)))

    def keep(self, mask: np.ndarray) -> None:
        for name in _FLOATS + _BOOLS:
            setattr(self, name, getattr(self, name)[mask])

    def set_extents(self, i: int, half_w: float, lead: float, trail: float) -> None:
        self.half_w[i], self.lead[i], self.trail[i] = half_w, lead, trail

    def step(
        self,
        dt: float,
        speed_mm_s: float,
        m: MotionSection,
        belt_width_mm: float,
        y_valve_mm: float,
        mm_per_px: float,
        rng: np.random.Generator,
    ) -> None:
        """Advance every body by ``dt`` seconds on a belt running at ``speed_mm_s``."""
        if len(self) == 0:
            return
        r = self.rolls
        # round parts roll across their long axis; others slip along the belt
        along = np.where(r, self.vy * np.cos(self.angle), self.vy)
        across = np.where(r, -self.vy * np.sin(self.angle), 0.0) + self.vx
        self.roll_px += np.where(r, self.vy * dt / mm_per_px, 0.0)
        self.x += across * dt
        self.y += (speed_mm_s + np.maximum(along, -0.7 * speed_mm_s)) * dt
        self.angle += self.spin * dt
        decay = np.exp(-dt / np.where(r, m.roll_settle_s, m.settle_s))
        self.vx *= decay
        self.vy *= decay
        self.spin *= np.exp(-dt / m.settle_s)
        lo, hi = self.half_w, belt_width_mm - self.half_w
        out = (self.x < lo) | (self.x > hi)  # belt skirts: bounce back
        if out.any():
            self.x[out] = np.clip(self.x[out], lo[out], hi[out])
            self.vx[out] = -self.vx[out]
        kick = self.bounces & ~self.kicked & (self.y + self.lead > y_valve_mm - 40.0)
        if kick.any():
            n = int(kick.sum())
            self.kicked |= kick
            self.vy[kick] = rng.normal(0, m.bounce_mm_s, n)
            self.vx[kick] += rng.normal(0, m.bounce_mm_s / 3, n)
