"""Decisions as CSV or JSON (the form ``/records/export`` serves).

Columns are ``query.DECISION_COLUMNS``; CSV has a header row, empty cells for
missing values, and times as unix seconds (UTC).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from typing import Any

from sortline.records.query import DECISION_COLUMNS

__all__ = ["to_csv", "to_json"]


def to_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(DECISION_COLUMNS)
    for r in rows:
        w.writerow(["" if r[k] is None else _cell(r[k]) for k in DECISION_COLUMNS])
    return buf.getvalue()


def _cell(v: Any) -> Any:
    if isinstance(v, bool):
        return int(v)
    return v


def to_json(rows: Iterable[Mapping[str, Any]]) -> str:
    return json.dumps({"decisions": list(rows)}, separators=(",", ":"))
