"""Shipped instance-cue models (``vision.learned``): ``builtin:NAME`` -> file."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from core.errors import InputFileError

__all__ = ["SEG_MODELS", "resolve_seg_model"]

# name -> ONNX file shipped in this package (package data); its card beside it (.md)
SEG_MODELS: dict[str, str] = {"seg-v1": "seg-v1.onnx", "seg-v2": "seg-v2.onnx"}


def resolve_seg_model(spec: str | Path) -> Path:
    """``builtin:seg-v1`` (or ``builtin:seg-v2``) -> the shipped file; anything else is a path.

    Raises ``InputFileError`` for an unknown built-in name."""
    s = str(spec)
    if not s.startswith("builtin:"):
        return Path(s)
    key = s.removeprefix("builtin:")
    if key not in SEG_MODELS:
        known = ", ".join("builtin:" + k for k in sorted(SEG_MODELS))
        raise InputFileError(s, f"unknown built-in instance-cue model (have: {known})")
    return Path(str(resources.files("models").joinpath(SEG_MODELS[key])))
