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
from models.induction import DEFAULT_BAR_MM

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


def _cached(folder: Any, name: str, kind: Any, make: Callable[[], Any]) -> Any:
    """``make()`` (a dataclass of arrays), kept as ``folder/name`` (.npz) and read
    back from there when present; no folder: made every time."""
    import dataclasses

    import numpy as np

    if folder is None:
        return make()
    path = folder / name
    if path.is_file():
        with np.load(path) as z:
            return kind(*(z[f.name] for f in dataclasses.fields(kind)))
    out = make()
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{f.name: getattr(out, f.name) for f in dataclasses.fields(kind)})
    return out


def model_bar(
    frequencies_hz: tuple[float, ...], bar_mm: tuple[float, float, float] | None = None
) -> Any:
    """The plant's bar driven at ``frequencies_hz``: its default one, or with
    ``bar_mm`` (coil pitch, coil radius, rows' spacing along the belt, mm) as many
    coils as cover the plant's belt, a row every so many encoder counts."""
    import math

    from calibration.geometry import LineGeometry
    from sim.plant.induction import InductionBar

    hz = tuple(float(f) for f in frequencies_hz)
    if bar_mm is None:
        return InductionBar(frequencies_hz=hz)
    pitch, radius, row = bar_mm
    geometry = LineGeometry()
    every = row / geometry.belt.mm_per_tick
    if not every >= 1 or abs(every - round(every)) > 1e-6:
        raise ValueError(f"a row every {row:g} mm is not a whole number of encoder counts")
    return InductionBar(
        channels=math.ceil(geometry.belt.width_mm / pitch - 1e-9), pitch_mm=pitch,
        coil_radius_mm=radius, every_ticks=round(every), frequencies_hz=hz,
    )  # fmt: skip


