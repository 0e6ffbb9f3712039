"""Vision benchmark: speed of the pipeline and quality of the segmentation.

speed:        frames/s and classified objects/s on pre-rendered 1280x512
              virtual-plant frames with about 25, 100 and 250 fragments in view
              (rendering is not timed), every detection classified every frame.
              Two modes: ``sync`` (``VisionPipeline.process``, one thread, ONNX
              Runtime intra-op ``--threads``) and ``pipelined``
              (``PipelinedVision``: segmentation of frame n+1 on the caller's
              thread beside classification of frame n on a worker, ONNX Runtime
              on 1 thread). Per row: fps (1000 / median frame interval), frame
              interval p50/p99, latency p50/p99 (frame start to its detections),
              objects/s (detections / wall time), CPU ms per frame (all
              threads of the process), mean ms per stage.
segmentation: against the plant's ground truth on every preset (held-out
              seeds): count error, split and merge rates, centroid error (mm).
--study:      issue 15 at 2.5 m/s, per ``PRESET:FEED`` (feed 0: the preset's
              own), pipelines on the same frames (``--variants``; "every":
              every view classified; "tracks": the line as it is;
              "tracks_colour": with the colour split on; "tracks_nochroma":
              without the chroma cue (session 14); "tracks_warm": with the
              warm split on (session 15, ``vision.split_warm``); "tracks_learned":
              the learned instance cue in place of the classic split, one
              per model of ``--seg-model`` (a comma list compares them:
              "tracks_learned[seg-v1]", "tracks_learned[seg-v2]");
              "tracks_learned_noseam": the first of them without the seam
              rule (``vision.learned.split_learned``, session 13);
              "tracks_onecut": pieces of a split not split again): how
              often touching fragments merge into one segment
              (``bench._line_truth.segment_truth``) and are cut in two, how
              well the merge flag finds the merged segments, crops per frame,
              vision CPU per frame p50/p99 and per-fragment accuracy (each
              fragment's classified views, owned by pixel majority, combined
              as the tracker does; a fragment without one counts as wrong).
--cpu:        issue 15's frame CPU at 2.5 m/s, per ``PRESET:FEED``: where each ms of
              vision goes (thread CPU per frame, p50/p99/mean: the split, the
              rest of the segmentation, measuring and merge flags, crops, the
              classifier with the crop choice), the line's pipeline (tracks).
              ``--baseline REV`` runs the vision path (segmentation, split,
              kernels, merge flags, crops, crop choice, classifier, pipeline:
              ``vision/*.py`` of ``_BASELINE_FILES``) as of git revision REV
              beside it on the same frames, frame by frame in turn, and counts
              the frames where the two give other detections (boxes, classes,
              class probabilities, merge flags, belt-mm centroids, extents, areas
              and sizes), label images or crops (``frames_differing``,
              the 30 warm-up frames included; ``same_detections``: none; a
              revision from before a change of the segmentation differs by
              design). ``--cpu-chroma``: the tree's pipeline with session 14's
              chroma split and one-material merge flag on (the defaults
              since: kept for the commands of session 14's results).
              ``--cpu-warm``: the tree's pipeline with the warm split on
              (session 15). ``--crop-budget N`` also runs the tree's pipeline
              with at most N crops a frame (the same segments; other crops and
              classes by design); ``--crop-frame-ms X`` with the crops that fit
              in X ms of the frame's vision CPU (``CropPolicy.frame_ms``,
              session 15).

    sortline bench vision [--json OUT] [--quick] [--threads N] [--mode M] [--model M]
    sortline bench vision --study crowded:0,shred:500,shred:1000 [--frames N] [--json OUT]
                          [--variants tracks,tracks_learned] [--seed N] [--seg-model M]
    sortline bench vision --cpu shred:500,shred:1000 [--baseline REV] [--crop-budget N]
                          [--crop-frame-ms X] [--cpu-chroma] [--cpu-warm] [--frames N]
                          [--seed N]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import emit_json

# target fragments in view -> feed rate (obj/s) and median size (mm); fragments stay
# ~0.16 s in the 400 mm view at 2.5 m/s, smaller pieces keep 250 from covering the belt
CASES: dict[int, tuple[float, float]] = {25: (160.0, 40.0), 100: (640.0, 30.0), 250: (1600.0, 20.0)}
PRESETS = ("easy", "default", "crowded", "fast", "dirty")


def _scenario(rate_obj_s: float, size_mm: float) -> Any:
    from sim.plant.scenario import Scenario, load_scenario

    d = load_scenario("default").model_dump()
    d["name"] = f"bench-{int(rate_obj_s)}"
    d["feed"].update(
        rate_obj_s=rate_obj_s,
        size_median_mm=size_mm,
        size_min_mm=10.0,
        size_max_mm=max(3 * size_mm, 30.0),
        density=0.1,
        overlap=0.1,
    )
    return Scenario.model_validate(d)


def _render(target: int, n_frames: int, seed: int) -> tuple[list[Any], float]:
    """Pre-rendered frames with about ``target`` fragments in view, and the mean truth count."""
    from calibration.geometry import LineGeometry
    from sim.plant.plant import IdlePlc, VirtualPlant

    rate, size = CASES[target]
    plant = VirtualPlant(LineGeometry(), _scenario(rate, size), IdlePlc(), seed=seed)
    for _ in range(30):  # fill the view
        plant.step()
    frames, counts = [], []
    for _ in range(n_frames):
        frames.append(plant.step())
        counts.append(len(plant.visible_truth()))
    return frames, float(np.mean(counts))


def _run_sync(pipe: Any, frames: list[Any], passes: int) -> tuple[list[float], list[float], int]:
    """Per-frame wall ms and latency ms (equal here), and the detections, of ``passes``."""
    ms: list[float] = []
    n_dets = 0
    for _ in range(passes):
        for f in frames:
            t0 = time.perf_counter()
            n_dets += len(pipe.process(f))
            ms.append(1000.0 * (time.perf_counter() - t0))
    return ms, ms, n_dets


def _run_pipelined(
    pipe: Any, frames: list[Any], passes: int
) -> tuple[list[float], list[float], int]:
    """Per-push wall ms, per-frame latency ms and detections; the wall time of the
    final flush is added to the last interval so the total is honest."""
    from vision.pipelined import PipelinedVision

    ms: list[float] = []
    n_dets = 0
    with PipelinedVision(pipe) as pv:
        for _ in range(passes):
            for f in frames:
                t0 = time.perf_counter()
                dets = pv.push(f)
                n_dets += len(dets) if dets is not None else 0
                ms.append(1000.0 * (time.perf_counter() - t0))
        t0 = time.perf_counter()
        last = pv.flush()
        ms[-1] += 1000.0 * (time.perf_counter() - t0)
        n_dets += len(last) if last is not None else 0
        latency = [1000.0 * v for v in pv.latency_s]
    return ms, latency, n_dets


def _time_case(frames: list[Any], clf: Any, passes: int, mode: str) -> dict[str, Any]:
    from calibration.geometry import LineGeometry
    from vision.pipeline import VisionPipeline
    from vision.track_crops import CropPolicy

    # every detection classified every frame: the classifier's throughput (the line
    # itself classifies tracks: ``--study``)
    pipe = VisionPipeline(LineGeometry(), clf, crop_policy=CropPolicy(mode="every"))
    for f in frames[: min(10, len(frames))]:  # belt model settles, caches warm
        pipe.process(f)
    pipe.times = type(pipe.times)()
    run = _run_sync if mode == "sync" else _run_pipelined
    cpu0 = time.process_time()
    ms_list, lat_list, n_dets = run(pipe, frames, passes)
    cpu_s = time.process_time() - cpu0
    ms, lat = np.asarray(ms_list), np.asarray(lat_list)
    t = pipe.times
    prep_ms = 1000.0 * t.prepare_cpu_s / t.frames
    fin_ms = 1000.0 * t.finish_cpu_s / t.frames
    med = float(np.median(ms))
    per_pass = ms.reshape(passes, -1).sum(axis=1) / 1000.0
    return {
        "frames_timed": len(ms),
        "detections_per_frame": n_dets / len(ms),
        "fps_median": 1000.0 / med,
        "fps_per_pass": [round(len(frames) / s, 1) for s in per_pass],
        "frame_ms_p50": med,
        "frame_ms_p99": float(np.percentile(ms, 99)),
        "latency_ms_p50": float(np.median(lat)),
        "latency_ms_p99": float(np.percentile(lat, 99)),
        "objects_per_s": n_dets / (ms.sum() / 1000.0),
        # CPU time of this process (all its threads) per frame: less sensitive than
        # wall time to other jobs on a shared machine
        "cpu_ms_per_frame": 1000.0 * cpu_s / len(ms),
        "stage_ms_mean": {
            "segment": 1000.0 * t.segment_s / t.frames,
            "crop_and_measure": 1000.0 * t.crop_s / t.frames,
            "classify": 1000.0 * t.classify_s / t.frames,
        },
        # thread CPU of the two stages (prepare: segment, measure, crops; finish:
        # classify); with both stages on their own free core, pipelined throughput
        # is bounded by the larger one: an estimate for a quiet machine, not a measurement
        "stage_cpu_ms_mean": {"prepare": prep_ms, "finish": fin_ms},
        "fps_bound_two_free_cores": (
            1000.0 / max(prep_ms, fin_ms, 1e-9) if mode == "pipelined" else None
        ),
    }


def speed(
    model: str, threads: int, n_frames: int, passes: int, cases: list[int], modes: list[str]
) -> list[dict]:
    import cv2

    from models.registry import resolve_model
    from vision.classifier import OnnxClassifier

    out = []
    for target in cases:
        frames, truth_mean = _render(target, n_frames, seed=500 + target)
        for mode in modes:
            ort_threads = threads if mode == "sync" else 1
            clf = OnnxClassifier.load(resolve_model(model), intra_op_threads=ort_threads)
            row = {
                "fragments_target": target,
                "fragments_in_view_mean": truth_mean,
                "mode": mode,
                "threads": {
                    "python_threads": 1 if mode == "sync" else 2,
                    "ort_intra_op": ort_threads,
                    "opencv": cv2.getNumThreads(),
                },
                **_time_case(frames, clf, passes, mode),
            }
            print(
                f"{target:>4} in view, {mode:>9}: {row['fps_median']:7.1f} fps, "
                f"{row['objects_per_s']:8.0f} objects/s, frame p99 {row['frame_ms_p99']:.2f} ms, "
                f"latency p50/p99 {row['latency_ms_p50']:.2f}/{row['latency_ms_p99']:.2f} ms",
                file=sys.stderr,
            )
            out.append(row)
    return out


def targets(rows: list[dict]) -> dict[str, Any]:
    """Per mode: >= 200 fps with ~25 fragments in view, >= 5,000 objects/s at every load."""
    res: dict[str, Any] = {}
    for mode in sorted({r["mode"] for r in rows}):
        mine = [r for r in rows if r["mode"] == mode]
        at25 = [r["fps_median"] for r in mine if r["fragments_target"] == 25]
        obj = {r["fragments_target"]: r["objects_per_s"] for r in mine}
        res[mode] = {
            "fps_200_at_25": bool(at25) and bool(min(at25) >= 200.0),
            "objects_5000_at": {str(k): bool(v >= 5000.0) for k, v in obj.items()},
        }
    return res


def segmentation(scenes_per_preset: int, frames: int, model: str) -> dict[str, Any]:
    """Per preset: segments after the classifier's reject output (what the line
    sees) and, under ``raw_segmentation``, before it."""
    from models.registry import resolve_model
    from sortline.training_data import eval_scenes, score_segmentation
    from vision.classifier import OnnxClassifier

    clf = OnnxClassifier.load(resolve_model(model))
    out = {}
    for name in PRESETS:
        scenes = eval_scenes([name], scenes_per_preset, frames)
        d = score_segmentation(scenes, classifier=clf).to_dict()
        d["raw_segmentation"] = score_segmentation(scenes).to_dict()
        out[name] = d
        print(
            f"{name:>8}: recall {d['recall']:.3f} count err {d['count_error']:+.3f} "
            f"split {d['split_rate']:.3f} merge {d['merge_rate']:.3f} "
            f"centroid {d['centroid_err_mm_median']:.2f} mm",
            file=sys.stderr,
        )
    return out


def _study_scenario(preset: str, feed: float) -> Any:
    from sim.plant.scenario import Scenario, load_scenario

    d = load_scenario(preset).model_dump()
    d["motion"]["speed_mm_s"] = 2500.0
    if feed > 0:
        d["feed"]["rate_obj_s"] = feed
    return Scenario.model_validate(d)


VARIANTS = (
    "every",
    "tracks",
    "tracks_colour",
    "tracks_learned",
    "tracks_learned_noseam",
    "tracks_onecut",
    "tracks_views2",
    "tracks_budget32",
    "tracks_budget40",
    "tracks_budget24",
    "tracks_budget28",
    "tracks_frame9",
    "tracks_frame8.5",
    "tracks_max4",
    "tracks_conf80",
    "tracks_nochroma",
    "tracks_warm",
)
DEFAULT_VARIANTS = VARIANTS[:4]  # tracks_onecut on request (issue 15, not taken)


def _variants(
    names: tuple[str, ...] = DEFAULT_VARIANTS, seg_model: str = "builtin:seg-v1"
) -> dict[str, tuple[Any, Any]]:
    """The study's pipelines: name -> (CropPolicy, SegmentParams); ``tracks_learned``:
    the line with the learned instance cue ``seg_model`` in place of the classic split
    (a comma list of models: one ``tracks_learned[NAME]`` each, NAME the model's
    built-in name or file stem)."""
    from models.seg_models import resolve_seg_model
    from vision.segment import SegmentParams
    from vision.track_crops import CropPolicy

    first = seg_model.split(",")[0]
    learned = SegmentParams(segmenter="learned", learned_model=str(resolve_seg_model(first)))
    noseam = dataclasses.replace(learned, learned_seam_contact=0.0)  # session 13's rule off
    every = {
        "every": (CropPolicy(mode="every"), SegmentParams()),
        "tracks": (CropPolicy(), SegmentParams()),
        "tracks_colour": (CropPolicy(), SegmentParams(split_colour_diff=60.0)),
        "tracks_nochroma": (CropPolicy(), SegmentParams(split_chroma=False)),
        "tracks_warm": (CropPolicy(), SegmentParams(split_warm=True)),  # session 15
        "tracks_learned": (CropPolicy(), learned),
        "tracks_learned_noseam": (CropPolicy(), noseam),
        "tracks_onecut": (CropPolicy(), SegmentParams(split_max_cuts=1)),  # no re-split
        # fewer crops (issue 15, the frame's CPU at 1,000/s): two sure views a fragment,
        # at most 32 or 40 crops a frame, at most 4 views of an uncertain one, or sure
        # at 0.8
        "tracks_views2": (CropPolicy(views_per_track=2), SegmentParams()),
        "tracks_budget32": (CropPolicy(budget=32), SegmentParams()),
        "tracks_budget40": (CropPolicy(budget=40), SegmentParams()),
        # session 15 (the frame's CPU at 500/s): fewer still, 24 or 28 a frame
        "tracks_budget24": (CropPolicy(budget=24), SegmentParams()),
        "tracks_budget28": (CropPolicy(budget=28), SegmentParams()),
        # ... or the crops that fit in 9 or 8.5 ms of the frame's vision CPU
        "tracks_frame9": (CropPolicy(frame_ms=9.0), SegmentParams()),
        "tracks_frame8.5": (CropPolicy(frame_ms=8.5), SegmentParams()),
        "tracks_max4": (CropPolicy(max_views=4), SegmentParams()),
        "tracks_conf80": (CropPolicy(confident_at=0.8), SegmentParams()),
    }
    out = {k: every[k] for k in names}
    models = [m for m in seg_model.split(",") if m]
    if "tracks_learned" in out and len(models) > 1:
        at = list(out).index("tracks_learned")
        items = list(out.items())
        extra = [
            (f"tracks_learned[{Path(m.removeprefix('builtin:')).stem}]",
             (CropPolicy(), dataclasses.replace(learned, learned_model=str(resolve_seg_model(m)))))
            for m in models
        ]  # fmt: skip
        out = dict(items[:at] + extra + items[at + 1 :])
    return out


_MERGE_KEYS = ("fragments", "touching", "touching_merged", "merged", "mixed", "split",
               "segments", "multi", "flagged", "flagged_multi")  # fmt: skip


def _count_merges(m: dict[str, int], st: dict[str, Any], dets: Any, scale: int) -> None:
    """Add one frame's ``segment_truth`` to the merge counters ``m``."""
    big = st["area"] * scale**2 >= 60  # the segmentation's own minimum
    touching = st["touching"] & big
    m["fragments"] += int(big.sum())
    m["touching"] += int(touching.sum())
    m["touching_merged"] += int((touching & st["merged"]).sum())
    m["merged"] += int((st["merged"] & big).sum())
    m["mixed"] += int((st["mixed"] & big).sum())
    m["split"] += int((st["split"] & big).sum())
    multi = st["n_held"] >= 2
    m["segments"] += len(multi)
    m["multi"] += int(multi.sum())
    m["flagged"] += int(dets.merged.sum())
    m["flagged_multi"] += int((dets.merged & multi).sum())


