"""Ejection physics: which fragments the air jets (or flaps) take off the belt.

Pure functions over arrays, no plant state: the plant and the tests call the
same code. Times are unwrapped encoder counts (int64 / float64 ticks), lengths
millimetres in belt coordinates (``x`` across, ``y`` downstream).

A valve run "a..b on from T1 to T2" blows air at the belt from
``T1 + open_delay`` to ``T2 + close_delay`` (delays converted to ticks at the
belt speed of the moment) over ``x`` from the centre of valve ``a`` minus half
the blast width to the centre of valve ``b`` plus half the blast width. A
fragment's footprint is sampled as points; a point is hit when it crosses the
valve line while air covers its ``x``. The fragment is ejected when the hit
points span at least ``cover_width_frac`` of its width and
``cover_length_frac`` of its length.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from calibration.geometry import ValveBar
from core.ticks import tick_diff_array
from core.types import Pulses

__all__ = ["AirRuns", "Coverage", "air_runs", "coverage", "crossing_ticks"]


@dataclasses.dataclass(frozen=True, slots=True)
class AirRuns:
    """Air actually at the belt: one row per completed run, or per valve of
    it when valves differ (per-valve delays, valves that do not fire).

    actuator:   (N,) int16, 0 = valve bar.
    x_left_mm:  (N,) float64 left edge of the blast.
    x_right_mm: (N,) float64 right edge of the blast.
    on_tick:    (N,) float64 unwrapped count when air reaches the belt.
    off_tick:   (N,) float64 unwrapped count when air has stopped.
    run_row:    (N,) int64 the row of the ``Pulses`` this air came from.
    track_id:   (N,) int64 the controller's track the run was for.
    """

    actuator: np.ndarray
    x_left_mm: np.ndarray
    x_right_mm: np.ndarray
    on_tick: np.ndarray
    off_tick: np.ndarray
    run_row: np.ndarray
    track_id: np.ndarray

    def __len__(self) -> int:
        return int(self.on_tick.shape[0])

    @staticmethod
    def empty() -> AirRuns:
        f, i = np.zeros(0, np.float64), np.zeros(0, np.int64)
        return AirRuns(np.zeros(0, np.int16), f, f, f, f, i, i)

    def concat(self, other: AirRuns) -> AirRuns:
        return AirRuns(
            *(
                np.concatenate([getattr(self, f.name), getattr(other, f.name)])
                for f in dataclasses.fields(self)
            )
        )

    def rows(self, index: np.ndarray) -> AirRuns:
        """The rows selected by a boolean mask or index array."""
        return AirRuns(*(getattr(self, f.name)[index] for f in dataclasses.fields(self)))


def _per_valve(pulses: Pulses, dead_valves: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(pulse row, valve) of every valve in every run, dead valves left out."""
    first = pulses.first_valve.astype(np.int64)
    counts = pulses.last_valve.astype(np.int64) - first + 1
    row = np.repeat(np.arange(len(pulses)), counts)
    starts = np.cumsum(counts) - counts
    valve = first[row] + np.arange(row.size) - starts[row]
    alive = ~np.isin(valve, np.asarray(dead_valves, np.int64))
    return row[alive], valve[alive]


def air_runs(
    pulses: Pulses,
    valves: ValveBar,
    now_tick: int,
    speed_mm_s: float,
    mm_per_tick: float,
    dead_valves: tuple[int, ...] = (),
) -> AirRuns:
    """Completed ``pulses`` (uint32 ticks) -> ``AirRuns`` in unwrapped ticks.

    ``now_tick`` is the unwrapped count of the moment (the pulses' uint32
    ticks are placed nearest to it); the valve delays (per valve when the
    bar has them) are converted to ticks at ``speed_mm_s``; ``dead_valves``
    never blow.
    """
    if len(pulses) == 0:
        return AirRuns.empty()
    now_u32 = now_tick % (1 << 32)
    on = (now_tick + tick_diff_array(pulses.on_tick, now_u32)).astype(np.float64)
    off = (now_tick + tick_diff_array(pulses.off_tick, now_u32)).astype(np.float64)
    ticks_per_ms = speed_mm_s * 1e-3 / mm_per_tick
    half = valves.blast_width_mm / 2.0
    uniform = valves.open_delay_per_valve_ms is None and valves.close_delay_per_valve_ms is None
    bar = pulses.actuator == 0
    if (uniform and not dead_valves) or not bar.any():
        return AirRuns(
            actuator=pulses.actuator.astype(np.int16),
            x_left_mm=valves.valve_centre_mm(pulses.first_valve) - half,
            x_right_mm=valves.valve_centre_mm(pulses.last_valve) + half,
            on_tick=on + valves.open_delay_ms * ticks_per_ms,
            off_tick=off + valves.close_delay_ms * ticks_per_ms,
            run_row=np.arange(len(pulses), dtype=np.int64),
            track_id=pulses.track_id.astype(np.int64),
        )
    flaps = air_runs(pulses[~bar], valves, now_tick, speed_mm_s, mm_per_tick)
    flaps = dataclasses.replace(flaps, run_row=np.nonzero(~bar)[0][flaps.run_row])
    row, valve = _per_valve(pulses, dead_valves)
    keep = bar[row]
    row, valve = row[keep], valve[keep]
    centre = valves.valve_centre_mm(valve)
    per_valve = AirRuns(
        actuator=np.zeros(row.size, np.int16),
        x_left_mm=centre - half,
        x_right_mm=centre + half,
        on_tick=on[row] + valves.open_delay_of(valve) * ticks_per_ms,
        off_tick=off[row] + valves.close_delay_of(valve) * ticks_per_ms,
        run_row=row.astype(np.int64),
        track_id=pulses.track_id.astype(np.int64)[row],
    )
    return per_valve.concat(flaps)


