"""Train ``SortlineCNN`` on a ``CropSet`` and export it as a self-describing ONNX model.

PyTorch on the CPU (extra ``train``). Augmentation keeps what the camera
cannot change about a fragment (colour ratios) and varies what it can
(orientation, brightness, small colour casts, noise). Export goes through
``torch.onnx.export`` (dynamo, dynamic batch, no external data), writes the
metadata ``vision.classifier`` validates, and checks ONNX Runtime against
torch on real crops before the file is kept.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from models.dataset import CropSet

__all__ = [
    "TrainConfig",
    "TrainResult",
    "config_sha256",
    "export_onnx",
    "load_checkpoint",
    "save_checkpoint",
    "train",
]

Progress = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    class_names: tuple[str, ...]
    input_size_px: int = 64
    epochs: int = 12
    batch_size: int = 128
    lr: float = 4e-3
    weight_decay: float = 5e-4
    widths: tuple[int, ...] = (16, 32, 64, 128)  # multiples of 16: ONNX Runtime's fast path
    extra_conv: int = 0  # channels of an extra stride-1 3x3 block (0: none)
    augment: str = "camera"  # "camera" (matches sim/plant/camera.py) or "v1" (models <= 0.4)
    dropout: float = 0.2
    label_smoothing: float = 0.05
    seed: int = 0
    threads: int = 1  # on a shared CPU, 2 torch threads ran 8x slower than 1 (OpenMP spinning)
    version: str = "dev"
    reject_class: str | None = None  # a "not a fragment" output among class_names
    data: str = ""  # description of the training data (scenes, seeds, presets)
    init_from: str = ""  # fine-tune: sha256 of the checkpoint the weights start from

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":"))


def config_sha256(config: TrainConfig) -> str:
    return hashlib.sha256(config.to_json().encode()).hexdigest()


@dataclasses.dataclass
class TrainResult:
    model: Any  # SortlineCNN (torch), typed loosely so importing this module needs no torch
    history: list[dict[str, float]]
    mean_bgr: tuple[float, float, float]
    std_bgr: tuple[float, float, float]
    seconds: float


def _channel_stats(crops: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    sample = crops[:: max(1, len(crops) // 2000)].reshape(-1, 3).astype(np.float64) / 255.0
    return tuple(sample.mean(0).tolist()), tuple(np.maximum(sample.std(0), 1e-3).tolist())


def _augment(x: Any, gen: Any, mode: str = "camera") -> Any:
    """(B, S, S, 3) uint8 tensor -> augmented uint8 tensor.

    Orientation (flips, rot90) for the whole batch, then per crop what the
    camera changes (``sim/plant/camera.py``), applied to fragment and belt alike as
    the lamp does: "camera" = brightness gain 0.75..1.12 (fall-off towards the
    belt edges, drift, flicker), a warm/cool cast along blue-red only (B x (1+c),
    R x (1-c), |c| <= 0.07, the lamps' drift), offset +-4, sensor noise per
    channel with sigma 0..5, and on a third of the crops a 3-tap blur along one
    axis (motion blur). "v1": the models <= 0.4 recipe (gain +-10 %, random
    per-channel cast +-3 %, offset +-8, grey noise sigma 2.5). "orient":
    orientation only (camera-free data, for the ceiling estimate).
    """
    import torch

    b = x.shape[0]
    if torch.rand(1, generator=gen).item() < 0.5:
        x = x.flip(1)
    if torch.rand(1, generator=gen).item() < 0.5:
        x = x.flip(2)
    k = int(torch.randint(0, 4, (1,), generator=gen).item())
    x = torch.rot90(x, k, dims=(1, 2))
    if mode == "orient":
        return x
    xf = x.to(torch.float32)
    if mode == "v1":
        gain = 1.0 + 0.10 * (torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 2
        cast = 1.0 + 0.03 * (torch.rand(b, 1, 1, 3, generator=gen) - 0.5) * 2
        offset = 8.0 * (torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 2
        noise = torch.randn((b, xf.shape[1], xf.shape[2], 1), generator=gen) * 2.5
        xf = xf * gain * cast + offset + noise
        return xf.clamp_(0, 255).round_().to(torch.uint8)
    if torch.rand(1, generator=gen).item() < 1.0 / 3.0:
        dim = 1 + int(torch.randint(0, 2, (1,), generator=gen).item())
        xf = (xf + xf.roll(1, dims=dim) + xf.roll(-1, dims=dim)) * (1.0 / 3.0)
    gain = 0.75 + 0.37 * torch.rand(b, 1, 1, 1, generator=gen)
    c = 0.07 * (torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 2
    cast = torch.cat([1.0 + c, torch.ones_like(c), 1.0 - c], dim=3)
    offset = 4.0 * (torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 2
    sigma = 5.0 * torch.rand(b, 1, 1, 1, generator=gen)
    noise = torch.randn(xf.shape, generator=gen) * sigma
    xf = xf * gain * cast + offset + noise
    return xf.clamp_(0, 255).round_().to(torch.uint8)


def train(
    data: CropSet,
    config: TrainConfig,
    val: CropSet | None = None,
    progress: Progress = print,
    init_state: dict[str, Any] | None = None,
) -> TrainResult:
    """Train on ``data``; report loss/accuracy per epoch (and on ``val``) via ``progress``."""
    import torch
    from torch import nn

    from models.net import SortlineCNN

    if tuple(data.class_names) != tuple(config.class_names):
        raise ValueError("training data and config list different classes")
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    gen = torch.Generator().manual_seed(config.seed)
    mean, std = _channel_stats(data.crops)
    model = SortlineCNN(
        len(config.class_names), mean, std, config.widths, config.dropout, config.extra_conv
    )
    if init_state is not None:  # fine-tune: weights and normalisation from a checkpoint
        model.load_state_dict(init_state)
        mean = tuple(model.mean.flatten().tolist())
        std = tuple(model.std.flatten().tolist())
    x_all = torch.from_numpy(np.ascontiguousarray(data.crops))
    y_all = torch.from_numpy(data.labels.astype(np.int64))
    weights = _class_weights(data.labels, len(config.class_names))
    loss_fn = nn.CrossEntropyLoss(
        weight=torch.from_numpy(weights), label_smoothing=config.label_smoothing
    )
    steps = config.epochs * math.ceil(len(data) / config.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=max(steps, 1))
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(len(data), generator=gen)
        loss_sum, correct = 0.0, 0
        for start in range(0, len(data), config.batch_size):
            idx = order[start : start + config.batch_size]
            xb, yb = _augment(x_all[idx], gen, config.augment), y_all[idx]
            logits = model.logits(xb)
            loss = loss_fn(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
        row = {
            "epoch": epoch + 1,
            "loss": loss_sum / len(data),
            "train_acc": correct / len(data),
            "seconds": time.perf_counter() - t0,
        }
        if val is not None and len(val):
            row["val_acc"] = float((predict_torch(model, val.crops).argmax(1) == val.labels).mean())
        history.append(row)
        progress(_format_row(row, config.epochs))
    model.eval()
    return TrainResult(model, history, mean, std, time.perf_counter() - t0)  # type: ignore[arg-type]


def _class_weights(labels: np.ndarray, k: int) -> np.ndarray:
    """Inverse-frequency weights (capped) so rare classes are not ignored."""
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / k, 0.0)
    return np.clip(w, 0.0, 5.0).astype(np.float32)


def _format_row(row: dict[str, float], epochs: int) -> str:
    s = (
        f"epoch {int(row['epoch']):>2}/{epochs}  loss {row['loss']:.4f}  "
        f"train {100 * row['train_acc']:.2f} %"
    )
    if "val_acc" in row:
        s += f"  held-out {100 * row['val_acc']:.2f} %"
    return s + f"  ({row['seconds']:.0f} s)"


def predict_torch(model: Any, crops: np.ndarray, batch: int = 512) -> np.ndarray:
    """(N, S, S, 3) uint8 -> (N, K) float32 probabilities from the torch model."""
    import torch

    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(crops), batch):
            out.append(model(torch.from_numpy(np.ascontiguousarray(crops[i : i + batch]))).numpy())
    k = model.head[-1].out_features
    return np.concatenate(out) if out else np.zeros((0, k), np.float32)


def metadata(config: TrainConfig, result: TrainResult) -> dict[str, str]:
    """The ONNX metadata ``vision.classifier.parse_metadata`` expects."""
    from vision.classifier import FORMAT_VERSION, LAYOUT_NHWC_U8, META_PREFIX

    meta = {
        "format": FORMAT_VERSION,
        "class_names": json.dumps(list(config.class_names)),
        "input_size_px": str(config.input_size_px),
        "input_layout": LAYOUT_NHWC_U8,
        "normalisation": json.dumps({"mean": list(result.mean_bgr), "std": list(result.std_bgr)}),
        "output": "probabilities",
        "version": config.version,
        "train_config_sha256": config_sha256(config),
        "train_config": config.to_json(),
        "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "final_train_acc": f"{result.history[-1]['train_acc']:.4f}" if result.history else "",
    }
    if config.reject_class:
        meta["reject_class"] = config.reject_class
    return {META_PREFIX + k: v for k, v in meta.items()}


def export_onnx(
    result: TrainResult, config: TrainConfig, path: str | Path, check_crops: np.ndarray
) -> Path:
    """Write the ONNX model with metadata; raise if ONNX Runtime disagrees with torch."""
    import copy

    import onnx
    import torch

    from vision.classifier import OnnxClassifier

    model = copy.deepcopy(result.model).eval().fuse_input()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.onnx")
    s = config.input_size_px
    example = torch.zeros((2, s, s, 3), dtype=torch.uint8)
    program = torch.onnx.export(
        model,
        (example,),
        dynamo=True,
        external_data=False,
        input_names=["crops"],
        output_names=["prob"],
        dynamic_shapes={"crops": {0: torch.export.Dim("N")}},
    )
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    program.save(str(tmp))
    proto = onnx.load(str(tmp))
    onnx.helper.set_model_props(proto, metadata(config, result))
    onnx.save(proto, str(tmp))
    clf = OnnxClassifier.load(tmp)
    sample = check_crops[:256]
    diff = 0.0
    if len(sample):
        diff = float(np.abs(clf.predict_raw(sample) - predict_torch(result.model, sample)).max())
    if diff > 1e-4:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"ONNX Runtime differs from torch by {diff:.2e} (limit 1e-4)")
    tmp.replace(out)
    return out


def save_checkpoint(result: TrainResult, config: TrainConfig, path: str | Path) -> Path:
    """Torch weights + config, to fine-tune from later (``load_checkpoint``)."""
    import torch

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state": result.model.state_dict(), "config": config.to_json()}, p)
    return p


def load_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(state dict, config dict, sha256 of the file) of a checkpoint."""
    import torch

    p = Path(path)
    raw = p.read_bytes()
    ckpt = torch.load(p, map_location="cpu", weights_only=True)
    return ckpt["state"], json.loads(ckpt["config"]), hashlib.sha256(raw).hexdigest()