_TARGETS = ("copper", "brass", "battery")  # the default recipe's (issue 15)


def _count_pairs(pairs: dict[str, int], seg: Any, truth: Any) -> None:
    """Add one frame's cross-class merges to ``pairs`` ("TARGET|OTHER" -> count): for
    each target fragment (the default recipe's), each non-target whose visible
    pixels lie at least half in the target's main segment (low resolution, as
    ``segment_truth``)."""
    from bench._line_truth import _downsampled_truth
    from core.classes import DEFAULT_CLASSES

    lab = _downsampled_truth(truth, seg.labels.shape, seg.scale)
    fids = np.asarray(truth.fragment_id, np.int64)
    cls = np.asarray(truth.class_id, np.int64)
    if fids.size < 2:
        return
    order = np.argsort(fids)
    both = (lab >= 0) & (seg.labels > 0)
    fi = order[np.searchsorted(fids[order], lab[both])]
    si = seg.labels[both].astype(np.int64)
    key, n = np.unique(fi * (int(si.max()) + 1) + si, return_counts=True)
    f_of, s_of = key // (int(si.max()) + 1), key % (int(si.max()) + 1)
    area = np.bincount(fi, minlength=fids.size)
    main: dict[int, tuple[int, int]] = {}  # fragment -> (segment, pixels)
    held: dict[int, list[int]] = {}  # segment -> fragments with half their pixels in it
    for f, s_, c in zip(f_of.tolist(), s_of.tolist(), n.tolist(), strict=True):
        if c > main.get(f, (0, 0))[1]:
            main[f] = (s_, c)
        if c >= 0.5 * max(int(area[f]), 1):
            held.setdefault(s_, []).append(f)
    target = np.isin(np.asarray(DEFAULT_CLASSES)[cls], _TARGETS)
    for f, (s_, _) in main.items():
        if not target[f] or area[f] * seg.scale**2 < 60:
            continue
        for o in held.get(s_, []):
            if not target[o]:
                k = f"{DEFAULT_CLASSES[cls[f]]}|{DEFAULT_CLASSES[cls[o]]}"
                pairs[k] = pairs.get(k, 0) + 1


