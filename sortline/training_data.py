"""Training crops and segmentation scores from the virtual plant.

The one place that joins ``sim`` and ``vision``: render frames, segment them
with the runtime's own ``VisionPipeline``, match segments to the plant's ground
truth (rasterised outlines, drawing order respected), and either label the
runtime crops (training / evaluation data) or score the segmentation (count
error, split and merge rates, centroid error in mm).

Training scenes are *randomised* scenarios (appearance, density, speed drawn
across and a little beyond the presets' ranges); evaluation uses the named
presets with seeds from ``EVAL_SEED_BASE`` on, so held-out scenes share neither
seeds nor presets with training.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import cv2
import numpy as np

from calibration.geometry import LineGeometry
from core.classes import DEFAULT_CLASSES
from models.dataset import CropSet
from sim.plant.plant import IdlePlc, VirtualPlant
from sim.plant.scenario import Scenario, load_scenario
from sim.plant.truth import FrameTruth
from vision.classifier import Classifier
from vision.crops import CropParams, extract_crops
from vision.pipeline import VisionPipeline
from vision.segment import SegmentParams, Segments

__all__ = [
    "EVAL_SEED_BASE",
    "SceneSpec",
    "SegScore",
    "camera_free",
    "match_segments",
    "random_training_scenario",
    "render_crops",
    "score_segmentation",
    "training_scenes",
]

EVAL_SEED_BASE = 10_000  # evaluation seeds; training seeds stay below
MIN_PURITY = 0.7  # share of a segment's fragment pixels that must be one fragment to label it
MIN_FRAGMENT_SHARE = 0.3  # share of the segment's pixels that are fragment, to label it so
MAX_BELT_SHARE = 0.05  # below this share of fragment pixels a segment is labelled belt
MAX_BELT_PER_FRAME = 3
REJECT_CLASS = "belt"  # "not a fragment": stains, seams, shadows the segmentation picked up
TRAIN_CLASSES: tuple[str, ...] = (*DEFAULT_CLASSES, REJECT_CLASS)
Progress = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class SceneSpec:
    scenario: Scenario
    seed: int
    frames: int
    every: int = 3  # keep crops from every n-th frame (a fragment stays ~16 frames in view)
    warmup: int = 40  # frames before the first kept one (belt fills, belt model settles)

    @property
    def label(self) -> str:
        return f"{self.scenario.name}#{self.seed}"


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def random_training_scenario(rng: np.random.Generator, seed: int) -> Scenario:
    """A scenario drawn across the presets' ranges (domain randomisation)."""
    d: dict[str, Any] = load_scenario("default").model_dump()
    d["name"] = "train-random"
    d["seed"] = seed
    d["feed"].update(
        rate_obj_s=_u(rng, 40, 200),
        size_median_mm=_u(rng, 35, 55),
        density=_u(rng, 0.0, 0.35),
        overlap=_u(rng, 0.0, 0.4),
    )
    d["motion"].update(speed_mm_s=_u(rng, 2000, 3800), speed_fluct_frac=_u(rng, 0.0, 0.05))
    d["appearance"].update(
        exposure_us=_u(rng, 250, 1000),
        noise_sigma=_u(rng, 1.5, 7.0),
        light_across_frac=_u(rng, 0.05, 0.3),
        light_drift_frac=_u(rng, 0.0, 0.14),
        belt_wear=_u(rng, 0.1, 1.0),
        dirt=_u(rng, 0.05, 0.9),
        oxidation=_u(rng, 0.1, 0.9),
        shadow=_u(rng, 0.2, 0.6),
    )
    appearance = d["appearance"]  # fields added to the renderer later are randomised too
    if "lens_dirt" in appearance:
        appearance["lens_dirt"] = _u(rng, 0.0, 0.8)
    if "flicker_frac" in appearance:
        appearance["flicker_frac"] = _u(rng, 0.0, 0.02)
    return Scenario.model_validate(d)


