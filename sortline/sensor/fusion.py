"""``SensorFusion``: the induction bar's evidence added to the tracks' camera evidence.

Hooked into ``control.controller.Controller`` (``set_evidence_hook``): after
the tracker's step, each confirmed, undecided track's footprint (its x and u
extent, at the frame's encoder count) is moved back to where it crossed the
bar by the track's own velocity relative to the belt (a rolling or sliding
piece is not where the belt alone would have carried it; a track that has moved
on the belt since its first trusted views keeps the bar position projected
back then, ``sortline.sensor.anchor``: a slider that has stopped since has no
velocity left to project with), integrated over the
rows and channels it crossed (``control.kernels_fusion``; the bar line from
config or calibration), the track's size from the camera (``TrackTable.AX``,
the median of its segments' moment-equivalent sides: read by models from
``induction-v4``) is put beside them, the induction model turns the integrals into
per-class log probabilities, and the track's outlook (class, probability,
fraction, target) is recomputed from

    (a_c x mean camera log-probability per view / T
     + weight x (b_c x w x max(log p_sensor, log floor) + d_c)) / (1 + damping x shared)

(T, w and per class a_c, b_c, d_c: the model's fitted combination,
``InductionModel.combination``; ``weight``: ``[sensor] weight``, 1 = as
fitted; ``damping``: ``[sensor] shared_damping``, shared: the share of the
footprint's cells other footprints cover too: a mostly shared footprint's
outlook is flattened, less sure, so a recipe's threshold holds it back; the
class it points to does not change). Touching fragments share cells: the kernel solves every
footprint's amplitude jointly (least squares over the cells they cover), and
the model sees the share of shared cells among its features. A track whose
rows are not all in the ring yet, or any track while the sensor is stalled,
keeps the camera's outlook alone; while stalled, a track whose target class is
one of ``needs_sensor`` (classes the camera alone must not eject, e.g.
aluminium where stainless looks the same) is sent to the pass fraction instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from control.evidence import pools
from control.kernels_evidence import _outlook_finish
from control.kernels_fusion import (
    N_INTEGRALS,
    FusionParams,
    _footprints,
    _integrate_fuse,
    dense_layers,
)
from models.induction import NOISE_UNITS, InductionModel
from sortline.sensor.anchor import BarAnchors
from sortline.sensor.ring import RowRing

__all__ = ["MAX_REL_SPEED", "SensorFusion", "camera_term", "flatten_shared", "sensor_term"]

LOG_FLOOR = float(np.log(1e-3))  # the sensor never says less than 1e-3 of any class
MAX_REL_SPEED = 0.5  # |velocity relative to the belt| / belt speed trusted for back-projection
# a track's bar position is taken at its first confirmed frame with ANCHOR_VIEWS views, of
# which ANCHOR_WHOLE_VIEWS were wholly in the image (``AXN``; ``sortline.sensor.anchor``)
ANCHOR_VIEWS = 4
ANCHOR_WHOLE_VIEWS = 2


class _Health(Protocol):
    def stalled(self, now_s: float | None = None) -> bool: ...


def sensor_term(
    model: InductionModel, class_names: Sequence[str], integrals: np.ndarray, weight: float
) -> np.ndarray:
    """(n, K) evidence to add to the camera's term (``camera_term``), in
    ``class_names`` order (classes the model does not know get 0) from integrals
    (n, N_INTEGRALS): weight x (b_c x w x max(log p_sensor, log floor) + d_c), the
    model's fitted combination (``InductionModel.combination``); ``weight``
    (``[sensor] weight``) multiplies it all."""
    n = integrals.shape[0]
    out = np.zeros((n, len(class_names)))
    if n == 0:
        return out
    logp = np.maximum(model.log_probs(integrals), LOG_FLOOR)
    _, sens, bias = model.combination(class_names)
    for j, name in enumerate(class_names):
        if name in model.class_names:
            out[:, j] = weight * (sens[j] * logp[:, model.class_names.index(name)] + bias[j])
    return out


def camera_term(
    model: InductionModel, class_names: Sequence[str], mean_logp: np.ndarray
) -> np.ndarray:
    """(n, K) the camera's part of the fused score from its mean log-probability
    per view (n, K): a_c / T per class (``InductionModel.combination``)."""
    cam, _, _ = model.combination(class_names)
    return np.asarray(mean_logp, np.float64) * cam


def flatten_shared(scores: np.ndarray, shared: np.ndarray, damping: float) -> np.ndarray:
    """(n, K) fused scores divided by 1 + ``damping`` x ``shared`` (n,) per row
    (the kernel's flattening of mostly shared footprints)."""
    return scores / (1.0 + damping * np.asarray(shared, np.float64))[:, None]


class SensorFusion:
    """ring: the reader's rows; health: the reader (``stalled``), None = always healthy;
    params: bar geometry; model, weight: the sensor's evidence; shared_damping:
    the flattening of shared footprints (see module doc)."""

    def __init__(
        self,
        ring: RowRing,
        params: FusionParams,
        model: InductionModel,
        class_names: Sequence[str],
        weight: float = 1.0,
        health: _Health | None = None,
        needs_sensor: Sequence[str] = (),
        shared_damping: float = 0.0,
        anchor_views: int = ANCHOR_VIEWS,
    ) -> None:
        if not shared_damping >= 0:
            raise ValueError(f"sensor.shared_damping must be >= 0, got {shared_damping}")
        if anchor_views < 0:
            raise ValueError(f"sensor anchor_views must be >= 0, got {anchor_views}")
        unknown = sorted(set(needs_sensor) - set(class_names))
        if unknown:
            raise ValueError(f"sensor.needs_sensor names unknown classes {unknown}")
        if model.frequencies_read > params.n_freq or ring.channels % params.n_freq:
            raise ValueError(
                f"sensor: the model reads {model.frequencies_read} frequencies, the bar gives "
                f"{params.n_freq} (ring of {ring.channels} values per row)"
            )
        self.ring = ring
        self.params = params
        self.model = model
        self.class_names = tuple(class_names)
        self.weight = float(weight)
        self.health = health
        self.fused_rows = 0  # track updates that used the sensor (a counter)
        self.skipped_stalled = 0  # frames the sensor was stalled
        self.held_back = 0  # track updates whose target the stall sent to pass
        self._needs = np.array([c in set(needs_sensor) for c in self.class_names], np.bool_)
        self._cmap = np.array(
            [model.class_names.index(c) if c in model.class_names else -1 for c in class_names],
            np.int64,
        )
        self._grow(256)
        self.last_integrals = np.zeros((0, N_INTEGRALS))
        self._layers = dense_layers(model.layers)
        self.shared_damping = float(shared_damping)
        self._n_placed = 0
        self.anchor_views = int(anchor_views)  # 0: no anchors (back-projected every frame)
        self.anchors = BarAnchors()
        self._new_bar_line = False
        cam, sens, bias = model.combination(self.class_names)
        self._comb = (cam, self.weight * sens, self.weight * bias, LOG_FLOOR, self.shared_damping)

    def _grow(self, cap: int) -> None:
        """Scratch for ``cap`` tracks: integrals, footprints, velocities, masks, rows, logits."""
        self._buf = np.zeros((cap, N_INTEGRALS))
        self._ext = np.zeros((4, cap))
        self._vel = np.zeros((2, cap))
        self._want = np.zeros(cap, np.bool_)
        self._ready = np.zeros(cap, np.bool_)
        self._rows = np.zeros(cap, np.int64)
        self._logits = np.zeros((cap, len(self.class_names)))

    def _hold_back(self, table: Any, n: int) -> None:
        """Camera alone: undecided tracks aimed at a class that needs the sensor pass."""
        if not self._needs.any():
            return
        tcls = table.TCLS[:n]
        hold = (table.DEC[:n] == 0) & (tcls >= 0)
        hold[hold] = self._needs[tcls[hold]]
        table.FRAC[:n][hold] = -1
        table.TCLS[:n][hold] = -1
        self.held_back += int(hold.sum())

    def needs_sensor_names(self) -> list[str]:
        """The classes held back while the sensor is stalled."""
        return [c for c, need in zip(self.class_names, self._needs.tolist(), strict=True) if need]

    @property
    def last_centres(self) -> np.ndarray:
        """(n, 2) x, y (belt mm at the last frame's count) of the footprints the
        last ``apply`` integrated, moved back to the bar, in ``TrackTable`` rows
        (a bench's view: ``bench/bar_anchor.py``)."""
        e = self._ext[:, : self._n_placed]
        return np.stack([0.5 * (e[0] + e[1]), 0.5 * (e[2] + e[3])], axis=1)

    def set_params(self, params: FusionParams) -> None:
        """A new bar geometry (a calibration of its offset), from the next frame."""
        self.params = params
        self._new_bar_line = True  # the anchors were placed on the old one: the loop drops them

    def apply(
        self,
        table: Any,
        tick_u32: int,
        travel_mm: float,
        cls_frac: np.ndarray,
        threshold: np.ndarray,
        order: np.ndarray,
        pool: np.ndarray | None = None,
    ) -> None:
        """Recompute the outlook of the tracks the sensor has seen (``TrackTable``
        rows 0..n-1, u extents at belt travel ``travel_mm``, frame count ``tick_u32``;
        ``pool``: the recipe's class pools, ``Recipe.pool``, None: none)."""
        n = int(table.n)
        if n == 0 or self._new_bar_line:
            self._new_bar_line = False
            self.anchors.clear()  # after a tracker's reset, or on a new bar line
        if n == 0 or self.ring.count == 0:
            return
        if self.health is not None and self.health.stalled():
            self.skipped_stalled += 1
            self._hold_back(table, n)
            return
        if self._buf.shape[0] < n:
            self._grow(max(n, 2 * self._buf.shape[0]))
        self._n_placed = n
        p = self.params
        per_mm = 1.0 / p.mm_per_tick  # velocities mm per count -> mm per mm of travel
        _footprints(
            table.X, table.H, table.CONF, table.DEC, table.NEV, table.NVIEW, table.AXN, n,
            float(travel_mm), per_mm, p.y_bar_mm, MAX_REL_SPEED,
            self.anchor_views, ANCHOR_WHOLE_VIEWS, self._ext, self._vel, self._want, self._ready,
        )  # fmt: skip
        if self.anchor_views:
            e = self._ext
            self.anchors.place_extents(
                e[0, :n], e[1, :n], e[2, :n], e[3, :n], travel_mm, table.TID[:n],
                table.X[:n, 0], table.X[:n, 1], self._ready[:n],
            )  # fmt: skip
        first, end = self.ring.window()
        m = self.model
        fused = _integrate_fuse(
            self.ring.tick, self.ring.in_phase, self.ring.quadrature, first, end, self._ext,
            self._want, n, float(self.ring.unwrap(tick_u32)), p, table.AX, self._buf,
            self._rows, table.EV, table.NEV, m.mean, m.scale, self._layers, self._cmap,
            self._comb, NOISE_UNITS, self._logits,
        )  # fmt: skip
        self.last_integrals = self._buf[:n]
        if fused == 0:
            return
        logits = self._logits[:fused]
        np.exp(logits, out=logits)
        _outlook_finish(
            logits, self._rows[:fused], table.NEV, cls_frac, threshold, order,
            pools(pool, logits.shape[1]), table.CLS, table.CPROB, table.FRAC, table.TCLS,
        )  # fmt: skip
        self.fused_rows += fused
