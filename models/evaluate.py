"""Classifier evaluation on labelled crops: confusion table, per-class precision
and recall, top-1, the hard pairs (copper/brass, aluminium/stainless), and the
"not a fragment" reject output when the model has one. No torch, no sim: the
model runs through ``vision.classifier`` exactly as on the line."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from models.dataset import CropSet
from vision.classifier import OnnxClassifier

__all__ = [
    "EvalReport",
    "Predictions",
    "evaluate",
    "evaluate_predictions",
    "markdown_tables",
    "per_fragment",
    "predict",
]

HARD_PAIRS = (("copper", "brass"), ("aluminium", "stainless"))
PROB_FLOOR = 1e-4  # as control.tracker.class_log_probs: log(max(p, floor)) per view


@dataclasses.dataclass(frozen=True)
class Predictions:
    """The model's outputs on a ``CropSet`` (already remapped to ``labels``).

    prob:   (N, K) float32 material probabilities (reject class removed, rows sum to 1).
    reject: (N,) float32 probability of "not a fragment" (zeros without a reject class).
    labels: material names, then the reject class when the model has one.
    """

    data: CropSet
    prob: np.ndarray
    reject: np.ndarray
    labels: tuple[str, ...]
    reject_class: str | None


def predict(clf: OnnxClassifier, data: CropSet, batch: int = 1024) -> Predictions:
    """Run ``clf`` over ``data`` as the pipeline does (``classify``)."""
    info = clf.info
    labels = (*info.material_names, *([info.reject_class] if info.reject_class else []))
    data = data.remap(labels) if set(data.class_names) <= set(labels) else data
    if tuple(data.class_names) != labels:
        extra = sorted(set(data.class_names) - set(labels))
        raise ValueError(f"the data has classes the model does not know: {extra}")
    probs, rejects = [], []
    for i in range(0, len(data), batch):
        prob, reject = clf.classify(data.crops[i : i + batch])
        probs.append(prob)
        rejects.append(reject)
    k = len(info.material_names)
    prob = np.concatenate(probs) if probs else np.zeros((0, k), np.float32)
    reject = np.concatenate(rejects) if rejects else np.zeros(0, np.float32)
    return Predictions(data, prob, reject, labels, info.reject_class)


def _predicted_label(p: Predictions, reject_above: float) -> np.ndarray:
    pred = p.prob.argmax(axis=1).astype(np.int64)
    if p.reject_class:
        pred = np.where(p.reject > reject_above, len(p.labels) - 1, pred)
    return pred


@dataclasses.dataclass
class EvalReport:
    """confusion[i, j]: crops of true class i predicted as j (names: ``labels``);
    the last row/column is the reject class when the model has one."""

    labels: tuple[str, ...]
    confusion: np.ndarray
    reject_class: str | None

    @property
    def materials(self) -> tuple[str, ...]:
        return tuple(n for n in self.labels if n != self.reject_class)

    def _mat_idx(self) -> np.ndarray:
        return np.array([i for i, n in enumerate(self.labels) if n != self.reject_class])

    def top1(self) -> float:
        """Share of fragment crops (true material) given their true class."""
        idx = self._mat_idx()
        sub = self.confusion[idx]
        return float(np.trace(sub[:, idx]) / max(sub.sum(), 1))

    def per_class(self) -> dict[str, dict[str, float]]:
        c = self.confusion.astype(np.float64)
        out = {}
        for i, name in enumerate(self.labels):
            tp = c[i, i]
            out[name] = {
                "support": int(c[i].sum()),
                "precision": float(tp / c[:, i].sum()) if c[:, i].sum() else float("nan"),
                "recall": float(tp / c[i].sum()) if c[i].sum() else float("nan"),
            }
        return out

    def pair_confusion(self, a: str, b: str) -> dict[str, Any]:
        """Top-1 within crops of a and b, and how often each is taken for the other."""
        if a not in self.labels or b not in self.labels:
            return {}
        ia, ib = self.labels.index(a), self.labels.index(b)
        c = self.confusion
        n = c[ia].sum() + c[ib].sum()
        return {
            "crops": int(n),
            "top1": float((c[ia, ia] + c[ib, ib]) / max(n, 1)),
            f"{a}_as_{b}": float(c[ia, ib] / max(c[ia].sum(), 1)),
            f"{b}_as_{a}": float(c[ib, ia] / max(c[ib].sum(), 1)),
        }

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "crops": int(self.confusion.sum()),
            "top1": self.top1(),
            "per_class": self.per_class(),
            "labels": list(self.labels),
            "confusion": self.confusion.tolist(),
            "pairs": {f"{a}/{b}": self.pair_confusion(a, b) for a, b in HARD_PAIRS},
        }
        if self.reject_class is not None:
            r = self.labels.index(self.reject_class)
            idx = self._mat_idx()
            d["fragments_rejected"] = float(
                self.confusion[idx, r].sum() / max(self.confusion[idx].sum(), 1)
            )
            d["belt_marks_rejected"] = float(self.confusion[r, r] / max(self.confusion[r].sum(), 1))
        return d


def evaluate(
    clf: OnnxClassifier, data: CropSet, reject_above: float = 0.5, batch: int = 1024
) -> EvalReport:
    """Run ``clf`` over ``data``; a crop whose reject probability exceeds
    ``reject_above`` counts as predicted reject (as the pipeline drops it)."""
    return evaluate_predictions(predict(clf, data, batch), reject_above)


def evaluate_predictions(
    p: Predictions, reject_above: float = 0.5, mask: np.ndarray | None = None
) -> EvalReport:
    """Single-crop confusion of ``p`` (rows ``mask``, default all)."""
    pred = _predicted_label(p, reject_above)
    truth = p.data.labels.astype(np.int64)
    if mask is not None:
        pred, truth = pred[mask], truth[mask]
    k = len(p.labels)
    conf = np.bincount(truth * k + pred, minlength=k * k).reshape(k, k)
    return EvalReport(p.labels, conf, p.reject_class)


def per_fragment(
    p: Predictions, reject_above: float = 0.5, mask: np.ndarray | None = None
) -> EvalReport:
    """Per-fragment confusion: the views (crops) of each ground-truth fragment
    (same scene ``group`` and ``extra["fragment"]`` id) combined as ``control``
    does: log(max(p, 1e-4)) summed over the views the pipeline keeps (reject
    probability <= ``reject_above``), argmax. A fragment all of whose views are
    rejected counts as predicted reject. Belt marks are not fragments: left out.
    ``mask`` selects crops before grouping. Needs the ``fragment`` column."""
    if "fragment" not in p.data.extra:
        raise ValueError("per-fragment figures need crops with a 'fragment' id column")
    frag = p.data.extra["fragment"]
    keep = frag >= 0
    if mask is not None:
        keep &= mask
    rows = np.flatnonzero(keep)
    key = p.data.group[rows].astype(np.int64) * (1 << 32) + frag[rows]
    uniq, inv = np.unique(key, return_inverse=True)
    k_mat = p.prob.shape[1]
    seen = p.reject[rows] <= reject_above if p.reject_class else np.ones(rows.size, bool)
    logp = np.log(np.maximum(p.prob[rows], PROB_FLOOR)).astype(np.float64)
    ev = np.zeros((uniq.size, k_mat))
    np.add.at(ev, inv[seen], logp[seen])
    n_seen = np.bincount(inv[seen], minlength=uniq.size)
    pred = np.where(n_seen > 0, ev.argmax(axis=1), len(p.labels) - 1)
    truth = np.zeros(uniq.size, np.int64)
    truth[inv] = p.data.labels[rows]
    k = len(p.labels)
    conf = np.bincount(truth * k + pred, minlength=k * k).reshape(k, k)
    return EvalReport(p.labels, conf, p.reject_class)


def markdown_tables(report: EvalReport) -> str:
    """Per-class precision/recall and the confusion table, as Markdown."""
    pc = report.per_class()
    lines = ["| class | crops | precision | recall |", "|---|---:|---:|---:|"]
    for name in report.labels:
        r = pc[name]
        prec, rec = 100 * r["precision"], 100 * r["recall"]
        lines.append(f"| {name} | {r['support']} | {prec:.1f} % | {rec:.1f} % |")
    lines += [
        "",
        "| true \\ predicted | " + " | ".join(report.labels) + " |",
        "|---|" + "---:|" * len(report.labels),
    ]
    for i, name in enumerate(report.labels):
        lines.append(
            f"| **{name}** | " + " | ".join(str(int(v)) for v in report.confusion[i]) + " |"
        )
    return "\n".join(lines)


def crop_condition_masks(data: CropSet) -> dict[str, np.ndarray]:
    """Fragment crops by condition (needs the ``extra`` columns of rendered sets):
    ``truncated`` cut by the image border; ``merged`` segment < 98 % one
    fragment; ``small`` fragment < 25 mm; ``occluded`` < 90 % of it visible;
    ``clean`` none of these."""
    x = data.extra
    need = ("fragment", "truncated", "purity", "size_mm", "visible")
    if not all(k in x for k in need):
        return {}
    frag = x["fragment"] >= 0
    m = {
        "truncated": frag & x["truncated"].astype(bool),
        "merged": frag & (x["purity"] < 0.98),
        "small": frag & (x["size_mm"] < 25.0),
        "occluded": frag & (x["visible"] < 0.9),
    }
    m["clean"] = frag & ~(m["truncated"] | m["merged"] | m["small"] | m["occluded"])
    return m


def summary(
    p: Predictions, group_names: dict[str, np.ndarray] | None = None, reject_above: float = 0.5
) -> dict[str, Any]:
    """Single-crop report plus, where the data allows: per-fragment top-1 (views
    combined), per preset (``group_names``: name -> crop mask), by crop condition
    and the share of errors each condition holds."""
    crop = evaluate_predictions(p, reject_above)
    out: dict[str, Any] = crop.to_dict()
    has_ids = "fragment" in p.data.extra
    if has_ids:
        frag = per_fragment(p, reject_above)
        out["per_fragment"] = {
            "fragments": int(frag.confusion[: len(frag.materials)].sum()),
            "top1": frag.top1(),
            "pairs": {f"{a}/{b}": frag.pair_confusion(a, b) for a, b in HARD_PAIRS},
            "per_class": frag.per_class(),
        }
    if group_names:
        out["per_preset"] = {}
        for name, mask in group_names.items():
            row: dict[str, Any] = {"top1": evaluate_predictions(p, reject_above, mask).top1()}
            if has_ids:
                row["fragment_top1"] = per_fragment(p, reject_above, mask).top1()
            out["per_preset"][name] = row
    conds = crop_condition_masks(p.data)
    if conds:
        pred = _predicted_label(p, reject_above)
        wrong = (p.data.extra["fragment"] >= 0) & (pred != p.data.labels)
        out["by_condition"] = {
            name: {
                "crops": int(mask.sum()),
                "top1": evaluate_predictions(p, reject_above, mask).top1(),
                "share_of_errors": float((wrong & mask).sum() / max(wrong.sum(), 1)),
            }
            for name, mask in conds.items()
        }
    return out