def camera_free(scenario: Scenario, name: str = "camera-free") -> Scenario:
    """``scenario`` without camera effects or crowding: no sensor noise, motion
    blur, uneven or drifting light, flicker, lens dirt, belt wear or shadows, and
    fragments that neither touch nor overlap. The materials' own appearance
    (tint, brushing, oxidation, dirt, specular) is unchanged: what a perfect
    camera and segmentation would see, for the ceiling estimate."""
    d: dict[str, Any] = scenario.model_dump()
    d["name"] = name
    d["feed"].update(density=0.0, overlap=0.0, rate_obj_s=min(d["feed"]["rate_obj_s"], 60.0))
    d["appearance"].update(
        exposure_us=1.0,
        noise_sigma=0.0,
        light_across_frac=0.0,
        light_drift_frac=0.0,
        lens_dirt=0.0,
        flicker_frac=0.0,
        belt_wear=0.0,
        shadow=0.0,
    )
    return Scenario.model_validate(d)


def training_scenes(n_scenes: int, frames: int = 240, seed: int = 0) -> list[SceneSpec]:
    """``n_scenes`` randomised scenes with seeds below ``EVAL_SEED_BASE``."""
    if seed < 0 or 1 + seed * 1000 + n_scenes > EVAL_SEED_BASE:
        raise ValueError(f"training seeds must stay below {EVAL_SEED_BASE} (seed {seed})")
    rng = np.random.default_rng(seed)
    return [
        SceneSpec(random_training_scenario(rng, 1 + seed * 1000 + i), 1 + seed * 1000 + i, frames)
        for i in range(n_scenes)
    ]


def eval_scenes(presets: Sequence[str], per_preset: int, frames: int) -> list[SceneSpec]:
    """Named presets with held-out seeds (``EVAL_SEED_BASE`` + k)."""
    return [
        SceneSpec(load_scenario(p), EVAL_SEED_BASE + 100 * i + k, frames)
        for i, p in enumerate(presets)
        for k in range(per_preset)
    ]


def truth_index_image(truth: FrameTruth, shape_hw: tuple[int, int], scale: int) -> np.ndarray:
    """(h, w) int32 image of truth row + 1 (0 = belt) at 1/scale resolution, later rows on top."""
    out = np.zeros(shape_hw, np.int32)
    for i, poly in enumerate(truth.polygons_px):
        pts = ((np.asarray(poly, np.float64) + 0.5) / scale - 0.5) * 16.0
        cv2.fillPoly(out, [np.round(pts).astype(np.int32)], i + 1, lineType=cv2.LINE_8, shift=4)
    return out


@dataclasses.dataclass(frozen=True)
class Match:
    """seg_truth:   (S,) truth row matched to each segment, -1 none.
    seg_purity:  (S,) share of the segment's fragment pixels that belong to it.
    seg_fragment_share: (S,) share of the segment's pixels that are any fragment.
    overlap:     (S, T) pixel counts of truth rows inside each segment.
    truth_area:  (T,) visible pixels of each truth row.
    """

    seg_truth: np.ndarray
    seg_purity: np.ndarray
    seg_fragment_share: np.ndarray
    overlap: np.ndarray
    truth_area: np.ndarray


def match_segments(seg: Segments, truth: FrameTruth) -> Match:
    """Overlap of segments and ground-truth fragments at the segmentation's resolution."""
    t_img = truth_index_image(truth, seg.labels.shape, seg.scale)
    n_t = len(truth)
    n_lab = int(seg.labels.max()) + 1 if seg.labels.size else 1
    pair = seg.labels.ravel().astype(np.int64) * (n_t + 1) + t_img.ravel()
    table = np.bincount(pair, minlength=n_lab * (n_t + 1)).reshape(n_lab, n_t + 1)
    overlap = table[seg.label_id][:, 1:]  # (S, T)
    truth_area = np.bincount(t_img.ravel(), minlength=n_t + 1)[1:]
    frag_px = overlap.sum(axis=1)
    best = overlap.argmax(axis=1) if n_t else np.zeros(len(seg), np.int64)
    best_px = overlap[np.arange(len(seg)), best] if n_t else np.zeros(len(seg))
    purity = np.where(frag_px > 0, best_px / np.maximum(frag_px, 1), 0.0)
    seg_truth = np.where(best_px > 0, best, -1)
    seg_px = table[seg.label_id].sum(axis=1)
    share = frag_px / np.maximum(seg_px, 1)
    return Match(seg_truth, purity, share, overlap, truth_area)