def crossing_ticks(
    offset_y_mm: np.ndarray, path_tick: np.ndarray, path_y_mm: np.ndarray, y_valve_mm: float
) -> np.ndarray:
    """Tick at which each footprint point crosses the valve line.

    offset_y_mm: (P,) point's y relative to the fragment centre (downstream +).
    path_tick:   (S,) unwrapped ticks of the centre's recorded path.
    path_y_mm:   (S,) centre y at those ticks, increasing.
    Returns (P,) float64 ticks (extrapolated linearly past the recorded path).
    """
    centre_y = y_valve_mm - np.asarray(offset_y_mm, dtype=np.float64)
    ys = np.asarray(path_y_mm, dtype=np.float64)
    ts = np.asarray(path_tick, dtype=np.float64)
    if ys.shape[0] < 2:
        raise ValueError("crossing_ticks needs a path of at least two samples")
    out = np.interp(centre_y, ys, ts)
    lo_slope = (ts[1] - ts[0]) / max(ys[1] - ys[0], 1e-9)
    hi_slope = (ts[-1] - ts[-2]) / max(ys[-1] - ys[-2], 1e-9)
    below, above = centre_y < ys[0], centre_y > ys[-1]
    out[below] = ts[0] + (centre_y[below] - ys[0]) * lo_slope
    out[above] = ts[-1] + (centre_y[above] - ys[-1]) * hi_slope
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class Coverage:
    """How much of one fragment the air covered.

    width_share:  share of its occupied x bins with at least one hit point.
    length_share: share of its occupied y bins with at least one hit point.
    hit_share:    share of footprint points hit.
    run_keys:     (K,) int64 keys (``run_key`` of the rows) of the runs that hit it.
    run_hit_share:(K,) share of points hit by each of those runs.
    hit_u_centre: mean along-belt position of the hit points relative to the
                  footprint (0 = leading edge, 1 = trailing edge), NaN if none.
    """

    width_share: float
    length_share: float
    hit_share: float
    run_keys: np.ndarray
    run_hit_share: np.ndarray
    hit_u_centre: float

    def ejected(self, cover_width_frac: float, cover_length_frac: float) -> bool:
        return (
            self.hit_share > 0
            and self.width_share >= cover_width_frac - 1e-9
            and self.length_share >= cover_length_frac - 1e-9
        )


def _miss() -> Coverage:
    return Coverage(0.0, 0.0, 0.0, np.zeros(0, np.int64), np.zeros(0), float("nan"))


def coverage(
    point_x_mm: np.ndarray,
    point_dy_mm: np.ndarray,
    point_tick: np.ndarray,
    runs: AirRuns,
    grid_mm: float,
    run_key: np.ndarray | None = None,
) -> Coverage:
    """Coverage of one footprint by ``runs``.

    point_x_mm:  (P,) belt x of each footprint point when it crosses the line.
    point_dy_mm: (P,) its y offset from the fragment centre (downstream +).
    point_tick:  (P,) tick at which it crosses the valve line.
    grid_mm:     the footprint's sampling pitch (bins for width and length).
    run_key:     (N,) int64 which run each row of ``runs`` belongs to
                 (default ``runs.run_row``); shares are reported per key.
    """
    n_pts = point_x_mm.shape[0]
    if n_pts == 0:
        raise ValueError("coverage of an empty footprint")
    key = runs.run_row if run_key is None else np.asarray(run_key, np.int64)
    near = (
        (runs.x_right_mm >= point_x_mm.min())
        & (runs.x_left_mm <= point_x_mm.max())
        & (runs.off_tick >= point_tick.min())
        & (runs.on_tick <= point_tick.max())
    )
    if not near.any():
        return _miss()
    runs, key = runs.rows(near), key[near]
    x, t = point_x_mm[:, None], point_tick[:, None]
    hit_by = (
        (x >= runs.x_left_mm[None, :])
        & (x <= runs.x_right_mm[None, :])
        & (t >= runs.on_tick[None, :])
        & (t <= runs.off_tick[None, :])
    )
    hit = hit_by.any(axis=1)
    if not hit.any():
        return _miss()
    keys = np.unique(key[hit_by.any(axis=0)])
    shares = np.array([hit_by[:, key == k].any(axis=1).mean() for k in keys])
    xb = np.floor(point_x_mm / grid_mm).astype(np.int64)
    yb = np.floor(point_dy_mm / grid_mm).astype(np.int64)
    width = np.unique(xb[hit]).size / np.unique(xb).size
    length = np.unique(yb[hit]).size / np.unique(yb).size
    lead, trail = point_dy_mm.max(), point_dy_mm.min()
    u_rel = (lead - point_dy_mm[hit].mean()) / max(lead - trail, 1e-9)
    return Coverage(float(width), float(length), float(hit.mean()), keys, shares, float(u_rel))