def _merge_figures(m: dict[str, int]) -> dict[str, Any]:
    return dict(
        m,
        touching_merged_share=round(m["touching_merged"] / max(m["touching"], 1), 3),
        fragments_cut_share=round(m["split"] / max(m["fragments"], 1), 3),
        segments_multi_share=round(m["multi"] / max(m["segments"], 1), 3),
        flag_precision=round(m["flagged_multi"] / max(m["flagged"], 1), 3),
        flag_recall=round(m["flagged_multi"] / max(m["multi"], 1), 3),
    )


def study(
    preset: str,
    feed: float,
    n_frames: int,
    model: str,
    seed: int = 101,
    variants: dict[str, tuple[Any, Any]] | None = None,
) -> dict[str, Any]:
    """One ``--study`` cell (see the module docstring); ``variants``: name ->
    (``CropPolicy``, ``SegmentParams``) run side by side on the same frames
    (default ``_variants()``)."""
    from bench._line_truth import segment_truth
    from calibration.geometry import LineGeometry
    from models.registry import resolve_model
    from sim.plant.plant import IdlePlc, VirtualPlant
    from vision.classifier import OnnxClassifier
    from vision.pipeline import VisionPipeline

    geo = LineGeometry()
    plant = VirtualPlant(geo, _study_scenario(preset, feed), IdlePlc(), seed=seed)
    clf = OnnxClassifier.load(resolve_model(model), intra_op_threads=1)
    pipes = {
        k: VisionPipeline(geo, clf, crop_policy=pol, segment_params=sp)
        for k, (pol, sp) in (variants or _variants()).items()
    }
    for _ in range(30):  # fill the view and the belt model
        f = plant.step()
        for pipe in pipes.values():
            pipe.process(f)
    k_cls = len(clf.class_names)
    # per variant: fragment id -> its classified views' summed log probabilities
    evid: dict[str, dict[int, np.ndarray]] = {k: {} for k in pipes}
    true_cls: dict[int, int] = {}
    first_seen: dict[int, int] = {}
    last_seen: dict[int, int] = {}
    cpu: dict[str, list[float]] = {k: [] for k in pipes}
    crops = {k: 0 for k in pipes}
    merges = {k: dict.fromkeys(_MERGE_KEYS, 0) for k in pipes}
    pairs: dict[str, dict[str, int]] = {k: {} for k in pipes}
    for i_frame in range(n_frames):
        f = plant.step()
        truth = plant.visible_truth()
        true_cls.update(zip(truth.fragment_id.tolist(), truth.class_id.tolist(), strict=True))
        for fid in truth.fragment_id.tolist():
            first_seen.setdefault(fid, i_frame)
            last_seen[fid] = i_frame
        for k, pipe in pipes.items():
            c0 = time.thread_time()
            dets = pipe.process(f)
            cpu[k].append(1e3 * (time.thread_time() - c0))
            seg = pipe.last_segments
            assert seg is not None
            st = segment_truth(seg.labels, seg.label_id, seg.scale, truth)
            _count_merges(merges[k], st, dets, seg.scale)
            _count_pairs(pairs[k], seg, truth)
            seen = dets.class_id >= 0
            crops[k] += int(seen.sum())
            logp = np.log(np.maximum(dets.class_prob[seen].astype(np.float64), 1e-4))
            for fid, lp in zip(st["owner"][seen].tolist(), logp, strict=True):
                if fid >= 0:
                    acc = evid[k].setdefault(fid, np.zeros(k_cls))
                    acc += lp
    # whole passages only: fragments that entered the view and left it within the run
    frags = [f for f in sorted(true_cls) if first_seen[f] > 0 and last_seen[f] < n_frames - 1]
    out: dict[str, Any] = {"preset": preset, "feed_obj_s": feed or None, "frames": n_frames}
    for k in pipes:
        right = sum(
            1 for fid in frags if fid in evid[k] and int(evid[k][fid].argmax()) == true_cls[fid]
        )
        ms = np.asarray(cpu[k])
        out[k] = {
            "crops_per_frame": round(crops[k] / n_frames, 1),
            "vision_cpu_ms": {
                "p50": round(float(np.percentile(ms, 50)), 2),
                "p99": round(float(np.percentile(ms, 99)), 2),
            },
            "fragments": len(frags),
            "fragments_classified": sum(1 for fid in frags if fid in evid[k]),
            "per_fragment_accuracy": round(right / max(len(frags), 1), 4),
            "merges": _merge_figures(merges[k]),
            # target x non-target pair-frames in one segment (session 15)
            "cross_class": sum(pairs[k].values()),
            "cross_class_pairs": dict(sorted(pairs[k].items(), key=lambda kv: -kv[1])),
        }
    print(
        f"{preset}:{feed:g} "
        + "; ".join(
            f"{k}: touching merged {out[k]['merges']['touching_merged_share']}, cut "
            f"{out[k]['merges']['fragments_cut_share']}, flag precision/recall "
            f"{out[k]['merges']['flag_precision']}/{out[k]['merges']['flag_recall']}, "
            f"{out[k]['crops_per_frame']} crops/frame, cpu p50/p99 "
            f"{out[k]['vision_cpu_ms']['p50']}/{out[k]['vision_cpu_ms']['p99']} ms, accuracy "
            f"{out[k]['per_fragment_accuracy']}, target x other merged {out[k]['cross_class']}"
            for k in pipes
        ),
        file=sys.stderr,
        flush=True,
    )
    return out


