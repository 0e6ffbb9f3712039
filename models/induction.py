"""``InductionModel``: per-class log-likelihoods from a track's sensor footprint.

A second small model beside the camera's CNN, not a two-input network: its
log-probabilities are added to the camera's per-view mean log-probabilities
(the tracker's evidence), because the two sensors see independent physics
(colour and texture; conductivity and permeability), a camera-only line keeps
working unchanged when the bar stalls (the term is simply left out), and each
model is trained, versioned and checked on its own data (the camera's on
crops, this one on the plant's footprints) and can be swapped alone.

The model (format ``sortline-induction-mlp``, from ``induction-v2``): a small
multilayer perceptron (two rectified linear layers) on fifteen features of the footprint
integrals (``control.kernels_fusion``): the seven of v1 (summed in-phase and
quadrature as signed log-magnitudes, their phase as a unit vector regularised
by the noise of the sum, the peak cell, the share of cells with signal, the
response per cell), the jointly fitted amplitude per unit coil overlap (its
in-phase and quadrature parts and its phase, regularised by its own noise:
the material's response x coupling, independent of how much of a coil the
piece covers), the coil overlap itself (how much the amplitude can be
trusted), the footprint's smaller and larger extent (a piece's size caps its
eddy loops, so phase depends on size as well as on conductivity x
thickness) and the share of cells other footprints cover. Trained
class-balanced, so its probabilities are likelihoods up to a constant.

From ``induction-v3`` a model may read a two-frequency bar (its
``frequencies_hz``, e.g. 5 and 50 kHz): nine more features, six of the second
frequency (its summed in-phase and quadrature as signed log-magnitudes, its
fitted amplitude's in-phase and quadrature parts and phase) and three of the
ratio of the two fitted amplitudes (log magnitude ratio, cosine and sine of
the phase difference), in which the coupling of the piece's height and the
share of a coil it covers cancel. Where the first frequency reads mostly
conductivity x thickness of a thin piece, the second, several skin depths into
it, reads conductivity. A single-frequency model runs on a two-frequency bar
whose first frequency is its own (it reads frequency 0 alone); a two-frequency
model needs its two.

From ``induction-v4`` a two-frequency model may also read the piece's size
from the camera (``FEATURE_NAMES_V4``: two more features, log(1 + minor) and
log(1 + major) length, mm, of the track's moment-equivalent rectangle,
``TrackTable.AX``; the footprint's smaller and larger extent where the track
has none yet). The bar's response depends on conductivity and frequency only
through their product, and a brass piece about 1.9 times the thickness and
size of a copper one reads the same at every frequency; its size (the piece's
eddy loops) is what tells them apart, and the axis-aligned extents misread it
on a turned plate (``sortline/sensor/README.md``, sessions 10 and 11).

How it is combined is part of the model: ``camera_temperature`` T and
``sensor_weight`` w (fitted on validation scenes, never the held-out ones):

    camera mean log-probability per view / T + w x max(log p_sensor, log floor)

and, from ``induction-v3`` version 3.1, per class c (``class_terms``, fitted
on the same validation scenes; absent: 1, 1, 0):

    a_c x camera mean log-probability_c / T + b_c x w x max(log p_sensor_c, log floor) + d_c

because how far each sensor can be trusted depends on the class: the camera
tells copper from brass by colour but a stone from steel poorly (both grey),
the bar tells metal from non-metal with certainty but conductivities that
overlap (copper, brass, aluminium) with noise, and it is blind between
plastic, rubber and residue. One scalar w could not weigh both.

Stored as JSON (version, classes, standardisation, layers, combination),
loaded without torch.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputFileError

__all__ = [
    "BUILTIN",
    "DEFAULT_BAR_MM",
    "FEATURE_NAMES",
    "FEATURE_NAMES_V3",
    "FEATURE_NAMES_V4",
    "NOISE_UNITS",
    "InductionModel",
    "features",
    "resolve",
]

BUILTIN = "builtin:induction-v3"  # the line's default: models/induction-v3.json (two frequencies)
# the bar every model before session 13 was fitted on (a model file without "bar" means it):
# coils at 31.25 mm pitch of 15 mm radius, a row every 50 counts of 0.1 mm (sim.plant.induction)
DEFAULT_BAR_MM = (31.25, 15.0, 5.0)
_BAR_KEYS = ("pitch_mm", "coil_radius_mm", "row_mm")

FEATURE_NAMES = (
    "asinh_i", "asinh_q", "cos_phase", "sin_phase", "asinh_peak", "signal", "per_cell",
    "asinh_amp_i", "asinh_amp_q", "cos_amp", "sin_amp", "log_cover", "log_small_mm",
    "log_large_mm", "shared",
)  # fmt: skip
FEATURE_NAMES_V3 = (
    *FEATURE_NAMES, "asinh_i2", "asinh_q2", "asinh_amp_i2", "asinh_amp_q2", "cos_amp2", "sin_amp2",
    "log_amp_ratio", "cos_amp_diff", "sin_amp_diff",
)  # fmt: skip
FEATURE_NAMES_V4 = (*FEATURE_NAMES_V3, "log_minor_mm", "log_major_mm")
KNOWN_FEATURES = (FEATURE_NAMES, FEATURE_NAMES_V3, FEATURE_NAMES_V4)
FORMAT = "sortline-induction-mlp"
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


def features(integrals: np.ndarray, count: int = len(FEATURE_NAMES)) -> np.ndarray:
    """(n, count) float64 model features (15: ``FEATURE_NAMES``, 24:
    ``FEATURE_NAMES_V3``, 26: ``FEATURE_NAMES_V4``) from (n, N_INTEGRALS) integrals
    (``control.kernels_fusion`` columns; the kernel computes the same). The v4 size
    features read the camera's minor and major length (columns 16, 17), the
    footprint's smaller and larger extent where those are NaN (not measured)."""
    i = integrals
    si, sq, peak, cells, shared, sig = i[:, 0], i[:, 1], i[:, 2], i[:, 3], i[:, 4], i[:, 5]
    ai, aq, cover, wide, long = i[:, 7], i[:, 8], i[:, 9], i[:, 10], i[:, 11]
    cells1 = np.maximum(cells, 1.0)
    mag = np.hypot(si, sq)
    eps = 3.0 * NOISE_UNITS * np.sqrt(cells1)
    amp = np.hypot(ai, aq)
    aeps = 3.0 * NOISE_UNITS / np.sqrt(np.maximum(cover, 1e-3))
    cols: tuple[np.ndarray, ...] = (
        np.arcsinh(si / 100.0), np.arcsinh(sq / 100.0), si / (mag + eps), sq / (mag + eps),
        np.arcsinh(peak / 30.0), sig, np.arcsinh(mag / cells1 / 5.0),
        np.arcsinh(ai / 20.0), np.arcsinh(aq / 20.0), ai / (amp + aeps), aq / (amp + aeps),
        np.log(cover + 1e-3), np.log(np.maximum(np.minimum(wide, long), 0.0) + 1.0),
        np.log(np.maximum(np.maximum(wide, long), 0.0) + 1.0), shared,
    )  # fmt: skip
    if count > len(FEATURE_NAMES):
        si2, sq2, ai2, aq2 = i[:, 12], i[:, 13], i[:, 14], i[:, 15]
        amp2 = np.hypot(ai2, aq2)
        cols += (
            np.arcsinh(si2 / 100.0), np.arcsinh(sq2 / 100.0), np.arcsinh(ai2 / 20.0),
            np.arcsinh(aq2 / 20.0), ai2 / (amp2 + aeps), aq2 / (amp2 + aeps),
            np.log((amp2 + aeps) / (amp + aeps)),
            (ai2 * ai + aq2 * aq) / (amp2 * amp + aeps**2),
            (aq2 * ai - ai2 * aq) / (amp2 * amp + aeps**2),
        )  # fmt: skip
    if count > len(FEATURE_NAMES_V3):
        lo, hi = i[:, 16], i[:, 17]
        known = np.isfinite(lo) & np.isfinite(hi)
        lo = np.where(known, lo, np.minimum(wide, long))
        hi = np.where(known, hi, np.maximum(wide, long))
        cols += (np.log(np.maximum(lo, 0.0) + 1.0), np.log(np.maximum(hi, 0.0) + 1.0))
    return np.stack(cols, axis=1)


