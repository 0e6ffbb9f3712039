"""Fragment classification through ONNX Runtime, with a self-describing model.

A sortline model states in its ONNX metadata (``custom_metadata_map``):

==============================  ==============================================
key                             value
==============================  ==============================================
``sortline.format``             ``"1"`` (this table's version)
``sortline.class_names``        JSON list of class names, output order
``sortline.input_size_px``      crop side S (the input is (N, S, S, 3))
``sortline.input_layout``       ``"NHWC-uint8-BGR"`` (normalised in the graph)
                                or ``"NCHW-float32-BGR"`` (normalised here)
``sortline.normalisation``      JSON ``{"mean": [b, g, r], "std": [b, g, r]}``
                                applied to pixel / 255
``sortline.output``             ``"probabilities"`` (softmax in the graph)
``sortline.version``            model version string
``sortline.train_config_sha256`` sha256 (hex) of the training config JSON
``sortline.reject_class``       optional: the name (in ``class_names``) of a
                                "not a fragment" output (belt stains, seams,
                                shadows); it is not a material class
==============================  ==============================================

A missing or corrupt file, or metadata that is absent, malformed or does not
match the classes the line expects, raises ``ModelFileError`` with one line.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from core.errors import InputFileError

__all__ = [
    "LAYOUT_NCHW_F32",
    "LAYOUT_NHWC_U8",
    "META_PREFIX",
    "Classifier",
    "ModelFileError",
    "ModelInfo",
    "OnnxClassifier",
    "open_session",
    "parse_metadata",
]

META_PREFIX = "sortline."
FORMAT_VERSION = "1"
LAYOUT_NHWC_U8 = "NHWC-uint8-BGR"
LAYOUT_NCHW_F32 = "NCHW-float32-BGR"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ModelFileError(InputFileError):
    """A model file is missing, corrupt, or describes itself wrongly."""


def open_session(path: Path, intra_op_threads: int = 1) -> Any:
    """An ONNX Runtime session on the CPU for the frame loop (sequential, no
    spinning threads, quiet); ``ModelFileError`` (one line) if ORT cannot load
    ``path``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(intra_op_threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises several unrelated types for bad files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(path, f"not a loadable ONNX model ({first[:160]})") from None


class Classifier(Protocol):
    """What the pipeline needs of a classifier."""

    @property
    def class_names(self) -> tuple[str, ...]: ...

    @property
    def input_size_px(self) -> int: ...

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 BGR crops -> (N, K) float32 class probabilities."""
        ...

    def classify(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, K) material probabilities (rows sum to 1) and (N,) probability
        that a crop is not a fragment at all (zeros without a reject class)."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class ModelInfo:
    """The validated metadata of a model file."""

    class_names: tuple[str, ...]
    input_size_px: int
    input_layout: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    version: str
    train_config_sha256: str
    extra: Mapping[str, str]
    reject_class: str | None = None

    @property
    def material_names(self) -> tuple[str, ...]:
        """Output names without the reject class."""
        return tuple(n for n in self.class_names if n != self.reject_class)

    def to_dict(self) -> dict[str, Any]:
        return {
            "class_names": list(self.class_names),
            "input_size_px": self.input_size_px,
            "input_layout": self.input_layout,
            "normalisation": {"mean": list(self.mean), "std": list(self.std)},
            "version": self.version,
            "train_config_sha256": self.train_config_sha256,
            "reject_class": self.reject_class,
            **{k: v for k, v in self.extra.items()},
        }


def _get(meta: Mapping[str, str], path: Path, key: str) -> str:
    value = meta.get(META_PREFIX + key)
    if value is None or not str(value).strip():
        raise ModelFileError(path, "missing in the ONNX metadata", field=META_PREFIX + key)
    return str(value)


def _json(meta: Mapping[str, str], path: Path, key: str) -> Any:
    try:
        return json.loads(_get(meta, path, key))
    except json.JSONDecodeError as exc:
        raise ModelFileError(path, f"not valid JSON ({exc.msg})", field=META_PREFIX + key) from None


def _class_names(meta: Mapping[str, str], path: Path) -> tuple[str, ...]:
    names = _json(meta, path, "class_names")
    field = META_PREFIX + "class_names"
    if not isinstance(names, list) or not names:
        raise ModelFileError(path, "must be a non-empty JSON list of names", field=field)
    if not all(isinstance(n, str) and n.strip() for n in names):
        raise ModelFileError(path, "every class name must be a non-empty string", field=field)
    if len(set(names)) != len(names):
        raise ModelFileError(path, f"duplicate class names in {names}", field=field)
    return tuple(names)


def _triple(value: Any, path: Path, what: str) -> tuple[float, float, float]:
    field = META_PREFIX + "normalisation"
    if not (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(v, int | float) for v in value)
    ):
        raise ModelFileError(path, f"{what} must be a list of 3 numbers", field=field)
    if what == "std" and min(value) <= 0:
        raise ModelFileError(path, "std must be positive", field=field)
    return (float(value[0]), float(value[1]), float(value[2]))


def parse_metadata(meta: Mapping[str, str], path: str | Path) -> ModelInfo:
    """Validate a model's ``custom_metadata_map``; ``ModelFileError`` on any problem."""
    p = Path(path)
    fmt = _get(meta, p, "format")
    if fmt != FORMAT_VERSION:
        raise ModelFileError(
            p,
            f"format {fmt!r} not supported (want {FORMAT_VERSION!r})",
            field=META_PREFIX + "format",
        )
    names = _class_names(meta, p)
    size_s = _get(meta, p, "input_size_px")
    if not size_s.isdigit() or not 8 <= int(size_s) <= 1024:
        raise ModelFileError(
            p, f"{size_s!r} is not a crop side in 8..1024 px", field=META_PREFIX + "input_size_px"
        )
    layout = _get(meta, p, "input_layout")
    if layout not in (LAYOUT_NHWC_U8, LAYOUT_NCHW_F32):
        raise ModelFileError(p, f"unknown layout {layout!r}", field=META_PREFIX + "input_layout")
    norm = _json(meta, p, "normalisation")
    if not isinstance(norm, dict):
        raise ModelFileError(p, "must be a JSON object", field=META_PREFIX + "normalisation")
    mean = _triple(norm.get("mean"), p, "mean")
    std = _triple(norm.get("std"), p, "std")
    output = _get(meta, p, "output")
    if output != "probabilities":
        raise ModelFileError(
            p, f"{output!r}: only 'probabilities' is supported", field=META_PREFIX + "output"
        )
    sha = _get(meta, p, "train_config_sha256")
    if not _SHA256.match(sha):
        raise ModelFileError(
            p, "not a 64-digit lower-case hex sha256", field=META_PREFIX + "train_config_sha256"
        )
    reject = meta.get(META_PREFIX + "reject_class") or None
    if reject is not None and (reject not in names or len(names) < 3):
        raise ModelFileError(
            p,
            f"{reject!r} is not one of the model's {len(names)} outputs",
            field=META_PREFIX + "reject_class",
        )
    known = {
        "format",
        "class_names",
        "input_size_px",
        "input_layout",
        "normalisation",
        "output",
        "version",
        "train_config_sha256",
        "reject_class",
    }
    extra = {k: v for k, v in meta.items() if k.removeprefix(META_PREFIX) not in known}
    version = _get(meta, p, "version")
    return ModelInfo(names, int(size_s), layout, mean, std, version, sha, extra, reject)


def check_classes(info: ModelInfo, expected: Sequence[str], path: str | Path) -> None:
    """The model must know exactly the expected classes (order is free: names rule)."""
    have, want = set(info.material_names), set(expected)
    if have == want:
        return
    missing = sorted(want - have)
    extra = sorted(have - want)
    detail = "; ".join(
        part
        for part in (
            f"missing {missing}" if missing else "",
            f"unexpected {extra}" if extra else "",
        )
        if part
    )
    raise ModelFileError(
        path,
        f"model classes do not match the line's classes: {detail}",
        field=META_PREFIX + "class_names",
    )


class OnnxClassifier:
    """An ONNX Runtime session tuned for a shared CPU (no spinning threads)."""

    def __init__(self, session: Any, info: ModelInfo, path: Path, max_batch: int = 64) -> None:
        self._session = session
        self.max_batch = int(max_batch)
        self.info = info
        self.path = path
        self._input_name = session.get_inputs()[0].name
        self._mean = np.asarray(info.mean, np.float32).reshape(1, 3, 1, 1)
        self._std = np.asarray(info.std, np.float32).reshape(1, 3, 1, 1)
        names = info.class_names
        self._material_cols = np.array(
            [i for i, n in enumerate(names) if n != info.reject_class], np.int64
        )
        self._reject_col = names.index(info.reject_class) if info.reject_class else -1

    @property
    def class_names(self) -> tuple[str, ...]:
        """Material classes, in the order of ``predict``'s columns (no reject class)."""
        return self.info.material_names

    @property
    def input_size_px(self) -> int:
        return self.info.input_size_px

    @classmethod
    def load(
        cls,
        path: str | Path,
        expected_classes: Sequence[str] | None = None,
        intra_op_threads: int = 1,
    ) -> OnnxClassifier:
        """Open and validate ``path``; ``ModelFileError`` (one line) if anything is wrong."""
        p = Path(path)
        if not p.is_file():
            raise ModelFileError(p, "model file not found")
        session = open_session(p, intra_op_threads)
        try:
            meta = session.get_modelmeta().custom_metadata_map
        except UnicodeDecodeError as exc:  # a corrupt file can still parse as ONNX
            raise ModelFileError(p, f"model metadata is not valid UTF-8 ({exc.reason})") from None
        info = parse_metadata(meta, p)
        _check_io(session, info, p)
        if expected_classes is not None:
            check_classes(info, expected_classes, p)
        return cls(session, info, p)

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 BGR -> (N, K) float32 material probabilities (rows sum to 1)."""
        return self.classify(crops)[0]

    def classify(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Material probabilities (N, K) renormalised without the reject class, and
        (N,) float32 probability of "not a fragment" (zeros when the model has none)."""
        raw = self.predict_raw(crops)
        if self._reject_col < 0:
            return raw, np.zeros(raw.shape[0], np.float32)
        mat = raw[:, self._material_cols]
        mat /= np.maximum(mat.sum(axis=1, keepdims=True), 1e-12)
        return mat.astype(np.float32), raw[:, self._reject_col].astype(np.float32)

    def predict_raw(self, crops: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 BGR -> (N, K_all) float32, every output of the model."""
        s = self.input_size_px
        if not (
            isinstance(crops, np.ndarray)
            and crops.dtype == np.uint8
            and crops.shape[1:] == (s, s, 3)
        ):
            shape = getattr(crops, "shape", None)
            dtype = getattr(crops, "dtype", None)
            raise ValueError(f"crops must be (N, {s}, {s}, 3) uint8, got {shape} {dtype}")
        k = len(self.info.class_names)
        n = crops.shape[0]
        out = np.empty((n, k), np.float32)
        if n == 0:
            return out
        feed: np.ndarray = np.ascontiguousarray(crops)  # no copy for a crop buffer view
        # equal chunks of at most max_batch: a 64-crop batch keeps the activations in
        # cache (per-crop cost rises ~20 % at 256 on one thread, ~2x on two)
        chunks = -(-n // self.max_batch)
        step = -(-n // chunks)
        for a in range(0, n, step):
            out[a : a + step] = self._run(feed[a : a + step])
        return out

    def _run(self, feed: np.ndarray) -> np.ndarray:
        if self.info.input_layout == LAYOUT_NCHW_F32:
            x = feed.transpose(0, 3, 1, 2).astype(np.float32) * (1.0 / 255.0)
            feed = np.ascontiguousarray((x - self._mean) / self._std)
        (prob,) = self._session.run(None, {self._input_name: feed})
        return np.asarray(prob, dtype=np.float32).reshape(feed.shape[0], -1)


def _check_io(session: Any, info: ModelInfo, path: Path) -> None:
    """The graph's input and output shapes agree with the metadata."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) < 1:
        raise ModelFileError(
            path,
            f"expected 1 input and 1 output, got {len(inputs)} and {len(outputs)}",
            field="graph",
        )
    s = info.input_size_px
    want_shape = (s, s, 3) if info.input_layout == LAYOUT_NHWC_U8 else (3, s, s)
    want_type = "tensor(uint8)" if info.input_layout == LAYOUT_NHWC_U8 else "tensor(float)"
    shape = tuple(inputs[0].shape)
    if len(shape) != 4 or tuple(shape[1:]) != want_shape or inputs[0].type != want_type:
        raise ModelFileError(
            path,
            f"input is {inputs[0].type} {list(shape)}, metadata says {info.input_layout} "
            f"with side {s}",
            field="graph.input",
        )
    out_shape = tuple(outputs[0].shape)
    k = out_shape[-1] if out_shape else None
    if not isinstance(k, int) or k != len(info.class_names):
        raise ModelFileError(
            path,
            f"output has shape {list(out_shape)}, metadata lists {len(info.class_names)} classes",
            field="graph.output",
        )
