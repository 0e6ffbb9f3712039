"""Calibrating the bar line: where the induction bar sits relative to the camera.

Procedure (bench rig or a running line with the feed off): pass a few
symmetric steel test pieces (discs, 20-40 mm) over the bar at different x.
For each, the camera gives a sighting: the encoder count of a frame, the
piece's centre y in the camera's belt coordinates at that count and its x.
The bar's rows give the count at which the centre crossed the bar: the
signal-weighted mean count of the coil nearest x (baseline taken out as the
channel's median, rows within ``window_mm`` of belt travel around the peak).
The piece moved with the belt in between, so

    y_bar_mm = y_centre_mm - (tick_camera - tick_crossing) x mm_per_tick

per piece; the median over pieces is the calibration and their spread its
uncertainty. Sub-row accuracy comes from the weighted mean over the rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from core.sensor_rows import SensorRows

__all__ = ["BarOffset", "Sighting", "bar_offset"]


@dataclasses.dataclass(frozen=True, slots=True)
class Sighting:
    """A test piece seen by the camera: frame count (unwrapped, the rows' count
    space), its centre y (camera belt mm) and x (mm) at that count."""

    tick: int
    y_mm: float
    x_mm: float


@dataclasses.dataclass(frozen=True, slots=True)
class BarOffset:
    """y_bar_mm: the bar line (median over pieces); spread_mm: half the range of
    the per-piece estimates; per_piece_mm: each estimate (NaN: no signal)."""

    y_bar_mm: float
    spread_mm: float
    per_piece_mm: tuple[float, ...]


def _crossing_tick(
    rows: SensorRows, channel: int, before_tick: int, window_ticks: float
) -> float | None:
    """Signal-weighted count at which a piece crossed ``channel``'s coil."""
    early = rows.tick < before_tick
    if not early.any():
        return None
    mag = np.hypot(rows.in_phase[early, channel], rows.quadrature[early, channel])
    mag = np.abs(mag - np.median(mag))
    peak = int(np.argmax(mag))
    ticks = rows.tick[early].astype(np.float64)
    near = np.abs(ticks - ticks[peak]) <= window_ticks
    w = mag[near]
    if w.sum() <= 0:
        return None
    return float((ticks[near] * w).sum() / w.sum())


def bar_offset(
    rows: SensorRows,
    sightings: Sequence[Sighting],
    mm_per_tick: float,
    x_first_mm: float,
    pitch_mm: float,
    window_mm: float = 60.0,
) -> BarOffset:
    """The bar line from ``rows`` and camera ``sightings`` (module doc)."""
    if not sightings or len(rows) == 0:
        raise ValueError("bar_offset needs rows and at least one sighting of a test piece")
    est = []
    for s in sightings:
        c = int(np.clip(np.floor((s.x_mm - x_first_mm) / pitch_mm), 0, rows.channels - 1))
        t = _crossing_tick(rows, c, s.tick, window_mm / mm_per_tick)
        est.append(np.nan if t is None else s.y_mm - (s.tick - t) * mm_per_tick)
    good = np.asarray([e for e in est if np.isfinite(e)])
    if good.size == 0:
        raise ValueError("bar_offset: no test piece gave a signal on the bar")
    return BarOffset(float(np.median(good)), float(np.ptp(good) / 2), tuple(float(e) for e in est))
