"""Camera alone against camera + induction bar, per fragment, on held-out scenes.

Each scene runs the plant with its bar; every ``every``-th frame is segmented
by the runtime's ``VisionPipeline`` and its segments labelled from the
plant's truth exactly as ``sortline.training_data`` labels training crops
(>= 70 % one fragment). The CNN classifies the crops (a view whose reject
probability exceeds 0.5 is dropped, as on the line); the segment's belt
extent at the frame's encoder count is integrated over the bar's rows by the
controller's fusion kernel, every segment of the frame sharing cells, after
moving it back by the fragment's velocity relative to the belt (fitted to its
segment centroids so far, as the tracker does; the fragment's identity is the
plant's, as a tracker's would be).

Per fragment: camera = argmax of the summed log view probabilities
(``models.evaluate.per_fragment``); fused = argmax of the mean log view
probability over the camera temperature plus the sensor term
(``sortline.sensor.fusion.sensor_term``) averaged over the views whose
velocity had at least 3 centres behind it (all views when none had). Each
fragment's bar position is fixed at the first of those views
(``sortline.sensor.anchor``, as the line fixes a track's). A fragment without a
kept view counts as wrong.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from calibration.geometry import LineGeometry
from control.kernels_fusion import F_SHARED
from core.classes import DEFAULT_CLASSES
from models.evaluate import HARD_PAIRS, PROB_FLOOR
from models.induction import InductionModel
from sim.plant.feed import MOTION_KINDS
from sim.plant.induction import InductionBar
from sortline.sensor.anchor import BarAnchors
from sortline.sensor.fusion import camera_term, flatten_shared, sensor_term
from sortline.sensor.scene import SensorScene, SizeBook, VelocityBook
from sortline.training_data import SceneSpec, _label_rows
from vision.classifier import OnnxClassifier
from vision.crops import CropParams, extract_crops
from vision.pipeline import VisionPipeline
from vision.segment import segment_axes_mm

__all__ = [
    "Views",
    "collect_views",
    "fit_class_terms",
    "fit_combination",
    "fragment_report",
    "held_out_report",
]

Progress = Callable[[str], None]
ANCHOR_CENTRES = 3  # a fragment's bar position is fixed at its first view with this many centres


@dataclasses.dataclass(frozen=True)
class Views:
    """Per kept view: scene (group), fragment id, true class, camera log
    probabilities (n, K), seen (reject <= 0.5), sensor integrals (n, N_INTEGRALS),
    whether the fragment crossed the bar whole on the belt, whether the
    segment is cut by the image border (its extent is not the fragment's),
    how many centres its velocity was fitted to, and how the fragment moved on
    the belt (index into ``sim.plant.feed.MOTION_KINDS``: lying, rolling,
    sliding, bouncing; for diagnosis only, a line does not know it)."""

    group: np.ndarray
    fragment: np.ndarray
    label: np.ndarray
    cam_logp: np.ndarray
    seen: np.ndarray
    integrals: np.ndarray
    whole: np.ndarray
    truncated: np.ndarray
    history: np.ndarray
    motion: np.ndarray


def _scene_views(
    spec: SceneSpec,
    k: int,
    clf: OnnxClassifier | None,
    geometry: LineGeometry,
    crop: CropParams,
    bar: InductionBar | None,
    anchor: bool,
) -> list[tuple[np.ndarray, ...]]:
    scene = SensorScene.build(geometry, spec.scenario, spec.seed, bar)
    pipeline = VisionPipeline(geometry, None, crop_params=crop)
    book = VelocityBook(keep=4)
    sizes = SizeBook()
    anchors = BarAnchors()
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
        if clf is None:  # sensor training: no camera evidence wanted
            prob = np.full((rows.size, len(DEFAULT_CLASSES)), 1.0 / len(DEFAULT_CLASSES))
            reject = np.zeros(rows.size)
        else:
            crops = extract_crops(frame.image, seg, pipeline.segmenter.belt.mean_u8, crop, rows)
            prob, reject = clf.classify(crops)
        centre, extent, _ = pipeline.measure_mm(seg)
        whole_seg = ~cut  # a cut segment's centroid (and size) is not the fragment's
        book.add(fid[whole_seg], scene.plant.travel_mm, *centre[rows[whole_seg]].T)
        axes = segment_axes_mm(seg, pipeline.camera_model.px_to_mm)
        sizes.add(fid[whole_seg], axes[rows[whole_seg]])
        track_axes = np.full((len(seg), 2), np.nan)
        track_axes[rows] = sizes.size(fid)
        vel = np.zeros((len(seg), 2))
        vel[rows] = book.velocity(fid)
        hist = book.count(fid)
        active = np.zeros(len(seg), bool)
        active[rows] = True
        ids = np.full(len(seg), -1, np.int64)
        ids[rows] = fid
        ready = np.zeros(len(seg), bool)
        ready[rows] = hist >= ANCHOR_CENTRES
        placed = (anchors, ids, ready) if anchor else None
        integ = scene.integrals(extent, active, vel, track_axes, placed)[rows]
        whole = np.array([scene.sensor.crossed_whole.get(int(f), False) for f in fid], bool)
        logp = np.log(np.maximum(prob, PROB_FLOOR))
        out.append(
            (np.full(rows.size, k), fid, lab, logp, reject <= 0.5, integ, whole, cut, hist)
        )  # fmt: skip
    kind = {r.fragment_id: MOTION_KINDS.index(r.motion) for r in scene.plant.fragments}
    return [(*p, np.array([kind.get(int(f), -1) for f in p[1]], np.int8)) for p in out]


def collect_views(
    scenes: Sequence[SceneSpec],
    clf: OnnxClassifier | None,
    geometry: LineGeometry | None = None,
    progress: Progress | None = None,
    bar: InductionBar | None = None,
    anchor: bool = True,
) -> Views:
    """Views of every scene (see module doc); ``clf`` None: no camera evidence
    (uniform probabilities: the views of the sensor model's training); ``bar``:
    the plant's bar (default ``InductionBar()``: one frequency, 5 kHz); ``anchor``:
    each fragment's bar position fixed at its first view with ``ANCHOR_CENTRES``
    centres behind it (``sortline.sensor.anchor``, as the line does), else
    back-projected from every view (before session 12)."""
    geometry = geometry or LineGeometry()
    if clf is not None and tuple(clf.info.material_names) != DEFAULT_CLASSES:
        raise ValueError(f"the model's classes {clf.info.material_names} are not the default ones")
    parts: list[tuple[np.ndarray, ...]] = []
    for k, spec in enumerate(scenes):
        parts += _scene_views(spec, k, clf, geometry, CropParams(), bar, anchor)
        if progress is not None:
            progress(f"scene {k + 1}/{len(scenes)} {spec.label}: {len(parts)} frames of views")
    cols = [np.concatenate([p[j] for p in parts]) for j in range(10)]
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


@dataclasses.dataclass(frozen=True)
class FragmentScores:
    """Per fragment: truth (m,) class index; cam (m, K) summed camera log
    probabilities over n_seen (m,) kept views; fused (m, K) the fused score
    (camera mean / T + sensor term, flattened by the shared share when asked);
    key (m,) group << 32 | fragment id; shared (m,) mean shared share of the
    views the sensor term came from."""

    truth: np.ndarray
    cam: np.ndarray
    n_seen: np.ndarray
    fused: np.ndarray
    key: np.ndarray
    shared: np.ndarray

    def predictions(self) -> tuple[np.ndarray, np.ndarray]:
        """Camera and fused class per fragment (K = "none": no view kept)."""
        none = np.full(self.truth.size, self.cam.shape[1])
        ok = self.n_seen > 0
        return np.where(ok, self.cam.argmax(axis=1), none), np.where(
            ok, self.fused.argmax(axis=1), none
        )


def fragment_scores(
    v: Views,
    model: InductionModel,
    weight: float,
    mask: np.ndarray | None = None,
    only_whole: bool = True,
    shared_damping: float = 0.0,
) -> FragmentScores:
    """Per-fragment scores of the views in ``mask``; ``only_whole``: leave out
    fragments fed with part of them past the bar; ``shared_damping``: the
    fused scores flattened as the line does (``fusion.flatten_shared``)."""
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
    # extent grows to it) and whose velocity had 3 centres (a track's settles);
    # the best of those a fragment has when none qualifies
    term = sensor_term(model, DEFAULT_CLASSES, v.integrals[rows], weight)
    grade = (~v.truncated[rows]).astype(np.int64) * 2 + (v.history[rows] >= 3)
    best = np.zeros(uniq.size, np.int64)
    np.maximum.at(best, inv, grade)
    use = grade == best[inv]
    sens = np.zeros((uniq.size, k))
    np.add.at(sens, inv[use], term[use])
    n_all = np.bincount(inv[use], minlength=uniq.size)
    truth = np.zeros(uniq.size, np.int64)
    truth[inv] = v.label[rows]
    cam_mean = camera_term(model, DEFAULT_CLASSES, cam / np.maximum(n_seen, 1)[:, None])
    fused = cam_mean + sens / np.maximum(n_all, 1)[:, None]
    shared = np.zeros(uniq.size)
    np.add.at(shared, inv[use], v.integrals[rows][use, F_SHARED])
    shared /= np.maximum(n_all, 1)
    if shared_damping > 0:
        fused = flatten_shared(fused - fused.max(axis=1, keepdims=True), shared, shared_damping)
    return FragmentScores(truth, cam, n_seen, fused, uniq, shared)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def at_threshold(
    truth: np.ndarray, scores: np.ndarray, ok: np.ndarray, threshold: float = 0.5
) -> dict[str, dict[str, float | int]]:
    """Per class, as a recipe "class -> eject at ``threshold``" would target it:
    fragments targeted (probability of the class >= threshold), precision and
    recall. ``scores`` (m, K) log-probabilities up to a constant; ``ok`` (m,):
    fragments with a view kept (the others are never targeted)."""
    prob = _softmax(scores)
    out: dict[str, dict[str, float | int]] = {}
    for c, name in enumerate(DEFAULT_CLASSES):
        tgt = ok & (prob[:, c] >= threshold)
        tp = int((tgt & (truth == c)).sum())
        n = int((truth == c).sum())
        out[name] = {"targeted": int(tgt.sum()), "precision": tp / max(int(tgt.sum()), 1),
                     "recall": tp / max(n, 1)}  # fmt: skip
    return out


def fragment_report(
    v: Views,
    model: InductionModel,
    weight: float,
    mask: np.ndarray | None = None,
    only_whole: bool = True,
    shared_damping: float = 0.0,
) -> dict[str, dict[str, Any]]:
    """{"camera": ..., "fused": ...} per-fragment figures (``fragment_scores``),
    each with ``at_threshold_0.5`` (``at_threshold``: the camera's mean view
    log-probability, the fused score as the line forms it)."""
    sc = fragment_scores(v, model, weight, mask, only_whole, shared_damping)
    cam_pred, fused_pred = sc.predictions()
    ok = sc.n_seen > 0
    cam_mean = sc.cam / np.maximum(sc.n_seen, 1)[:, None]
    cam, fused = _report(sc.truth, cam_pred), _report(sc.truth, fused_pred)
    cam["at_threshold_0.5"] = at_threshold(sc.truth, cam_mean, ok)
    fused["at_threshold_0.5"] = at_threshold(sc.truth, sc.fused, ok)
    return {"camera": cam, "fused": fused}


def held_out_report(
    v: Views,
    presets: Sequence[str],
    per_preset: int,
    model: InductionModel,
    weight: float,
    shared_damping: float = 0.0,
) -> dict[str, Any]:
    """``{"camera": ..., "fused": ...}``: per-fragment top-1, ``dirty_top1``, the
    pairs, the confusion table, per preset, and the same over every fragment
    (``with_fed_past_bar``: fragments fed with part of their footprint already
    past the bar included)."""
    out: dict[str, Any] = {}
    whole = fragment_report(v, model, weight, shared_damping=shared_damping)
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


TEMPERATURES = (0.25, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0)
SENSOR_RATIOS = (0.25, 0.375, 0.5, 0.625, 0.75, 1.0, 1.25, 1.5, 2.0)


def fit_combination(
    v: Views, model: InductionModel, weigh_class: str = ""
) -> tuple[InductionModel, list[dict[str, float]]]:
    """The combination fitted on ``v`` (validation views, never held-out ones).

    Only the ratio of sensor to camera weight moves the argmax: it is chosen by
    per-fragment top-1 (ties: the pair aluminium/stainless, then the smaller
    ratio). The temperature T then scales both (camera mean / T + w x sensor,
    w = ratio / T) to the smallest negative log-likelihood of the true class,
    so the probabilities a recipe's threshold reads are calibrated; then the
    per-class terms (``fit_class_terms``; ``weigh_class``: a class the line's
    recipe ejects, weighed more in their fit). Returns the model and the grid's
    figures."""
    grid, ratio, key = [], SENSOR_RATIOS[0], (-1.0, -1.0)
    for r in SENSOR_RATIOS:
        rep = fragment_report(v, model.with_combination(1.0, r), 1.0)["fused"]
        pair = rep["pairs"]["aluminium/stainless"]
        grid.append({"sensor_ratio": r, "top1": rep["per_fragment_top1"],
                     "aluminium/stainless": pair})  # fmt: skip
        if (rep["per_fragment_top1"], pair) > key:
            key, ratio = (rep["per_fragment_top1"], pair), r
    sc = fragment_scores(v, model.with_combination(1.0, ratio), 1.0)
    ok = sc.n_seen > 0
    best_t, best_nll = 1.0, np.inf
    for t in TEMPERATURES:
        z = sc.fused[ok] / t
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        nll = float(-logp[np.arange(z.shape[0]), sc.truth[ok]].mean())
        grid.append({"sensor_ratio": ratio, "camera_temperature": t, "nll": nll})
        if nll < best_nll:
            best_t, best_nll = t, nll
    scalar = model.with_combination(best_t, ratio / best_t)
    terms, cv = fit_class_terms(v, scalar, weigh_class)
    grid += cv
    return scalar.with_combination(best_t, ratio / best_t, terms), grid


CLASS_TERM_L2 = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)  # pull of a_c, b_c, d_c to 1, 1, 0
CLASS_WEIGHTS = (1.0, 2.0, 4.0, 8.0)  # the weighed class's weight in the terms' cross-entropy


def _class_term_parts(v: Views, model: InductionModel) -> tuple[np.ndarray, ...]:
    """Per fragment with a kept view: the camera's and the sensor's part of the
    scalar combination (m, K), the truth (m,) and the scene (m,)."""
    scalar = model.with_combination(model.camera_temperature, model.sensor_weight)
    sc = fragment_scores(v, scalar, 1.0)
    ok = sc.n_seen > 0
    cam = camera_term(scalar, DEFAULT_CLASSES, sc.cam / np.maximum(sc.n_seen, 1)[:, None])
    return cam[ok], (sc.fused - cam)[ok], sc.truth[ok], (sc.key >> 32)[ok]


def _fit_terms(
    cam: np.ndarray,
    sens: np.ndarray,
    truth: np.ndarray,
    l2: float,
    weight: np.ndarray | None = None,
) -> np.ndarray:
    """(K, 3) a, b, d minimising the mean cross-entropy of softmax(a cam + b sens + d)
    (each fragment weighted by ``weight`` (m,), default even) plus
    l2 x (|a - 1|^2 + |b - 1|^2 + |d|^2); a, b >= 0."""
    from scipy.optimize import minimize

    m, k = cam.shape
    onehot = np.zeros((m, k))
    onehot[np.arange(m), truth] = 1.0
    sw = np.full(m, 1.0 / m) if weight is None else weight / weight.sum()

    def loss(x: np.ndarray) -> tuple[float, np.ndarray]:
        a, b, d = x[:k], x[k : 2 * k], x[2 * k :]
        z = cam * a + sens * b + d
        z = z - z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1))
        nll = float(((lse - (z * onehot).sum(axis=1)) * sw).sum())
        dz = (np.exp(z - lse[:, None]) - onehot) * sw[:, None]
        reg = float(((a - 1) ** 2).sum() + ((b - 1) ** 2).sum() + (d**2).sum())
        grad = np.concatenate(
            [(dz * cam).sum(0) + 2 * l2 * (a - 1), (dz * sens).sum(0) + 2 * l2 * (b - 1),
             dz.sum(0) + 2 * l2 * d]
        )  # fmt: skip
        return nll + l2 * reg, grad

    x0 = np.concatenate([np.ones(2 * k), np.zeros(k)])
    bounds = [(0.0, None)] * (2 * k) + [(None, None)] * k
    res = minimize(loss, x0, jac=True, method="L-BFGS-B", bounds=bounds)
    return np.asarray(res.x).reshape(3, k).T.copy()


def fit_class_terms(
    v: Views, model: InductionModel, weigh_class: str = ""
) -> tuple[np.ndarray | None, list[dict[str, Any]]]:
    """Per-class gains and biases of the combination (``InductionModel.class_terms``)
    on validation views ``v``, on top of ``model``'s scalar T and w.

    The pull ``l2`` towards the scalar combination is chosen by two-fold
    cross-validation over the scenes (even / odd scene index: fitted on one
    half, per-fragment top-1 on the other, summed), against the scalar
    combination itself; the terms are then fitted on all of ``v`` with it. None
    when the scalar combination does as well (ties go to the simpler).
    ``weigh_class``: the fragments of that class (the one a line's recipe
    ejects: a miss costs the line's recovery) weigh ``CLASS_WEIGHTS`` times
    the others in the cross-entropy, the weight chosen with ``l2`` by the same
    cross-validation (ties: the smaller). Returns the terms and the figures
    of the choice."""
    cam, sens, truth, scene = _class_term_parts(v, model)
    if truth.size == 0:
        return None, []
    if weigh_class and weigh_class not in DEFAULT_CLASSES:
        raise ValueError(f"weigh_class {weigh_class!r} is not one of {DEFAULT_CLASSES}")
    weighed = truth == DEFAULT_CLASSES.index(weigh_class) if weigh_class else truth < 0
    fold = scene % 2
    scalar_right = int(((cam + sens).argmax(axis=1) == truth).sum())
    rows: list[dict[str, Any]] = [{"class_terms_l2": None, "cv_top1": scalar_right / truth.size}]
    best: tuple[float, float] | None = None
    best_right = scalar_right
    for l2 in CLASS_TERM_L2:
        for w in CLASS_WEIGHTS if weigh_class else (1.0,):
            wt = np.where(weighed, w, 1.0)
            right = 0
            for f in (0, 1):
                tr, te = fold != f, fold == f
                if not tr.any() or not te.any():
                    right = -1
                    break
                t = _fit_terms(cam[tr], sens[tr], truth[tr], l2, wt[tr])
                z = cam[te] * t[:, 0] + sens[te] * t[:, 1] + t[:, 2]
                right += int((z.argmax(axis=1) == truth[te]).sum())
            row: dict[str, Any] = {"class_terms_l2": l2, "cv_top1": right / truth.size}
            if weigh_class:
                row["weight_" + weigh_class] = w
            rows.append(row)
            if right > best_right:
                best, best_right = (l2, w), right
    if best is None:
        return None, rows
    return _fit_terms(cam, sens, truth, best[0], np.where(weighed, best[1], 1.0)), rows
