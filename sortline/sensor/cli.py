"""``sortline model train-sensor`` and ``sortline model eval --held-out``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from core.classes import DEFAULT_CLASSES

__all__ = ["diagnose_sensor", "eval_held_out", "train_sensor"]

Say = Callable[[str], None]


VALIDATION_SEED_BASE = 10_500  # + 100 x preset index + k: validation, never held out
VALIDATION_PRESETS = ("easy", "default", "crowded", "fast", "dirty")


def validation_scenes(per_preset: int, frames: int) -> list[Any]:
    """The presets with validation seeds (the combination is fitted on these)."""
    from sim.plant.scenario import load_scenario
    from sortline.training_data import SceneSpec

    if not 1 <= per_preset <= 100:
        raise ValueError(f"validation scenes per preset {per_preset} must be 1..100")
    return [
        SceneSpec(load_scenario(p), VALIDATION_SEED_BASE + 100 * i + k, frames)
        for i, p in enumerate(VALIDATION_PRESETS)
        for k in range(per_preset)
    ]


def train_sensor(args: argparse.Namespace, say: Say) -> int:
    """Fit the induction model on randomised training scenes (plant truth), then
    its combination with the camera on validation scenes."""
    from models.induction_train import fit
    from models.registry import resolve_model
    from sortline.sensor.evaluate import collect_views, fit_combination
    from sortline.sensor.training import sensor_samples
    from sortline.training_data import training_scenes
    from vision.classifier import OnnxClassifier

    if min(args.scenes, args.frames, args.val_scenes, args.val_frames, args.epochs) < 1:
        say("sortline model train-sensor: --scenes, --frames, --val-scenes, --val-frames "
            "and --epochs must be >= 1")  # fmt: skip
        return 2
    t0 = time.perf_counter()
    scenes = training_scenes(args.scenes, frames=args.frames, seed=args.seed)
    samples = sensor_samples(scenes, progress=say)
    seeds = f"{scenes[0].seed}-{scenes[-1].seed}"
    note = (
        f"{len(samples.labels)} footprints of {args.scenes} randomised training scenes "
        f"(seeds {seeds}, {args.frames} frames each), plant truth, edges +-2 mm noise; "
        f"combination fitted on {args.val_scenes} validation scenes per preset "
        f"(seeds {VALIDATION_SEED_BASE} + 100 x preset + k, {args.val_frames} frames)"
    )
    model = fit(
        samples.integrals, samples.labels, DEFAULT_CLASSES, args.version,
        hidden=args.hidden, epochs=args.epochs, note=note,
    )  # fmt: skip
    train_s = time.perf_counter() - t0
    clf = OnnxClassifier.load(resolve_model(args.camera_model))
    val = collect_views(validation_scenes(args.val_scenes, args.val_frames), clf, progress=say)
    model, grid = fit_combination(val, model)
    model.save(args.out)
    lp = model.log_probs(samples.integrals)
    out = {
        "model": str(args.out),
        "version": args.version,
        "samples": int(samples.labels.size),
        "train_top1_sensor_alone": float((lp.argmax(axis=1) == samples.labels).mean()),
        "camera_temperature": model.camera_temperature,
        "sensor_weight": model.sensor_weight,
        "validation_grid": grid,
        "train_seconds": round(train_s, 1),
        "seconds": round(time.perf_counter() - t0, 1),
        "load_average_1min": os.getloadavg()[0],
        "note": note,
    }
    print(json.dumps(out, indent=1))
    return 0


def eval_held_out(args: argparse.Namespace, clf: Any, say: Say) -> int:
    """Camera alone and fused, per fragment, on held-out preset scenes."""
    from models.induction import InductionModel, resolve
    from sortline.sensor.evaluate import collect_views, held_out_report
    from sortline.training_data import eval_scenes

    scenes_n = 4 if args.scenes is None else args.scenes
    frames = 300 if args.frames is None else args.frames
    if scenes_n < 1 or frames < 1:
        say("sortline model eval --held-out: --scenes and --frames must be >= 1")
        return 2
    model = InductionModel.load(resolve(args.sensor_model))
    t0 = time.perf_counter()
    scenes = eval_scenes(args.presets, scenes_n, frames)
    say(f"rendering {len(scenes)} held-out scenes with the induction bar ...")
    views = collect_views(scenes, clf, progress=say)
    out = {
        "command": "sortline " + " ".join(sys.argv[1:]),
        "camera_model": str(clf.path),
        "camera_version": clf.info.version,
        "sensor_model": str(args.sensor_model),
        "sensor_version": model.version,
        "sensor_weight": args.sensor_weight,
        "data": f"presets {args.presets}, {scenes_n} held-out seeds each (from 10,000), "
        f"{frames} frames, views every 3rd frame",
        **held_out_report(views, args.presets, scenes_n, model, args.sensor_weight),
        "seconds": round(time.perf_counter() - t0, 1),
        "load_average_1min": os.getloadavg()[0],
    }
    for side in ("camera", "fused"):
        r = out[side]
        pairs = ", ".join(f"{k} {100 * v:.1f} %" for k, v in r["pairs"].items())
        say(f"{side}: per-fragment top-1 {100 * r['per_fragment_top1']:.2f} % ({pairs})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1), encoding="utf-8")
    else:
        print(json.dumps(out, indent=1))
    return 0


def diagnose_sensor(args: argparse.Namespace, clf: Any, say: Say) -> int:
    """The fused errors by cause (``sortline.sensor.diagnose``) on validation scenes."""
    from models.induction import InductionModel, resolve
    from sortline.sensor.diagnose import error_causes, markdown
    from sortline.sensor.evaluate import collect_views

    if args.val_scenes < 1 or args.val_frames < 1:
        say("sortline model diagnose-sensor: --val-scenes and --val-frames must be >= 1")
        return 2
    model = InductionModel.load(resolve(args.sensor_model))
    views = collect_views(validation_scenes(args.val_scenes, args.val_frames), clf, progress=say)
    report = error_causes(views, model)
    report["sensor_model"] = str(args.sensor_model)
    report["data"] = (
        f"validation seeds {VALIDATION_SEED_BASE} + 100 x preset + k, {args.val_scenes} per "
        f"preset {list(VALIDATION_PRESETS)}, {args.val_frames} frames"
    )
    print(markdown(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0
