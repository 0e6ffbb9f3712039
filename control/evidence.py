"""Class evidence per track -> combined probabilities and the recipe's outlook.

The combined probability is the normalised geometric mean of the per-view
class probabilities (summed logs divided by the views). Two small kernels
around one vectorised ``np.exp`` over the (M, K) block of the rows that need
it: M*K scalar exponentials inside a kernel would cost far more. Only rows
whose evidence changed since their last outlook are recomputed (all of them
after a recipe change).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import numpy as np

from control import kernels
from core.types import Detections

__all__ = [
    "MERGED_TEMPER",
    "EvidenceHook",
    "OutlookCache",
    "class_outlook",
    "merged_evidence",
    "pools",
    "refresh_outlook",
]

# ``prefer = "balanced"``: a probable merge's probabilities are raised to this
# power and renormalised (flatter: a track seen only as a merge rarely reaches
# its class threshold; one clean view outweighs it)
MERGED_TEMPER = 0.5


class EvidenceHook(Protocol):
    """Evidence from a second sensor (``Controller.set_evidence_hook``): called once
    per frame after the tracker's step with the track table (rows 0..n-1; u at
    belt travel ``travel_mm``), the frame's encoder count and the recipe's
    vectors (``pool``: ``Recipe.pool``, None: no pooling); it may rewrite the
    outlook (CLS, CPROB, FRAC, TCLS) of undecided rows."""

    def apply(
        self,
        table: Any,
        tick_u32: int,
        travel_mm: float,
        cls_frac: np.ndarray,
        threshold: np.ndarray,
        order: np.ndarray,
        pool: np.ndarray | None = None,
    ) -> None: ...


class OutlookCache:
    """Per-row stamps (track id, view count) of the last outlook, and the logits
    buffer; grows with the track table (``ensure``)."""

    def __init__(self, n_classes: int, capacity: int = 256) -> None:
        self.n_classes = n_classes
        self.otid = np.full(capacity, -1, np.int64)
        self.onev = np.full(capacity, -1, np.int64)
        self.buf = np.empty((capacity, n_classes))
        self.force = True

    def ensure(self, need: int) -> None:
        have = self.otid.shape[0]
        if need > have:
            cap = max(need, 2 * have)
            otid = np.full(cap, -1, np.int64)
            onev = np.full(cap, -1, np.int64)
            otid[:have], onev[:have] = self.otid, self.onev
            self.otid, self.onev = otid, onev
            self.buf = np.empty((cap, self.n_classes))


def refresh_outlook(
    evidence: np.ndarray,
    n_evidence: np.ndarray,
    decided: np.ndarray,
    class_fraction: np.ndarray,
    threshold: np.ndarray,
    order: np.ndarray,
    out: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    track_id: np.ndarray | None = None,
    cache: OutlookCache | None = None,
    pool: np.ndarray | None = None,
) -> None:
    """Write (class id, its probability, fraction, target class) of undecided rows.

    evidence:       (N, K) float64 summed log class probabilities.
    n_evidence:     (N,) int64 views that contributed.
    decided:        (N,) int64, rows != 0 are left alone.
    class_fraction: (K,) int64 fraction id per class, -1 pass.
    threshold:      (K,) float64 combined probability needed to act.
    order:          (K,) int64 class ids by descending priority.
    out:            (N,) int64 / float64 / int64 / int64 arrays, written in place.
    track_id, cache: (N,) int64 ids and the stamps of the last outlook; with
                    them only rows whose evidence changed are recomputed
                    (``cache.force``: all undecided rows, then cleared).
    pool:           (K, K) bool ``Recipe.pool`` (None: no pooling).
    The target class is the first class by priority whose probability meets
    its threshold and which has a fraction; when none does, the first whose
    pool's probability meets it (``control.recipe``, ``pool_classes``); -1
    when none; rows without evidence get -1, 0, -1, -1.
    """
    n = evidence.shape[0]
    if cache is None or track_id is None:
        cache = OutlookCache(evidence.shape[1], n)
        track_id = np.arange(n, dtype=np.int64)
    cache.ensure(n)
    rows = kernels._outlook_rows(
        track_id, n_evidence, decided, cache.otid, cache.onev, n, cache.force
    )  # fmt: skip
    cache.force = False
    logits = kernels._outlook_logits(evidence, n_evidence, rows, cache.buf)
    np.exp(logits, out=logits)
    kernels._outlook_finish(
        logits, rows, n_evidence, class_fraction, threshold, order, pools(pool, evidence.shape[1]),
        *out,
    )  # fmt: skip


def pools(pool: np.ndarray | None, n_classes: int) -> np.ndarray:
    """``pool`` as the kernels take it: (K, K) bool, all False for None."""
    if pool is None:
        return np.zeros((n_classes, n_classes), np.bool_)
    if pool.shape != (n_classes, n_classes):
        raise ValueError(f"pool must be ({n_classes}, {n_classes}), got {pool.shape}")
    return np.ascontiguousarray(pool, np.bool_)


def class_outlook(
    evidence: np.ndarray,
    n_evidence: np.ndarray,
    class_fraction: np.ndarray,
    threshold: np.ndarray,
    order: np.ndarray,
    pool: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``refresh_outlook`` for fresh, undecided rows -> (cls, prob, frac, tcls)."""
    n = evidence.shape[0]
    out = (np.full(n, -1, np.int64), np.zeros(n), np.full(n, -1, np.int64), np.zeros(n, np.int64))
    evidence = np.ascontiguousarray(evidence, np.float64)
    n_evidence = np.ascontiguousarray(n_evidence, np.int64)
    refresh_outlook(
        evidence, n_evidence, np.zeros(n, np.int64), np.asarray(class_fraction, np.int64),
        np.asarray(threshold, np.float64), np.asarray(order, np.int64), out, pool=pool,
    )  # fmt: skip
    return out


def merged_evidence(dets: Detections, prefer: str) -> Detections:
    """The class evidence of the views vision flagged as probable merges
    (``Detections.merged``), as the recipe's ``prefer`` wants it:

    - ``"recovery"``: unchanged (a merge is fired at like any fragment);
    - ``"balanced"``: probabilities raised to ``MERGED_TEMPER`` and renormalised
      (less sure: the track needs clean views, or a clear merge, to act);
    - ``"purity"``: no evidence (class_prob NaN, class_id -1): a fragment seen
      only inside merges is never fired at, so its neighbour is not ejected with it.
    Returns ``dets`` itself when nothing changes.
    """
    if prefer not in ("purity", "balanced", "recovery"):
        raise ValueError(f"prefer must be purity, balanced or recovery, got {prefer!r}")
    m = dets.merged
    if prefer == "recovery" or not len(dets) or not m.any():
        return dets
    prob = dets.class_prob.copy()
    cid = dets.class_id.copy()
    conf = dets.confidence.copy()
    if prefer == "purity":
        prob[m] = np.nan
        cid[m] = -1
        conf[m] = np.nan
    elif prob.shape[1]:
        p = np.power(np.maximum(prob[m], 0.0), MERGED_TEMPER)
        p /= np.maximum(p.sum(axis=1, keepdims=True), 1e-12)
        prob[m] = p
        has = cid[m] >= 0
        rows = np.flatnonzero(m)[has]
        conf[rows] = prob[rows, cid[rows]]
    else:  # class id and confidence only
        conf[m] = np.power(np.maximum(conf[m], 0.0), MERGED_TEMPER)
    return dataclasses.replace(dets, class_prob=prob, class_id=cid, confidence=conf)
