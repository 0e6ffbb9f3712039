"""The records store and writer without a line: schema and migrations,
decisions from cycles, aggregates, the PLC acknowledgement, a locked or
corrupt database, retention, shifts."""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from control.recipe import Recipe, load_recipe
from core.classes import DEFAULT_CLASSES
from core.types import Pulses, Tracks, TrackState
from sortline.records import Context, Offer, Reader, Records
from sortline.records import store as st
from sortline.records.acks import AckWindows
from sortline.records.db import SqliteDb, StoreError
from sortline.records.decisions import ACKED, UNKNOWN, decisions_of
from sortline.records.writer import RecordsWriter

CTX = Context("default", 1, "builtin:sortline-cnn", "0.6", None)
K = len(DEFAULT_CLASSES)
COPPER, STEEL = DEFAULT_CLASSES.index("copper"), DEFAULT_CLASSES.index("steel")


@pytest.fixture(scope="module")
def recipe() -> Recipe:
    return load_recipe("builtin:default", DEFAULT_CLASSES)  # copper, brass, battery -> eject


def tracks(
    rows: list[tuple[int, int, int, int]], evidence: np.ndarray | None = None, views: int = 3
) -> Tracks:
    """rows: (track id, state, class id, fraction); ``views`` views of evidence each."""
    n = len(rows)
    ev = np.zeros((n, K), np.float32) if evidence is None else evidence.astype(np.float32)
    if evidence is None:
        for i, (_, _, c, _) in enumerate(rows):
            ev[i] = np.log(np.full(K, 0.02 / (K - 1))) * views
            ev[i, c] = np.log(0.98) * views
    post = np.exp(ev / views - (ev / views).max(axis=1, keepdims=True))
    post /= post.sum(axis=1, keepdims=True)
    return Tracks(
        tick=100,
        track_id=np.array([r[0] for r in rows], np.int64),
        state=np.array([r[1] for r in rows], np.int8),
        centroid_mm=np.zeros((n, 2)),
        velocity_mm_tick=np.zeros((n, 2)),
        extent_mm=np.tile([10.0, 30.0, 0, 5], (n, 1)),
        class_evidence=ev,
        class_id=np.array([r[2] for r in rows], np.int16),
        class_prob=post[np.arange(n), [r[2] for r in rows]].astype(np.float32),
        n_views=np.full(n, views, np.int16),
        cross_on_tick=np.full(n, 1000, np.int64),
        cross_off_tick=np.full(n, 1100, np.int64),
        cross_sigma_tick=np.ones(n, np.float32),
        fraction=np.array([r[3] for r in rows], np.int16),
    )


def pulses(track_ids: list[int], valves: tuple[int, int] = (3, 5)) -> Pulses:
    n = len(track_ids)
    return Pulses(
        actuator=np.zeros(n, np.int16),
        first_valve=np.full(n, valves[0], np.int16),
        last_valve=np.full(n, valves[1], np.int16),
        on_tick=np.full(n, 1000, np.uint32),
        off_tick=np.full(n, 1100, np.uint32),
        track_id=np.array(track_ids, np.int64),
        fraction=np.zeros(n, np.int16),
    )


D = int(TrackState.DECIDED)


def offer(
    recipe: Recipe, frame: int, tr: Tracks, pu: Pulses, t_unix_s: float | None = None
) -> Offer:
    t = time.time() if t_unix_s is None else t_unix_s
    return Offer(t, frame, 100 * frame, tr, pu, recipe, CTX)


def db_rows(path: Path, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as c:
        return c.execute(sql, args).fetchall()


# ------------------------------------------------------------------ schema
def test_an_empty_file_is_migrated_in_wal_mode_and_a_newer_schema_is_refused(
    tmp_path: Path,
) -> None:
    p = tmp_path / "r.sqlite"
    p.touch()  # an empty file: version 0
    c = SqliteDb(p)
    assert st.migrate(c) == 0
    assert st.migrate(c) == st.SCHEMA_VERSION  # again: nothing to do
    assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"decisions", "minutes", "lots", "contexts"} <= tables
    c.execute(f"PRAGMA user_version = {st.SCHEMA_VERSION + 1}")
    with pytest.raises(st.SchemaError, match="schema version 2, this sortline knows up to 1"):
        st.migrate(c)
    c.close()


