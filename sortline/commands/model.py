"""``sortline model train|eval|info``: the fragment classifier's life cycle.

train  renders randomised virtual-plant scenes (``--render N``) and/or reads
       labelled crops (``--data``: ``.npz`` crop sets or one folder per class),
       trains the CNN (extra ``train``) and exports a self-describing ONNX model.
eval   classifies held-out crops rendered from the named presets with seeds
       never used in training (or ``--data``) and prints precision, recall and
       the confusion table.
info   prints a model's metadata.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

PRESETS = ("easy", "default", "crowded", "fast", "dirty")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="train, evaluate or describe the fragment classifier")
    msub = p.add_subparsers(dest="model_command", required=True, metavar="MODEL_COMMAND")

    t = msub.add_parser("train", help="train on rendered scenes and/or labelled crops")
    t.add_argument("--data", type=Path, help=".npz crop set(s) or a folder of class folders")
    t.add_argument(
        "--render",
        type=int,
        default=0,
        metavar="N_SCENES",
        help="render N randomised virtual-plant scenes for training",
    )
    t.add_argument("--frames", type=int, default=240, help="frames per rendered scene")
    t.add_argument("--out", type=Path, default=Path("sortline-cnn.onnx"))
    t.add_argument("--epochs", type=int, default=12)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 on a shared CPU)")
    t.add_argument("--version", default="dev", help="version string written into the model")
    t.add_argument("--widths", default="16,32,64,128", help="channels of the stride-2 conv blocks")
    t.add_argument(
        "--extra-conv", type=int, default=0, help="channels of an extra stride-1 block (0: none)"
    )
    t.add_argument(
        "--augment",
        default="camera",
        choices=("camera", "v1", "orient"),
        help="augmentation recipe (models/train.py)",
    )
    t.add_argument("--lr", type=float, default=4e-3, help="peak learning rate (one-cycle)")
    t.add_argument("--save-data", type=Path, help="also save the rendered crops (.npz)")
    t.add_argument(
        "--val",
        type=Path,
        help="validation crop set (.npz) reported each epoch; then all --data is trained on "
        "(default: hold out every tenth scene of the training data)",
    )
    t.add_argument("--note", default="", help="description of the data, kept in the metadata")
    t.add_argument("--checkpoint", type=Path, help="also save the torch weights here")
    t.add_argument("--init", type=Path, help="fine-tune from this checkpoint (same widths)")
    t.set_defaults(func=_train)

    e = msub.add_parser("eval", help="precision, recall and confusion on held-out scenes")
    e.add_argument(
        "model", nargs="?", default="builtin:sortline-cnn", help="model file or builtin:NAME"
    )
    e.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    e.add_argument("--scenes", type=int, help="held-out scenes per preset (2; --held-out: 4)")
    e.add_argument("--frames", type=int, help="frames per scene (150; --held-out: 300)")
    e.add_argument(
        "--held-out",
        action="store_true",
        help="camera alone against camera + induction bar, per fragment (sortline/sensor)",
    )
    e.add_argument("--sensor-model", default="builtin:induction-v3", help="induction model file")
    e.add_argument(
        "--sensor-weight", type=float, default=1.0, help="times the model's fitted sensor weight"
    )
    e.add_argument(
        "--shared-damping", type=float, default=None,
        help="also the figures at a 0.5 threshold with shared footprints flattened by this "
        "(default: the line's [sensor] shared_damping)",
    )  # fmt: skip
    e.add_argument(
        "--bar-anchor", action=argparse.BooleanOptionalAction, default=True,
        help="--held-out: fix each fragment's bar position at its first trusted view, as the "
        "line does (default); --no-bar-anchor: back-project every view (before session 12)",
    )  # fmt: skip
    e.add_argument(
        "--data",
        type=Path,
        help="evaluate on this crop set instead of rendering (per preset when it was saved "
        "by --save-data with the same --presets and --scenes)",
    )
    e.add_argument("--json", type=Path, help="write the report as JSON")
    e.add_argument("--markdown", type=Path, help="write the tables as Markdown")
    e.add_argument("--save-data", type=Path, help="also save the rendered held-out crops (.npz)")
    e.set_defaults(func=_eval)

    ts = msub.add_parser("train-sensor", help="train the induction bar's model (plant truth)")
    ts.add_argument("--scenes", type=int, default=48, help="randomised training scenes")
    ts.add_argument("--frames", type=int, default=240, help="frames per scene")
    ts.add_argument("--seed", type=int, default=1, help="scene seeds 1 + 1000 x SEED + k")
    ts.add_argument("--out", type=Path, default=Path("induction.json"))
    ts.add_argument("--version", default="dev", help="version string written into the model")
    ts.add_argument("--epochs", type=int, default=60, help="passes over the samples")
    ts.add_argument("--hidden", type=int, default=16, help="units in each of the two layers")
    ts.add_argument(
        "--camera-model", default="builtin:sortline-cnn",
        help="the camera model the combination is fitted with",
    )  # fmt: skip
    ts.add_argument(
        "--val-scenes", type=int, default=4,
        help="validation scenes per preset (seeds 10,500 + 100 x preset + k, never held out)",
    )  # fmt: skip
    ts.add_argument("--val-frames", type=int, default=300, help="frames per validation scene")
    ts.add_argument(
        "--frequencies-hz", type=float, nargs="+", default=[5000.0],
        help="the bar's drive frequencies (two: a multi-frequency bar, induction-v3)",
    )  # fmt: skip
    ts.add_argument(
        "--pitch-mm", type=float, default=31.25,
        help="the bar's coil pitch (a finer bar: e.g. 15.625 with 64 coils on the 1 m belt)",
    )  # fmt: skip
    ts.add_argument(
        "--coil-radius-mm", type=float, default=15.0,
        help="the coils' sensitivity radius; the line's [sensor] must say the same",
    )  # fmt: skip
    ts.add_argument(
        "--weigh-class", default="",
        help="a class the line's recipe ejects, weighed more in the per-class terms' fit",
    )  # fmt: skip
    ts.add_argument(
        "--camera-size", action="store_true",
        help="the model also reads the camera's size of the piece (two frequencies: induction-v4)",
    )  # fmt: skip
    ts.add_argument(
        "--cache", type=Path,
        help="a folder keeping the sampled footprints and validation views (.npz, named by "
        "scenes, frames and frequencies): a refit with other --hidden/--epochs reuses them",
    )  # fmt: skip
    ts.set_defaults(func=_train_sensor)

    ds = msub.add_parser(
        "diagnose-sensor", help="the fused errors by cause, on validation scenes (sortline/sensor)"
    )
    ds.add_argument("model", nargs="?", default="builtin:sortline-cnn", help="camera model")
    ds.add_argument("--sensor-model", default="builtin:induction-v3", help="induction model file")
    ds.add_argument("--val-scenes", type=int, default=4, help="validation scenes per preset")
    ds.add_argument("--val-frames", type=int, default=300, help="frames per validation scene")
    ds.add_argument("--json", type=Path, help="also write the report as JSON")
    ds.add_argument(
        "--cache", type=Path, help="a folder keeping the validation views (as train-sensor's)"
    )
    ds.set_defaults(func=_diagnose_sensor)

    sp = msub.add_parser("speed", help="per-crop inference cost (ONNX Runtime, one thread)")
    sp.add_argument("model", help="model file or builtin:NAME")
    sp.add_argument("--batch", type=int, default=64)
    sp.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    sp.add_argument("--passes", type=int, default=7)
    sp.add_argument("--quick", action="store_true", help="2 short passes (proves it runs)")
    sp.add_argument("--json", type=Path, help="write the result as JSON")
    sp.set_defaults(func=_speed)

    sg = msub.add_parser("train-seg", help="train the instance cue (segmenter = learned)")
    sg.add_argument("--out", type=Path, default=Path("seg-dev.onnx"))
    sg.add_argument("--steps", type=int, default=6000, help="training steps (batches)")
    sg.add_argument("--width", type=int, default=12, help="channels of every layer")
    sg.add_argument("--batch", type=int, default=24, help="128x128 patches per step")
    sg.add_argument("--samples", type=int, default=20, help="frames per rendered training run")
    sg.add_argument("--seed", type=int, default=0, help="torch and patch sampling seed")
    sg.add_argument("--version", default="dev", help="version string written into the model")
    sg.add_argument(
        "--classes", type=int, default=10, help="material head's classes (0: none, as seg-v1)"
    )
    sg.add_argument("--init-from", default="", help="start from this cue's weights (ONNX)")
    sg.add_argument("--freeze-core", action="store_true",
                    help="train the material head only (cores as --init-from's)")  # fmt: skip
    sg.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    sg.add_argument("--material-weight", type=float, default=0.5,
                    help="loss weight of the material cross-entropy")  # fmt: skip
    sg.set_defaults(func=_train_seg)

    i = msub.add_parser("info", help="print a model's metadata")
    i.add_argument("model", help="model file or builtin:NAME")
    i.set_defaults(func=_info)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _train(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
    except ImportError:
        _say("sortline model train needs the 'train' extra: pip install 'sortline[train]'")
        return 2
    import numpy as np

    from models.dataset import CropSet, load_training_data
    from models.train import TrainConfig, export_onnx, load_checkpoint, save_checkpoint, train

    if args.render <= 0 and args.data is None:
        _say("sortline model train: give --render N_SCENES and/or --data DIR")
        return 2
    from sortline.training_data import REJECT_CLASS, TRAIN_CLASSES, render_crops, training_scenes

    sets: list[CropSet] = []
    described: list[str] = []
    if args.data is not None:
        sets.append(load_training_data(args.data, TRAIN_CLASSES, 64))
        described.append(args.note or f"crops from {args.data}")
    if args.render > 0:
        scenes = training_scenes(args.render, frames=args.frames, seed=args.seed)
        _say(f"rendering {len(scenes)} randomised scenes x {args.frames} frames ...")
        rendered = render_crops(scenes, progress=_say, group_base=1 + args.seed * 1000)
        if args.save_data:
            rendered.save(args.save_data)
        sets.append(rendered)
        described.append(
            f"{args.render} randomised virtual-plant scenes (seed {args.seed}, "
            f"{args.frames} frames each)"
        )
    data = CropSet.concat(sets)
    _say(f"{len(data)} crops: {data.counts()}")
    init_state, init_sha, widths = None, "", tuple(int(w) for w in args.widths.split(","))
    extra_conv = args.extra_conv
    if args.init is not None:
        init_state, init_cfg, init_sha = load_checkpoint(args.init)
        widths = tuple(init_cfg["widths"])
        extra_conv = int(init_cfg.get("extra_conv", 0))
        described.append(f"fine-tuned from {args.init.name} ({init_cfg.get('data', '')})")
    val_mask = (data.group % 10) == 9 if args.val is None else np.zeros(len(data), bool)
    config = TrainConfig(
        class_names=TRAIN_CLASSES,
        epochs=args.epochs,
        seed=args.seed,
        threads=args.threads,
        widths=widths,
        extra_conv=extra_conv,
        augment=args.augment,
        init_from=init_sha,
        lr=args.lr,
        version=args.version,
        reject_class=REJECT_CLASS,
        data="; ".join(described),
    )
    train_set = data.subset(~val_mask) if val_mask.any() and (~val_mask).any() else data
    val = data.subset(val_mask) if val_mask.any() else None
    if args.val is not None:
        val = load_training_data(args.val, TRAIN_CLASSES, 64)
    result = train(train_set, config, val=val, progress=_say, init_state=init_state)
    if args.checkpoint is not None:
        save_checkpoint(result, config, args.checkpoint)
    out = export_onnx(result, config, args.out, data.crops[:256])
    print(
        json.dumps(
            {
                "model": str(out),
                "crops": len(data),
                "seconds": round(result.seconds, 1),
                "history": result.history[-1],
            },
            indent=1,
        )
    )
    return 0


def _load(spec: str) -> Any:
    from models.registry import resolve_model
    from vision.classifier import OnnxClassifier

    return OnnxClassifier.load(resolve_model(spec))


def _eval(args: argparse.Namespace) -> int:
    if args.held_out:
        from sortline.sensor.cli import eval_held_out

        return eval_held_out(args, _load(args.model), _say)
    args.scenes = 2 if args.scenes is None else args.scenes
    args.frames = 150 if args.frames is None else args.frames
    from models.dataset import CropSet
    from models.evaluate import evaluate_predictions, markdown_tables, predict, summary

    clf = _load(args.model)
    groups: dict[str, Any] | None = None
    if args.data is not None:
        data = CropSet.load(args.data)
        source = str(args.data)
    else:
        from sortline.training_data import eval_scenes, render_crops

        scenes = eval_scenes(args.presets, args.scenes, args.frames)
        _say(f"rendering {len(scenes)} held-out scenes ({', '.join(args.presets)}) ...")
        data = render_crops(scenes, progress=_say)
        source = f"presets {args.presets}, {args.scenes} held-out seeds each, {args.frames} frames"
        if args.save_data:
            data.save(args.save_data)
    if args.data is None or data.group.max(initial=0) < len(args.presets) * args.scenes:
        # scene groups are numbered preset-major in render order (a --data set
        # saved by --save-data with the same --presets and --scenes)
        groups = {
            name: (data.group >= i * args.scenes) & (data.group < (i + 1) * args.scenes)
            for i, name in enumerate(args.presets)
        }
    preds = predict(clf, data)
    out = {
        "model": str(clf.path),
        "version": clf.info.version,
        "data": source,
        "command": "sortline " + " ".join(sys.argv[1:]),
        **summary(preds, groups),
    }
    tables = markdown_tables(evaluate_predictions(preds))
    print(tables)
    print(f"\nsingle-crop top-1 on fragments: {100 * out['top1']:.2f} %")
    if "per_fragment" in out:
        print(f"per-fragment top-1 (views combined): {100 * out['per_fragment']['top1']:.2f} %")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1), encoding="utf-8")
    if args.markdown:
        args.markdown.write_text(tables + "\n", encoding="utf-8")
    return 0


def _train_sensor(args: argparse.Namespace) -> int:
    from sortline.sensor.cli import train_sensor

    return train_sensor(args, _say)


def _train_seg(args: argparse.Namespace) -> int:
    from models.seg_train import train_seg_cli
    from sortline.seg_render import render_set

    return train_seg_cli(args, _say, render_set)


def _diagnose_sensor(args: argparse.Namespace) -> int:
    from sortline.sensor.cli import diagnose_sensor

    return diagnose_sensor(args, _load(args.model), _say)


def _speed(args: argparse.Namespace) -> int:
    import os

    import numpy as np

    from models.registry import resolve_model
    from models.speed import crop_cost_us
    from vision.classifier import OnnxClassifier

    if args.batch < 1 or args.threads < 1 or args.passes < 1:
        _say("sortline model speed: --batch, --threads and --passes must be >= 1")
        return 2
    clf = OnnxClassifier.load(resolve_model(args.model), intra_op_threads=args.threads)
    s = clf.input_size_px
    rng = np.random.default_rng(0)  # crop content does not change the cost of a CNN
    crops = rng.integers(0, 256, (args.batch, s, s, 3), dtype=np.uint8)
    passes, calls = (2, 3) if args.quick else (args.passes, 40)
    out = {
        "command": "sortline " + " ".join(sys.argv[1:]),
        "model": str(clf.path),
        "version": clf.info.version,
        "threads": args.threads,
        "load_average_1min": os.getloadavg()[0],
        **crop_cost_us(clf, crops, args.batch, passes, calls),
    }
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1), encoding="utf-8")
    return 0


def _info(args: argparse.Namespace) -> int:
    clf = _load(args.model)
    raw = clf.path.read_bytes()
    out = {
        "file": str(clf.path),
        "bytes": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "material_classes": list(clf.class_names),
        **clf.info.to_dict(),
    }
    print(json.dumps(out, indent=1))
    return 0
