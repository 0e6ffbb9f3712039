"""Training data of the induction model: footprint integrals from the plant's truth.

Randomised training scenes (``sortline.training_data.training_scenes``, seeds
below ``EVAL_SEED_BASE``, none of the named presets) run without rendering;
every ``every`` frames each fragment wholly in the camera's view gives one
sample: its true footprint's bounding box in belt mm, each edge moved by
``edge_sigma_mm`` of noise (what segmentation and tracking give), moved back
by its velocity relative to the belt (fitted to the centres of its last 8
noisy boxes in view, as the tracker's) and integrated over the bar's rows by the
controller's own kernel, with every other fragment in view sharing cells as
tracks do. Each sample also carries the piece's size as the camera gives
it (``F_MINOR``, ``F_MAJOR``: the moment-equivalent sides of its true
footprint, ``scene.footprint_axes``, times a per-fragment error drawn once,
log-normal with the bias and spread the camera's tracked size shows against
that truth: ``size_bias``, ``size_sigma``, models/induction-v4.md). Fragments fed with part of their
footprint already past the bar are left out (a real line feeds upstream of
both sensors; the plant's feeder drops them close to the camera's view).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from calibration.geometry import LineGeometry
from core.classes import DEFAULT_CLASSES
from sim.plant.induction import InductionBar
from sortline.sensor.scene import SensorScene, VelocityBook, footprint_axes
from sortline.training_data import SceneSpec

__all__ = [
    "CAMERA_SIZE_BIAS",
    "CAMERA_SIZE_SIGMA",
    "SensorSamples",
    "sensor_samples",
    "size_errors",
    "truth_extents",
]

Progress = Callable[[str], None]

# the camera's tracked size against the true footprint's (log ratio, minor axis;
# the major's is 0.03 / 0.05): median and robust spread on seeds 3001-3003
# (default, crowded, easy; models/induction-v4.md)
CAMERA_SIZE_BIAS = 0.055
CAMERA_SIZE_SIGMA = 0.08


@dataclasses.dataclass(frozen=True)
class SensorSamples:
    """integrals (n, N_INTEGRALS) float64; labels (n,) int64 into ``DEFAULT_CLASSES``;
    group (n,) scene index; fragment (n,) id in its scene."""

    integrals: np.ndarray
    labels: np.ndarray
    group: np.ndarray
    fragment: np.ndarray

    @classmethod
    def concat(cls, parts: Sequence[SensorSamples]) -> SensorSamples:
        return cls(
            *(np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(cls))
        )


def truth_extents(
    scene: SensorScene, rng: np.random.Generator, edge_sigma_mm: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fragments wholly in the camera's view now: ids (n,), class ids (n,),
    noisy extents (n, 4), whether each crossed the bar whole (n,) and the
    moment-equivalent minor and major side of its true footprint (n, 2) mm."""
    top, bottom = scene.plant.geometry.camera.view_y_range_mm
    ids, cls, ext, whole, axes = [], [], [], [], []
    for fid, name, _kind, _l, _w, x, y, fx, fy, _a in scene.plant.footprints_near(top, bottom):
        box = (x + fx.min(), x + fx.max(), y + fy.min(), y + fy.max())
        if box[2] < top or box[3] > bottom:
            continue
        ids.append(fid)
        cls.append(DEFAULT_CLASSES.index(name))
        ext.append(box)
        whole.append(scene.sensor.crossed_whole.get(fid, False))
        axes.append(footprint_axes(fx, fy, scene.grid_mm))
    e = np.asarray(ext, np.float64).reshape(-1, 4)
    e += rng.normal(0.0, edge_sigma_mm, e.shape)
    e[:, 1] = np.maximum(e[:, 1], e[:, 0])
    e[:, 3] = np.maximum(e[:, 3], e[:, 2])
    return (
        np.asarray(ids, np.int64), np.asarray(cls, np.int64), e, np.asarray(whole, bool),
        np.asarray(axes, np.float64).reshape(-1, 2),
    )  # fmt: skip


def size_errors(seed: int, ids: np.ndarray, bias: float, sigma: float) -> np.ndarray:
    """(n, 2) multiplicative errors of the camera's size of fragments ``ids`` in the
    scene of ``seed``: exp(bias + sigma x N(0, 1)) per axis, drawn once per fragment."""
    out = np.empty((ids.shape[0], 2))
    for k, i in enumerate(ids.tolist()):
        out[k] = np.random.default_rng([seed, 29, int(i)]).normal(0.0, 1.0, 2)
    return np.exp(bias + sigma * out)


def sensor_samples(
    scenes: Sequence[SceneSpec],
    geometry: LineGeometry | None = None,
    bar: InductionBar | None = None,
    edge_sigma_mm: float = 2.0,
    every: int = 4,
    progress: Progress | None = None,
    size_bias: float = 0.0,
    size_sigma: float = 0.0,
) -> SensorSamples:
    """Samples of ``scenes`` (no rendering); ``size_bias``, ``size_sigma``: the
    camera's size error, log units (module doc)."""
    geometry = geometry or LineGeometry()
    parts = []
    for k, spec in enumerate(scenes):
        scene = SensorScene.build(geometry, spec.scenario, spec.seed, bar)
        rng = np.random.default_rng([spec.seed, 23])
        period = geometry.camera.frame_period_s
        book = VelocityBook()
        for i in range(spec.warmup + spec.frames):
            scene.run_for(period)
            ids, cls, ext, whole, axes = truth_extents(scene, rng, edge_sigma_mm)
            centre = 0.5 * (ext[:, 0::2] + ext[:, 1::2])  # the noisy edges' centre
            book.add(ids, scene.plant.travel_mm, centre[:, 0], centre[:, 1])
            if i % 100 == 0:
                book.forget(set(ids.tolist()))
            if i < spec.warmup or (i - spec.warmup) % every:
                continue
            axes *= size_errors(spec.seed, ids, size_bias, size_sigma)
            out = scene.integrals(ext, whole, book.velocity(ids), axes)
            keep = whole & (out[:, 6] > 0)
            n = int(keep.sum())
            parts.append(SensorSamples(out[keep], cls[keep], np.full(n, k), ids[keep]))
        if progress is not None:
            progress(f"sensor scene {k + 1}/{len(scenes)} {spec.label}")
    return SensorSamples.concat(parts)
