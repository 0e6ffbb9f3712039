"""The records schema, its migrations and the writes the writer and the API make.

Written once for SQLite and PostgreSQL (``sortline.records.db``). The
schema version is checked on every start-up and ``MIGRATIONS[i]`` takes a
database from version i to i + 1, in one transaction (an empty or new
database starts at 0); a database from a newer sortline is refused with
one line.

Tables (times unix seconds UTC, ticks uint32 encoder counts):
- ``decisions``: one row per sort decision, keyed (line, boot, track_id): a
  track id is unique for one controller's life (``boot``), so a replayed
  batch is ignored (``ON CONFLICT DO NOTHING``), never doubled; many lines
  may share one database;
- ``minutes``: per line, minute, class and fraction: count, ejected, and the
  sum of each decision's ``p_fraction`` (``sortline.records.writer``),
  written in the same transaction as the new decisions they count;
- ``lots``: opened and closed by operators, per line; decisions carry their
  lot's id;
- ``contexts``: the recipe, model and calibration versions that decided,
  one row per combination; decisions point to theirs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sortline.records.db import Db, StoreError, sqlite_path

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Context",
    "DecisionRow",
    "Lot",
    "LotError",
    "SchemaError",
    "migrate",
    "sqlite_path",
]


class SchemaError(StoreError):
    """The database is from a newer sortline."""


class LotError(RuntimeError):
    """No lot is open (closing), or no such lot."""


_V1 = """
CREATE TABLE contexts (
    id {id},
    line TEXT NOT NULL,
    recipe TEXT NOT NULL,
    recipe_version INTEGER NOT NULL,
    model TEXT NOT NULL,
    model_version TEXT NOT NULL,
    calibration_version INTEGER,
    first_unix_s {real} NOT NULL
);
CREATE UNIQUE INDEX contexts_key ON contexts
    (line, recipe, recipe_version, model, model_version, COALESCE(calibration_version, -1));
