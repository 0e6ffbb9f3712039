"""Writing TOML: the few shapes sortline generates (configs, scenario overlays).

The standard library reads TOML (``tomllib``) but does not write it; what
sortline writes is small and flat: tables of scalars, lists and inline
tables. ``dumps`` writes top-level scalars first, then one ``[table]`` per
mapping (nested mappings as ``[a.b]``); ``None`` values are left out (TOML
has no null). Strings are written as JSON strings, which are TOML basic
strings.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["dumps", "toml_value"]


def toml_value(v: Any) -> str:
    """One value: bool, int, finite float, str, a sequence or an inline table."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"TOML has no {v}")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, Sequence):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML for {type(v).__name__}")


def dumps(data: Mapping[str, Any], header: str = "") -> str:
    """A document: ``header`` as a comment, then ``data`` (see the module doc)."""
    lines = [f"# {header}"] if header else []
    lines += _table(data, "")
    return "\n".join(lines).lstrip("\n") + "\n"


def _table(data: Mapping[str, Any], prefix: str) -> list[str]:
    out = [
        f"{k} = {toml_value(v)}"
        for k, v in data.items()
        if v is not None and not isinstance(v, Mapping)
    ]
    for k, v in data.items():
        if isinstance(v, Mapping):
            name = f"{prefix}{k}"
            out += ["", f"[{name}]", *_table(v, name + ".")]
    return out
