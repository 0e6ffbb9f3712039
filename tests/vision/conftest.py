"""Fixtures for vision tests: a tiny nearest-colour ONNX classifier built with
onnx.helper (no torch), with sortline metadata that tests can break."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

sys.path.insert(0, str(Path(__file__).parent))
import synth

from vision.classifier import LAYOUT_NHWC_U8, META_PREFIX


def good_metadata(names: tuple[str, ...], size: int) -> dict[str, str]:
    return {
        "format": "1",
        "class_names": json.dumps(list(names)),
        "input_size_px": str(size),
        "input_layout": LAYOUT_NHWC_U8,
        "normalisation": json.dumps({"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}),
        "output": "probabilities",
        "version": "test-1",
        "train_config_sha256": hashlib.sha256(b"test").hexdigest(),
    }


def colour_model_bytes(
    names: tuple[str, ...] = tuple(synth.COLOURS_BGR),
    size: int = 64,
    meta: dict[str, str | None] | None = None,
    out_k: int | None = None,
) -> bytes:
    """Nearest mean colour of the crop's central 6x6 px; ``meta`` overrides (None removes)
    metadata keys."""
    c0 = size // 2 - 3
    colours = np.array([synth.COLOURS_BGR.get(n, (128, 128, 128)) for n in names], np.float32)
    k = len(names) if out_k is None else out_k
    colours = np.resize(colours, (k, 3))
    w = (2.0 * colours.T / 400.0).astype(np.float32)  # (3, K)
    b = (-(colours**2).sum(1) / 400.0).astype(np.float32)
    nodes = [
        helper.make_node("Slice", ["crops", "starts", "ends", "axes"], ["centre"]),
        helper.make_node("Cast", ["centre"], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["xf"], ["m"], axes=[1, 2], keepdims=0),
        helper.make_node("MatMul", ["m", "W"], ["z0"]),
        helper.make_node("Add", ["z0", "B"], ["z"]),
        helper.make_node("Softmax", ["z"], ["prob"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "colour",
        [helper.make_tensor_value_info("crops", TensorProto.UINT8, ["N", size, size, 3])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", k])],
        initializer=[
            helper.make_tensor("W", TensorProto.FLOAT, w.shape, w.ravel()),
            helper.make_tensor("B", TensorProto.FLOAT, b.shape, b.ravel()),
            helper.make_tensor("starts", TensorProto.INT64, [2], [c0, c0]),
            helper.make_tensor("ends", TensorProto.INT64, [2], [c0 + 6, c0 + 6]),
            helper.make_tensor("axes", TensorProto.INT64, [2], [1, 2]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    props = good_metadata(names, size)
    for key, value in (meta or {}).items():
        if value is None:
            props.pop(key, None)
        else:
            props[key] = value
    helper.set_model_props(model, {META_PREFIX + k: v for k, v in props.items()})
    return model.SerializeToString()


@pytest.fixture
def make_model(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(10_000))

    def _make(**kw: object) -> Path:
        p = tmp_path / f"model{next(counter)}.onnx"
        p.write_bytes(colour_model_bytes(**kw))  # type: ignore[arg-type]
        return p

    return _make
