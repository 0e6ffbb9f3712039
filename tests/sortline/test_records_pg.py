"""Plant-wide records in a real PostgreSQL 15 on loopback (issue 19): the
same store chosen by URL, many lines in one database, idempotent inserts, an
outage spooled on disk and replayed without loss or duplicates."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from control.recipe import Recipe, load_recipe
from core.classes import DEFAULT_CLASSES
from core.net import free_port as _free_port
from core.types import TrackState
from sortline.config import load_config
from sortline.plantctl.postgres import PgServer
from sortline.records import Records
from sortline.records import store as st
from sortline.records.db import PgDb, StoreError

from .conftest import ApiKeys, served_line
from .test_records import COPPER, STEEL, offer, pulses, tracks

D = int(TrackState.DECIDED)


@pytest.fixture(scope="module")
def recipe() -> Recipe:
    return load_recipe("builtin:default", DEFAULT_CLASSES)


def _count(url: str, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    db = PgDb(url)
    try:
        return [tuple(r) for r in db.execute(sql, args).fetchall()]
    finally:
        db.close()


def test_two_lines_share_one_database(pg: PgServer, recipe: Recipe, tmp_path: Path) -> None:
    url = pg.create_database()
    lines = {
        name: Records(url, name, DEFAULT_CLASSES, batch_s=0.02, spool=tmp_path / f"{name}.spool")
        for name in ("line-a", "line-b")
    }
    a = lines["line-a"]
    lot, _ = a.open_lot("L1", "yard", "ann")
    for f in range(60):
        for name, recs in lines.items():
            cls, frac = (COPPER, 0) if f % 3 == 0 else (STEEL, -1)
            tid = f + (1 if name == "line-a" else 1001)
            tr = tracks([(tid, D, cls, frac)])
            recs.writer.offer(offer(recipe, f, tr, pulses([tid] if frac == 0 else [])))
    for recs in lines.values():
        assert recs.writer.flush(20.0), recs.writer.last_error
    assert a.close_lot("ann")["id"] == lot["id"]
    per_line = _count(
        url, "SELECT line, COUNT(*), SUM(ejected) FROM decisions GROUP BY 1 ORDER BY 1"
    )
    assert per_line == [("line-a", 60, 20), ("line-b", 60, 20)]
    minutes = a.reader.minutes(0, time.time() + 60, "line-b")
    assert {m["line"] for m in minutes} == {"line-b"}
    assert sum(m["fragments"] for m in minutes) == 60
    assert sum(m["fragments"] for m in a.reader.minutes(0, time.time() + 60, None)) == 120
    cert = a.reader.certificate_data(lot["id"])
    assert cert is not None and cert["decisions"] == 60  # line-a's only: its lot
    assert cert["fractions"]["eject"]["classes"] == {"copper": 20}
    assert [c["recipe"] for c in cert["contexts"]] == ["default"]
    got = a.reader.decisions(lot=lot["id"], limit=None)
    assert len(got) == 60 and {d["line"] for d in got} == {"line-a"}
    for recs in lines.values():
        recs.close()


def test_a_replayed_batch_is_ignored_not_doubled(pg: PgServer, recipe: Recipe) -> None:
    url = pg.create_database()
    db = PgDb(url)
    st.migrate(db)
    st.migrate(db)  # a second line starting: nothing to do
    from collections import OrderedDict

    from sortline.records.decisions import decisions_of

    rows = []
    for f in range(10):
        tr = tracks([(f + 1, D, COPPER, 0)])
        rows += decisions_of(offer(recipe, f, tr, pulses([f + 1])), DEFAULT_CLASSES, "a", "boot1",
                             OrderedDict())  # fmt: skip
    ids = st.ContextIds("a")
    assert st.insert_decisions(db, rows, ids) == 10
    assert st.insert_decisions(db, rows, ids) == 0
    assert st.insert_decisions(db, rows[5:] + rows[:2], st.ContextIds("a")) == 0
    db.close()
    assert _count(url, "SELECT COUNT(*) FROM decisions") == [(10,)]
    assert _count(url, "SELECT SUM(count), SUM(ejected) FROM minutes") == [(10, 10)]
    assert _count(url, "SELECT COUNT(*) FROM contexts") == [(1,)]


def test_a_line_configured_with_a_postgresql_url_serves_its_records(
    pg: PgServer, api_keys: ApiKeys, tmp_path: Path
) -> None:
    url = pg.create_database()
    cfg = load_config()
    rec = cfg.records.model_copy(update={"url": url, "dir": str(tmp_path)})
    with served_line(api_keys, 5, cfg=cfg.model_copy(update={"records": rec})) as (line, api):
        maint, op = api_keys.client("maintenance"), api_keys.client("operator")
        lot = op.post(f"{api}/records/lots", json={"name": "P1", "source": "cables"}).json()
        line.run_frames(120)
        assert line.records is not None and line.records.writer.flush(20.0)
        lot = op.post(f"{api}/records/lots/current/close").json()
        in_db = _count(url, "SELECT COUNT(*) FROM decisions WHERE lot_id = ?", (lot["id"],))
        assert sum(lot["classes"].values()) == in_db[0][0] > 0
        minutes = maint.get(f"{api}/records/minutes").json()["minutes"]
        total = _count(url, "SELECT COUNT(*) FROM decisions")[0][0]
        assert sum(m["fragments"] for m in minutes) == total
        cert = maint.get(f"{api}/records/lots/{lot['id']}/certificate")
        assert cert.status_code == 200 and "postgresql://sortline@127.0.0.1" in cert.text
    local = sorted(p.name for p in tmp_path.glob("*.sqlite"))
    assert local == [f"{cfg.line.name}-spool.sqlite"]  # the outage spool, no local records


def test_an_outage_is_spooled_on_disk_and_replayed(
    pg: PgServer, recipe: Recipe, tmp_path: Path
) -> None:
    """Last in the module: it stops the server (and starts it again)."""
    url = pg.create_database()
    spool = tmp_path / "line-a-spool.sqlite"
    kw = {"batch_s": 0.02, "retry_s": 0.1, "spool": spool, "boot": "boot1"}
    recs = Records(url, "line-a", DEFAULT_CLASSES, **kw)  # type: ignore[arg-type]
    w = recs.writer
    for f in range(20):
        w.offer(offer(recipe, f, tracks([(f + 1, D, STEEL, -1)]), pulses([])))
    assert w.flush(20.0)
    pg.stop()
    try:
        for f in range(20, 100):
            w.offer(offer(recipe, f, tracks([(f + 1, D, STEEL, -1)]), pulses([])))
        assert not w.flush(1.0)
        assert w.failed > 0 and w.last_error
        deadline = time.monotonic() + 20
        while w.spooled < 80 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert w.spooled == 80 and w.pending_rows() == 80
        with sqlite3.connect(spool) as s:  # on disk, not in memory
            assert s.execute("SELECT COUNT(*) FROM spool").fetchone() == (80,)
        recs.close()  # the line stops (or dies) during the outage
    finally:
        pg.start()
    again = Records(url, "line-a", DEFAULT_CLASSES, **kw)  # type: ignore[arg-type]
    w = again.writer
    for f in range(90, 110):  # the same controller run: 90..99 again, then new ones
        w.offer(offer(recipe, f, tracks([(f + 1, D, STEEL, -1)]), pulses([])))
    assert w.flush(20.0), w.last_error
    again.close()
    assert _count(url, "SELECT COUNT(*), COUNT(DISTINCT track_id), MIN(track_id), "
                       "MAX(track_id) FROM decisions") == [(110, 110, 1, 110)]  # fmt: skip
    assert _count(url, "SELECT SUM(count) FROM minutes") == [(110,)]
    with sqlite3.connect(spool) as s:
        assert s.execute("SELECT COUNT(*) FROM spool").fetchone() == (0,)


def test_a_server_that_is_not_there_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"127\.0\.0\.1") as err:
        PgDb(f"postgresql://sortline:secret@127.0.0.1:{_free_port()}/x")
    assert "secret" not in str(err.value)
