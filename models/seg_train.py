"""Train the learned instance cue (``vision.learned``) and export it to ONNX.

The net (``SegNet``) is small and fully convolutional: input at the
segmentation's working resolution, 4 channels (the frame minus the line's
belt model, BGR / 64, and the foreground mask 0/1); one stride-2 convolution
to half that resolution, five residual 3x3 convolutions with dilations 1, 2,
4, 8, 1 (a receptive field of about 130 full-resolution px, several
fragments), a 1x1 head and a bilinear x2 upsampling back. Output ``y`` (logits):
``core`` (a fragment's distance to its own edge over its largest, the
regression target of ``models.seg_dataset``) and ``contact`` (pixels next to
another fragment). ``vision.learned`` seeds one piece per core region.

seg-v2 (``n_classes`` > 0) adds a second output, ``material``: per-pixel class
logits over the line's classes (``core.classes.DEFAULT_CLASSES``) at the net's
half resolution (no upsampling: the line takes the argmax there and repeats it,
which is cheaper than upsampling ten channels), trained with cross-entropy
against the fragment's class under each pixel (belt pixels ignored);
``vision.learned`` cuts a component where it holds two materials.

Trained with PyTorch on the CPU (extra ``train``) on random 128x128 patches
with foreground, augmented with brightness, colour casts, sensor noise, blur,
flips and transposition, and a jittered foreground mask, so that it learns
the shape of touching fragments rather than one renderer's exact look.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core.classes import DEFAULT_CLASSES
from models.seg_dataset import IGNORE, SegRun, SegSet
from vision.learned import DIFF_SCALE, KIND, net_input

__all__ = ["SegTrainConfig", "export_seg_onnx", "make_net", "train_and_export", "train_seg"]

Progress = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class SegTrainConfig:
    width: int = 12  # channels of every layer
    patch_px: int = 128  # square training patches, segmentation-resolution px
    batch: int = 16
    steps: int = 3000
    lr: float = 3e-3
    seed: int = 0
    threads: int = 1
    contact_weight: float = 0.5  # loss weight of the contact output
    belt_weight: float = 0.1  # loss weight of pixels outside the foreground mask
    n_classes: int = len(DEFAULT_CLASSES)  # material head's classes (0: none, as seg-v1)
    material_weight: float = 0.5  # loss weight of the material cross-entropy
    init_from: str = ""  # an exported cue (ONNX) whose weights start the net ("": random)
    material_width: int = 8  # channels of the material head's own branch (0: none)
    freeze_core: bool = False  # train the material head only (the core path as init_from's)
    dilations: tuple[int, ...] = (1, 2, 4, 8, 1)  # the residual 3x3 convolutions (depth)
    stride: int = 2  # of the first convolution: 2 (seg-v1/v2, features at half the
    # working resolution, upsampled x2) or 1 (features and output at the working resolution)
    max_wall_s: float = 0.0  # stop (validate, keep the best) once training took this long (0: no)
    version: str = "dev"
    data: str = ""


def make_net(
    width: int,
    n_classes: int = 0,
    material_width: int = 0,
    dilations: tuple[int, ...] = (1, 2, 4, 8, 1),
    stride: int = 2,
) -> Any:
    """The ``SegNet`` torch module (torch imported here: the line needs only ONNX Runtime);
    with ``n_classes`` > 0 it returns (y, material logits at half resolution): a 1x1
    convolution over the core path's features and, with ``material_width`` > 0, those
    of a small branch of its own from the input (a 4x4 stride-2 convolution and a
    3x3 one of dilation 2: local colour the core path need not keep).

    ``dilations``: one residual 3x3 convolution each (seg-v1/v2: 1, 2, 4, 8, 1).
    ``stride`` 1 (a ceiling study's option, issue 15): the first convolution is a
    3x3 of stride 1, so features and ``y`` are at the input's resolution (no
    upsampling; a seam one working px wide is not averaged away) and the material
    head reads them 2 x 2 average-pooled (its output stays at half resolution)."""
    import torch
    from torch import nn

    if stride not in (1, 2):
        raise ValueError(f"SegNet stride must be 1 or 2, got {stride}")
    if not dilations or min(dilations) < 1:
        raise ValueError(f"SegNet dilations must be >= 1 and not empty, got {dilations}")

    class SegNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            if stride == 2:
                self.down = nn.Conv2d(4, width, 4, stride=2, padding=1)
            else:
                self.down = nn.Conv2d(4, width, 3, stride=1, padding=1)
            self.body = nn.ModuleList(
                [nn.Conv2d(width, width, 3, padding=d, dilation=d) for d in dilations]
            )
            self.head = nn.Conv2d(width, 2, 1)
            mw = material_width if n_classes > 0 else 0
            self.mdown = nn.Conv2d(4, mw, 4, stride=2, padding=1) if mw else None
            self.mbody = nn.Conv2d(mw, mw, 3, padding=2, dilation=2) if mw else None
            self.material = nn.Conv2d(width + mw, n_classes, 1) if n_classes > 0 else None

        def forward(self, x: torch.Tensor) -> Any:
            f = torch.relu(self.down(x))
            for conv in self.body:
                f = f + torch.relu(conv(f))
            if stride == 2:
                y = nn.functional.interpolate(self.head(f), scale_factor=2.0, mode="bilinear")
            else:
                y = self.head(f)
            if self.material is None:
                return y
            if stride == 1:
                f = nn.functional.avg_pool2d(f, 2)
            if self.mdown is not None and self.mbody is not None:
                g = torch.relu(self.mdown(x))
                g = g + torch.relu(self.mbody(g))
                f = torch.cat([f, g], dim=1)
            return y, self.material(f)

    return SegNet()


class _Sampler:
    """Random augmented patches of a ``SegSet``."""

    def __init__(self, data: SegSet, cfg: SegTrainConfig, rng: np.random.Generator) -> None:
        self.d, self.cfg, self.rng = data, cfg, rng
        # patch origins centred on foreground pixels, drawn per sample
        self._fg = [np.argwhere(f > 0) for f in data.fg]

    def patch(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        d, rng, s = self.d, self.rng, self.cfg.patch_px
        i = int(rng.integers(len(d)))
        h, w = d.fg.shape[1:]
        pts = self._fg[i]
        if len(pts) and rng.random() < 0.9:
            r, c = pts[int(rng.integers(len(pts)))]
        else:
            r, c = int(rng.integers(h)), int(rng.integers(w))
        r0 = int(np.clip(r - s // 2, 0, h - s))
        c0 = int(np.clip(c - s // 2, 0, w - s))
        sl = (i, slice(r0, r0 + s), slice(c0, c0 + s))
        small = d.small[sl].astype(np.float32)
        belt = d.belt[sl].astype(np.float32)
        fg, core, contact = d.fg[sl].copy(), d.core[sl], d.contact[sl]
        mat = d.material[sl] if d.material is not None else np.full(fg.shape, IGNORE, np.uint8)
        gain = rng.uniform(0.7, 1.3) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
        small, belt = small * gain, belt * gain
        if rng.random() < 0.3:
            small = np.asarray(
                cv2.GaussianBlur(small, (0, 0), float(rng.uniform(0.5, 1.2))), np.float32
            )
        small += rng.normal(0.0, rng.uniform(0.0, 6.0), small.shape).astype(np.float32)
        if rng.random() < 0.2:
            op = cv2.dilate if rng.random() < 0.5 else cv2.erode
            fg = op(fg, np.ones((3, 3), np.uint8))
        x = net_input(np.clip(small, 0, 255), np.clip(belt, 0, 255), fg)
        y = np.stack([core, contact]).astype(np.float32) / 255.0
        m = np.where(fg > 0, 1.0, self.cfg.belt_weight).astype(np.float32)[None]
        c = mat.astype(np.int64)
        if rng.random() < 0.5:
            x, y, m, c = x[..., ::-1], y[..., ::-1], m[..., ::-1], c[..., ::-1]
        if rng.random() < 0.5:
            x, y, m, c = x[..., ::-1, :], y[..., ::-1, :], m[..., ::-1, :], c[..., ::-1, :]
        if rng.random() < 0.5:
            x, y, m, c = x.swapaxes(-1, -2), y.swapaxes(-1, -2), m.swapaxes(-1, -2), c.T
        return tuple(np.ascontiguousarray(a) for a in (x, y, m, c))  # type: ignore[return-value]

    def batch(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        parts = [self.patch() for _ in range(self.cfg.batch)]
        return tuple(np.stack([p[k] for p in parts]) for k in range(4))  # type: ignore[return-value]


def _loss(net: Any, x: Any, y: Any, m: Any, c: Any, cfg: SegTrainConfig) -> Any:
    """Core and contact BCE (belt weighted ``belt_weight``) plus ``material_weight`` x
    the material cross-entropy over fragment pixels (its logits upsampled x2 here)."""
    import torch

    out = net(x)
    if cfg.n_classes > 0:
        out, mat = out
    bce = torch.nn.functional.binary_cross_entropy_with_logits(out, y, reduction="none")
    per = (bce[:, 0:1] + cfg.contact_weight * bce[:, 1:2]) * m
    loss = per.sum() / m.sum()
    if cfg.n_classes > 0 and bool((c != IGNORE).any()):
        up = torch.nn.functional.interpolate(mat, size=c.shape[-2:], mode="bilinear")
        ce = torch.nn.functional.cross_entropy(up, c, ignore_index=IGNORE)
        loss = loss + cfg.material_weight * ce
    return loss


def _val_loss(net: Any, val: SegSet, cfg: SegTrainConfig) -> float:
    """Mean loss over the validation frames, whole frames, no augmentation."""
    import torch

    tot = 0.0
    with torch.no_grad():
        for k in range(len(val)):
            x = torch.from_numpy(net_input(val.small[k], val.belt[k], val.fg[k])[None])
            y = torch.from_numpy(np.stack([val.core[k], val.contact[k]])[None] / np.float32(255))
            m = torch.from_numpy(np.where(val.fg[k] > 0, 1.0, cfg.belt_weight)[None, None])
            mat = val.material[k] if val.material is not None else np.full(val.fg[k].shape, IGNORE)
            c = torch.from_numpy(mat.astype(np.int64)[None])
            tot += float(_loss(net, x, y.float(), m.float(), c, cfg))
    return tot / max(len(val), 1)


def train_seg(
    train: SegSet, val: SegSet, cfg: SegTrainConfig, progress: Progress | None = None
) -> tuple[Any, dict[str, Any]]:
    """Adam with a cosine learning rate; the weights with the lowest validation loss
    (checked every tenth of the run) are kept. Returns the net and a history.
    ``cfg.max_wall_s`` > 0: once training took that long, validate and stop
    (``stopped_at_step``; the learning rate's schedule is then cut short)."""
    import torch

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    net = make_net(cfg.width, cfg.n_classes, cfg.material_width, cfg.dilations, cfg.stride)
    if cfg.init_from:
        net.load_state_dict(onnx_weights(Path(cfg.init_from), net.state_dict()), strict=True)
    if cfg.freeze_core:  # only the material head learns: the cores stay init_from's
        for name, par in net.named_parameters():
            par.requires_grad_(name.startswith(("mdown.", "mbody.", "material.")))
    opt = torch.optim.Adam([q for q in net.parameters() if q.requires_grad], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps)
    sampler = _Sampler(train, cfg, rng)
    best, best_state = float("inf"), None
    hist: list[dict[str, Any]] = []
    t0, run = time.perf_counter(), 0.0
    check = max(cfg.steps // 10, 1)
    stopped = 0
    for step in range(1, cfg.steps + 1):
        over = cfg.max_wall_s > 0 and time.perf_counter() - t0 > cfg.max_wall_s
        if over and hist and hist[-1]["step"] == step - 1:
            stopped = step - 1  # the wall budget ran out just after a validation
            break
        x, y, m, c = (torch.from_numpy(a) for a in sampler.batch())
        loss = _loss(net, x, y, m, c, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        lv = float(loss.detach())
        run = 0.98 * run + 0.02 * lv if step > 1 else lv
        if step % check == 0 or step == cfg.steps or over:
            net.eval()
            v = _val_loss(net, val, cfg)
            net.train()
            hist.append({"step": step, "train_loss": round(run, 4), "val_loss": round(v, 4),
                         "wall_s": round(time.perf_counter() - t0, 1)})  # fmt: skip
            if v < best:
                best = v
                best_state = {k: t.detach().clone() for k, t in net.state_dict().items()}
            if progress is not None:
                progress(json.dumps(hist[-1]))
    assert best_state is not None
    net.load_state_dict(best_state)
    net.eval()
    return net, {"history": hist, "best_val_loss": round(best, 4),
                 "wall_s": round(time.perf_counter() - t0, 1),
                 "stopped_at_step": stopped or None}  # fmt: skip


def onnx_weights(path: Path, state: dict[str, Any]) -> dict[str, Any]:
    """``state`` (a torch state dict) with every tensor an exported cue at ``path``
    holds under the same name and shape replaced by that one (seg-v1's core and
    contact layers start seg-v2; its material head keeps ``state``'s)."""
    import onnx
    import torch
    from onnx import numpy_helper

    out = dict(state)
    for init in onnx.load(str(path)).graph.initializer:
        w = numpy_helper.to_array(init)
        if init.name in out and tuple(out[init.name].shape) == w.shape:
            out[init.name] = torch.from_numpy(w.copy())
    return out


def export_seg_onnx(net: Any, path: Path, meta: dict[str, str], check: SegSet) -> float:
    """Write ``net`` as ONNX (one file, dynamic height and width, metadata ``meta``)
    and return the largest |ONNX Runtime - torch| on ``check``'s first frame (over
    both outputs when the net has a material head)."""
    import onnx
    import onnxruntime as ort
    import torch

    x = torch.from_numpy(net_input(check.small[0], check.belt[0], check.fg[0])[None])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.onnx")
    two = getattr(net, "material", None) is not None
    names = ["y", "material"] if two else ["y"]
    axes = {"x": {2: "h", 3: "w"}, "y": {2: "h", 3: "w"}}
    if two:
        axes["material"] = {2: "h2", 3: "w2"}
    torch.onnx.export(
        net, (x,), str(tmp), input_names=["x"], output_names=names, opset_version=17,
        dynamic_axes=axes, dynamo=False,
    )  # fmt: skip
    model = onnx.load(str(tmp))
    onnx.helper.set_model_props(model, meta)
    onnx.save(model, str(path))
    tmp.unlink()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        out = net(x)
    want = [t.numpy() for t in out] if two else [out.numpy()]
    got = sess.run(None, {"x": x.numpy()})
    return max(float(np.abs(g - w).max()) for g, w in zip(got, want, strict=True))


# training, validation and benchmark seeds stay apart: training 1001-1099,
# validation 3001-3099; the line's benchmarks run on 101 and 202
TRAIN_RUNS = (
    ("default", 0.0, 2.5, 1001), ("default", 0.0, 1.5, 1002),
    ("crowded", 0.0, 2.5, 1003), ("crowded", 0.0, 2.5, 1004), ("crowded", 0.0, 1.5, 1005),
    ("dirty", 0.0, 2.5, 1006), ("shred", 250.0, 2.5, 1007), ("shred", 500.0, 2.5, 1008),
    ("shred", 500.0, 2.5, 1009), ("shred", 1000.0, 2.5, 1010), ("shred", 1000.0, 2.5, 1011),
    ("shred", 500.0, 1.5, 1012), ("shred", 1000.0, 3.5, 1013), ("shred", 2000.0, 2.5, 1014),
)  # fmt: skip
# seg-v2 (material head): more frames where touching fragments of two classes
# are common (crowded, default, dirty, shred 500/s), seeds 1015-1026
TRAIN_RUNS_V2 = (
    *TRAIN_RUNS,
    ("crowded", 0.0, 2.5, 1015), ("crowded", 0.0, 2.5, 1016), ("crowded", 0.0, 3.5, 1017),
    ("default", 0.0, 2.5, 1018), ("default", 0.0, 3.5, 1019), ("dirty", 0.0, 2.5, 1020),
    ("shred", 500.0, 2.5, 1021), ("shred", 500.0, 2.5, 1022), ("shred", 750.0, 2.5, 1023),
    ("shred", 1000.0, 2.5, 1024), ("crowded", 0.0, 1.5, 1025), ("shred", 250.0, 1.5, 1026),
)  # fmt: skip
VAL_RUNS = (
    ("crowded", 0.0, 2.5, 3001), ("shred", 500.0, 2.5, 3002),
    ("shred", 1000.0, 2.5, 3003), ("default", 0.0, 2.5, 3004),
)  # fmt: skip


RenderSet = Callable[[list[SegRun], int, Any], SegSet]


def train_and_export(
    out: Path,
    cfg: SegTrainConfig,
    render_set: RenderSet,
    samples: int = 20,
    progress: Progress | None = None,
    runs: tuple[tuple[str, float, float, int], ...] | None = None,
) -> dict[str, Any]:
    """Render ``TRAIN_RUNS`` and ``VAL_RUNS`` with ``render_set`` (the plant's:
    ``sortline.seg_render``), train, export to ``out`` (with a ``.json`` of
    the history beside it). ``runs``: the training runs (default: ``TRAIN_RUNS_V2``
    with a material head, else ``TRAIN_RUNS``). Returns the summary written there."""

    say = progress or (lambda s: None)
    if runs is None:
        runs = TRAIN_RUNS_V2 if cfg.n_classes > 0 else TRAIN_RUNS
    train_runs = [SegRun(*r) for r in runs]
    val_runs = [SegRun(*r) for r in VAL_RUNS]
    train = render_set(train_runs, samples, say)
    val = render_set(val_runs, max(samples // 4, 2), say)
    data = (
        f"virtual plant (synthetic): {len(train)} frames of {len(train_runs)} runs "
        f"(seeds {train_runs[0].seed}-{train_runs[-1].seed}: "
        + ", ".join(r.label() for r in train_runs)
        + f"); validation {len(val)} frames, seeds {val_runs[0].seed}-{val_runs[-1].seed}"
    )
    cfg = dataclasses.replace(cfg, data=data)
    net, summary = train_seg(train, val, cfg, say)
    outputs = "y: (1, 2, h, w) logits: core, contact"
    if cfg.n_classes > 0:
        outputs += "; material: (1, classes, h/2, w/2) logits over sortline.classes"
    meta = {
        "sortline.kind": KIND,
        "sortline.version": cfg.version,
        "sortline.inputs": "x: (1, 4, h, w) float32, (frame - belt) BGR / 64 and mask 0/1",
        "sortline.outputs": outputs,
        "sortline.diff_scale": str(DIFF_SCALE),
        "sortline.train_config": json.dumps(dataclasses.asdict(cfg)),
    }
    if cfg.n_classes > 0:
        meta["sortline.classes"] = json.dumps(list(DEFAULT_CLASSES[: cfg.n_classes]))
    err = export_seg_onnx(net, out, meta, val)
    summary.update(config=dataclasses.asdict(cfg), onnx_vs_torch_max_abs=err)
    from core.files import atomic_write_json

    atomic_write_json(out.with_suffix(".json"), summary)
    return summary


def train_seg_cli(args: Any, say: Progress, render_set: RenderSet) -> int:
    """``sortline model train-seg``: render, train, export; prints the summary."""
    cfg = SegTrainConfig(
        width=args.width, batch=args.batch, steps=args.steps, seed=args.seed, version=args.version,
        n_classes=getattr(args, "classes", len(DEFAULT_CLASSES)), lr=getattr(args, "lr", 3e-3),
        init_from=getattr(args, "init_from", ""), freeze_core=getattr(args, "freeze_core", False),
        material_weight=getattr(args, "material_weight", 0.5),
    )  # fmt: skip
    summary = train_and_export(args.out, cfg, render_set, samples=args.samples, progress=say)
    say(
        f"wrote {args.out} (best validation loss {summary['best_val_loss']}, "
        f"ONNX vs torch {summary['onnx_vs_torch_max_abs']:.1e}, {summary['wall_s']} s)"
    )
    return 0