@dataclasses.dataclass(frozen=True)
class InductionModel:
    """version: of the weights; class_names: output order; mean, scale: (d,)
    feature standardisation; layers: ((W1, b1), (W2, b2), (W3, b3)), W (out, in),
    rectified after the first two; camera_temperature, sensor_weight: the
    combination (module doc); note: training data and fit; feature_names:
    ``FEATURE_NAMES`` (d = 15), ``FEATURE_NAMES_V3`` (d = 24, two frequencies) or
    ``FEATURE_NAMES_V4`` (d = 26, and the camera's size of the piece);
    frequencies_hz: the bar's frequencies it was trained on; class_terms: (K, 3)
    per class of ``class_names``: camera gain a, sensor gain b, bias d of the
    combination (module doc), None = (1, 1, 0) for every class; bar_mm: the
    geometry of the bar it was trained on, (coil pitch, coil radius, rows' spacing
    along the belt) mm: its features (cells, sums, overlaps) mean something on
    that bar only (``check_bar``)."""

    version: str
    class_names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]
    camera_temperature: float = 1.0
    sensor_weight: float = 1.0
    note: str = ""
    feature_names: tuple[str, ...] = FEATURE_NAMES
    frequencies_hz: tuple[float, ...] = (5000.0,)
    class_terms: np.ndarray | None = None
    bar_mm: tuple[float, float, float] = DEFAULT_BAR_MM

    def __post_init__(self) -> None:
        if self.feature_names not in KNOWN_FEATURES:
            raise ValueError(f"InductionModel: features {self.feature_names} are not known")
        if not 1 <= len(self.frequencies_hz) <= 2 or (
            self.feature_names != FEATURE_NAMES and len(self.frequencies_hz) != 2
        ):
            raise ValueError(
                f"InductionModel: {len(self.feature_names)} features on frequencies "
                f"{self.frequencies_hz} Hz"
            )
        d = len(self.feature_names)
        if self.mean.shape != (d,) or self.scale.shape != (d,) or len(self.layers) != 3:
            raise ValueError(f"InductionModel: mean/scale ({d},) and 3 layers needed")
        width = d
        for k, (w, b) in enumerate(self.layers):
            if w.ndim != 2 or w.shape[1] != width or b.shape != (w.shape[0],):
                raise ValueError(f"InductionModel: layer {k} shape {w.shape}/{b.shape}")
            width = w.shape[0]
        if width != len(self.class_names):
            raise ValueError(f"InductionModel: {width} outputs for {len(self.class_names)} classes")
        if len(self.bar_mm) != 3 or not all(math.isfinite(x) and x > 0 for x in self.bar_mm):
            raise ValueError(
                f"InductionModel: bar_mm {self.bar_mm} must be (pitch, coil radius, row "
                "spacing) mm, each > 0"
            )
        if not (self.camera_temperature > 0 and self.sensor_weight >= 0):
            raise ValueError("InductionModel: camera_temperature > 0, sensor_weight >= 0 needed")
        t = self.class_terms
        if t is not None and (
            t.shape != (len(self.class_names), 3)
            or not np.all(np.isfinite(t))
            or np.any(t[:, :2] < 0)
        ):
            raise ValueError(
                f"InductionModel: class_terms {t.shape} must be ({len(self.class_names)}, 3), "
                "finite, gains >= 0"
            )

    def combination(self, class_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per class of ``class_names`` (a line's order): the multiplier of the
        camera's mean log-probability (a_c / T), of the floored sensor
        log-probability (b_c x w) and the bias d_c. A class the model does not
        know: 1 / T, 0, 0 (the camera alone speaks for it)."""
        k = len(class_names)
        cam, sens, bias = np.full(k, 1.0 / self.camera_temperature), np.zeros(k), np.zeros(k)
        for j, name in enumerate(class_names):
            if name not in self.class_names:
                continue
            i = self.class_names.index(name)
            a, b, d = (1.0, 1.0, 0.0) if self.class_terms is None else self.class_terms[i]
            cam[j] = a / self.camera_temperature
            sens[j] = b * self.sensor_weight
            bias[j] = d
        return cam, sens, bias

    @property
    def frequencies_read(self) -> int:
        """Frequencies of the bar the model reads (1: frequency 0 alone)."""
        return 1 if self.feature_names == FEATURE_NAMES else 2

    @property
    def reads_size(self) -> bool:
        """The model reads the camera's size of the piece (``FEATURE_NAMES_V4``)."""
        return self.feature_names == FEATURE_NAMES_V4

    def check_bar(
        self, frequencies_hz: tuple[float, ...], bar_mm: tuple[float, float, float] | None = None
    ) -> str:
        """'' when a bar of ``frequencies_hz`` (and, given, of geometry ``bar_mm``:
        coil pitch, coil radius, rows' spacing along the belt, mm) gives what the
        model reads, else one line saying what does not match."""
        if bar_mm is not None and any(
            not abs(a - b) <= 1e-3 * b for a, b in zip(bar_mm, self.bar_mm, strict=True)
        ):
            p, r, row = self.bar_mm
            return (
                f"the induction model {self.version} was fitted on a bar of {p:g} mm coil pitch, "
                f"{r:g} mm coil radius, a row every {row:g} mm; this bar has {bar_mm[0]:g}, "
                f"{bar_mm[1]:g}, {bar_mm[2]:g} mm (train one for it: sortline model "
                "train-sensor --pitch-mm --coil-radius-mm)"
            )
        need = self.frequencies_hz[: self.frequencies_read]
        have = tuple(frequencies_hz[: len(need)])
        if len(have) < len(need) or any(
            abs(a - b) > 1e-6 * b for a, b in zip(have, need, strict=True)
        ):
            return (
                f"the induction model {self.version} reads {list(need)} Hz, the bar runs "
                f"{list(frequencies_hz)} Hz"
            )
        return ""

    def log_probs(self, integrals: np.ndarray) -> np.ndarray:
        """(n, K) float64 log class probabilities of footprint integrals (n, N_INTEGRALS)."""
        h = (features(integrals, len(self.feature_names)) - self.mean) / self.scale
        (w1, b1), (w2, b2), (w3, b3) = self.layers
        h = np.maximum(h @ w1.T + b1, 0.0)
        h = np.maximum(h @ w2.T + b2, 0.0)
        z = h @ w3.T + b3
        z -= z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": FORMAT,
            "version": self.version,
            "class_names": list(self.class_names),
            "features": list(self.feature_names),
            "frequencies_hz": list(self.frequencies_hz),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "layers": [{"weight": w.tolist(), "bias": b.tolist()} for w, b in self.layers],
            "camera_temperature": self.camera_temperature,
            "sensor_weight": self.sensor_weight,
            "bar": dict(zip(_BAR_KEYS, self.bar_mm, strict=True)),
        }
        if self.class_terms is not None:
            out["class_terms"] = {
                "columns": ["camera_gain", "sensor_gain", "bias"],
                "rows": self.class_terms.tolist(),
            }
        out["note"] = self.note
        return out

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")

    def with_combination(
        self,
        camera_temperature: float,
        sensor_weight: float,
        class_terms: np.ndarray | None = None,
    ) -> InductionModel:
        """The same model with another combination (``class_terms`` None: scalar)."""
        return dataclasses.replace(
            self,
            camera_temperature=camera_temperature,
            sensor_weight=sensor_weight,
            class_terms=class_terms,
        )

    @classmethod
    def load(cls, path: Path) -> InductionModel:
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputFileError(path, f"cannot read the induction model: {exc}") from exc
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            got = d.get("format") if isinstance(d, dict) else None
            raise InputFileError(path, f"format {got!r} is not {FORMAT} (v1 models: retrain)")
        names = tuple(d.get("features", ()))
        if names not in KNOWN_FEATURES:
            raise InputFileError(path, f"{d.get('features')} are not {FEATURE_NAMES}", "features")
        bar = d.get("bar", dict(zip(_BAR_KEYS, DEFAULT_BAR_MM, strict=True)))
        try:
            bar_mm = tuple(float(bar[k]) for k in _BAR_KEYS)
            if not all(math.isfinite(x) and x > 0 for x in bar_mm):
                raise ValueError("each must be > 0")
        except (KeyError, TypeError, ValueError) as exc:
            raise InputFileError(
                path, f"the bar's geometry {bar!r}: {_BAR_KEYS} in mm needed ({exc})", "bar"
            ) from exc
        try:
            layers = tuple(
                (np.asarray(x["weight"], np.float64), np.asarray(x["bias"], np.float64))
                for x in d["layers"]
            )
            return cls(
                str(d["version"]),
                tuple(d["class_names"]),
                np.asarray(d["mean"], np.float64),
                np.asarray(d["scale"], np.float64),
                layers,
                float(d.get("camera_temperature", 1.0)),
                float(d.get("sensor_weight", 1.0)),
                str(d.get("note", "")),
                names,
                tuple(float(x) for x in d.get("frequencies_hz", (5000.0,))),
                None if "class_terms" not in d else np.asarray(d["class_terms"]["rows"], float),
                (bar_mm[0], bar_mm[1], bar_mm[2]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputFileError(path, f"malformed induction model: {exc}", "layers") from exc
