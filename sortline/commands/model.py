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
    t.add_argument("--widths", default="24,48,64,96", help="channels of the four conv blocks")
    t.add_argument("--lr", type=float, default=4e-3, help="peak learning rate (one-cycle)")
    t.add_argument("--save-data", type=Path, help="also save the rendered crops (.npz)")
    t.add_argument("--checkpoint", type=Path, help="also save the torch weights here")
    t.add_argument("--init", type=Path, help="fine-tune from this checkpoint (same widths)")
    t.set_defaults(func=_train)

    e = msub.add_parser("eval", help="precision, recall and confusion on held-out scenes")
    e.add_argument("model", help="model file or builtin:NAME")
    e.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    e.add_argument("--scenes", type=int, default=2, help="held-out scenes per preset")
    e.add_argument("--frames", type=int, default=150, help="frames per scene")
    e.add_argument("--data", type=Path, help="evaluate on this crop set instead of rendering")
    e.add_argument("--json", type=Path, help="write the report as JSON")
    e.add_argument("--markdown", type=Path, help="write the tables as Markdown")
    e.set_defaults(func=_eval)

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
        described.append(f"crops from {args.data}")
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
    if args.init is not None:
        init_state, init_cfg, init_sha = load_checkpoint(args.init)
        widths = tuple(init_cfg["widths"])
        described.append(f"fine-tuned from {args.init.name} ({init_cfg.get('data', '')})")
    val_mask = (data.group % 10) == 9
    config = TrainConfig(
        class_names=TRAIN_CLASSES,
        epochs=args.epochs,
        seed=args.seed,
        threads=args.threads,
        widths=widths,
        init_from=init_sha,
        lr=args.lr,
        version=args.version,
        reject_class=REJECT_CLASS,
        data="; ".join(described),
    )
    train_set = data.subset(~val_mask) if val_mask.any() and (~val_mask).any() else data
    val = data.subset(val_mask) if val_mask.any() else None
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
    from models.dataset import CropSet
    from models.evaluate import evaluate, markdown_tables

    clf = _load(args.model)
    if args.data is not None:
        data = CropSet.load(args.data)
        source = str(args.data)
    else:
        from sortline.training_data import eval_scenes, render_crops

        scenes = eval_scenes(args.presets, args.scenes, args.frames)
        _say(f"rendering {len(scenes)} held-out scenes ({', '.join(args.presets)}) ...")
        data = render_crops(scenes, progress=_say)
        source = f"presets {args.presets}, {args.scenes} held-out seeds each, {args.frames} frames"
    report = evaluate(clf, data)
    out = {
        "model": str(clf.path),
        "version": clf.info.version,
        "data": source,
        "command": "sortline " + " ".join(sys.argv[1:]),
        **report.to_dict(),
    }
    if args.data is None:
        out["per_preset"] = _per_preset(clf, data, args.presets, args.scenes)
    tables = markdown_tables(report)
    print(tables)
    print(f"\ntop-1 on fragments: {100 * report.top1():.2f} %")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1), encoding="utf-8")
    if args.markdown:
        args.markdown.write_text(tables + "\n", encoding="utf-8")
    return 0


def _per_preset(clf: Any, data: Any, presets: list[str], per: int) -> dict[str, float]:
    """top-1 per preset (scene groups are numbered preset-major in render order)."""
    from models.evaluate import evaluate

    out = {}
    for i, name in enumerate(presets):
        mask = (data.group >= i * per) & (data.group < (i + 1) * per)
        if mask.any():
            out[name] = evaluate(clf, data.subset(mask)).top1()
    return out


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
