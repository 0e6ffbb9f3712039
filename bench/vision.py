"""Vision benchmark: speed of the pipeline and quality of the segmentation.

speed:        frames/s and classified objects/s of ``VisionPipeline.process``
              on pre-rendered 1280x512 virtual-plant frames with about 25, 100
              and 250 fragments in view (rendering is not timed). Per-frame
              times, median and p99, over repeated passes.
segmentation: against the plant's ground truth on every preset (held-out
              seeds): count error, split and merge rates, centroid error (mm).

    sortline bench vision [--json OUT] [--quick] [--threads N] [--model M]
"""

from __future__ import annotations

import argparse
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
    from sim.scenario import Scenario, load_scenario

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
    from sim.plant import IdlePlc, VirtualPlant

    rate, size = CASES[target]
    plant = VirtualPlant(LineGeometry(), _scenario(rate, size), IdlePlc(), seed=seed)
    for _ in range(30):  # fill the view
        plant.step()
    frames, counts = [], []
    for _ in range(n_frames):
        frames.append(plant.step())
        counts.append(len(plant.visible_truth()))
    return frames, float(np.mean(counts))


def _time_case(frames: list[Any], clf: Any, passes: int) -> dict[str, Any]:
    from calibration.geometry import LineGeometry
    from vision.pipeline import VisionPipeline

    pipe = VisionPipeline(LineGeometry(), clf)
    for f in frames[: min(10, len(frames))]:  # belt model settles, caches warm
        pipe.process(f)
    pipe.times = type(pipe.times)()
    per_frame_ms: list[float] = []
    n_dets: list[int] = []
    for _ in range(passes):
        for f in frames:
            t0 = time.perf_counter()
            dets = pipe.process(f)
            per_frame_ms.append(1000.0 * (time.perf_counter() - t0))
            n_dets.append(len(dets))
    ms = np.asarray(per_frame_ms)
    t = pipe.times
    med = float(np.median(ms))
    return {
        "frames_timed": len(ms),
        "detections_per_frame": float(np.mean(n_dets)),
        "frame_ms_median": med,
        "frame_ms_p99": float(np.percentile(ms, 99)),
        "fps_median": 1000.0 / med,
        "objects_per_s": float(np.sum(n_dets)) / (ms.sum() / 1000.0),
        "stage_ms_mean": {
            "segment": 1000.0 * t.segment_s / t.frames,
            "crop_and_measure": 1000.0 * t.crop_s / t.frames,
            "classify": 1000.0 * t.classify_s / t.frames,
        },
    }


def speed(model: str, threads: int, n_frames: int, passes: int, cases: list[int]) -> list[dict]:
    from models.registry import resolve_model
    from vision.classifier import OnnxClassifier

    clf = OnnxClassifier.load(resolve_model(model), intra_op_threads=threads)
    out = []
    for target in cases:
        frames, truth_mean = _render(target, n_frames, seed=500 + target)
        row = {
            "fragments_target": target,
            "fragments_in_view_mean": truth_mean,
            "intra_op_threads": threads,
            **_time_case(frames, clf, passes),
        }
        print(
            f"{target:>4} in view: {row['fps_median']:7.1f} fps, "
            f"{row['objects_per_s']:8.0f} objects/s (p99 {row['frame_ms_p99']:.2f} ms)",
            file=sys.stderr,
        )
        out.append(row)
    return out


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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="sortline bench vision",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", type=Path, help="write results here")
    p.add_argument("--quick", action="store_true", help="tiny run that proves the script works")
    p.add_argument("--model", default="builtin:sortline-cnn")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    p.add_argument("--frames", type=int, default=60, help="pre-rendered frames per case")
    p.add_argument("--passes", type=int, default=5, help="timed passes over the frames")
    p.add_argument("--skip-segmentation", action="store_true")
    args = p.parse_args(argv)
    n_frames, passes, cases = args.frames, args.passes, list(CASES)
    seg_scenes, seg_frames = 2, 150
    if args.quick:
        n_frames, passes, cases, seg_scenes, seg_frames = 3, 1, [25], 1, 3
    result: dict[str, Any] = {
        "command": "sortline bench vision " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "note": "shared 2-core machine; other jobs were running",
        },
        "speed": speed(args.model, args.threads, n_frames, passes, cases),
    }
    if not args.skip_segmentation:
        result["segmentation"] = segmentation(seg_scenes, seg_frames, args.model)
    emit_json(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
