"""Per-crop inference cost of a model through ``vision.classifier.OnnxClassifier``
(ONNX Runtime, explicit intra-op threads, no spinning), as the line runs it."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from vision.classifier import OnnxClassifier

__all__ = ["crop_cost_us"]


def crop_cost_us(
    clf: OnnxClassifier,
    crops: np.ndarray,
    batch: int = 64,
    passes: int = 7,
    calls_per_pass: int = 40,
) -> dict[str, Any]:
    """Microseconds per crop of ``clf.classify`` on batches of ``batch`` crops.

    crops: (N, S, S, 3) uint8, N >= 1 (repeated to fill a batch).
    Each pass times ``calls_per_pass`` calls; returns the median and the
    spread over passes (the p99 of single calls too), after a warm-up.
    """
    if crops.ndim != 4 or crops.shape[0] == 0:
        raise ValueError("need at least one crop (N, S, S, 3)")
    reps = -(-batch // crops.shape[0])
    x = np.ascontiguousarray(np.concatenate([crops] * reps)[:batch])
    for _ in range(max(3, calls_per_pass // 4)):
        clf.classify(x)
    per_pass, per_call = [], []
    for _ in range(passes):
        t0 = time.perf_counter()
        for _ in range(calls_per_pass):
            t1 = time.perf_counter()
            clf.classify(x)
            per_call.append((time.perf_counter() - t1) * 1e6 / batch)
        per_pass.append((time.perf_counter() - t0) * 1e6 / (batch * calls_per_pass))
    return {
        "batch": batch,
        "passes": passes,
        "calls_per_pass": calls_per_pass,
        "us_per_crop_median": float(np.median(per_pass)),
        "us_per_crop_min": float(np.min(per_pass)),
        "us_per_crop_max": float(np.max(per_pass)),
        "call_us_per_crop_p99": float(np.percentile(per_call, 99)),
        "crops_per_s_median": float(1e6 / np.median(per_pass)),
    }
