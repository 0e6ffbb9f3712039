"""Synthetic detection streams: rectangles riding the belt, seen by an ideal camera.

For tests and ``bench/decision.py`` (not the hot path). Each object has a box
of half sizes (hx, hu) mm, a centre x mm across the belt, a belt position u mm
(``y = u + travel``) and an optional drift; the camera reports the part of each
box inside its view, clipped at the view's edges, with class probabilities
that favour the true class.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

from calibration.geometry import LineGeometry
from core.ticks import wrap_tick
from core.types import Detections

__all__ = ["BeltObjects", "SyntheticCamera", "random_objects"]


@dataclasses.dataclass(frozen=True)
class BeltObjects:
    """Ground truth, (N,) arrays: x_mm, u_mm (belt position at tick 0 travel),
    hx_mm, hu_mm, vx_mm_tick, vu_mm_tick, cls (int64 class id)."""

    x_mm: np.ndarray
    u_mm: np.ndarray
    hx_mm: np.ndarray
    hu_mm: np.ndarray
    vx_mm_tick: np.ndarray
    vu_mm_tick: np.ndarray
    cls: np.ndarray

    def __len__(self) -> int:
        return int(self.x_mm.shape[0])

    def at(self, rel_tick: float) -> tuple[np.ndarray, np.ndarray]:
        """(x, u) centres at ``rel_tick`` ticks after the stream start."""
        return self.x_mm + self.vx_mm_tick * rel_tick, self.u_mm + self.vu_mm_tick * rel_tick


def random_objects(
    geometry: LineGeometry,
    n: int,
    u_span_mm: tuple[float, float],
    n_classes: int,
    seed: int,
    size_mm: tuple[float, float] = (10.0, 60.0),
    drift_mm_tick: float = 0.0,
    min_gap_mm: float = 4.0,
) -> BeltObjects:
    """``n`` boxes with u in ``u_span_mm`` spread over the belt width.

    Placed on a jittered grid so that boxes keep at least ``min_gap_mm`` apart
    (sizes are capped to the grid cell)."""
    rng = np.random.default_rng(seed)
    width = geometry.belt.width_mm
    u_lo, u_hi = u_span_mm
    area = width * (u_hi - u_lo)
    cell = float(np.sqrt(area / max(n, 1)))
    nx = max(int(width // cell), 1)
    ny = int(np.ceil(n / nx))
    cell_x, cell_u = width / nx, (u_hi - u_lo) / ny
    idx = rng.permutation(nx * ny)[:n]
    gx, gu = idx % nx, idx // nx
    max_h = np.array([cell_x, cell_u]) / 2.0 - min_gap_mm / 2.0
    size = rng.uniform(size_mm[0], size_mm[1], (n, 2)) / 2.0
    hx = np.clip(size[:, 0], 1.0, max(max_h[0], 1.0))
    hu = np.clip(size[:, 1], 1.0, max(max_h[1], 1.0))
    x = (gx + 0.5) * cell_x + rng.uniform(-1, 1, n) * np.maximum(
        cell_x / 2 - hx - min_gap_mm / 2, 0
    )
    u = u_lo + (gu + 0.5) * cell_u
    u = u + rng.uniform(-1, 1, n) * np.maximum(cell_u / 2 - hu - min_gap_mm / 2, 0)
    v = rng.normal(0.0, drift_mm_tick, (n, 2)) if drift_mm_tick > 0 else np.zeros((n, 2))
    return BeltObjects(x, u, hx, hu, v[:, 0], v[:, 1], rng.integers(0, n_classes, n))


class SyntheticCamera:
    """Renders ``BeltObjects`` into ``Detections`` at successive frames.

    p_true:        probability reported for the true class.
    noise_mm:      sigma of Gaussian noise on box edges.
    keep_probs:    emit (N, K) class_prob (else class_id + confidence only).
    """

    def __init__(
        self,
        geometry: LineGeometry,
        objects: BeltObjects,
        n_classes: int,
        p_true: float = 0.8,
        noise_mm: float = 0.0,
        keep_probs: bool = True,
        seed: int = 0,
        start_tick: int = 0,
    ) -> None:
        self.geometry = geometry
        self.objects = objects
        self.n_classes = n_classes
        self.p_true = p_true
        self.noise_mm = noise_mm
        self.keep_probs = keep_probs
        self.rng = np.random.default_rng(seed)
        self.start_tick = start_tick
        self.frame_ticks = geometry.belt.ticks_per_s() / geometry.camera.fps

    def tick_of(self, frame_id: int) -> int:
        """Unwrapped encoder count of frame ``frame_id``."""
        return self.start_tick + round(frame_id * self.frame_ticks)

    def frame(self, frame_id: int) -> tuple[Detections, np.ndarray]:
        """Detections of frame ``frame_id`` and the object index of each row."""
        tick = self.tick_of(frame_id)
        rel = tick - self.start_tick
        travel = rel * self.geometry.belt.mm_per_tick
        top, bottom = self.geometry.camera.view_y_range_mm
        ob = self.objects
        x, u = ob.at(rel)
        y = u + travel
        y0 = np.maximum(y - ob.hu_mm, top)
        y1 = np.minimum(y + ob.hu_mm, bottom)
        vis = np.nonzero(y1 - y0 > 0.5)[0]
        n = vis.shape[0]
        box = np.stack([x[vis] - ob.hx_mm[vis], x[vis] + ob.hx_mm[vis], y0[vis], y1[vis]], 1)
        if self.noise_mm > 0 and n:  # edges cut by the view stay exactly on it
            cut = np.stack(
                [np.zeros(n, bool), np.zeros(n, bool), y0[vis] <= top, y1[vis] >= bottom], 1
            )
            box += np.where(cut, 0.0, self.rng.normal(0.0, self.noise_mm, box.shape))
            box[:, 2] = np.maximum(box[:, 2], top)
            box[:, 3] = np.minimum(box[:, 3], bottom)
            box[:, 1] = np.maximum(box[:, 1], box[:, 0] + 0.5)
            box[:, 3] = np.maximum(box[:, 3], box[:, 2] + 0.5)
        k = self.n_classes
        cls = ob.cls[vis]
        rest = (1.0 - self.p_true) / max(k - 1, 1)
        prob = np.full((n, k), rest, np.float32)
        prob[np.arange(n), cls] = self.p_true
        cam = self.geometry.camera
        col0, row0 = cam.mm_to_px(box[:, 0], box[:, 2])
        col1, row1 = cam.mm_to_px(box[:, 1], box[:, 3])
        sides = np.stack([box[:, 1] - box[:, 0], box[:, 3] - box[:, 2]], axis=1)
        dets = Detections(
            frame_id=frame_id,
            tick=wrap_tick(tick),
            bbox_px=np.stack([col0, row0, col1, row1], 1).astype(np.float32),
            centroid_mm=np.stack([box[:, :2].mean(1), box[:, 2:].mean(1)], 1),
            extent_mm=box,
            area_mm2=((box[:, 1] - box[:, 0]) * (box[:, 3] - box[:, 2])).astype(np.float32),
            class_id=cls.astype(np.int16),
            confidence=np.full(n, self.p_true, np.float32),
            class_prob=prob if self.keep_probs else np.zeros((n, 0), np.float32),
            # the box's sides as vision's moment-equivalent size (the tracker keeps it)
            axes_mm=np.sort(sides, axis=1).astype(np.float32),
        )
        return dets, vis

    def frames(self, n_frames: int) -> Iterator[tuple[Detections, np.ndarray]]:
        for f in range(n_frames):
            yield self.frame(f)

    def crossing_ticks(self) -> tuple[np.ndarray, np.ndarray]:
        """True unwrapped ticks at which each leading edge reaches the valve line
        and each trailing edge leaves it (no along-belt drift assumed)."""
        mpt = self.geometry.belt.mm_per_tick
        yv = self.geometry.valves.y_valve_mm
        ob = self.objects
        on = self.start_tick + (yv - ob.u_mm - ob.hu_mm) / (mpt + ob.vu_mm_tick)
        off = self.start_tick + (yv - ob.u_mm + ob.hu_mm) / (mpt + ob.vu_mm_tick)
        return on, off
