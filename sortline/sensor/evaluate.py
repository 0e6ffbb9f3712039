"""Camera alone against camera + induction bar, per fragment, on held-out scenes.

Each scene runs the plant with its bar; every ``every``-th frame is segmented
by the runtime's ``VisionPipeline`` and its segments labelled from the
plant's truth exactly as ``sortline.training_data`` labels training crops
(>= 70 % one fragment). The CNN classifies the crops (a view whose reject
probability exceeds 0.5 is dropped, as on the line); the segment's belt
extent at the frame's encoder count is integrated over the bar's rows by the
controller's fusion kernel, every segment of the frame sharing cells.

Per fragment: camera = argmax of the summed log view probabilities
(``models.evaluate.per_fragment``); fused = argmax of the mean log view
probability plus the sensor term (``sortline.sensor.fusion.sensor_term``)
averaged over the views. A fragment without a kept view counts as wrong.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from calibration.geometry import LineGeometry
from core.classes import DEFAULT_CLASSES
from models.evaluate import HARD_PAIRS, PROB_FLOOR
from models.induction import InductionModel
from sortline.sensor.fusion import sensor_term
from sortline.sensor.scene import SensorScene
from sortline.training_data import SceneSpec, _label_rows
from vision.classifier import OnnxClassifier
from vision.crops import CropParams, extract_crops
from vision.pipeline import VisionPipeline

__all__ = ["Views", "collect_views", "fragment_report", "held_out_report"]

Progress = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class Views:
    """Per kept view: scene (group), fragment id, true class, camera log
    probabilities (n, K), seen (reject <= 0.5), sensor integrals (n, 7),
    whether the fragment crossed the bar whole on the belt, and whether the
    segment is cut by the image border (its extent is not the fragment's)."""

    group: np.ndarray
    fragment: np.ndarray
    label: np.ndarray
    cam_logp: np.ndarray
    seen: np.ndarray
    integrals: np.ndarray
    whole: np.ndarray
    truncated: np.ndarray


def _scene_views(
    spec: SceneSpec, k: int, clf: OnnxClassifier, geometry: LineGeometry, crop: CropParams
) -> list[tuple[np.ndarray, ...]]:
    scene = SensorScene.build(geometry, spec.scenario, spec.seed)
    pipeline = VisionPipeline(geometry, None, crop_params=crop)
    out: list[tuple[np.ndarray, ...]] = []
    for i in range(spec.warmup + spec.frames):
        frame = scene.step()
        pipeline.process(frame)
        if i < spec.warmup or (i - spec.warmup) % spec.every:
            continue
        seg, truth = pipeline.last_segments, scene.plant.visible_truth()
        assert seg is not None
        rows, lab, extra = _label_rows(seg, truth)
        frag = extra["fragment"] >= 0
        rows, lab, fid = rows[frag], lab[frag].astype(np.int64), extra["fragment"][frag]
        cut = extra["truncated"][frag].astype(bool)
        if rows.size == 0:
            continue
        crops = extract_crops(frame.image, seg, pipeline.segmenter.belt.mean_u8, crop, rows)
        prob, reject = clf.classify(crops)
        _, extent, _ = pipeline.measure_mm(seg)
        active = np.zeros(len(seg), bool)
        active[rows] = True
        integ = scene.integrals(extent, active)[rows]
        whole = np.array([scene.sensor.crossed_whole.get(int(f), False) for f in fid], bool)
        logp = np.log(np.maximum(prob, PROB_FLOOR))
        out.append(
            (np.full(rows.size, k), fid, lab, logp, reject <= 0.5, integ, whole, cut)
        )  # fmt: skip
    return out


def collect_views(
    scenes: Sequence[SceneSpec],
    clf: OnnxClassifier,
    geometry: LineGeometry | None = None,
    progress: Progress | None = None,
) -> Views:
    """Views of every scene (see module doc)."""
    geometry = geometry or LineGeometry()
    if tuple(clf.info.material_names) != DEFAULT_CLASSES:
        raise ValueError(f"the model's classes {clf.info.material_names} are not the default ones")
    parts: list[tuple[np.ndarray, ...]] = []
    for k, spec in enumerate(scenes):
        parts += _scene_views(spec, k, clf, geometry, CropParams())
        if progress is not None:
            progress(f"scene {k + 1}/{len(scenes)} {spec.label}: {len(parts)} frames of views")
    cols = [np.concatenate([p[j] for p in parts]) for j in range(8)]
    return Views(*cols)


def _pair(conf: np.ndarray, a: str, b: str) -> float:
    ia, ib = DEFAULT_CLASSES.index(a), DEFAULT_CLASSES.index(b)
    n = conf[ia].sum() + conf[ib].sum()
    return float((conf[ia, ia] + conf[ib, ib]) / max(n, 1))


def _report(truth: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    k = len(DEFAULT_CLASSES)
    conf = np.bincount(truth * (k + 1) + pred, minlength=k * (k + 1)).reshape(k, k + 1)
    return {
        "fragments": int(truth.size),
        "per_fragment_top1": float((truth == pred).mean()) if truth.size else float("nan"),
        "pairs": {f"{a}/{b}": _pair(conf, a, b) for a, b in HARD_PAIRS[::-1]},
        "labels": [*DEFAULT_CLASSES, "none"],
        "confusion": conf.tolist(),
    }


def fragment_report(
    v: Views,
    model: InductionModel,
    weight: float,
    mask: np.ndarray | None = None,
    only_whole: bool = True,
) -> dict[str, dict[str, Any]]:
    """{"camera": ..., "fused": ...} per-fragment figures of the views in ``mask``;
    ``only_whole``: leave out fragments fed with part of them past the bar."""
    keep = np.ones(v.group.size, bool) if mask is None else mask.copy()
    if only_whole:
        keep &= v.whole
    rows = np.flatnonzero(keep)
    key = v.group[rows].astype(np.int64) * (1 << 32) + v.fragment[rows]
    uniq, inv = np.unique(key, return_inverse=True)
    k = len(DEFAULT_CLASSES)
    seen = v.seen[rows]
    cam = np.zeros((uniq.size, k))
    np.add.at(cam, inv[seen], v.cam_logp[rows][seen])
    n_seen = np.bincount(inv[seen], minlength=uniq.size)
    # the sensor term from views whose extent is the whole fragment (a track's
    # extent grows to it); from all of a fragment's views when every one is cut
    term = sensor_term(model, DEFAULT_CLASSES, v.integrals[rows], weight)
    full = ~v.truncated[rows]
    n_full = np.bincount(inv[full], minlength=uniq.size)
    use = full | (n_full[inv] == 0)
    sens = np.zeros((uniq.size, k))
    np.add.at(sens, inv[use], term[use])
    n_all = np.bincount(inv[use], minlength=uniq.size)
    truth = np.zeros(uniq.size, np.int64)
    truth[inv] = v.label[rows]
    none = np.full(uniq.size, k)
    cam_pred = np.where(n_seen > 0, cam.argmax(axis=1), none)
    fused = cam / np.maximum(n_seen, 1)[:, None] + sens / np.maximum(n_all, 1)[:, None]
    fused_pred = np.where(n_seen > 0, fused.argmax(axis=1), none)
    return {"camera": _report(truth, cam_pred), "fused": _report(truth, fused_pred)}


def held_out_report(
    v: Views, presets: Sequence[str], per_preset: int, model: InductionModel, weight: float
) -> dict[str, Any]:
    """``{"camera": ..., "fused": ...}``: per-fragment top-1, ``dirty_top1``, the
    pairs, the confusion table, per preset, and the same over every fragment
    (``with_fed_past_bar``: fragments fed with part of their footprint already
    past the bar included)."""
    out: dict[str, Any] = {}
    whole = fragment_report(v, model, weight)
    every = fragment_report(v, model, weight, only_whole=False)
    per = {
        name: fragment_report(v, model, weight, (v.group // per_preset) == i)
        for i, name in enumerate(presets)
    }
    for side in ("camera", "fused"):
        r = dict(whole[side])
        r["dirty_top1"] = per["dirty"][side]["per_fragment_top1"] if "dirty" in per else None
        r["per_preset"] = {
            name: {"fragments": p[side]["fragments"], "top1": p[side]["per_fragment_top1"]}
            for name, p in per.items()
        }
        r["with_fed_past_bar"] = {
            k: every[side][k] for k in ("fragments", "per_fragment_top1", "pairs")
        }
        out[side] = r
    out["fragments_fed_past_bar"] = every["camera"]["fragments"] - whole["camera"]["fragments"]
    return out
