"""A virtual-plant scene with its induction bar, for training and evaluation.

The plant, its bar (``sim.plant.induction``) and a ``RowRing`` that keeps the
whole scene's rows (the controller's own baseline tracking); ``integrals``
runs the controller's fusion kernel over footprints at the plant's present
encoder count, exactly as the frame loop does over tracks.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from calibration.geometry import LineGeometry
from control.kernels_fusion import (
    F_MAJOR,
    F_MINOR,
    N_INTEGRALS,
    FusionParams,
    _back_project,
    _footprint_integrals,
)
from core.frame import Frame
from sim.plant.induction import InductionBar, InductionSensor
from sim.plant.plant import IdlePlc, VirtualPlant
from sim.plant.scenario import Scenario
from sortline.sensor.anchor import BarAnchors
from sortline.sensor.fusion import MAX_REL_SPEED
from sortline.sensor.ring import RowRing

__all__ = [
    "SensorScene",
    "SizeBook",
    "VelocityBook",
    "footprint_axes",
    "fusion_params",
    "integrate",
]

MARGIN_MM = 10.0  # around a footprint: the coil's reach beyond the piece's edge
SIGNAL_UNITS = 12.0  # a cell above this |I + jQ| is signal (4 noise sigmas)


def fusion_params(
    bar: InductionBar, mm_per_tick: float, y_bar_mm: float | None = None
) -> FusionParams:
    """The kernel's parameters for ``bar`` (``y_bar_mm``: a calibrated bar line)."""
    return FusionParams(
        y_bar_mm=bar.y_bar_mm if y_bar_mm is None else y_bar_mm,
        mm_per_tick=mm_per_tick,
        x_first_mm=bar.x_first_mm,
        pitch_mm=bar.pitch_mm,
        margin_x_mm=MARGIN_MM,
        margin_y_mm=MARGIN_MM,
        signal_units=SIGNAL_UNITS,
        row_ticks=float(bar.every_ticks),
        coil_sigma_mm=bar.coil_radius_mm,
        crosstalk=bar.crosstalk,
        n_freq=len(bar.frequencies_hz),
    )


def integrate(
    ring: RowRing,
    params: FusionParams,
    extent_mm: np.ndarray,
    active: np.ndarray,
    t_now: int,
    rel_velocity: np.ndarray | None = None,
    axes_mm: np.ndarray | None = None,
    anchors: tuple[BarAnchors, np.ndarray, np.ndarray, float] | None = None,
) -> np.ndarray:
    """(n, N_INTEGRALS) footprint integrals of ``extent_mm`` (n, 4) x0, x1, y0, y1 belt
    mm at unwrapped count ``t_now`` (the ring's count space); ``active`` (n,) bool;
    ``rel_velocity`` (n, 2): vx, vu relative to the belt in mm per mm of travel (the
    footprints are moved back to where they crossed the bar, as ``SensorFusion`` does);
    ``axes_mm`` (n, 2): the camera's minor and major length of each piece (the
    track's size; None or NaN: not known), put in ``F_MINOR``, ``F_MAJOR``;
    ``anchors`` (book, ids (n,), ready (n,), travel mm): after the back-projection,
    each footprint is placed by its id's anchor (``BarAnchors.place_extents``), as
    ``SensorFusion`` does."""
    n = extent_mm.shape[0]
    out = np.zeros((n, N_INTEGRALS))
    first, end = ring.window()
    e = np.array(extent_mm, np.float64, order="F").reshape(n, 4)
    if rel_velocity is not None:
        v = np.asarray(rel_velocity, np.float64).reshape(n, 2)
        x0, x1, y0, y1 = (np.array(e[:, k]) for k in range(4))  # copies: e stays as given
        _back_project(
            x0, x1, y0, y1, np.ascontiguousarray(v[:, 0]), np.ascontiguousarray(v[:, 1]),
            params.y_bar_mm, MAX_REL_SPEED,
        )  # fmt: skip
        if anchors is not None:
            book, ids, ready, travel_mm = anchors
            now_x, now_u = 0.5 * (e[:, 0] + e[:, 1]), 0.5 * (e[:, 2] + e[:, 3]) - travel_mm
            book.place_extents(x0, x1, y0, y1, travel_mm, ids, now_x, now_u, ready)
        e = np.stack([x0, x1, y0, y1], axis=1)
    _footprint_integrals(
        ring.tick, ring.in_phase, ring.quadrature, first, end,
        np.ascontiguousarray(e[:, 0]), np.ascontiguousarray(e[:, 1]),
        np.ascontiguousarray(e[:, 2]), np.ascontiguousarray(e[:, 3]),
        np.ascontiguousarray(active, np.bool_), float(t_now), params, out,
    )  # fmt: skip
    if axes_mm is not None:
        out[:, [F_MINOR, F_MAJOR]] = np.asarray(axes_mm, np.float64).reshape(n, 2)
    return out