def test_migrations_run_step_by_step_and_keep_rows(tmp_path: Path) -> None:
    c = SqliteDb(tmp_path / "r.sqlite")
    st.migrate(c, st.MIGRATIONS)
    c.execute("INSERT INTO lots (line, name, source, opened_unix_s, opened_by) "
              "VALUES ('a', 'L1', 'yard', 1.0, 'op')")  # fmt: skip
    later = (*st.MIGRATIONS, "ALTER TABLE lots ADD COLUMN note TEXT; CREATE INDEX n ON lots (note)")
    assert st.migrate(c, later) == 1
    assert c.execute("PRAGMA user_version").fetchone()[0] == 2
    assert c.execute("SELECT name, note FROM lots").fetchall() == [("L1", None)]
    broken = (*later, "ALTER TABLE lots ADD COLUMN x TEXT; THIS IS NOT SQL")
    with pytest.raises(StoreError, match="syntax error"):
        st.migrate(c, broken)
    assert c.execute("PRAGMA user_version").fetchone()[0] == 2  # rolled back whole
    assert "x" not in [r[1] for r in c.execute("PRAGMA table_info(lots)")]
    c.close()


# --------------------------------------------------------------- decisions
def test_a_decision_is_recorded_once_with_its_pulses(recipe: Recipe) -> None:
    seen: OrderedDict[int, None] = OrderedDict()
    names = DEFAULT_CLASSES
    tr1 = tracks([(1, D, COPPER, 0), (2, D, STEEL, -1), (3, 1, COPPER, -1)])
    rows = decisions_of(offer(recipe, 1, tr1, pulses([1, 1], (2, 4))), names, "a", "b", seen)
    assert [(r.track_id, r.cls, r.fraction, r.ejected, r.pulses) for r in rows] == [
        (1, "copper", "eject", True, 2),
        (2, "steel", "pass", False, 0),
    ]
    assert rows[0].pulse_result == "sent" and rows[1].pulse_result == "none"
    assert (rows[0].first_valve, rows[0].last_valve) == (2, 4)
    tr2 = tracks([(1, D, COPPER, 0), (2, D, STEEL, -1), (3, D, COPPER, 0)])
    rows = decisions_of(offer(recipe, 2, tr2, pulses([])), names, "a", "b", seen)
    assert [(r.track_id, r.pulse_result) for r in rows] == [(3, "not_sent")]  # deadline missed
    rows = decisions_of(offer(recipe, 3, tracks([]), pulses([9])), names, "a", "b", seen)
    assert [(r.track_id, r.cls, r.ejected) for r in rows] == [(9, "unknown", True)]  # track gone


@pytest.mark.parametrize(
    ("posterior", "fraction", "expected"),
    [
        ({"copper": 0.9, "steel": 0.1}, 0, 0.9),
        ({"copper": 0.5, "brass": 0.3, "steel": 0.2}, 0, 0.8),  # brass goes to eject too
        ({"copper": 0.5, "brass": 0.3, "steel": 0.2}, -1, 0.2),  # pass: the untargeted share
        ({"steel": 0.6, "plastic": 0.4}, -1, 1.0),
    ],
)
def test_p_fraction_sums_the_posterior_over_the_fractions_classes(
    recipe: Recipe, posterior: dict[str, float], fraction: int, expected: float
) -> None:
    p = np.full(K, 1e-12)
    for name, v in posterior.items():
        p[DEFAULT_CLASSES.index(name)] = v
    ev = (np.log(p) * 4)[None, :]  # 4 views' worth of summed log probabilities
    tr = tracks([(1, D, int(np.argmax(p)), fraction)], evidence=ev, views=4)
    o = offer(recipe, 1, tr, pulses([]))
    (row,) = decisions_of(o, DEFAULT_CLASSES, "a", "b", OrderedDict())
    assert row.p_fraction == pytest.approx(expected, abs=1e-6)