def train_sensor(args: argparse.Namespace, say: Say) -> int:
    """Fit the induction model on randomised training scenes (plant truth), then
    its combination with the camera on validation scenes."""
    from models.induction_train import fit
    from models.registry import resolve_model
    from sortline.sensor.evaluate import Views, collect_views, fit_combination
    from sortline.sensor.training import (
        CAMERA_SIZE_BIAS,
        CAMERA_SIZE_SIGMA,
        SensorSamples,
        sensor_samples,
    )
    from sortline.training_data import training_scenes
    from vision.classifier import OnnxClassifier

    if min(args.scenes, args.frames, args.val_scenes, args.val_frames, args.epochs) < 1:
        say("sortline model train-sensor: --scenes, --frames, --val-scenes, --val-frames "
            "and --epochs must be >= 1")  # fmt: skip
        return 2
    try:
        bar_mm = (
            float(getattr(args, "pitch_mm", DEFAULT_BAR_MM[0])),
            float(getattr(args, "coil_radius_mm", DEFAULT_BAR_MM[1])),
            DEFAULT_BAR_MM[2],
        )
        bar = model_bar(tuple(getattr(args, "frequencies_hz", (5000.0,))), bar_mm)
    except ValueError as exc:
        say(f"sortline model train-sensor: --frequencies-hz / --pitch-mm / --coil-radius-mm: {exc}")
        return 2
    t0 = time.perf_counter()
    scenes = training_scenes(args.scenes, frames=args.frames, seed=args.seed)
    cache = getattr(args, "cache", None)
    hz = "-".join(f"{f:g}" for f in bar.frequencies_hz)
    if bar_mm != DEFAULT_BAR_MM:  # the cached samples and views are of one bar
        hz += f"-p{bar_mm[0]:g}-r{bar_mm[1]:g}"
    size = bool(getattr(args, "camera_size", False))
    if size and len(bar.frequencies_hz) < 2:
        say("sortline model train-sensor: --camera-size needs two --frequencies-hz")
        return 2
    bias, sigma = (CAMERA_SIZE_BIAS, CAMERA_SIZE_SIGMA) if size else (0.0, 0.0)
    samples = _cached(
        cache, f"samples-{args.scenes}x{args.frames}-s{args.seed}-{hz}-size{sigma:g}.npz",
        SensorSamples, lambda: sensor_samples(
            scenes, bar=bar, progress=say, size_bias=bias, size_sigma=sigma
        ),
    )  # fmt: skip
    seeds = f"{scenes[0].seed}-{scenes[-1].seed}"
    note = (
        f"{len(samples.labels)} footprints of {args.scenes} randomised training scenes "
        f"(seeds {seeds}, {args.frames} frames each), plant truth, edges +-2 mm noise"
        + (f", the camera's size x exp({bias} + {sigma} N(0, 1)) per piece; " if size else "; ")
        + f"combination fitted on {args.val_scenes} validation scenes per preset "
        f"(seeds {VALIDATION_SEED_BASE} + 100 x preset + k, {args.val_frames} frames); "
        f"bar at {list(bar.frequencies_hz)} Hz, {bar.channels} coils at {bar_mm[0]:g} mm pitch "
        f"of {bar_mm[1]:g} mm radius, a row every {bar_mm[2]:g} mm"
    )
    model = fit(
        samples.integrals, samples.labels, DEFAULT_CLASSES, args.version,
        hidden=args.hidden, epochs=args.epochs, note=note, frequencies_hz=bar.frequencies_hz,
        camera_size=size, bar_mm=bar_mm,
    )  # fmt: skip
    train_s = time.perf_counter() - t0
    clf = OnnxClassifier.load(resolve_model(args.camera_model))
    cam = args.camera_model.split(":")[-1]
    val = _cached(
        cache, f"views-{args.val_scenes}x{args.val_frames}-{hz}-{cam}-n18.npz",
        Views, lambda: collect_views(
            validation_scenes(args.val_scenes, args.val_frames), clf, progress=say, bar=bar
        ),
    )  # fmt: skip
    model, grid = fit_combination(val, model, getattr(args, "weigh_class", "") or "")
    model.save(args.out)
    lp = model.log_probs(samples.integrals)
    out = {
        "model": str(args.out),
        "version": args.version,
        "frequencies_hz": list(bar.frequencies_hz),
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
    from sortline.config import load_config
    from sortline.sensor.evaluate import collect_views, fragment_report, held_out_report
    from sortline.training_data import eval_scenes

    scenes_n = 4 if args.scenes is None else args.scenes
    frames = 300 if args.frames is None else args.frames
    if scenes_n < 1 or frames < 1:
        say("sortline model eval --held-out: --scenes and --frames must be >= 1")
        return 2
    model = InductionModel.load(resolve(args.sensor_model))
    damping = getattr(args, "shared_damping", None)
    damping = load_config().sensor.shared_damping if damping is None else float(damping)
    t0 = time.perf_counter()
    scenes = eval_scenes(args.presets, scenes_n, frames)
    say(f"rendering {len(scenes)} held-out scenes with the induction bar ...")
    anchor = bool(getattr(args, "bar_anchor", True))
    views = collect_views(
        scenes,
        clf,
        progress=say,
        bar=model_bar(model.frequencies_hz, model.bar_mm),
        anchor=anchor,
    )
    out = {
        "command": "sortline " + " ".join(sys.argv[1:]),
        "camera_model": str(clf.path),
        "camera_version": clf.info.version,
        "sensor_model": str(args.sensor_model),
        "sensor_version": model.version,
        "sensor_weight": args.sensor_weight,
        "data": f"presets {args.presets}, {scenes_n} held-out seeds each (from 10,000), "
        f"{frames} frames, views every 3rd frame",
        "sensor_frequencies_hz": list(model.frequencies_hz),
        "bar_anchor": anchor,
        **held_out_report(views, args.presets, scenes_n, model, args.sensor_weight),
        **_single_frequency(views, args, scenes_n, model),
        **_without_size(views, args, scenes_n, model),
        "fused_shared_damping": {
            "shared_damping": damping,
            "at_threshold_0.5": fragment_report(
                views, model, args.sensor_weight, shared_damping=damping
            )["fused"]["at_threshold_0.5"],
        },
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


SINGLE_FREQUENCY_MODEL = "builtin:induction-v2"
NO_SIZE_MODELS = ("builtin:induction-v3", "builtin:induction-v3.1")


def _without_size(views: Any, args: argparse.Namespace, scenes_n: int, model: Any) -> Any:
    """With a model that reads the camera's size (v4): the two-frequency models
    without it on the same views, as ``{"fused_without_size": {spec: fused report}}``
    (the before and after of one run); {} otherwise."""
    from models.induction import InductionModel, resolve
    from sortline.sensor.evaluate import held_out_report

    if not model.reads_size:
        return {}
    out = {}
    for spec in NO_SIZE_MODELS:
        other = InductionModel.load(resolve(spec))
        if other.check_bar(model.frequencies_hz):
            continue
        rep = held_out_report(views, args.presets, scenes_n, other, args.sensor_weight)
        out[spec] = {"sensor_version": other.version, **rep["fused"]}
    return {"fused_without_size": out}


def _single_frequency(views: Any, args: argparse.Namespace, scenes_n: int, model: Any) -> Any:
    """With a two-frequency model: the single-frequency model on the same views
    (frequency 0 of the bar is exactly a single-frequency bar's rows), as
    ``{"fused_single_frequency": ...}``; {} otherwise."""
    from models.induction import InductionModel, resolve
    from sortline.sensor.evaluate import held_out_report

    if model.frequencies_read < 2:
        return {}
    single = InductionModel.load(resolve(SINGLE_FREQUENCY_MODEL))
    if single.check_bar(model.frequencies_hz):
        return {}
    rep = held_out_report(views, args.presets, scenes_n, single, args.sensor_weight)
    return {"fused_single_frequency": {"sensor_model": SINGLE_FREQUENCY_MODEL, **rep["fused"]}}


def diagnose_sensor(args: argparse.Namespace, clf: Any, say: Say) -> int:
    """The fused errors by cause (``sortline.sensor.diagnose``) on validation scenes."""
    from models.induction import InductionModel, resolve
    from sortline.sensor.diagnose import error_causes, markdown
    from sortline.sensor.evaluate import Views, collect_views

    if args.val_scenes < 1 or args.val_frames < 1:
        say("sortline model diagnose-sensor: --val-scenes and --val-frames must be >= 1")
        return 2
    model = InductionModel.load(resolve(args.sensor_model))
    bar = model_bar(model.frequencies_hz, model.bar_mm)
    hz = "-".join(f"{f:g}" for f in bar.frequencies_hz)
    cam = str(args.model).split(":")[-1]
    views = _cached(
        getattr(args, "cache", None),
        f"views-{args.val_scenes}x{args.val_frames}-{hz}-{cam}-n18.npz",
        Views, lambda: collect_views(
            validation_scenes(args.val_scenes, args.val_frames), clf, progress=say, bar=bar
        ),
    )  # fmt: skip
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
