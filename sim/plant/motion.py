"""Motion of the fragments on the belt, vectorised over all of them.

``Bodies`` is a struct of arrays (one row per live fragment, the plant keeps
its fragment list in the same order). Positions are belt mm (``x`` across,
``y`` downstream of the camera's reference line), velocities relative to the
belt surface in mm/s, angles in radians.

Relative motion slows at a constant deceleration along its own direction
(Coulomb friction for sliding parts, rolling resistance for rollers), so a
part comes to rest on the belt in finite time; a roller's path curves (its
velocity and axis turn at speed x curvature). Kinds and their numbers:
``feed.py`` and ``sim/README.md``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sim.plant.scenario import MotionSection

__all__ = ["Bodies"]

_FLOATS = (
    "x", "y", "vx", "vy", "angle", "spin", "roll_px", "half_w", "lead", "trail", "decel", "kappa",
)  # fmt: skip
_BOOLS = ("rolls", "bounces", "kicked")


@dataclasses.dataclass(slots=True)
class Bodies:
    """x, y: (N,) mm; vx, vy: (N,) mm/s relative to the belt; angle (rad),
    spin (rad/s); roll_px: texture roll of round parts; half_w, lead, trail:
    footprint extents from the reference point (mm); decel: (N,) mm/s^2 that
    slows the relative motion; kappa: (N,) 1/mm path curvature of rollers;
    rolls, bounces, kicked: (N,) bool."""

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
    decel: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    kappa: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
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
        speed = np.hypot(self.vx, self.vy)
        turn = self.kappa * speed * dt  # rollers curve: velocity and axis turn together
        if r.any():
            c, s = np.cos(turn), np.sin(turn)
            self.vx, self.vy = c * self.vx - s * self.vy, s * self.vx + c * self.vy
            self.angle += turn
            self.roll_px += np.where(r, speed * dt / mm_per_px, 0.0)
        self.x += self.vx * dt
        self.y += (speed_mm_s + np.maximum(self.vy, -0.7 * speed_mm_s)) * dt
        self.angle += self.spin * dt
        slower = np.maximum(speed - self.decel * dt, 0.0)
        scale = np.divide(slower, speed, out=np.zeros_like(speed), where=speed > 0)
        self.vx *= scale
        self.vy *= scale
        # friction brakes the spin too (about the piece's radius of gyration)
        gyration = np.maximum(0.3 * np.maximum(self.half_w, self.lead - self.trail), 5.0)
        brake = self.decel / gyration * dt
        self.spin = np.sign(self.spin) * np.maximum(np.abs(self.spin) - brake, 0.0)
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
