"""``InductionModel``: per-class log-likelihoods from a track's sensor footprint.

A second small model beside the camera's CNN, not a two-input network: its
log-probabilities are added to the camera's per-view mean log-probabilities
(the tracker's evidence), because the two sensors see independent physics
(colour and texture; conductivity and permeability), a camera-only line keeps
working unchanged when the bar stalls (the term is simply left out), and each
model is trained, versioned and checked on its own data (the camera's on
crops, this one on the plant's footprints) and can be swapped alone.

The model: multinomial logistic regression on a quadratic expansion of seven
features of the footprint integrals (``control.kernels_fusion``): signed
log-magnitudes of summed in-phase and quadrature, the phase as a unit vector
(regularised by the noise of the sum), the peak cell, the share of cells with
signal and the response per cell. Trained class-balanced, so its
probabilities are likelihoods up to a constant. Stored as JSON (version,
classes, standardisation, weights), loaded without torch or scipy.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputFileError

__all__ = [
    "BUILTIN",
    "FEATURE_NAMES",
    "NOISE_UNITS",
    "InductionModel",
    "features",
    "fit",
    "resolve",
]

BUILTIN = "builtin:induction-v1"  # the shipped model: models/induction-v1.json

FEATURE_NAMES = ("asinh_i", "asinh_q", "cos_phase", "sin_phase", "asinh_peak", "signal", "per_cell")
FORMAT = "sortline-induction-logreg"
NOISE_UNITS = 3.0  # per cell; regularises the phase of weak sums


def resolve(spec: str | Path) -> Path:
    """``builtin:induction-vN`` -> the file shipped in this package; else a path."""
    s = str(spec)
    if not s.startswith("builtin:"):
        return Path(s)
    from importlib import resources

    path = Path(str(resources.files("models").joinpath(s.removeprefix("builtin:") + ".json")))
    if not s.removeprefix("builtin:").startswith("induction") or not path.is_file():
        raise InputFileError(s, "no such built-in induction model")
    return path


def features(integrals: np.ndarray) -> np.ndarray:
    """(n, 7) float64 model features from (n, >= 6) integrals (``kernels_fusion`` columns)."""
    si, sq, peak = integrals[:, 0], integrals[:, 1], integrals[:, 2]
    cells, sig = integrals[:, 3], integrals[:, 5]
    mag = np.hypot(si, sq)
    eps = 3.0 * NOISE_UNITS * np.sqrt(np.maximum(cells, 1.0))
    out = np.empty((integrals.shape[0], len(FEATURE_NAMES)))
    out[:, 0] = np.arcsinh(si / 100.0)
    out[:, 1] = np.arcsinh(sq / 100.0)
    out[:, 2] = si / (mag + eps)
    out[:, 3] = sq / (mag + eps)
    out[:, 4] = np.arcsinh(peak / 30.0)
    out[:, 5] = sig
    out[:, 6] = np.arcsinh(mag / np.maximum(cells, 1.0) / 5.0)
    return out


def _expand(z: np.ndarray) -> np.ndarray:
    """[1, z, upper triangle of z z^T] per row."""
    n, d = z.shape
    iu, ju = np.triu_indices(d)
    return np.concatenate([np.ones((n, 1)), z, z[:, iu] * z[:, ju]], axis=1)


@dataclasses.dataclass(frozen=True)
class InductionModel:
    """version: of the weights; class_names: output order; mean, scale: (7,)
    feature standardisation; weights: (K, D) over the expansion; note: training data."""

    version: str
    class_names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    note: str = ""

    def log_probs(self, integrals: np.ndarray) -> np.ndarray:
        """(n, K) float64 log class probabilities of footprint integrals (n, >= 6)."""
        z = (features(integrals) - self.mean) / self.scale
        logits = _expand(z) @ self.weights.T
        logits -= logits.max(axis=1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": self.version,
            "class_names": list(self.class_names),
            "features": list(FEATURE_NAMES),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "weights": self.weights.tolist(),
            "note": self.note,
        }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> InductionModel:
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputFileError(path, f"cannot read the induction model: {exc}") from exc
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise InputFileError(path, f"not a {FORMAT} file", "format")
        if tuple(d.get("features", ())) != FEATURE_NAMES:
            raise InputFileError(path, f"{d.get('features')} are not {FEATURE_NAMES}", "features")
        k, dim = len(d["class_names"]), _expand(np.zeros((1, len(FEATURE_NAMES)))).shape[1]
        w = np.asarray(d["weights"], np.float64)
        if w.shape != (k, dim):
            raise InputFileError(path, f"shape {w.shape}, expected {(k, dim)}", "weights")
        return cls(
            str(d["version"]),
            tuple(d["class_names"]),
            np.asarray(d["mean"], np.float64),
            np.asarray(d["scale"], np.float64),
            w,
            str(d.get("note", "")),
        )


def fit(
    integrals: np.ndarray,
    labels: np.ndarray,
    class_names: tuple[str, ...],
    version: str,
    l2: float = 1e-3,
    note: str = "",
    max_iter: int = 2000,
) -> InductionModel:
    """Class-balanced multinomial logistic regression (L-BFGS) on the expansion."""
    from scipy.optimize import minimize

    x = features(integrals)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    phi = _expand((x - mean) / scale)
    k, dim = len(class_names), phi.shape[1]
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    w_row = (counts.sum() / np.maximum(counts, 1) / k)[labels]
    onehot = np.eye(k)[labels]

    def loss(flat: np.ndarray) -> tuple[float, np.ndarray]:
        w = flat.reshape(k, dim)
        z = phi @ w.T
        z -= z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1, keepdims=True))
        logp = z - lse
        nll = -(w_row * (onehot * logp).sum(axis=1)).sum() / w_row.sum()
        grad = ((np.exp(logp) - onehot) * w_row[:, None]).T @ phi / w_row.sum()
        return float(nll + l2 * (w[:, 1:] ** 2).sum()), (
            grad + 2 * l2 * np.c_[np.zeros(k), w[:, 1:]]
        ).ravel()

    opts = {"maxiter": max_iter}
    res = minimize(loss, np.zeros(k * dim), jac=True, method="L-BFGS-B", options=opts)
    return InductionModel(version, class_names, mean, scale, res.x.reshape(k, dim), note)
