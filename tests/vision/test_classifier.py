"""OnnxClassifier: metadata validation, bad files, class matching, predictions."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import synth
from conftest import colour_model_bytes

from vision.classifier import ModelFileError, OnnxClassifier

NAMES = tuple(synth.COLOURS_BGR)


def _crops_of(names: list[str], size: int = 64) -> np.ndarray:
    out = np.empty((len(names), size, size, 3), np.uint8)
    for i, n in enumerate(names):
        out[i] = synth.COLOURS_BGR[n]
    return out


def test_predicts_probabilities_of_the_right_class(make_model: Callable[..., Path]) -> None:
    clf = OnnxClassifier.load(make_model(), expected_classes=NAMES, intra_op_threads=2)
    assert clf.class_names == NAMES and clf.input_size_px == 64
    names = ["battery", "copper", "pcb", "rubber", "aluminium", "copper"]
    prob = clf.predict(_crops_of(names))
    assert prob.shape == (6, 5) and prob.dtype == np.float32
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, atol=1e-5)
    assert [NAMES[i] for i in prob.argmax(axis=1)] == names
    assert clf.predict(np.zeros((0, 64, 64, 3), np.uint8)).shape == (0, 5)


def test_expected_classes_in_another_order_are_accepted(make_model: Callable[..., Path]) -> None:
    OnnxClassifier.load(make_model(), expected_classes=tuple(reversed(NAMES)))


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"meta": {"class_names": None}}, "sortline.class_names", "missing"),
        ({"meta": {"class_names": "[copper"}}, "sortline.class_names", "not valid JSON"),
        ({"meta": {"class_names": "[]"}}, "sortline.class_names", "non-empty"),
        ({"meta": {"class_names": '["a","a","b","c","d"]'}}, "sortline.class_names", "duplicate"),
        ({"meta": {"input_size_px": "sixty"}}, "sortline.input_size_px", "crop side"),
        ({"meta": {"input_size_px": "32"}}, "graph.input", "side 32"),
        ({"meta": {"input_layout": "NCHW-int8"}}, "sortline.input_layout", "unknown layout"),
        ({"meta": {"normalisation": '{"mean": [0.5]}'}}, "sortline.normalisation", "3 numbers"),
        ({"meta": {"train_config_sha256": "abc"}}, "sortline.train_config_sha256", "sha256"),
        ({"meta": {"format": "9"}}, "sortline.format", "not supported"),
        ({"meta": {"version": None}}, "sortline.version", "missing"),
        ({"meta": {"output": "logits"}}, "sortline.output", "probabilities"),
        ({"meta": {"reject_class": "belt"}}, "sortline.reject_class", "not one of"),
        ({"out_k": 4}, "graph.output", "5 classes"),
    ],
)
def test_bad_metadata_is_one_clear_line(
    make_model: Callable[..., Path], kwargs: dict, field: str, words: str
) -> None:
    path = make_model(**kwargs)
    with pytest.raises(ModelFileError) as err:
        OnnxClassifier.load(path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(path)) and field in msg and words in msg


@pytest.mark.parametrize(
    ("expected", "words"),
    [
        (("copper", "aluminium", "pcb", "battery"), "unexpected ['rubber']"),
        ((*NAMES, "brass"), "missing ['brass']"),
    ],
)
def test_classes_not_matching_the_line_are_refused(
    make_model: Callable[..., Path], expected: tuple[str, ...], words: str
) -> None:
    pattern = r"sortline\.class_names: .*" + re.escape(words)
    with pytest.raises(ModelFileError, match=pattern):
        OnnxClassifier.load(make_model(), expected_classes=expected)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "not found"),
        (b"", "not a loadable ONNX model"),
        (b"\x08\x07garbage" * 50, "not a loadable ONNX model"),
        ("truncated", "not a loadable ONNX model"),
    ],
)
def test_missing_or_corrupt_file(tmp_path: Path, content: bytes | str | None, words: str) -> None:
    path = tmp_path / "m.onnx"
    if content == "truncated":
        path.write_bytes(colour_model_bytes()[:300])
    elif content is not None:
        assert isinstance(content, bytes)
        path.write_bytes(content)
    with pytest.raises(ModelFileError, match=words) as err:
        OnnxClassifier.load(path)
    assert "\n" not in str(err.value)


def test_reject_class_is_split_off(make_model: Callable[..., Path]) -> None:
    names = (*NAMES, "belt")  # belt is "grey" in the fixture's colour table
    clf = OnnxClassifier.load(
        make_model(names=names, meta={"reject_class": "belt"}), expected_classes=NAMES
    )
    assert clf.class_names == NAMES
    crops = _crops_of(["copper", "rubber"])
    grey = np.full((1, 64, 64, 3), 128, np.uint8)
    prob, reject = clf.classify(np.concatenate([crops, grey]))
    assert prob.shape == (3, 5)
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, atol=1e-5)
    assert reject[2] > 0.5 and reject[:2].max() < 0.5


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((2, 32, 32, 3), np.uint8),
        np.zeros((2, 64, 64, 3), np.float32),
        np.zeros((64, 64, 3), np.uint8),
    ],
)
def test_predict_refuses_wrong_crops(make_model: Callable[..., Path], bad: np.ndarray) -> None:
    clf = OnnxClassifier.load(make_model())
    with pytest.raises(ValueError, match="crops must be"):
        clf.predict(bad)


def test_metadata_round_trip(make_model: Callable[..., Path]) -> None:
    clf = OnnxClassifier.load(make_model(meta={"note": "x"}))
    d = clf.info.to_dict()
    assert d["class_names"] == list(NAMES) and d["version"] == "test-1"
    assert json.dumps(d)  # serialisable
