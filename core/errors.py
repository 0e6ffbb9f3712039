"""Clear, one-line errors for bad input files (config, recipe, calibration, model)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class InputFileError(ValueError):
    """A file given to sortline is missing or malformed.

    ``str(err)`` is one line naming the file, the field and what is wrong.
    """

    def __init__(self, path: str | Path, message: str, field: str | None = None) -> None:
        self.path = str(path)
        self.field = field
        self.reason = message
        where = f"{self.path}: {field}: " if field else f"{self.path}: "
        super().__init__(where + message)


def _field_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def validation_error(path: str | Path, err: ValidationError) -> InputFileError:
    """The first pydantic error as an ``InputFileError`` (others counted)."""
    errors = err.errors(include_url=False)
    first = errors[0]
    got = first.get("input")
    got_s = "" if isinstance(got, dict) else f" (got {got!r})"
    if first["type"] == "missing":
        got_s = ""
    more = f" [+{len(errors) - 1} more]" if len(errors) > 1 else ""
    return InputFileError(path, f"{first['msg']}{got_s}{more}", field=_field_path(first["loc"]))


def read_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputFileError(p, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(p, f"cannot read: {exc}") from None
    return parse_toml(text, p)


def parse_toml(text: str, path: str | Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputFileError(path, f"not valid TOML: {exc}") from None


def model_from_data(model: type[M], data: dict[str, Any], path: str | Path) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(path, exc) from None


def load_toml_model(model: type[M], path: str | Path) -> M:
    """Read ``path`` as TOML and validate it as ``model``; one-line error on failure."""
    return model_from_data(model, read_toml(path), path)
