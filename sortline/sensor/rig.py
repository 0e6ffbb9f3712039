"""The bar-offset procedure on the virtual bench rig (``sortline calibrate bar-offset --virtual``).

The rig: the configured bar (``[sensor]`` geometry) whose true line is
hidden: the nominal ``y_bar_mm`` moved by up to +-25 mm (seeded), with its
noise and baseline drift on. Five steel discs (30 mm) lie on the belt at five
coils across it, 150 mm apart along it, upstream of the bar; the belt carries
them past the bar and then past the camera's line (its reference line, or
250 mm past the nominal bar line if the bar sits downstream of it), where
each is sighted with 0.3 mm of segmentation noise.
``sortline.sensor.calibrate.bar_offset`` recovers the line from the rows and
the sightings; the report says how far from the hidden truth it is.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from sim.plant.induction import InductionBar, InductionSensor
from sortline.sensor.calibrate import Sighting, bar_offset

__all__ = ["TOLERANCE_MM", "run_bar_rig"]

TOLERANCE_MM = 2.0  # issue 17: the bar line recovered within 2 mm
_DISC_MM = 30.0
_SHIFT_MM = 25.0


class _Discs:
    """Steel discs lying on a belt at ``mm_per_tick``; y = u + travel."""

    def __init__(self, pieces: list[tuple[float, float]], mm_per_tick: float) -> None:
        self.pieces = pieces  # (x, u)
        self.mm_per_tick = mm_per_tick
        self.tick_unwrapped = 0
        self.travel_mm = 0.0
        self.now_s = 0.0
        g = np.arange(-_DISC_MM / 2, _DISC_MM / 2, 1.0) + 0.5
        gx, gy = np.meshgrid(g, g)
        inside = gx**2 + gy**2 <= (_DISC_MM / 2) ** 2
        self._fx, self._fy = gx[inside], gy[inside]

    def move(self, ticks: int, speed_mm_s: float = 2500.0) -> None:
        self.tick_unwrapped += ticks
        self.travel_mm = self.mm_per_tick * self.tick_unwrapped
        self.now_s = self.travel_mm / speed_mm_s

    def footprints_near(self, lo: float, hi: float) -> list[Any]:
        out = []
        for k, (x, u) in enumerate(self.pieces):
            y = u + self.travel_mm
            if y + _DISC_MM / 2 >= lo and y - _DISC_MM / 2 <= hi:
                out.append((k, "steel", "plate", _DISC_MM, _DISC_MM, x, y, self._fx, self._fy, 0.0))
        return out


def run_bar_rig(nominal: InductionBar, mm_per_tick: float, seed: int) -> dict[str, Any]:
    """Run the procedure on the rig (module doc): the recovered line, the hidden
    truth, the error and spread (mm), and whether it is within ``TOLERANCE_MM``."""
    if not mm_per_tick > 0:
        raise ValueError(f"bar-offset rig: mm_per_tick must be > 0, got {mm_per_tick}")
    rng = np.random.default_rng([seed, 1717])
    truth = nominal.y_bar_mm + float(rng.uniform(-_SHIFT_MM, _SHIFT_MM))
    bar = dataclasses.replace(nominal, y_bar_mm=truth, noise=3.0, drift_walk=2.0)
    coils = np.linspace(0.1, 0.9, 5) * (bar.channels - 1)
    xs = bar.coil_x_mm[np.round(coils).astype(int)] + rng.uniform(-5.0, 5.0, 5)
    start = nominal.y_bar_mm - _SHIFT_MM - 200.0
    pieces = [(float(x), start - 150.0 * k) for k, x in enumerate(xs)]
    rig = _Discs(pieces, mm_per_tick)
    sensor = InductionSensor(bar, mm_per_tick, 0, 1.0, seed=seed)
    camera_y = max(0.0, nominal.y_bar_mm + 250.0)
    step = max(1, round(2.5 / mm_per_tick))  # 2.5 mm of belt per step
    sightings: list[Sighting] = []
    travel_end = camera_y - pieces[-1][1] + 10.0
    while rig.travel_mm < travel_end:
        rig.move(step)
        sensor.after_move(rig)
        for x, u in pieces:  # sighted once, the step its centre passes the camera's line
            y = u + rig.travel_mm
            if camera_y <= y < camera_y + step * mm_per_tick:
                sightings.append(Sighting(rig.tick_unwrapped, y + float(rng.normal(0, 0.3)), x))
    got = bar_offset(sensor.drain(), sightings, mm_per_tick, bar.x_first_mm, bar.pitch_mm)
    error = got.y_bar_mm - truth
    return {
        "y_bar_mm": round(got.y_bar_mm, 3),
        "truth_y_bar_mm": round(truth, 3),
        "nominal_y_bar_mm": nominal.y_bar_mm,
        "error_mm": round(error, 3),
        "spread_mm": round(got.spread_mm, 3),
        "per_piece_mm": [round(e, 3) for e in got.per_piece_mm],
        "pieces": len(sightings),
        "tolerance_mm": TOLERANCE_MM,
        "passed": bool(abs(error) <= TOLERANCE_MM),
    }
