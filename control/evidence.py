"""Class evidence per track -> combined probabilities and the recipe's outlook.

The combined probability is the normalised geometric mean of the per-view
class probabilities (summed logs divided by the views). Two small kernels
around one vectorised ``np.exp`` over the (N, K) block: N*K scalar
exponentials inside a kernel would cost far more.
"""

from __future__ import annotations

import numpy as np

from control import kernels

__all__ = ["class_outlook", "refresh_outlook"]


def refresh_outlook(
    evidence: np.ndarray,
    n_evidence: np.ndarray,
    decided: np.ndarray,
    class_fraction: np.ndarray,
    threshold: np.ndarray,
    order: np.ndarray,
    out: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """Write (class id, its probability, fraction, target class) of undecided rows.

    evidence:       (N, K) float64 summed log class probabilities.
    n_evidence:     (N,) int64 views that contributed.
    decided:        (N,) int64, rows != 0 are left alone.
    class_fraction: (K,) int64 fraction id per class, -1 pass.
    threshold:      (K,) float64 combined probability needed to act.
    order:          (K,) int64 class ids by descending priority.
    out:            (N,) int64 / float64 / int64 / int64 arrays, written in place.
    The target class is the first class by priority whose probability meets
    its threshold and which has a fraction (-1 when none); rows without
    evidence get -1, 0, -1, -1.
    """
    n = evidence.shape[0]
    logits = kernels._outlook_logits(evidence, n_evidence, n)
    np.exp(logits, out=logits)
    kernels._outlook_finish(
        logits, n_evidence, decided, class_fraction, threshold, order, *out
    )  # fmt: skip


def class_outlook(
    evidence: np.ndarray,
    n_evidence: np.ndarray,
    class_fraction: np.ndarray,
    threshold: np.ndarray,
    order: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``refresh_outlook`` for fresh, undecided rows -> (cls, prob, frac, tcls)."""
    n = evidence.shape[0]
    out = (np.full(n, -1, np.int64), np.zeros(n), np.full(n, -1, np.int64), np.zeros(n, np.int64))
    evidence = np.ascontiguousarray(evidence, np.float64)
    n_evidence = np.ascontiguousarray(n_evidence, np.int64)
    refresh_outlook(
        evidence, n_evidence, np.zeros(n, np.int64), np.asarray(class_fraction, np.int64),
        np.asarray(threshold, np.float64), np.asarray(order, np.int64), out,
    )  # fmt: skip
    return out