_BASELINE_FILES = ("kernels", "kernels_split", "kernels_track", "kernels_merge", "split",
                   "learned", "segment", "merge", "crops", "track_crops", "classifier",
                   "pipeline")  # fmt: skip


def _baseline_vision(rev: str) -> dict[str, Any]:
    """The frame's vision path as of git ``rev``: name -> module for ``_BASELINE_FILES``
    that exist at ``rev`` (segmentation, split, kernels, merge flags, crops, crop
    choice, classifier, pipeline), each importing the others of that revision,
    imported from a temporary folder."""
    import atexit
    import importlib
    import shutil
    import subprocess
    import tempfile

    root = Path(__file__).resolve().parent.parent
    folder = Path(tempfile.mkdtemp(prefix="sortline-baseline-"))
    atexit.register(shutil.rmtree, folder, True)
    tag = "".join(ch for ch in rev if ch.isalnum())[:12]
    texts = {}
    for name in _BASELINE_FILES:
        proc = subprocess.run(["git", "show", f"{rev}:vision/{name}.py"], cwd=root,
                              capture_output=True, text=True, check=False)  # fmt: skip
        if proc.returncode == 0:
            texts[name] = proc.stdout
        elif name in ("segment", "pipeline"):
            raise SystemExit(f"--baseline {rev}: git show vision/{name}.py: {proc.stderr.strip()}")
    for name, text in texts.items():
        for other in texts:
            text = text.replace(f"from vision.{other} import", f"from _base_{tag}_{other} import")
        (folder / f"_base_{tag}_{name}.py").write_text(text, encoding="utf-8")
    sys.path.insert(0, str(folder))
    return {name: importlib.import_module(f"_base_{tag}_{name}") for name in texts}


