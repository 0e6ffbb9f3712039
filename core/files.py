"""Atomic file writes: readers see the old file or the new one, never half.

The one implementation (temp file in the same folder + fsync + rename or link
+ folder fsync) used by the calibration store, run reports, the plant's score
file and the labelling folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_bytes", "atomic_write_json", "atomic_write_text", "fsync_dir"]

_CHUNK = 64 * 1024


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(
    path: str | Path,
    data: bytes,
    *,
    replace: bool = True,
    on_chunk: Callable[[int], None] | None = None,
) -> None:
    """Write ``data`` to ``path`` all-or-nothing (temp + fsync + rename/link + dir fsync).

    replace=False refuses to overwrite (``FileExistsError``). ``on_chunk(bytes_written)``
    is called after each 64 KiB chunk (tests use it to kill a writer mid-file).
    The parent folder is created when missing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        for start in range(0, max(len(data), 1), _CHUNK):
            view = memoryview(data)[start : start + _CHUNK]
            while view:
                view = view[os.write(fd, view) :]
            if on_chunk is not None:
                on_chunk(min(start + _CHUNK, len(data)))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def atomic_write_json(path: str | Path, data: Any, *, indent: int | None = 2) -> None:
    """``data`` as JSON (NumPy scalars and arrays, pydantic models allowed)."""
    text = json.dumps(data, indent=indent, default=_json_default) + "\n"
    atomic_write_text(path, text)


def append_fsync(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` with one ``write`` on an ``O_APPEND``
    descriptor and fsync it (an append-only journal: a crash can at most cut
    the last line). Creates the folder. Raises ``OSError`` (a short write too)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        if os.write(fd, data) != len(data):
            raise OSError(f"{path}: short write")
        os.fsync(fd)
    finally:
        os.close(fd)
