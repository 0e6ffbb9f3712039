"""The recipe library behind ``/recipes``: the recipes shipped with sortline
(``control/recipes/*.toml``, read-only) and those uploaded to this line, and
the history of which recipe was made active, by whom and when.

Layout under the library folder (``[recipes] dir``, default
``<records dir>/recipes``)::

    <line>/<name>/v000003.json   one uploaded version: its TOML text, sha256,
                                 who uploaded it and when (never overwritten)
    <line>/history.jsonl         one JSON line per activation, appended

A version file is written whole to a temporary file, fsynced and linked into
place (``core.files.atomic_write_bytes(replace=False)``), so a crash leaves
either no file or the whole one, and two uploads of one version cannot both
win. A history line is one ``os.write`` on an ``O_APPEND`` descriptor,
fsynced. A recipe is validated against the model's classes before it is
stored (``control.recipe.parse_recipe``); (name, version) names one text
only: a different text under a name and version already held is refused
(bump ``version``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from control.recipe import Recipe, RecipeFile, parse_recipe
from core.errors import InputFileError, model_from_data, parse_toml
from core.files import append_fsync, atomic_write_bytes
from sortline.config import LineConfig, records_dir

__all__ = [
    "RESERVED_NAMES",
    "Activation",
    "RecipeConflictError",
    "RecipeEntry",
    "RecipeLibrary",
    "UnknownRecipeError",
    "recipe_text",
    "recipes_dir",
]

log = logging.getLogger(__name__)

_VERSION_FILE = re.compile(r"^v(\d{6})\.json$")
RESERVED_NAMES = frozenset({"history", "validate"})  # path segments of /recipes/...


class UnknownRecipeError(LookupError):
    """No recipe of that name (or version)."""


class RecipeConflictError(ValueError):
    """A different text under a (name, version) the library already holds."""


def recipes_dir(cfg: LineConfig) -> Path:
    """``[recipes] dir`` (relative to the config file) or ``<records dir>/recipes``."""
    if cfg.recipes.dir:
        return Path(cfg.resolve_path(cfg.recipes.dir))
    return records_dir(cfg) / "recipes"


def recipe_text(source: str) -> str:
    """The text of a recipe loaded from ``source`` (``builtin:NAME`` or a
    path); "" when it cannot be read back (its sha256 then says so)."""
    try:
        if source.startswith("builtin:"):
            name = source.removeprefix("builtin:") + ".toml"
            return resources.files("control.recipes").joinpath(name).read_text("utf-8")
        return Path(source).read_text(encoding="utf-8")
    except (OSError, ValueError):
        return ""


def sha256_of(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclasses.dataclass(frozen=True)
class RecipeEntry:
    """One recipe version the library holds."""

    name: str
    version: int
    origin: str  # "shipped" | "uploaded"
    description: str
    sha256: str
    text: str
    uploaded_by: str | None = None
    uploaded_unix_s: float | None = None

    @property
    def ref(self) -> str:
        return f"{self.name} v{self.version}"


@dataclasses.dataclass(frozen=True)
class Activation:
    """One entry of the activation history."""

    t_unix_s: float
    who: str
    name: str
    version: int
    sha256: str
    via: str  # "start-up", "POST /recipes/{name}/activate", "PUT /recipe"
    previous: str | None  # "name vN" of the recipe it replaced
    note: str = ""


class RecipeLibrary:
    """Shipped and uploaded recipes of line ``line`` under ``root``, bound to the
    model's ``class_names``."""

    def __init__(
        self, root: Path, line: str, class_names: Sequence[str], keep_history: int = 1000
    ) -> None:
        self.folder = Path(root) / line
        self.class_names = tuple(class_names)
        self._lock = threading.Lock()
        self._history: deque[Activation] = deque(maxlen=keep_history)
        self.write_failures = 0
        self._load_history()

    # ------------------------------------------------------------- reading
    def shipped(self) -> list[RecipeEntry]:
        out = []
        for item in sorted(resources.files("control.recipes").iterdir(), key=lambda p: p.name):
            if item.name.endswith(".toml"):
                text = item.read_text("utf-8")
                spec = self._spec(text, f"builtin:{item.name.removesuffix('.toml')}")
                out.append(
                    RecipeEntry(
                        spec.name, spec.version, "shipped", spec.description, sha256_of(text), text
                    )
                )
        return out

    def uploaded(self) -> list[RecipeEntry]:
        out: list[RecipeEntry] = []
        if not self.folder.is_dir():
            return out
        for sub in sorted(p for p in self.folder.iterdir() if p.is_dir()):
            for f in sorted(sub.iterdir()):
                if _VERSION_FILE.match(f.name):
                    try:
                        out.append(self._read_entry(f))
                    except (OSError, ValueError, KeyError, TypeError) as exc:
                        log.warning("recipe library: %s is unreadable (%s); skipped", f, exc)
        return out

    def entries(self) -> list[RecipeEntry]:
        """Every recipe version held, shipped first, by name and version."""
        return self.shipped() + self.uploaded()

    def get(self, name: str, version: int | None = None) -> RecipeEntry:
        """Recipe ``name`` at ``version`` (None: its highest); ``UnknownRecipeError``."""
        found = [e for e in self.entries() if e.name == name]
        if not found:
            raise UnknownRecipeError(f"no recipe named {name!r}")
        if version is None:
            return max(found, key=lambda e: (e.version, e.origin == "uploaded"))
        for e in found:
            if e.version == version:
                return e
        have = ", ".join(str(e.version) for e in sorted(found, key=lambda e: e.version))
        raise UnknownRecipeError(f"recipe {name!r} has no version {version} (have: {have})")

    def _read_entry(self, path: Path) -> RecipeEntry:
        data = json.loads(path.read_text(encoding="utf-8"))
        text = data["toml"]
        if sha256_of(text) != data["sha256"]:
            raise ValueError("its text does not match its sha256")
        return RecipeEntry(
            name=data["name"], version=int(data["version"]), origin="uploaded",
            description=data.get("description", ""), sha256=data["sha256"], text=text,
            uploaded_by=data.get("uploaded_by"), uploaded_unix_s=data.get("uploaded_unix_s"),
        )  # fmt: skip

    # ---------------------------------------------------------- validating
    @staticmethod
    def _spec(text: str, source: str) -> RecipeFile:
        return model_from_data(RecipeFile, parse_toml(text, source), source)

    def validate(self, text: str, source: str) -> tuple[RecipeFile, Recipe]:
        """The recipe as written and bound to the model's classes; raises
        ``InputFileError`` (one line) when it is malformed or names an unknown
        class, or names itself like a route (``RESERVED_NAMES``)."""
        recipe = parse_recipe(text, source, self.class_names)
        spec = self._spec(text, source)
        if spec.name in RESERVED_NAMES:
            raise InputFileError(source, f"the name {spec.name!r} is reserved", "name")
        return spec, recipe

    # ------------------------------------------------------------- writing
    def upload(self, text: str, who: str) -> tuple[RecipeEntry, bool]:
        """Validate and store ``text``; returns the entry and whether it is new
        (the same text again is not an error). ``InputFileError`` when invalid,
        ``RecipeConflictError`` when its name and version hold another text."""
        spec, _ = self.validate(text, f"recipe uploaded by {who}")
        digest = sha256_of(text)
        for e in self.entries():
            if (e.name, e.version) == (spec.name, spec.version):
                if e.sha256 == digest:
                    return e, False
                raise RecipeConflictError(
                    f"recipe {spec.name!r} version {spec.version} exists ({e.origin}) with "
                    "another text: raise version"
                )
        entry = RecipeEntry(
            spec.name, spec.version, "uploaded", spec.description, digest, text, who, time.time()
        )
        path = self.folder / spec.name / f"v{spec.version:06d}.json"
        record = {
            "name": entry.name, "version": entry.version, "description": entry.description,
            "sha256": digest, "uploaded_by": who, "uploaded_unix_s": entry.uploaded_unix_s,
            "toml": text,
        }  # fmt: skip
        try:
            atomic_write_bytes(path, json.dumps(record, indent=1).encode("utf-8"), replace=False)
        except FileExistsError:
            if not path.is_file():  # not a race: something else is in the way
                raise
            return self.upload(text, who)  # another upload of this version won the race
        return entry, True

    # -------------------------------------------------------------- history
    def note_activation(
        self, recipe: Recipe, text: str, who: str, via: str, note: str = ""
    ) -> Activation:
        """Append ``recipe`` (from ``text``) made active by ``who`` to the history."""
        with self._lock:
            last = self._history[-1] if self._history else None
            entry = Activation(
                t_unix_s=time.time(), who=who, name=recipe.name, version=recipe.version,
                sha256=sha256_of(text), via=via,
                previous=None if last is None else f"{last.name} v{last.version}", note=note,
            )  # fmt: skip
            self._history.append(entry)
            self._append(entry)
        return entry

    def history(self, limit: int = 200) -> list[Activation]:
        """The most recent activations, oldest first."""
        with self._lock:
            return list(self._history)[-limit:] if limit > 0 else []

    @property
    def history_path(self) -> Path:
        return self.folder / "history.jsonl"

    def _append(self, entry: Activation) -> None:
        data = (json.dumps(dataclasses.asdict(entry), separators=(",", ":")) + "\n").encode()
        try:
            append_fsync(self.history_path, data)
        except OSError as exc:
            self.write_failures += 1
            log.warning("recipe history %s: cannot write (%s); kept in memory", self.folder, exc)

    def _load_history(self) -> None:
        try:
            lines = self.history_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("recipe history %s: unreadable (%s)", self.history_path, exc)
            return
        for n, raw in enumerate(lines, 1):
            try:
                self._history.append(Activation(**json.loads(raw)))
            except (ValueError, TypeError) as exc:  # a torn last line after a crash
                log.warning("recipe history %s line %d skipped: %s", self.history_path, n, exc)


def entry_view(entry: RecipeEntry, class_names: Sequence[str]) -> dict[str, Any]:
    """The parsed view of a held recipe: the file as written and what it means
    for the model's classes."""
    spec = RecipeLibrary._spec(entry.text, entry.ref)
    recipe = parse_recipe(entry.text, entry.ref, class_names)
    return {"file": spec.model_dump(mode="json"), **bound_view(recipe)}


def bound_view(recipe: Recipe) -> dict[str, Any]:
    names = recipe.class_names
    return {
        "targets": recipe.targets(),
        "thresholds": dict(zip(names, recipe.threshold.tolist(), strict=True)),
        "priorities": dict(zip(names, recipe.priority.tolist(), strict=True)),
        "fractions": list(recipe.fraction_names),
        "pass_fraction": recipe.pass_fraction,
        "pools": {
            names[c]: [names[j] for j in np.flatnonzero(recipe.pool[c]).tolist()]
            for c in range(len(names))
            if recipe.pool[c].sum() > 1
        },
    }
