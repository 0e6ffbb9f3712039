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

__all__ = ["eval_held_out", "train_sensor"]

Say = Callable[[str], None]


def train_sensor(args: argparse.Namespace, say: Say) -> int:
    """Fit the induction model on randomised training scenes (plant truth)."""
    from models.induction import fit
    from sortline.sensor.training import sensor_samples
    from sortline.training_data import training_scenes

    if args.scenes < 1 or args.frames < 1:
        say("sortline model train-sensor: --scenes and --frames must be >= 1")
        return 2
    t0 = time.perf_counter()
    scenes = training_scenes(args.scenes, frames=args.frames, seed=args.seed)
    samples = sensor_samples(scenes, progress=say)
    seeds = f"{scenes[0].seed}-{scenes[-1].seed}"
    note = (
        f"{len(samples.labels)} footprints of {args.scenes} randomised training scenes "
        f"(seeds {seeds}, {args.frames} frames each), plant truth, edges +-2 mm noise"
    )
    model = fit(
        samples.integrals, samples.labels, DEFAULT_CLASSES, args.version, note=note,
        max_iter=args.max_iter,
    )  # fmt: skip
    model.save(args.out)
    lp = model.log_probs(samples.integrals)
    out = {
        "model": str(args.out),
        "version": args.version,
        "samples": int(samples.labels.size),
        "train_top1_sensor_alone": float((lp.argmax(axis=1) == samples.labels).mean()),
        "seconds": round(time.perf_counter() - t0, 1),
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
