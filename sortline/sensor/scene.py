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
from control.kernels_fusion import N_INTEGRALS, FusionParams, _footprint_integrals
from core.frame import Frame
from sim.plant.induction import InductionBar, InductionSensor
from sim.plant.plant import IdlePlc, VirtualPlant
from sim.plant.scenario import Scenario
from sortline.sensor.ring import RowRing

__all__ = ["SensorScene", "fusion_params", "integrate"]

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
    )


def integrate(
    ring: RowRing, params: FusionParams, extent_mm: np.ndarray, active: np.ndarray, t_now: int
) -> np.ndarray:
    """(n, N_INTEGRALS) footprint integrals of ``extent_mm`` (n, 4) x0, x1, y0, y1 belt
    mm at unwrapped count ``t_now`` (the ring's count space); ``active`` (n,) bool."""
    n = extent_mm.shape[0]
    out = np.zeros((n, N_INTEGRALS))
    first, end = ring.window()
    e = np.ascontiguousarray(extent_mm, np.float64)
    _footprint_integrals(
        ring.tick, ring.in_phase, ring.quadrature, first, end,
        np.ascontiguousarray(e[:, 0]), np.ascontiguousarray(e[:, 1]),
        np.ascontiguousarray(e[:, 2]), np.ascontiguousarray(e[:, 3]),
        np.ascontiguousarray(active, np.bool_), float(t_now), params, out,
    )  # fmt: skip
    return out


@dataclasses.dataclass
class SensorScene:
    plant: VirtualPlant
    sensor: InductionSensor
    ring: RowRing
    params: FusionParams

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
        ring = RowRing(bar.channels, capacity=ring_rows, guard=1)
        return cls(plant, sensor, ring, fusion_params(bar, mpt))

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

    def integrals(self, extent_mm: np.ndarray, active: np.ndarray) -> np.ndarray:
        """``integrate`` at the plant's present encoder count."""
        return integrate(self.ring, self.params, extent_mm, active, self.plant.tick_unwrapped)
