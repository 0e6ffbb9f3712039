"""Rows waiting for an unreachable records database, on local disk.

A small SQLite file (WAL) beside the line's other state: the writer moves
its rows here when the database (PostgreSQL, usually) fails, and replays
them, oldest first, when it answers again; the store ignores rows it
already has, so a replay after a crash never doubles one. Bounded: beyond
``max_rows`` the oldest are dropped and counted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import astuple
from pathlib import Path

from sortline.records.db import SqliteDb
from sortline.records.store import Context, DecisionRow

__all__ = ["Spool"]


def _dump(r: DecisionRow) -> str:
    fields = list(astuple(r))
    return json.dumps(fields, separators=(",", ":"))


def _load(text: str) -> DecisionRow:
    f = json.loads(text)
    f[18] = Context(*f[18])  # the context, a tuple after astuple
    return DecisionRow(*f)


class Spool:
    def __init__(self, path: Path, max_rows: int) -> None:
        self.path = path
        self.max_rows = max_rows
        self._db = SqliteDb(path, busy_timeout_ms=1000)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS spool (id INTEGER PRIMARY KEY, row TEXT NOT NULL)"
        )
        self.size = int(self._db.execute("SELECT COUNT(*) FROM spool").fetchone()[0])

    def put(self, rows: Sequence[DecisionRow]) -> int:
        """Append ``rows``; returns how many old rows the bound dropped."""
        with self._db.transaction():
            self._db.executemany("INSERT INTO spool (row) VALUES (?)", [(_dump(r),) for r in rows])
            over = self.size + len(rows) - self.max_rows
            if over > 0:
                self._db.execute(
                    "DELETE FROM spool WHERE id IN (SELECT id FROM spool ORDER BY id LIMIT ?)",
                    (over,),
                )
        self.size += len(rows) - max(over, 0)
        return max(over, 0)

    def peek(self, n: int) -> tuple[int, list[DecisionRow]]:
        """The ``n`` oldest rows and the id of the last of them (0: none)."""
        got = self._db.execute("SELECT id, row FROM spool ORDER BY id LIMIT ?", (n,)).fetchall()
        return (int(got[-1][0]) if got else 0), [_load(t) for _, t in got]

    def remove_upto(self, last_id: int) -> None:
        with self._db.transaction():
            n = self._db.execute("DELETE FROM spool WHERE id <= ?", (last_id,)).rowcount
        self.size -= n

    def close(self) -> None:
        self._db.close()
