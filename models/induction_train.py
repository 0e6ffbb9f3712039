"""Fitting the induction model (``models.induction``): torch, training only.

A class-balanced cross-entropy fit of the two-layer ReLU perceptron on the
standardised features (Adam, mini-batches, weight decay, a fixed seed and one
thread, so a retrain on the same samples gives the same weights).
"""

from __future__ import annotations

import numpy as np

from models.induction import (
    DEFAULT_BAR_MM,
    FEATURE_NAMES,
    FEATURE_NAMES_V3,
    FEATURE_NAMES_V4,
    InductionModel,
    features,
)

__all__ = ["fit"]


def fit(
    integrals: np.ndarray,
    labels: np.ndarray,
    class_names: tuple[str, ...],
    version: str,
    hidden: int = 16,
    epochs: int = 60,
    seed: int = 0,
    note: str = "",
    frequencies_hz: tuple[float, ...] = (5000.0,),
    camera_size: bool = False,
    bar_mm: tuple[float, float, float] = DEFAULT_BAR_MM,
) -> InductionModel:
    """The model of ``integrals`` (n, N_INTEGRALS) labelled ``labels`` (n,) int
    indices into ``class_names``, sampled on a bar of ``frequencies_hz`` (two:
    the two-frequency features, ``FEATURE_NAMES_V3``; and ``camera_size``: the
    camera's size of the piece too, ``FEATURE_NAMES_V4``); the combination is
    left at T = 1, w = 1."""
    import torch

    if integrals.shape[0] != labels.shape[0] or integrals.shape[0] == 0:
        raise ValueError(f"fit: {integrals.shape[0]} samples for {labels.shape[0]} labels")
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    k = len(class_names)
    if camera_size and len(frequencies_hz) < 2:
        raise ValueError("fit: the camera's size is read by two-frequency models (v4) only")
    names: tuple[str, ...] = FEATURE_NAMES_V3 if len(frequencies_hz) > 1 else FEATURE_NAMES
    names = FEATURE_NAMES_V4 if camera_size else names
    x = features(integrals, len(names))
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    xt = torch.tensor((x - mean) / scale, dtype=torch.float32)
    yt = torch.tensor(labels, dtype=torch.int64)
    net = torch.nn.Sequential(
        torch.nn.Linear(len(names), hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, k),
    )  # fmt: skip
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    balance = torch.tensor(counts.sum() / np.maximum(counts, 1.0) / k, dtype=torch.float32)
    loss_fn = torch.nn.CrossEntropyLoss(weight=balance)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    n = yt.shape[0]
    for epoch in range(epochs):
        if epoch == (2 * epochs) // 3:
            for group in opt.param_groups:
                group["lr"] = 1e-3
        perm = torch.randperm(n, generator=gen)
        for b in range(0, n, 512):
            idx = perm[b : b + 512]
            opt.zero_grad()
            loss_fn(net(xt[idx]), yt[idx]).backward()
            opt.step()
    lin = [m for m in net if isinstance(m, torch.nn.Linear)]
    layers = tuple(
        (m.weight.detach().numpy().astype(np.float64), m.bias.detach().numpy().astype(np.float64))
        for m in lin
    )
    return InductionModel(
        version, tuple(class_names), mean, scale, layers, note=note,
        feature_names=names, frequencies_hz=tuple(frequencies_hz), bar_mm=bar_mm,
    )  # fmt: skip
