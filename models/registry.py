"""Shipped models: ``builtin:NAME`` -> the ONNX file inside the installed package."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from core.errors import InputFileError

__all__ = ["BUILTIN_MODELS", "builtin_model_path", "resolve_model"]

BUILTIN_PREFIX = "builtin:"
# name -> file shipped in this package (package data, see pyproject.toml)
BUILTIN_MODELS: dict[str, str] = {"sortline-cnn": "sortline-cnn.onnx"}


def builtin_model_path(name: str) -> Path:
    """Path of a shipped model, ``"builtin:sortline-cnn"`` or ``"sortline-cnn"``.

    Raises ``InputFileError`` for an unknown name or a package without the file.
    """
    key = name.removeprefix(BUILTIN_PREFIX)
    if key not in BUILTIN_MODELS:
        known = ", ".join(BUILTIN_PREFIX + k for k in sorted(BUILTIN_MODELS))
        raise InputFileError(name, f"unknown built-in model (have: {known})")
    ref = resources.files("models").joinpath(BUILTIN_MODELS[key])
    path = Path(str(ref))
    if not path.is_file():
        raise InputFileError(path, "built-in model file is missing from the installation")
    return path


def resolve_model(spec: str | Path) -> Path:
    """A model named in a config: ``builtin:NAME`` or a file path."""
    s = str(spec)
    return builtin_model_path(s) if s.startswith(BUILTIN_PREFIX) else Path(s)
