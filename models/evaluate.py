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

__all__ = ["EvalReport", "evaluate", "markdown_tables"]

HARD_PAIRS = (("copper", "brass"), ("aluminium", "stainless"))


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
    info = clf.info
    labels = (*info.material_names, *([info.reject_class] if info.reject_class else []))
    data = data.remap(labels) if set(data.class_names) <= set(labels) else data
    if tuple(data.class_names) != labels:
        extra = sorted(set(data.class_names) - set(labels))
        raise ValueError(f"the data has classes the model does not know: {extra}")
    pred = np.empty(len(data), np.int64)
    for i in range(0, len(data), batch):
        prob, reject = clf.classify(data.crops[i : i + batch])
        p = prob.argmax(axis=1)
        if info.reject_class:
            p = np.where(reject > reject_above, len(labels) - 1, p)
        pred[i : i + batch] = p
    k = len(labels)
    conf = np.bincount(data.labels.astype(np.int64) * k + pred, minlength=k * k).reshape(k, k)
    return EvalReport(labels, conf, info.reject_class)


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
