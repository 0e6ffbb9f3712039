"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def emit_json(result: dict[str, Any], path: Path | None) -> None:
    """Write ``result`` to ``path`` (parents created), or print it when no path."""
    text = json.dumps(result, indent=1, default=float)
    if path is None:
        print(text)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")


def write_result(
    name: str, argv: list[str] | None, note: str, rows: list[dict[str, Any]], path: Path | None
) -> dict[str, Any]:
    """The JSON every line-level benchmark writes: the command that reproduces
    it, a note on what was measured, the machine, the rows; atomically."""
    import os
    import platform
    import sys

    out = {
        "benchmark": name,
        "command": f"sortline bench {name} " + " ".join(argv if argv is not None else sys.argv[1:]),
        "note": note,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "results": rows,
    }
    if path is not None:
        from core.files import atomic_write_json

        atomic_write_json(path, out)
    return out