_STAGES = ("split", "segment_rest", "measure_flags", "crops", "classify", "total")


def cpu(
    preset: str,
    feed: float,
    n_frames: int,
    model: str,
    seed: int = 101,
    baseline: str | None = None,
    seg_model: str | None = None,
    crop_budget: int | None = None,
    chroma: bool = False,
    warm: bool = False,
    frame_ms: float | None = None,
) -> dict[str, Any]:
    """One ``--cpu`` cell (see the module docstring); ``seg_model``: segment with
    this learned instance cue (``[vision] segmenter = "learned"``) instead of
    the classic split; ``crop_budget``: also run the tree's pipeline with at most
    this many crops a frame (the same segments, other classes); ``chroma``: the
    tree's pipeline with the chroma split and the merge flag's one-material check
    (``[vision] split_chroma``, ``merge_material``: session 14; the defaults since
    the end of that session, so it changes nothing now; kept for the commands the
    session's results were made with); ``warm``: the tree's pipeline with the warm
    split on (``[vision] split_warm``, session 15)."""
    import vision.segment as segment_mod
    from calibration.geometry import LineGeometry
    from models.registry import resolve_model
    from sim.plant.plant import IdlePlc, VirtualPlant
    from vision.classifier import OnnxClassifier
    from vision.pipeline import VisionPipeline

    geo = LineGeometry()
    plant = VirtualPlant(geo, _study_scenario(preset, feed), IdlePlc(), seed=seed)
    from vision.merge import WARM_SHARE, MergeParams

    seg_params = segment_mod.SegmentParams(split_chroma=True) if chroma else None
    if warm:
        seg_params = segment_mod.SegmentParams(split_warm=True)
    merge = MergeParams(warm_share=WARM_SHARE) if chroma else MergeParams()
    if seg_model:
        from models.seg_models import resolve_seg_model

        seg_params = segment_mod.SegmentParams(
            segmenter="learned", learned_model=str(resolve_seg_model(seg_model))
        )
    path = resolve_model(model)
    mods: dict[str, Any] = {"now": segment_mod}
    pipes = {"now": VisionPipeline(geo, OnnxClassifier.load(path, intra_op_threads=1),
                                   segment_params=seg_params, merge_params=merge)}  # fmt: skip
    if baseline:  # the whole vision path of that revision, its own classifier session
        k, base = f"baseline {baseline}", _baseline_vision(baseline)
        mods[k] = base["segment"]
        clf = base["classifier"].OnnxClassifier.load(path, intra_op_threads=1)
        pipes[k] = base["pipeline"].VisionPipeline(geo, clf)
    if crop_budget is not None:
        from vision.track_crops import CropPolicy

        k = f"now, budget {crop_budget}"
        mods[k] = segment_mod
        pipes[k] = VisionPipeline(geo, OnnxClassifier.load(path, intra_op_threads=1),
                                  segment_params=seg_params, merge_params=merge,
                                  crop_policy=CropPolicy(budget=crop_budget))  # fmt: skip
    if frame_ms is not None:  # session 15: the crops that fit in frame_ms (inexact)
        from vision.track_crops import CropPolicy

        k = f"now, frame {frame_ms:g} ms"
        mods[k] = segment_mod
        pipes[k] = VisionPipeline(geo, OnnxClassifier.load(path, intra_op_threads=1),
                                  segment_params=seg_params, merge_params=merge,
                                  crop_policy=CropPolicy(frame_ms=frame_ms))  # fmt: skip
    clock = {"split": 0.0, "segment": 0.0}
    originals = {k: mod.split_touching for k, mod in mods.items()}

    def timed_split(fn: Any) -> Any:
        def run(*args: Any) -> Any:
            c = time.thread_time()
            out = fn(*args)
            clock["split"] += time.thread_time() - c
            return out

        return run

    def timed_segment(fn: Any) -> Any:
        def run(image: np.ndarray) -> Any:
            c = time.thread_time()
            out = fn(image)
            clock["segment"] += time.thread_time() - c
            return out

        return run

    for pipe in pipes.values():
        pipe.segmenter.segment = timed_segment(pipe.segmenter.segment)  # type: ignore[method-assign]
    ms: dict[str, dict[str, list[float]]] = {k: {s: [] for s in _STAGES} for k in pipes}
    segs = {k: 0 for k in pipes}
    crops = {k: 0 for k in pipes}
    differ = {k: 0 for k in pipes}
    for k, mod in mods.items():
        mod.split_touching = timed_split(originals[k])
    try:
        for i_frame in range(30 + n_frames):
            f = plant.step()
            order = list(pipes) if i_frame % 2 == 0 else list(pipes)[::-1]
            dets, preps = {}, {}
            for k in order:
                clock["split"] = clock["segment"] = 0.0
                c0 = time.thread_time()
                prep = preps[k] = pipes[k].prepare(f)
                c1 = time.thread_time()
                dets[k] = pipes[k].finish(prep)
                c2 = time.thread_time()
                if i_frame < 30:  # fill the view and the belt model
                    continue
                crop_s = pipes[k].last_split_cpu_s[2]
                row = ms[k]
                row["split"].append(1e3 * clock["split"])
                row["segment_rest"].append(1e3 * (clock["segment"] - clock["split"]))
                row["measure_flags"].append(1e3 * (c1 - c0 - clock["segment"]))
                row["crops"].append(1e3 * crop_s)
                row["classify"].append(1e3 * (c2 - c1 - crop_s))
                row["total"].append(1e3 * (c2 - c0))
                segs[k] += len(prep.segments)
                crops[k] += int((dets[k].class_id >= 0).sum())
            ref = dets["now"]
            for k, d in dets.items():
                if k.startswith("now, "):  # other crops, other classes: the same segments
                    a, b = preps[k], preps["now"]
                    same = np.array_equal(a.segments.bbox_px, b.segments.bbox_px) and (
                        np.array_equal(a.merged, b.merged)
                    )
                else:
                    same = (
                        np.array_equal(d.bbox_px, ref.bbox_px)
                        and np.array_equal(d.class_id, ref.class_id)
                        and np.array_equal(d.class_prob, ref.class_prob, equal_nan=True)
                        and np.array_equal(d.merged, ref.merged)
                        and _same_crops(pipes[k].last_crops, pipes["now"].last_crops)
                        and _same_measures(d, ref)
                        and np.array_equal(preps[k].segments.labels, preps["now"].segments.labels)
                    )
                if not same and k.startswith("now, "):
                    raise SystemExit(f"--cpu: {k} and now differ on frame {i_frame}")
                differ[k] += int(not same)  # a baseline that segments otherwise: counted
    finally:
        for k, mod in mods.items():
            mod.split_touching = originals[k]
    segmenter = f"learned ({seg_model})" if seg_model else "classic"
    out: dict[str, Any] = {"preset": preset, "feed_obj_s": feed or None, "frames": n_frames,
                           "seed": seed, "same_detections": not any(differ.values()),
                           "frames_differing": {k: n for k, n in differ.items() if k != "now"},
                           "crop_budget": crop_budget, "crop_frame_ms": frame_ms,
                           "segmenter": segmenter}  # fmt: skip
    for k in pipes:
        out[k] = {
            "segments_per_frame": round(segs[k] / n_frames, 1),
            "crops_per_frame": round(crops[k] / n_frames, 1),
            "cpu_ms": {
                s: {
                    "p50": round(float(np.percentile(v, 50)), 2),
                    "p99": round(float(np.percentile(v, 99)), 2),
                    "mean": round(float(np.mean(v)), 2),
                }
                for s, v in ms[k].items()
            },
        }
        c = out[k]["cpu_ms"]
        print(f"{preset}:{feed:g} seed {seed} {k}: " + ", ".join(
            f"{s} {c[s]['p50']}/{c[s]['p99']}" for s in _STAGES) + " ms (p50/p99)",
            file=sys.stderr, flush=True)  # fmt: skip
    return out