def _frames(
    spec: SceneSpec, geometry: LineGeometry, pipeline: VisionPipeline
) -> Iterator[tuple[np.ndarray, Segments, FrameTruth, int]]:
    """Render a scene and segment every frame; yield the kept ones."""
    plant = VirtualPlant(geometry, spec.scenario, IdlePlc(), seed=spec.seed)
    for i in range(spec.warmup + spec.frames):
        frame = plant.step()
        pipeline.process(frame)
        if i >= spec.warmup and (i - spec.warmup) % spec.every == 0:
            assert pipeline.last_segments is not None
            yield frame.image, pipeline.last_segments, plant.visible_truth(), i


def render_crops(
    scenes: Sequence[SceneSpec],
    geometry: LineGeometry | None = None,
    crop: CropParams | None = None,
    segment: SegmentParams | None = None,
    progress: Progress | None = None,
    group_base: int = 0,
) -> CropSet:
    """Label the runtime's own crops with the class of the fragment they show."""
    geometry = geometry or LineGeometry()
    crop = crop or CropParams()
    sets: list[CropSet] = []
    for k, spec in enumerate(scenes):
        pipeline = VisionPipeline(geometry, None, segment_params=segment, crop_params=crop)
        crops: list[np.ndarray] = []
        labels: list[np.ndarray] = []
        extras: list[dict[str, np.ndarray]] = []
        for image, seg, truth, i in _frames(spec, geometry, pipeline):
            rows, lab, extra = _label_rows(seg, truth)
            if rows.size:
                belt = pipeline.segmenter.belt.mean_u8
                crops.append(extract_crops(image, seg, belt, crop, rows))
                labels.append(lab)
                extras.append({**extra, "frame": np.full(rows.size, i, np.int32)})
        if crops:
            c = np.concatenate(crops)
            group = np.full(len(c), group_base + k, np.int32)
            cols = {key: np.concatenate([e[key] for e in extras]) for key in extras[0]}
            sets.append(CropSet(c, np.concatenate(labels), group, TRAIN_CLASSES, cols))
        if progress is not None:
            n = sum(len(s) for s in sets)
            progress(f"scene {k + 1}/{len(scenes)} {spec.label}: {n} crops so far")
    return CropSet.concat(sets) if sets else CropSet.empty(TRAIN_CLASSES, crop.size_px)


