"""Bad input files, fuzzed (hypothesis): the config, recipe, calibration,
model and scenario loaders fed truncated, oversized and wrong-typed files.

Each either loads or raises its one-line error (``core.errors.InputFileError``
or its subclass ``ModelFileError``) naming the file: never a traceback of
another type, never a multi-line message. Valid files are the shipped ones
(and a nominal calibration), mutated at the text level so the TOML stays
TOML and the types go wrong where the loaders must catch them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calibration.camera_model import CameraModel
from calibration.geometry import CameraGeometry
from calibration.record import (
    BeltSection,
    Calibration,
    CameraSection,
    ValvesSection,
)
from calibration.store import CalibrationStore
from control.recipe import load_recipe
from core.classes import DEFAULT_CLASSES
from core.errors import InputFileError
from models.registry import builtin_model_path
from sim.plant.scenario import load_scenario
from sortline.config import load_config
from vision.classifier import ModelFileError, OnnxClassifier

ROOT = Path(__file__).resolve().parents[1]
TOML_FILES = {
    "config": ROOT / "sortline" / "default_line.toml",
    "recipe": ROOT / "control" / "recipes" / "default.toml",
    "scenario": ROOT / "sim" / "plant" / "scenarios" / "crowded.toml",
}
_ASSIGN = re.compile(r"^(\s*[A-Za-z_][\w-]*\s*=\s*)(.+?)\s*(#.*)?$", re.M)
WRONG_VALUES = [
    '"text"', "''", "0", "-1", "123456789012", "1e308", "-0.0", "nan", "inf", "-inf",
    "true", "false", "[]", '[1, "a"]', "[[1], [2]]", "{}", "{x = 1}", "1979-05-27",
    "07:32:00", '"' + "x" * 5000 + '"',
]  # fmt: skip
FUZZ = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _calibration_text() -> str:
    model = CameraModel.nominal(CameraGeometry(view_width_mm=1000.0))
    cal = Calibration(
        line="line-a", passed=True, source="fuzz", camera=CameraSection(**model.to_dict()),
        belt=BeltSection(mm_per_tick=0.1),
        valves=ValvesSection(y_valve_mm=300.0, open_delay_ms=[3.0] * 80,
                             close_delay_ms=[2.0] * 80, disabled_valves=[]),
    )  # fmt: skip
    return json.dumps(cal.model_dump(mode="json"))


def _load(kind: str, path: Path) -> object:
    if kind == "config":
        return load_config(path)
    if kind == "recipe":
        return load_recipe(path, DEFAULT_CLASSES)
    if kind == "scenario":
        return load_scenario(str(path))
    if kind == "calibration":  # the store's import: reads, validates, saves a version
        return CalibrationStore(path.parent / "store", "line-a").import_file(path, "fuzz")
    return OnnxClassifier.load(path)


def _loads_or_one_line(kind: str, path: Path) -> None:
    """The property every case checks."""
    try:
        _load(kind, path)
    except InputFileError as exc:
        msg = str(exc)
        assert "\n" not in msg, f"{kind}: multi-line error: {msg!r}"
        assert str(path) in msg, f"{kind}: the error does not name the file: {msg!r}"
        assert len(msg) < 800 + 5100, msg  # a bad value may be quoted, bounded
    # any other exception type propagates: the test fails with its traceback


def _mutate_toml(text: str, pick: int, value: str) -> str:
    matches = list(_ASSIGN.finditer(text))
    m = matches[pick % len(matches)]
    return text[: m.start(2)] + value + text[m.end(2) :]


def _mutate_json(data: Any, pick: int, value: Any) -> Any:
    """``data`` with its ``pick``-th leaf (depth first) replaced by ``value``."""
    leaves: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for k, v in items:
            if isinstance(v, dict | list) and v:
                walk(v)
            else:
                leaves.append((node, k))

    walk(data)
    parent, key = leaves[pick % len(leaves)]
    parent[key] = value
    return data


@pytest.mark.parametrize("kind", sorted(TOML_FILES))
def test_the_shipped_files_load(kind: str) -> None:
    assert _load(kind, TOML_FILES[kind]) is not None


@pytest.mark.parametrize("kind", sorted(TOML_FILES))
@FUZZ
@given(cut=st.floats(0.0, 1.0), junk=st.binary(max_size=64))
def test_truncated_toml_files(kind: str, cut: float, junk: bytes, tmp_path: Path) -> None:
    data = TOML_FILES[kind].read_bytes()
    path = tmp_path / f"{kind}.toml"
    path.write_bytes(data[: int(cut * len(data))] + junk)
    _loads_or_one_line(kind, path)


@pytest.mark.parametrize("kind", sorted(TOML_FILES))
@FUZZ
@given(pick=st.integers(0, 10_000), value=st.sampled_from(WRONG_VALUES))
def test_wrong_typed_toml_values(kind: str, pick: int, value: str, tmp_path: Path) -> None:
    path = tmp_path / f"{kind}.toml"
    path.write_text(_mutate_toml(TOML_FILES[kind].read_text("utf-8"), pick, value), "utf-8")
    _loads_or_one_line(kind, path)


@pytest.mark.parametrize("kind", [*sorted(TOML_FILES), "calibration", "model"])
@pytest.mark.parametrize("how", ["huge comment", "huge binary", "empty", "a folder"])
def test_oversized_empty_and_unreadable_files(kind: str, how: str, tmp_path: Path) -> None:
    path = tmp_path / f"{kind}.file"
    if how == "huge comment":
        base = TOML_FILES.get(kind)
        text = base.read_text("utf-8") if base else _calibration_text()
        path.write_text(("# " + "x" * 1000 + "\n") * 8000 + text, "utf-8")  # ~8 MB
    elif how == "huge binary":
        path.write_bytes(bytes(range(256)) * 32768)  # 8 MB, not UTF-8
    elif how == "empty":
        path.write_bytes(b"")
    else:
        path.mkdir()
    _loads_or_one_line(kind, path)


@FUZZ
@given(pick=st.integers(0, 10_000), value=st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
    st.text(max_size=20), st.lists(st.integers(), max_size=3), st.just({"x": 1}),
))  # fmt: skip
def test_wrong_typed_calibration_values(pick: int, value: object, tmp_path: Path) -> None:
    data = _mutate_json(json.loads(_calibration_text()), pick, value)
    path = tmp_path / "v000001.json"
    path.write_text(json.dumps(data), "utf-8")
    _loads_or_one_line("calibration", path)


@FUZZ
@given(cut=st.floats(0.0, 1.0))
def test_truncated_calibration(cut: float, tmp_path: Path) -> None:
    text = _calibration_text()
    path = tmp_path / "v000001.json"
    path.write_text(text[: int(cut * len(text))], "utf-8")
    _loads_or_one_line("calibration", path)


MODEL = builtin_model_path("sortline-cnn").read_bytes()


@settings(max_examples=25, deadline=None)
@given(cut=st.floats(0.0, 0.999), flip=st.integers(0, len(MODEL) - 1), byte=st.integers(0, 255))
def test_truncated_and_corrupt_models(cut: float, flip: int, byte: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        for data in (
            MODEL[: int(cut * len(MODEL))],
            MODEL[:flip] + bytes([byte]) + MODEL[flip + 1 :],
        ):
            path = Path(d) / "model.onnx"
            path.write_bytes(data)
            _loads_or_one_line("model", path)


def test_model_metadata_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    """Found by the fuzz test above: a flipped byte inside a metadata key
    still parses as ONNX, and reading the metadata raised UnicodeDecodeError."""
    at = MODEL.index(b"sortline.format")
    path = tmp_path / "model.onnx"
    path.write_bytes(MODEL[:at] + b"\x80" + MODEL[at + 1 :])
    with pytest.raises(ModelFileError, match="model metadata is not valid UTF-8"):
        OnnxClassifier.load(path)


@pytest.mark.parametrize("name", ["v000001.json", "active.json"])
@pytest.mark.parametrize("data", [bytes(range(128, 256)) * 64, b"", b"{", b'{"line": 1}'])
def test_a_damaged_file_inside_the_calibration_store(
    name: str, data: bytes, tmp_path: Path
) -> None:
    store = CalibrationStore(tmp_path, "line-a")
    store.folder.mkdir(parents=True)
    (store.folder / name).write_bytes(data)
    with pytest.raises(InputFileError) as err:
        store.load(1) if name.startswith("v") else store.history()
    assert "\n" not in str(err.value) and name in str(err.value)
