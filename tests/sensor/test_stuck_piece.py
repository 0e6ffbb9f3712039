"""A steel staple stuck in the belt passes the bar once per belt loop: the line's
baseline tracking (``RowRing``) neither learns it into the baseline nor lets it
disturb the rows around it (hand-built belt, drift and noise on)."""

from __future__ import annotations

from typing import Any

import numpy as np

from sim.plant.induction import InductionBar, InductionSensor
from sortline.sensor.ring import RowRing

LOOP_MM = 1000.0


def _bar(noise: float, drift_amp: float, drift_walk: float) -> InductionBar:
    """The default bar with a staple at x 500 mm and a 1 m belt loop."""
    return InductionBar(
        noise=noise, drift_amp=drift_amp, drift_walk=drift_walk,
        stuck_x_mm=500.0, belt_loop_mm=LOOP_MM,
    )  # fmt: skip


class _EmptyBelt:
    """The belt alone, 0.1 mm per tick at 2.5 m/s."""

    travel_mm = 0.0
    now_s = 0.0
    tick_unwrapped = 0

    def move(self, ticks: int) -> None:
        self.tick_unwrapped += ticks
        self.travel_mm = self.tick_unwrapped * 0.1
        self.now_s = self.travel_mm / 2500.0

    def footprints_near(self, lo: float, hi: float) -> list[Any]:
        return []


def _rows(bar: InductionBar, mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    belt, sensor = _EmptyBelt(), InductionSensor(bar, 0.1, 0, 4.0, seed=5)
    for _ in range(int(mm / 2.5)):
        belt.move(25)
        sensor.after_move(belt)
    r = sensor.drain()
    return r.tick, r.in_phase, r.quadrature


def test_the_staple_is_seen_each_loop_and_not_learnt() -> None:
    bar = _bar(noise=3.0, drift_amp=15.0, drift_walk=2.0)
    tick, i_rows, q_rows = _rows(bar, 3 * LOOP_MM)
    clean = _rows(_bar(noise=0.0, drift_amp=0.0, drift_walk=0.0), 3 * LOOP_MM)
    c = int(np.argmin(np.abs(bar.coil_x_mm - 500.0)))
    staple = clean[1][:, c] - np.median(clean[1][:, c])  # its own signal, rows (in-phase)
    passing = staple > 0.3 * staple.max()
    assert staple.max() > 15.0  # a weak but clear reactive blip, about 7 noise sigmas
    ring = RowRing(bar.channels, capacity=4096, guard=8)
    ring.append((tick % (1 << 32)).astype(np.uint32), i_rows, q_rows)
    got = ring.rows()
    warm = np.arange(tick.size) >= 40  # the baseline's first rows settle
    # each pass: the ring still shows the staple (the gate kept it out of the baseline)
    seen = got.in_phase[passing & warm, c]
    assert np.median(seen / staple[passing & warm]) > 0.6
    # every other row of every channel: baseline followed and subtracted, noise left
    quiet = warm & ~np.convolve(passing, np.ones(41), "same").astype(bool)
    assert np.abs(got.in_phase[quiet]).max() < 6 * bar.noise
    assert np.abs(got.quadrature[quiet]).max() < 6 * bar.noise