CREATE TABLE lots (
    id {id},
    line TEXT NOT NULL,
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    opened_unix_s {real} NOT NULL,
    closed_unix_s {real},
    opened_by TEXT NOT NULL,
    closed_by TEXT
);
CREATE INDEX lots_line_open ON lots (line, closed_unix_s);
CREATE TABLE decisions (
    id {id},
    line TEXT NOT NULL,
    boot TEXT NOT NULL,
    track_id {big} NOT NULL,
    frame_id {big} NOT NULL,
    t_unix_s {real} NOT NULL,
    tick {big} NOT NULL,
    cls TEXT NOT NULL,
    class_prob {real},
    fraction TEXT NOT NULL,
    p_fraction {real},
    ejected INTEGER NOT NULL,
    actuator INTEGER,
    first_valve INTEGER,
    last_valve INTEGER,
    on_tick {big},
    off_tick {big},
    pulses INTEGER NOT NULL,
    pulse_result TEXT NOT NULL,
    lot_id {big} REFERENCES lots (id),
    context_id {big} NOT NULL REFERENCES contexts (id),
    UNIQUE (line, boot, track_id)
);
CREATE INDEX decisions_t ON decisions (t_unix_s);
CREATE INDEX decisions_lot ON decisions (lot_id);
CREATE INDEX decisions_cls_t ON decisions (cls, t_unix_s);
CREATE TABLE minutes (
    line TEXT NOT NULL,
    t_unix_s {real} NOT NULL,
    cls TEXT NOT NULL,
    fraction TEXT NOT NULL,
    count INTEGER NOT NULL,
    ejected INTEGER NOT NULL,
    p_sum {real} NOT NULL,
    p_n INTEGER NOT NULL,
    PRIMARY KEY (line, t_unix_s, cls, fraction)
);
"""

MIGRATIONS: tuple[str, ...] = (_V1,)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: Db, migrations: Sequence[str] = MIGRATIONS) -> int:
    """Bring the schema to ``len(migrations)``; returns the version found.
    Each script's ``{id}``, ``{big}``, ``{real}`` are the dialect's types."""
    with db.transaction():
        db.lock_schema()
        found = db.get_version()
        if found > len(migrations):
            raise SchemaError(
                f"records database has schema version {found}, this sortline knows up to "
                f"{len(migrations)}: use a newer sortline or another records url"
            )
    for version in range(found, len(migrations)):
        with db.transaction():
            db.lock_schema()
            if db.get_version() != version:  # another line migrated meanwhile
                continue
            for stmt in migrations[version].format(**db.types).split(";"):
                if stmt.strip():
                    db.execute(stmt)
            db.set_version(version + 1)
    return found


@dataclass(frozen=True, slots=True)
class Context:
    """What produced a decision: recipe, model and calibration versions."""

    recipe: str
    recipe_version: int
    model: str
    model_version: str
    calibration_version: int | None


@dataclass(frozen=True, slots=True)
class DecisionRow:
    """One sort decision, ready for the table (``lot_id`` set by the writer)."""

    line: str
    boot: str
    track_id: int
    frame_id: int
    t_unix_s: float
    tick: int
    cls: str
    class_prob: float | None
    fraction: str
    p_fraction: float | None
    ejected: bool
    actuator: int | None
    first_valve: int | None
    last_valve: int | None
    on_tick: int | None
    off_tick: int | None
    pulses: int
    pulse_result: str
    context: Context
    lot_id: int | None = None


@dataclass(frozen=True, slots=True)
class Lot:
    id: int
    name: str
    source: str
    line: str
    opened_unix_s: float
    closed_unix_s: float | None
    opened_by: str
    closed_by: str | None


_INSERT_DECISION = """
INSERT INTO decisions (line, boot, track_id, frame_id, t_unix_s, tick, cls, class_prob,
    fraction, p_fraction, ejected, actuator, first_valve, last_valve, on_tick, off_tick,
    pulses, pulse_result, lot_id, context_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (line, boot, track_id) DO NOTHING
"""
_UPSERT_MINUTE = """
INSERT INTO minutes (line, t_unix_s, cls, fraction, count, ejected, p_sum, p_n)
VALUES (?, ?, ?, ?, 1, ?, ?, ?)
ON CONFLICT (line, t_unix_s, cls, fraction) DO UPDATE SET
    count = minutes.count + 1, ejected = minutes.ejected + excluded.ejected,
    p_sum = minutes.p_sum + excluded.p_sum, p_n = minutes.p_n + excluded.p_n
"""


class ContextIds:
    """Context -> row id, cached for one connection (the writer's)."""

    def __init__(self, line: str) -> None:
        self.line = line
        self._ids: dict[Context, int] = {}

    def clear(self) -> None:
        self._ids.clear()

    def id_of(self, db: Db, c: Context, now_unix_s: float) -> int:
        got = self._ids.get(c)
        if got is not None:
            return got
        key = (self.line, c.recipe, c.recipe_version, c.model, c.model_version)
        db.execute(
            "INSERT INTO contexts (line, recipe, recipe_version, model, model_version, "
            "calibration_version, first_unix_s) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (*key, c.calibration_version, now_unix_s),
        )
        row = db.execute(
            "SELECT id FROM contexts WHERE line = ? AND recipe = ? AND recipe_version = ? "
            "AND model = ? AND model_version = ? AND COALESCE(calibration_version, -1) = ?",
            (*key, -1 if c.calibration_version is None else c.calibration_version),
        ).fetchone()
        self._ids[c] = int(row[0])
        return self._ids[c]


def insert_decisions(db: Db, rows: Sequence[DecisionRow], contexts: ContextIds) -> int:
    """Insert ``rows`` and count them into ``minutes``, in one transaction;
    returns how many were new (a replayed row is skipped, not counted twice)."""
    new = 0
    try:
        with db.transaction():
            now = time.time()
            for r in rows:
                ctx = contexts.id_of(db, r.context, now)
                cur = db.execute(
                    _INSERT_DECISION,
                    (
                        r.line, r.boot, r.track_id, r.frame_id, r.t_unix_s, r.tick, r.cls,
                        r.class_prob, r.fraction, r.p_fraction, int(r.ejected), r.actuator,
                        r.first_valve, r.last_valve, r.on_tick, r.off_tick, r.pulses,
                        r.pulse_result, r.lot_id, ctx,
                    ),
                )  # fmt: skip
                if cur.rowcount != 1:
                    continue
                new += 1
                p = r.p_fraction
                db.execute(
                    _UPSERT_MINUTE,
                    (
                        r.line, minute_of(r.t_unix_s), r.cls, r.fraction, int(r.ejected),
                        0.0 if p is None else p, 0 if p is None else 1,
                    ),
                )  # fmt: skip
    except BaseException:
        contexts.clear()  # ids inserted in the rolled-back transaction are gone
        raise
    return new


def set_pulse_results(db: Db, line: str, boot: str, results: dict[str, list[int]]) -> None:
    """Set ``pulse_result`` of (line, boot, track id) decisions, per result."""
    with db.transaction():
        for result, ids in results.items():
            db.executemany(
                "UPDATE decisions SET pulse_result = ? "
                "WHERE line = ? AND boot = ? AND track_id = ?",
                [(result, line, boot, t) for t in ids],
            )


def minute_of(t_unix_s: float) -> float:
    return float(int(t_unix_s // 60) * 60)


def prune(db: Db, line: str, before_unix_s: float) -> tuple[int, int]:
    """Delete the line's decisions and minutes older than ``before_unix_s``
    (lots stay: their names and spans are small) -> (decisions, minutes)."""
    with db.transaction():
        d = db.execute(
            "DELETE FROM decisions WHERE line = ? AND t_unix_s < ?", (line, before_unix_s)
        ).rowcount
        m = db.execute(
            "DELETE FROM minutes WHERE line = ? AND t_unix_s < ?", (line, before_unix_s - 60)
        ).rowcount
    return d, m


# ------------------------------------------------------------------ lots
_LOT_COLS = "id, name, source, line, opened_unix_s, closed_unix_s, opened_by, closed_by"


def _lot(row: Sequence[object]) -> Lot:
    return Lot(*row)  # type: ignore[arg-type]


def current_lot(db: Db, line: str) -> Lot | None:
    row = db.execute(
        f"SELECT {_LOT_COLS} FROM lots WHERE line = ? AND closed_unix_s IS NULL "
        "ORDER BY id DESC LIMIT 1",
        (line,),
    ).fetchone()
    return None if row is None else _lot(row)


def get_lot(db: Db, lot_id: int) -> Lot | None:
    row = db.execute(f"SELECT {_LOT_COLS} FROM lots WHERE id = ?", (lot_id,)).fetchone()
    return None if row is None else _lot(row)


def list_lots(db: Db, line: str | None = None, limit: int = 1000) -> list[Lot]:
    where, args = ("WHERE line = ?", (line,)) if line else ("", ())
    rows = db.execute(
        f"SELECT {_LOT_COLS} FROM lots {where} ORDER BY id DESC LIMIT ?", (*args, limit)
    ).fetchall()
    return [_lot(r) for r in rows]


def lots_named(db: Db, name: str) -> list[Lot]:
    """Every lot called ``name``, on any line (a plant lot), oldest first."""
    rows = db.execute(
        f"SELECT {_LOT_COLS} FROM lots WHERE name = ? ORDER BY opened_unix_s, id", (name,)
    ).fetchall()
    return [_lot(r) for r in rows]


def _in_tx(db: Db, work: Callable[[], Lot]) -> Lot:
    with db.transaction():
        return work()


def open_lot(
    db: Db, line: str, name: str, source: str, who: str, t_unix_s: float
) -> tuple[Lot, Lot | None]:
    """Close the line's open lot (if any) and open a new one -> (new, closed)."""
    closed: list[Lot] = []

    def work() -> Lot:
        cur = current_lot(db, line)
        if cur is not None:
            closed.append(_close(db, cur, who, t_unix_s))
        row = db.execute(
            "INSERT INTO lots (line, name, source, opened_unix_s, opened_by) "
            "VALUES (?, ?, ?, ?, ?) RETURNING id",
            (line, name, source, t_unix_s, who),
        ).fetchone()
        lot = get_lot(db, int(row[0]))
        assert lot is not None
        return lot

    new = _in_tx(db, work)
    return new, closed[0] if closed else None


def _close(db: Db, lot: Lot, who: str, t_unix_s: float) -> Lot:
    db.execute(
        "UPDATE lots SET closed_unix_s = ?, closed_by = ? WHERE id = ?", (t_unix_s, who, lot.id)
    )
    out = get_lot(db, lot.id)
    assert out is not None
    return out


def close_lot(db: Db, line: str, who: str, t_unix_s: float) -> Lot:
    """Close the line's open lot; ``LotError`` when none is open."""

    def work() -> Lot:
        cur = current_lot(db, line)
        if cur is None:
            raise LotError(f"line {line!r} has no open lot")
        return _close(db, cur, who, t_unix_s)

    return _in_tx(db, work)