@dataclasses.dataclass
class SensorScene:
    plant: VirtualPlant
    sensor: InductionSensor
    ring: RowRing
    params: FusionParams
    grid_mm: float = 0.0  # the plant's footprint sample grid (``footprint_axes``)

    @classmethod
    def build(
        cls,
        geometry: LineGeometry,
        scenario: Scenario,
        seed: int,
        bar: InductionBar | None = None,
        ring_rows: int = 1 << 16,
    ) -> SensorScene:
        bar = bar or InductionBar()
        plant = VirtualPlant(geometry, scenario, IdlePlc(), seed=seed)
        step = max(1, round(scenario.ejection.grid_mm / plant.mm_per_px)) * plant.mm_per_px
        mpt = geometry.belt.mm_per_tick
        sensor = InductionSensor(bar, mpt, scenario.motion.encoder_start, step * step, seed)
        plant.sensors.append(sensor)
        ring = RowRing(bar.values_per_row, capacity=ring_rows, guard=1)
        return cls(plant, sensor, ring, fusion_params(bar, mpt), step)

    def _take_rows(self) -> None:
        rows = self.sensor.drain()
        if len(rows):
            self.ring.append(
                (rows.tick % (1 << 32)).astype(np.uint32), rows.in_phase, rows.quadrature
            )

    def step(self) -> Frame:
        """One camera frame (rendered), the rows up to it in the ring."""
        frame = self.plant.step()
        self._take_rows()
        return frame

    def run_for(self, dt_s: float) -> None:
        """Belt and bar without a camera frame."""
        self.plant.run_for(dt_s)
        self._take_rows()

    def integrals(
        self,
        extent_mm: np.ndarray,
        active: np.ndarray,
        rel_velocity: np.ndarray | None = None,
        axes_mm: np.ndarray | None = None,
        anchors: tuple[BarAnchors, np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """``integrate`` at the plant's present encoder count (``anchors``: book,
        ids, ready; at the plant's present travel)."""
        placed = None if anchors is None else (*anchors, self.plant.travel_mm)
        return integrate(
            self.ring, self.params, extent_mm, active, self.plant.tick_unwrapped, rel_velocity,
            axes_mm, placed,
        )  # fmt: skip


class VelocityBook:
    """A fragment's velocity relative to the belt from its last ``keep`` centres, as
    a tracker estimates it (training and evaluation have no tracker): a
    least-squares line through (travel, x) and (travel, u) per id."""

    def __init__(self, keep: int = 8) -> None:
        self.keep = keep
        self._seen: dict[int, list[tuple[float, float, float]]] = {}

    def add(self, ids: np.ndarray, travel_mm: float, x_mm: np.ndarray, y_mm: np.ndarray) -> None:
        """Centres (belt x, camera-frame y) of ``ids`` at belt travel ``travel_mm``."""
        for i, x, y in zip(ids.tolist(), x_mm.tolist(), y_mm.tolist(), strict=True):
            h = self._seen.setdefault(int(i), [])
            h.append((travel_mm, x, y - travel_mm))
            del h[: -self.keep]

    def velocity(self, ids: np.ndarray) -> np.ndarray:
        """(n, 2) vx, vu in mm per mm of travel (0 with fewer than 3 centres)."""
        out = np.zeros((ids.shape[0], 2))
        for k, i in enumerate(ids.tolist()):
            h = self._seen.get(int(i), [])
            if len(h) < 3:
                continue
            a = np.asarray(h)
            t = a[:, 0] - a[:, 0].mean()
            den = float((t * t).sum())
            if den > 0:
                out[k] = (t @ (a[:, 1:] - a[:, 1:].mean(axis=0))) / den
        return out

    def count(self, ids: np.ndarray) -> np.ndarray:
        """(n,) int64 centres kept per id."""
        return np.array([len(self._seen.get(int(i), ())) for i in ids.tolist()], np.int64)

    def forget(self, keep_ids: set[int]) -> None:
        self._seen = {k: v for k, v in self._seen.items() if k in keep_ids}


class SizeBook:
    """A fragment's size as the tracker keeps it (``control.tracker.SIZE_VIEWS``,
    ``TrackTable.AX``): the median, per axis, of its last ``keep`` sizes (minor,
    major mm) from views wholly in the image; NaN before the first."""

    def __init__(self, keep: int = 5) -> None:
        self.keep = keep
        self._seen: dict[int, list[tuple[float, float]]] = {}

    def add(self, ids: np.ndarray, axes_mm: np.ndarray) -> None:
        """Sizes (n, 2) of ``ids`` (n,) in this frame; non-finite ones are left out."""
        for i, (a, b) in zip(ids.tolist(), np.asarray(axes_mm).tolist(), strict=True):
            if np.isfinite(a) and np.isfinite(b):
                h = self._seen.setdefault(int(i), [])
                h.append((a, b))
                del h[: -self.keep]

    def size(self, ids: np.ndarray) -> np.ndarray:
        """(n, 2) minor, major mm per id (NaN with none yet)."""
        out = np.full((ids.shape[0], 2), np.nan)
        for k, i in enumerate(ids.tolist()):
            h = self._seen.get(int(i))
            if h:
                out[k] = np.median(np.asarray(h), axis=0)
        return out

    def forget(self, keep_ids: set[int]) -> None:
        self._seen = {k: v for k, v in self._seen.items() if k in keep_ids}


def footprint_axes(fx_mm: np.ndarray, fy_mm: np.ndarray, step_mm: float) -> tuple[float, float]:
    """Minor and major full length, mm, of the moment-equivalent rectangle of a
    footprint sampled on a ``step_mm`` grid (each sample a step x step square):
    what ``vision.segment.segment_axes_mm`` measures of the piece's segment."""
    if fx_mm.size == 0:
        return float("nan"), float("nan")
    a = float(np.var(fx_mm)) + step_mm * step_mm / 12.0
    d = float(np.var(fy_mm)) + step_mm * step_mm / 12.0
    b = float(np.mean((fx_mm - fx_mm.mean()) * (fy_mm - fy_mm.mean())))
    mid, half = 0.5 * (a + d), float(np.hypot(0.5 * (a - d), b))
    return float(np.sqrt(12.0 * max(mid - half, 0.0))), float(np.sqrt(12.0 * (mid + half)))
