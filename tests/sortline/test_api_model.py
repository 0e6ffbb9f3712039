"""``GET /model`` over HTTP against a running (stepped) line: the model the
line classifies with, its file hash and its card; where the card of a model
file outside the package is found."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from models.registry import builtin_model_path
from sortline.api_model import card_sections, find_card
from sortline.auth import Role
from sortline.runtime import SortingLine

from .conftest import ApiKeys, served_line

Served = tuple[SortingLine, str]
AsRole = Callable[[Role | None], httpx.Client]


@pytest.fixture(scope="module")
def served(api_keys: ApiKeys) -> Iterator[tuple[SortingLine, str]]:
    with served_line(api_keys, 2, records=False) as got:
        yield got


def test_model_names_version_classes_hash_and_card(served: Served, as_role: AsRole) -> None:
    line, url = served
    r = as_role("maintenance").get(f"{url}/model")
    assert r.status_code == 200, r.text
    m = r.json()
    path = builtin_model_path("sortline-cnn")
    raw = path.read_bytes()
    assert m["name"] == "builtin:sortline-cnn"
    assert m["version"] == line.parts.classifier.info.version
    assert m["sha256"] == hashlib.sha256(raw).hexdigest() and m["file_bytes"] == len(raw)
    assert m["classes"] == list(line.parts.class_names)
    assert m["classes"] == list(line.cfg.line.classes)
    assert m["outputs"] == [*m["classes"], "belt"] and m["reject_class"] == "belt"
    assert (m["input_size_px"], m["input_layout"]) == (64, "NHWC-uint8-BGR")
    card = m["card"]
    assert card["title"] == "Model card: `sortline-cnn` (builtin:sortline-cnn)"
    assert "virtual plant" in card["sections"]["Training data: synthetic only"]
    # the card's own header names the same file hash (first 16 hex digits)
    assert m["sha256"][:16] in card["markdown"]
    assert httpx.get(f"{url}/model").status_code == 401


def test_card_is_found_beside_a_model_file(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    shutil.copy(builtin_model_path("sortline-cnn"), model)
    assert find_card(model, builtin=False) is None
    (tmp_path / "MODEL_CARD.md").write_text("# folder card\n")
    assert find_card(model, builtin=False) == tmp_path / "MODEL_CARD.md"
    (tmp_path / "m.md").write_text("# own card\n")
    assert find_card(model, builtin=False) == tmp_path / "m.md"


@pytest.mark.parametrize(
    ("text", "title", "sections"),
    [
        ("", None, {}),
        ("# T\nintro\n## A\none\ntwo\n### B\nthree\n", "T", {"A": "one\ntwo", "B": "three"}),
        ("## A\n\n## B\nb\n", None, {"A": "", "B": "b"}),
        ("# T\n# Second title\nx\n", "T", {"Second title": "x"}),
    ],
)
def test_card_sections(text: str, title: str | None, sections: dict[str, str]) -> None:
    assert card_sections(text) == (title, sections)