def _label_rows(
    seg: Segments, truth: FrameTruth
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Rows of ``seg`` worth a training label, the labels (``TRAIN_CLASSES``
    index) and per-row ground truth (``CropSet.extra`` columns: fragment id,
    purity, truncated, visible share, size in mm, segment pixels)."""
    m = match_segments(seg, truth)
    frag = (m.seg_truth >= 0) & (m.seg_purity >= MIN_PURITY)
    frag &= m.seg_fragment_share >= MIN_FRAGMENT_SHARE
    belt = np.flatnonzero(m.seg_fragment_share <= MAX_BELT_SHARE)[:MAX_BELT_PER_FRAME]
    f_rows = np.flatnonzero(frag)
    rows = np.concatenate([f_rows, belt])
    t = m.seg_truth[f_rows]
    lab = np.concatenate(
        [
            truth.class_id[t].astype(np.int16),
            np.full(belt.size, TRAIN_CLASSES.index(REJECT_CLASS), np.int16),
        ]
    )
    nb = belt.size
    extra = {
        "fragment": np.concatenate([truth.fragment_id[t], np.full(nb, -1)]).astype(np.int64),
        "purity": np.concatenate([m.seg_purity[f_rows], np.zeros(nb)]).astype(np.float32),
        "truncated": np.concatenate(
            [truth.truncated[t] | _touches_border(seg)[f_rows], np.zeros(nb, bool)]
        ),
        "visible": np.concatenate([truth.visible_frac[t], np.zeros(nb)]).astype(np.float32),
        "size_mm": np.concatenate([truth.size_mm[t], np.zeros(nb)]).astype(np.float32),
        "seg_px": np.asarray(seg.area_px, np.float32)[rows],
    }
    return rows, lab, extra


@dataclasses.dataclass
class SegScore:
    """Segmentation against ground truth, summed over frames.

    Countable fragments: not cut by the image border, >= 50 % visible.
    found: a segment holds >= 50 % of the fragment's visible pixels.
    split: >= 2 segments each hold >= 20 % of it. merged: it shares a segment
    with another fragment that holds >= 20 % of its own pixels there.
    centroid error: one-to-one matches of fully visible fragments, belt mm.
    """

    frames: int = 0
    truth: int = 0
    segments: int = 0
    found: int = 0
    split: int = 0
    merged: int = 0
    spurious: int = 0
    abs_count_error: int = 0
    centroid_err_mm: list[float] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        t = max(self.truth, 1)
        err = np.asarray(self.centroid_err_mm) if self.centroid_err_mm else np.zeros(1)
        return {
            "frames": self.frames,
            "fragments": self.truth,
            "segments": self.segments,
            "recall": self.found / t,
            "count_error": (self.segments - self.truth) / t,
            "abs_count_error_per_frame": self.abs_count_error / max(self.frames, 1),
            "split_rate": self.split / t,
            "merge_rate": self.merged / t,
            "spurious_rate": self.spurious / max(self.segments, 1),
            "centroid_err_mm_median": float(np.median(err)),
            "centroid_err_mm_p95": float(np.percentile(err, 95)),
        }


def score_frame(score: SegScore, seg: Segments, truth: FrameTruth, centroid_mm: np.ndarray) -> None:
    """Add one frame's segmentation to ``score``."""
    m = match_segments(seg, truth)
    countable = ~truth.truncated & (truth.visible_frac >= 0.5) & (m.truth_area > 0)
    share = m.overlap / np.maximum(m.truth_area, 1)[None, :]  # (S, T) share of each fragment
    holds = share >= 0.2
    # segments that are mostly one countable fragment or mostly belt/border pieces
    seg_countable = np.array([countable[t] if t >= 0 else True for t in m.seg_truth], bool)
    seg_in_view = seg_countable & ~_touches_border(seg)
    score.frames += 1
    score.truth += int(countable.sum())
    score.segments += int(seg_in_view.sum())
    score.abs_count_error += abs(int(seg_in_view.sum()) - int(countable.sum()))
    score.spurious += int((seg_in_view & (m.seg_truth < 0)).sum())
    score.found += int((countable & (share >= 0.5).any(axis=0)).sum())
    score.split += int((countable & (holds.sum(axis=0) >= 2)).sum())
    merged_segs = holds.sum(axis=1) >= 2
    score.merged += int((countable & (holds & merged_segs[:, None]).any(axis=0)).sum())
    for s, t in enumerate(m.seg_truth):
        if t < 0 or not countable[t] or truth.visible_frac[t] < 0.99:
            continue
        if holds[:, t].sum() == 1 and holds[s].sum() == 1 and share[s, t] >= 0.5:
            score.centroid_err_mm.append(
                float(np.linalg.norm(centroid_mm[s] - truth.centroid_mm[t]))
            )


def _touches_border(seg: Segments) -> np.ndarray:
    h, w = seg.labels.shape
    b = seg.bbox_px / seg.scale
    return (b[:, 0] <= 0) | (b[:, 1] <= 0) | (b[:, 2] >= w) | (b[:, 3] >= h)


def score_segmentation(
    scenes: Sequence[SceneSpec],
    geometry: LineGeometry | None = None,
    segment: SegmentParams | None = None,
    classifier: Classifier | None = None,
) -> SegScore:
    """Segmentation scores of ``scenes`` (all kept frames). With a classifier,
    segments it rejects as "not a fragment" are dropped first, as on the line."""
    geometry = geometry or LineGeometry()
    score = SegScore()
    for spec in scenes:
        pipeline = VisionPipeline(geometry, classifier, segment_params=segment)
        for _, seg, truth, _ in _frames(spec, geometry, pipeline):
            centroid_mm, _, _ = pipeline.measure_mm(seg)
            score_frame(score, seg, truth, centroid_mm)
    return score
