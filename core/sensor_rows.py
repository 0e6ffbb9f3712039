"""``SensorRows``: sample rows of a second sensor across the belt (DESIGN.md,
"Second sensors"), e.g. a bar of induction coils.

A row is one sample of every channel at one encoder count. Values are the
sensor's own units (for the induction bar: the coil's change of impedance,
in-phase = reactive, quadrature = resistive, both scaled so that a large copper
plate covering one coil at nominal lift-off reads about -1000 in-phase).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from core.batch import Batch, Schema

__all__ = ["SensorRows"]


@dataclasses.dataclass(frozen=True, slots=True)
class SensorRows(Batch):
    """Sample rows, oldest first.

    tick:       (N,) int64 encoder count of each row (unwrapped), strictly rising.
    in_phase:   (N, C) float32 per channel, sensor units.
    quadrature: (N, C) float32 per channel, sensor units.
    """

    tick: np.ndarray
    in_phase: np.ndarray
    quadrature: np.ndarray

    _SCHEMA: ClassVar[Schema] = {
        "tick": (np.int64, ()),
        "in_phase": (np.float32, (-1,)),
        "quadrature": (np.float32, (-1,)),
    }

    def __post_init__(self) -> None:
        Batch.__post_init__(self)
        if self.in_phase.shape != self.quadrature.shape:
            raise ValueError(
                f"SensorRows: in_phase {self.in_phase.shape} and quadrature "
                f"{self.quadrature.shape} differ in shape"
            )
        if len(self) > 1 and not np.all(np.diff(self.tick) > 0):
            raise ValueError("SensorRows.tick must rise strictly from row to row")
        if len(self) and not (
            np.isfinite(self.in_phase).all() and np.isfinite(self.quadrature).all()
        ):
            raise ValueError("SensorRows holds NaN or infinity")

    @property
    def channels(self) -> int:
        return int(self.in_phase.shape[1])