def _same_measures(a: Any, b: Any) -> bool:
    """The same belt-mm centroids, extents, areas and sizes (``Detections``)."""
    return all(
        np.array_equal(getattr(a, f), getattr(b, f), equal_nan=True)
        for f in ("centroid_mm", "extent_mm", "area_mm2", "axes_mm")
    )


def _same_crops(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))


def _cells(p: argparse.ArgumentParser, flag: str, arg: str) -> list[tuple[str, float]]:
    """``PRESET:FEED,...`` (FEED 0 or absent: the preset's own) as (name, feed) pairs;
    anything else ends the command with an error naming ``flag`` and the item."""
    cells = []
    for item in arg.split(","):
        name, _, feed = item.partition(":")
        try:
            cells.append((name, float(feed or 0)))
        except ValueError:
            p.error(f"{flag}: {item!r} is not PRESET:FEED")
    return cells


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="sortline bench vision",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", type=Path, help="write results here")
    p.add_argument("--quick", action="store_true", help="tiny run that proves the script works")
    p.add_argument("--model", default="builtin:sortline-cnn")
    p.add_argument(
        "--threads", type=int, default=2, help="ONNX Runtime intra-op threads (sync mode)"
    )
    p.add_argument("--mode", choices=("sync", "pipelined", "both"), default="both")
    p.add_argument("--frames", type=int, default=60, help="pre-rendered frames per case")
    p.add_argument("--passes", type=int, default=5, help="timed passes over the frames")
    p.add_argument("--skip-segmentation", action="store_true")
    p.add_argument("--study", help="comma list of PRESET:FEED (0 = own feed): merges and "
                   "track classification at 2.5 m/s (issue 15), --frames frames each")  # fmt: skip
    p.add_argument(
        "--variants",
        default=",".join(DEFAULT_VARIANTS),
        help=f"--study: pipelines side by side (comma list of {', '.join(VARIANTS)})",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=101,
        help="--study: plant seed (not a training seed: the instance cue trains on 1001-1099)",
    )
    p.add_argument("--seg-model", default="builtin:seg-v1",
                   help="--study: the instance cue of tracks_learned (a comma list: one "
                   "tracks_learned[NAME] each); --cpu-learned: the one to time")  # fmt: skip
    p.add_argument("--cpu", help="comma list of PRESET:FEED (0 = own feed): vision CPU per "
                   "stage at 2.5 m/s (issue 15), --frames frames each")  # fmt: skip
    p.add_argument("--baseline", help="--cpu: also run the segmentation as of this git revision, "
                   "side by side, and check the detections are the same")  # fmt: skip
    p.add_argument("--crop-budget", type=int, help="--cpu: also run the line's pipeline with "
                   "at most this many crops a frame (same frames, same segments)")  # fmt: skip
    p.add_argument("--crop-frame-ms", type=float, help="--cpu: also run the line's pipeline "
                   "with the crops that fit in this many ms of the frame's vision CPU "
                   "(CropPolicy.frame_ms; same frames, same segments)")  # fmt: skip
    p.add_argument("--cpu-learned", action="store_true",
                   help="--cpu: segment with the learned instance cue --seg-model")  # fmt: skip
    p.add_argument("--cpu-chroma", action="store_true",
                   help="--cpu: the tree's pipeline with [vision] split_chroma and "
                   "merge_material on (session 14)")  # fmt: skip
    p.add_argument("--cpu-warm", action="store_true",
                   help="--cpu: the tree's pipeline with [vision] split_warm on "
                   "(session 15)")  # fmt: skip
    args = p.parse_args(argv)
    if args.cpu_learned and args.baseline:
        p.error("--cpu-learned: --baseline compares the classic split only")
    if args.cpu_learned and args.cpu_chroma:
        p.error("--cpu-chroma: the classic split only, not with --cpu-learned")
    if args.cpu_learned and args.cpu_warm:
        p.error("--cpu-warm: the classic split only, not with --cpu-learned")
    if args.cpu_learned and "," in args.seg_model:
        p.error("--cpu-learned: one --seg-model at a time")
    if args.cpu:
        cells = _cells(p, "--cpu", args.cpu)
        frames = 5 if args.quick else args.frames
        load0 = os.getloadavg()[0]
        seg_model = args.seg_model if args.cpu_learned else None
        if args.crop_budget is not None and args.crop_budget < 1:
            p.error(f"--crop-budget {args.crop_budget} must be >= 1")
        if args.crop_frame_ms is not None and not args.crop_frame_ms > 0:
            p.error(f"--crop-frame-ms {args.crop_frame_ms} must be > 0")
        rows = [cpu(name, feed, frames, args.model, args.seed, args.baseline, seg_model,
                    args.crop_budget, args.cpu_chroma, args.cpu_warm, args.crop_frame_ms)
                for name, feed in cells]  # fmt: skip
        emit_json({"command": "sortline bench vision " + " ".join(argv or sys.argv[1:]),
                   "load_avg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
                   "cpus": os.cpu_count(),
                   "note": f"virtual plant, seed {args.seed}, 2.5 m/s, the line's pipeline "
                   "(tracks, merge flags); thread CPU of the calling thread per frame (ONNX "
                   "Runtime on 1 thread), the first 30 frames left out; a shared machine: "
                   "load_avg_1m at start and end", "cpu": rows},
                  args.json)  # fmt: skip
        return 0
    if args.study:
        cells = _cells(p, "--study", args.study)
        frames = 5 if args.quick else args.frames
        names = tuple(v for v in args.variants.split(",") if v)
        unknown = [v for v in names if v not in VARIANTS]
        if unknown or not names:
            p.error(f"--variants: {unknown or names} not among {', '.join(VARIANTS)}")
        variants = _variants(names, args.seg_model)
        rows = [study(name, feed, frames, args.model, args.seed, variants) for name, feed in cells]
        emit_json({"command": "sortline bench vision " + " ".join(argv or sys.argv[1:]),
                   "load_avg_1m": os.getloadavg()[0],
                   "note": f"virtual plant, seed {args.seed}, 2.5 m/s; vision CPU = thread time of "
                   "process() on one thread, ONNX Runtime 1 thread", "study": rows},
                  args.json)  # fmt: skip
        return 0
    n_frames, passes, cases = args.frames, args.passes, list(CASES)
    seg_scenes, seg_frames = 2, 150
    if args.quick:
        n_frames, passes, cases, seg_scenes, seg_frames = 3, 1, [25], 1, 3
    result: dict[str, Any] = {
        "command": "sortline bench vision " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "note": "shared 2-core machine; other jobs may run: see the load averages",
            "load_avg_1m_start": os.getloadavg()[0],
        },
    }
    modes = ["sync", "pipelined"] if args.mode == "both" else [args.mode]
    result["speed"] = speed(args.model, args.threads, n_frames, passes, cases, modes)
    result["targets_met"] = targets(result["speed"])
    result["machine"]["load_avg_1m_after_speed"] = os.getloadavg()[0]
    if not args.skip_segmentation:
        result["segmentation"] = segmentation(seg_scenes, seg_frames, args.model)
    emit_json(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
