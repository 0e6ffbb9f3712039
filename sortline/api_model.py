"""``GET /model`` (maintenance): the classifier the line runs.

Name, version, classes (material classes and the reject output), input
size and layout, the file's size and SHA-256 (hashed once, at the first
request), and its model card: the Markdown text and its sections by heading.
The card of a shipped model is ``models/MODEL_CARD.md``; of a model file
elsewhere, ``<model>.md`` beside it, else ``MODEL_CARD.md`` in its folder,
else none.
"""

from __future__ import annotations

import hashlib
import re
import threading
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from sortline.auth import AUTH_RESPONSES, require

__all__ = ["ModelCard", "ModelView", "card_sections", "find_card", "model_router"]

_HEADING = re.compile(r"^(#{1,3})\s+(.+?)\s*$")


class ModelCard(BaseModel):
    path: str
    markdown: str
    title: str | None
    sections: dict[str, str] = Field(description="heading -> its text (levels 2 and 3)")


class ModelView(BaseModel):
    name: str = Field(description="the config's [vision] model (builtin:NAME or a path)")
    version: str
    path: str
    file_bytes: int
    sha256: str
    classes: list[str] = Field(description="material classes, the order recipes bind to")
    outputs: list[str] = Field(description="every output of the network, in order")
    reject_class: str | None
    input_size_px: int
    input_layout: str
    train_config_sha256: str
    created_utc: str | None
    card: ModelCard | None


def find_card(model: Path, builtin: bool) -> Path | None:
    """The model card file of ``model`` (see the module doc), or None."""
    if builtin:
        from importlib import resources

        p = Path(str(resources.files("models").joinpath("MODEL_CARD.md")))
        return p if p.is_file() else None
    for p in (model.with_suffix(".md"), model.parent / "MODEL_CARD.md"):
        if p.is_file():
            return p
    return None


def card_sections(markdown: str) -> tuple[str | None, dict[str, str]]:
    """(the level-1 title, {level-2/3 heading: its text})."""
    title: str | None = None
    sections: dict[str, str] = {}
    current: str | None = None
    lines: list[str] = []
    for raw in markdown.splitlines():
        m = _HEADING.match(raw)
        if m:
            if current is not None:
                sections[current] = "\n".join(lines).strip()
            if len(m[1]) == 1 and title is None:
                title, current = m[2], None
            else:
                current = m[2]
            lines = []
        elif current is not None:
            lines.append(raw)
    if current is not None:
        sections[current] = "\n".join(lines).strip()
    return title, sections


def _sha256(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


def model_view(line: Any) -> ModelView:
    clf = line.parts.classifier
    info = clf.info
    path = Path(clf.path)
    spec = line.cfg.vision.model
    digest, size = _sha256(path)
    card = None
    card_path = find_card(path, spec.startswith("builtin:"))
    if card_path is not None:
        text = card_path.read_text(encoding="utf-8")
        title, sections = card_sections(text)
        card = ModelCard(path=str(card_path), markdown=text, title=title, sections=sections)
    return ModelView(
        name=spec, version=info.version, path=str(path), file_bytes=size, sha256=digest,
        classes=list(clf.class_names), outputs=list(info.class_names),
        reject_class=info.reject_class, input_size_px=info.input_size_px,
        input_layout=info.input_layout, train_config_sha256=info.train_config_sha256,
        created_utc=info.extra.get("sortline.created_utc"), card=card,
    )  # fmt: skip


def model_router(line: Any) -> APIRouter:
    """``GET /model`` over a ``SortingLine`` (503 for anything else)."""
    router = APIRouter(tags=["model"])
    cache: dict[str, ModelView] = {}
    lock = threading.Lock()

    @router.get(
        "/model",
        response_model=ModelView,
        responses={**AUTH_RESPONSES, 503: {"description": "this line runs no classifier"}},
        dependencies=[Depends(require("maintenance"))],
    )
    def model() -> ModelView:
        """The model the line classifies with, and its card."""
        if getattr(getattr(line, "parts", None), "classifier", None) is None:
            raise HTTPException(503, detail="this line runs no classifier")
        key = str(line.parts.classifier.path)
        with lock:  # the file is hashed once per model, not per request
            if key not in cache:
                cache[key] = model_view(line)
            return cache[key]

    return router