def _write(tmp_path: Path, recipe: Recipe, n_cycles: int, **kw: object) -> RecordsWriter:
    w = RecordsWriter(tmp_path / "r.sqlite", "line-a", DEFAULT_CLASSES, batch_s=0.02, **kw)  # type: ignore[arg-type]
    for f in range(n_cycles):
        tid = f + 1
        cls, frac = (COPPER, 0) if f % 3 == 0 else (STEEL, -1)
        w.offer(offer(recipe, f, tracks([(tid, D, cls, frac)]), pulses([tid] if frac == 0 else [])))
    return w


def test_minutes_agree_with_the_decisions_table(tmp_path: Path, recipe: Recipe) -> None:
    w = _write(tmp_path, recipe, 300)
    assert w.flush(10.0)
    w.close()
    p = tmp_path / "r.sqlite"
    assert w.written == 300 and w.dropped == 0
    from_decisions = db_rows(
        p, "SELECT cls, fraction, COUNT(*), SUM(ejected), ROUND(SUM(p_fraction), 6) "
        "FROM decisions GROUP BY cls, fraction ORDER BY cls",
    )  # fmt: skip
    from_minutes = db_rows(
        p, "SELECT cls, fraction, SUM(count), SUM(ejected), ROUND(SUM(p_sum), 6) "
        "FROM minutes GROUP BY cls, fraction ORDER BY cls",
    )  # fmt: skip
    assert (
        from_decisions
        == from_minutes
        == [
            # eject takes copper, brass, battery: 0.98 + 2 x 0.02 / 9 per fragment
            ("copper", "eject", 100, 100, pytest.approx(100 * (0.98 + 2 * 0.02 / 9), abs=1e-3)),
            ("steel", "pass", 200, 0, pytest.approx(200 * (1 - 0.02 / 9 * 3), abs=1e-3)),
        ]
    )
    minutes = Reader(p, "line-a").minutes(0, time.time() + 60, "line-a")
    assert sum(m["fragments"] for m in minutes) == 300
    assert sum(m["ejected"] for m in minutes) == 100


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path, recipe: Recipe) -> None:
    w = RecordsWriter(tmp_path / "r.sqlite", "a", DEFAULT_CLASSES, queue_cycles=2)
    t0 = time.monotonic()
    for f in range(2000):
        w.offer(offer(recipe, f, tracks([(f + 1, D, COPPER, 0)]), pulses([f + 1])))
    assert time.monotonic() - t0 < 2.0  # never waits on the disk
    assert w.flush(10.0)
    w.close()
    assert w.written + w.dropped_cycles == 2000 and w.dropped_cycles > 0
    assert w.dropped == w.dropped_cycles


# ------------------------------------------------------- acknowledgements
@pytest.mark.parametrize(
    ("looks", "expected"),
    [
        # (pulses taken with their track ids, counts seen then) -> settled so far
        ([((2, [1, 2]), (2, 0, 0)), ((0, []), (2, 2, 0))], [{}, {ACKED: [1, 2]}]),
        ([((2, [1, 2]), (2, 2, 1))], [{UNKNOWN: [1, 2]}]),  # one of them failed
        (  # a failure of the first window does not taint the second
            [((1, [1]), (1, 1, 1)), ((1, [2]), (2, 1, 1)), ((0, []), (2, 2, 1))],
            [{UNKNOWN: [1]}, {}, {ACKED: [2]}],
        ),
        (  # a failure before the window's pulses were settled: unknown, to be safe
            [((1, [1]), (1, 0, 0)), ((1, [2]), (2, 1, 1)), ((0, []), (2, 2, 1))],
            [{}, {UNKNOWN: [1]}, {UNKNOWN: [2]}],
        ),
        ([((2, [1]), (2, 2, 0))], [{ACKED: [1]}]),  # two pulses for one decision
    ],
)
def test_ack_windows(
    looks: list[tuple[tuple[int, list[int]], tuple[int, int, int]]],
    expected: list[dict[str, list[int]]],
) -> None:
    a = AckWindows()
    got = []
    for (n, ids), counts in looks:
        a.taken(n, ids)
        got.append(a.settle(*counts))
    assert got == expected


def test_decisions_are_marked_acked_from_the_bridge_counts(tmp_path: Path, recipe: Recipe) -> None:
    counts = [0, 0, 0]
    w = _write(tmp_path, recipe, 30, plc_counts=lambda: tuple(counts))
    counts[0] = 10  # the 10 ejections (every third cycle) were submitted ...
    assert w.flush(10.0)
    counts[1] = 10  # ... and acknowledged
    w.offer(offer(recipe, 99, tracks([(999, D, STEEL, -1)]), pulses([])))
    assert w.flush(10.0)
    w.close()
    got = db_rows(tmp_path / "r.sqlite", "SELECT pulse_result, COUNT(*) FROM decisions GROUP BY 1")
    assert sorted(got) == [("acked", 10), ("none", 21)]


# --------------------------------------------------------------- failures
def test_a_locked_database_keeps_rows_in_memory_then_writes_them(
    tmp_path: Path, recipe: Recipe
) -> None:
    p = tmp_path / "r.sqlite"
    w = RecordsWriter(
        p, "a", DEFAULT_CLASSES, batch_s=0.02, batch_rows=10, retry_s=0.05, memory_rows=50
    )
    other = sqlite3.connect(p, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process holds the database
    for f in range(80):
        w.offer(offer(recipe, f, tracks([(f + 1, D, STEEL, -1)]), pulses([])))
    assert not w.flush(1.0)
    assert w.failed > 0 and "locked" in w.last_error
    assert w.pending_rows() == 50 and w.dropped_rows == 30 and w.written == 0
    other.execute("ROLLBACK")
    other.close()
    assert w.flush(10.0)
    w.close()
    assert w.written == 50
    assert db_rows(p, "SELECT MIN(track_id), COUNT(*) FROM decisions") == [(31, 50)]


def test_a_corrupt_database_fails_then_recovers_when_replaced(
    tmp_path: Path, recipe: Recipe
) -> None:
    p = tmp_path / "r.sqlite"
    p.write_bytes(b"this is not a database" * 1000)
    w = RecordsWriter(p, "a", DEFAULT_CLASSES, batch_s=0.02, retry_s=0.05)
    w.offer(offer(recipe, 1, tracks([(1, D, STEEL, -1)]), pulses([])))
    assert not w.flush(0.5)
    assert w.failed > 0 and "not a database" in w.last_error and w.pending_rows() == 1
    p.rename(tmp_path / "corrupt.sqlite")  # maintenance moves it aside
    w.offer(offer(recipe, 2, tracks([(2, D, STEEL, -1)]), pulses([])))
    assert w.flush(10.0)
    w.close()
    assert db_rows(p, "SELECT track_id FROM decisions ORDER BY 1") == [(1,), (2,)]


def test_rows_past_retention_are_pruned(tmp_path: Path, recipe: Recipe) -> None:
    p = tmp_path / "r.sqlite"
    w = RecordsWriter(p, "a", DEFAULT_CLASSES, batch_s=0.02, retention_s=3600.0)
    now = time.time()
    for f, age_s in enumerate([7200.0, 4000.0, 100.0, 0.0]):
        w.offer(offer(recipe, f, tracks([(f + 1, D, STEEL, -1)]), pulses([]), now - age_s))
    assert w.flush(10.0)
    w.close()
    assert len(db_rows(p, "SELECT track_id FROM decisions")) == 4  # pruned at start, hourly
    w = RecordsWriter(p, "a", DEFAULT_CLASSES, batch_s=0.02, retention_s=3600.0)  # restart
    assert w.flush(10.0)
    w.close()
    assert db_rows(p, "SELECT track_id FROM decisions ORDER BY 1") == [(3,), (4,)]
    assert db_rows(p, "SELECT MIN(t_unix_s) >= ? FROM minutes", (now - 3600 - 120,)) == [(1,)]


# -------------------------------------------------------------- lots, shifts
def test_decisions_carry_the_lot_open_at_their_time(tmp_path: Path, recipe: Recipe) -> None:
    recs = Records(tmp_path / "r.sqlite", "a", DEFAULT_CLASSES, batch_s=0.02)
    w = recs.writer
    w.offer(offer(recipe, 1, tracks([(1, D, COPPER, 0)]), pulses([1])))
    assert w.flush(5.0)
    lot, closed = recs.open_lot("L1", "yard 3", "ann")
    assert closed is None and lot["closed_unix_s"] is None
    w.offer(offer(recipe, 2, tracks([(2, D, COPPER, 0)]), pulses([2])))
    w.offer(offer(recipe, 3, tracks([(3, D, STEEL, -1)]), pulses([])))
    lot2, closed = recs.open_lot("L2", "yard 4", "ann")
    assert closed is not None and closed["id"] == lot["id"]
    w.offer(offer(recipe, 4, tracks([(4, D, STEEL, -1)]), pulses([])))
    done = recs.close_lot("bob")
    assert done["id"] == lot2["id"] and done["closed_by"] == "bob"
    with pytest.raises(st.LotError, match="no open lot"):
        recs.close_lot("bob")
    w.offer(offer(recipe, 5, tracks([(5, D, STEEL, -1)]), pulses([])))
    assert w.flush(5.0)
    recs.close()
    got = db_rows(tmp_path / "r.sqlite", "SELECT track_id, lot_id FROM decisions ORDER BY 1")
    assert got == [(1, None), (2, lot["id"]), (3, lot["id"]), (4, lot2["id"]), (5, None)]
    first = recs.reader.lot(lot["id"])
    assert first is not None
    assert first["classes"] == {"copper": 1, "steel": 1}
    assert first["fractions"]["eject"]["count"] == 1


@pytest.mark.parametrize(
    ("shifts", "tz", "day", "expected"),
    [
        (
            [("early", "06:00"), ("late", "14:00"), ("night", "22:00")], "UTC", "2026-03-02",
            [("early", "2026-03-02T06:00+00:00", "2026-03-02T14:00+00:00"),
             ("late", "2026-03-02T14:00+00:00", "2026-03-02T22:00+00:00"),
             ("night", "2026-03-02T22:00+00:00", "2026-03-03T06:00+00:00")],
        ),
        (  # config order does not matter; a shift runs until the next one
            [("b", "18:00"), ("a", "06:00")], "UTC", "2026-03-02",
            [("a", "2026-03-02T06:00+00:00", "2026-03-02T18:00+00:00"),
             ("b", "2026-03-02T18:00+00:00", "2026-03-03T06:00+00:00")],
        ),
        (  # local time: the night of the spring change in Berlin is an hour shorter
            [("day", "06:00"), ("night", "22:00")], "Europe/Berlin", "2026-03-28",
            [("day", "2026-03-28T05:00+00:00", "2026-03-28T21:00+00:00"),
             ("night", "2026-03-28T21:00+00:00", "2026-03-29T04:00+00:00")],
        ),
        ([], "UTC", "2026-03-02", []),
    ],
)  # fmt: skip
def test_shift_spans(
    tmp_path: Path,
    shifts: list[tuple[str, str]],
    tz: str,
    day: str,
    expected: list[tuple[str, str, str]],
) -> None:
    r = Reader(tmp_path / "r.sqlite", "a", shifts, tz)
    iso = [
        (n, dt.datetime.fromtimestamp(a, dt.UTC).isoformat(timespec="minutes"),
         dt.datetime.fromtimestamp(b, dt.UTC).isoformat(timespec="minutes"))
        for n, a, b in r.shift_spans(dt.date.fromisoformat(day))
    ]  # fmt: skip
    assert iso == expected
