"""``/records`` over HTTP against a running line on loopback: lots opened
and closed by operators (audited), their counts and certificate equal to the
decisions table, minutes, decisions, shifts and the CSV/JSON export."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sortline.config import LineConfig, ShiftEntry, load_config
from sortline.records import Records
from sortline.runtime import SortingLine

from .conftest import ApiKeys, served_line, until

Served = tuple[SortingLine, str, Path]


def _cfg(folder: Path) -> LineConfig:
    cfg = load_config()
    shifts = [ShiftEntry(name="early", start="00:00"), ShiftEntry(name="late", start="12:00")]
    rec = cfg.records.model_copy(update={"dir": str(folder), "shifts": shifts})
    return cfg.model_copy(update={"records": rec})


@pytest.fixture(scope="module")
def served(api_keys: ApiKeys, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("records")
    audit = folder / "audit.jsonl"
    with served_line(api_keys, 10, cfg=_cfg(folder), audit=audit) as (line, url):
        yield line, url, audit


def _db(line: SortingLine) -> sqlite3.Connection:
    assert isinstance(line.records, Records)
    assert line.records.writer.flush(10.0)
    return sqlite3.connect(line.records.path)


def test_lots_open_close_and_count_what_the_table_holds(served: Served, api_keys: ApiKeys) -> None:
    line, url, audit = served
    op, maint = api_keys.client("operator"), api_keys.client("maintenance")
    assert maint.get(f"{url}/records/lots/current").status_code == 404
    assert op.post(f"{url}/records/lots/current/close").status_code == 409
    body = {"name": "L-17", "source": "yard 3, shredder B"}
    assert maint.post(f"{url}/records/lots", json=body).status_code == 403
    assert httpx.post(f"{url}/records/lots", json=body).status_code == 401
    assert op.post(f"{url}/records/lots", json={"name": ""}).status_code == 422
    r = op.post(f"{url}/records/lots", json=body)
    assert r.status_code == 200, r.text
    first = r.json()
    assert (first["name"], first["source"]) == ("L-17", body["source"])
    assert first["opened_by"] == "op-ann"
    assert first["closed_unix_s"] is None and first["line"] == line.cfg.line.name
    line.run_frames(150)
    second = op.post(f"{url}/records/lots", json={"name": "L-18", "source": "cables"}).json()
    assert maint.get(f"{url}/records/lots/current").json()["id"] == second["id"]
    line.run_frames(100)
    closed = op.post(f"{url}/records/lots/current/close")
    assert closed.status_code == 200 and closed.json()["closed_by"] == "op-ann"
    assert maint.get(f"{url}/records/lots/current").status_code == 404

    lots = {lot["id"]: lot for lot in maint.get(f"{url}/records/lots").json()["lots"]}
    assert lots[first["id"]]["closed_unix_s"] == pytest.approx(second["opened_unix_s"])
    with _db(line) as db:
        for lot_id in (first["id"], second["id"]):
            classes = dict(
                db.execute(
                    "SELECT cls, COUNT(*) FROM decisions WHERE lot_id = ? GROUP BY cls", (lot_id,)
                ).fetchall()
            )
            fractions = dict(
                db.execute(
                    "SELECT fraction, COUNT(*) FROM decisions WHERE lot_id = ? GROUP BY fraction",
                    (lot_id,),
                ).fetchall()
            )
            assert sum(classes.values()) > 10  # the line really sorted into it
            lot = maint.get(f"{url}/records/lots/{lot_id}").json()
            assert lot == lots[lot_id]
            assert lot["classes"] == classes
            assert {f: v["count"] for f, v in lot["fractions"].items()} == fractions
            for v in lot["fractions"].values():
                assert 0.5 < v["purity_est"] <= 1.0
    assert maint.get(f"{url}/records/lots/9999").status_code == 404

    entries = [json.loads(s) for s in audit.read_text().splitlines()]
    lot_changes = [(e["who"], e["action"], e["status"]) for e in entries if "lots" in e["action"]]
    assert lot_changes == [
        ("op-ann", "POST /records/lots/current/close", 409),
        ("maint-max", "POST /records/lots", 403),
        (None, "POST /records/lots", 401),
        ("op-ann", "POST /records/lots", 200),
        ("op-ann", "POST /records/lots", 200),
        ("op-ann", "POST /records/lots/current/close", 200),
    ]


def _certificate_counts(html: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for frac, body in re.findall(r'data-fraction="([^"]+)">(.*?)</table>', html, re.S):
        rows = re.findall(r'<tr><td>([^<]+)</td><td class="n">(\d+)</td></tr>', body)
        out[frac] = {c: int(n) for c, n in rows if c != "Ejected by the line"}
        total = int(re.search(r'class="n total">(\d+)<', body).group(1))  # type: ignore[union-attr]
        assert total == sum(out[frac].values())
    return out


def test_the_certificate_counts_equal_the_decisions_table(
    served: Served, api_keys: ApiKeys
) -> None:
    line, url, _ = served
    maint = api_keys.client("maintenance")
    lots = maint.get(f"{url}/records/lots").json()["lots"]
    assert lots, "runs after the lots test"
    for lot in lots:
        r = maint.get(f"{url}/records/lots/{lot['id']}/certificate")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        with _db(line) as db:
            want: dict[str, dict[str, int]] = {}
            for frac, cls, n in db.execute(
                "SELECT fraction, cls, COUNT(*) FROM decisions WHERE lot_id = ? GROUP BY 1, 2",
                (lot["id"],),
            ):
                want.setdefault(frac, {})[cls] = n
        assert _certificate_counts(r.text) == want
        info = line.recipe_info()
        model = line.parts.classifier.info.version
        assert f"{info['name']} v{info['version']}" in r.text and model in r.text
        assert lot["name"] in r.text and lot["source"].split(",")[0] in r.text
    assert api_keys.client(None).get(f"{url}/records/lots/1/certificate").status_code == 401
    assert maint.get(f"{url}/records/lots/9999/certificate").status_code == 404


def test_minutes_decisions_and_export_agree(served: Served, api_keys: ApiKeys) -> None:
    line, url, _ = served
    maint = api_keys.client("maintenance")
    line.run_frames(30)
    with _db(line) as db:
        total, ejected = db.execute("SELECT COUNT(*), SUM(ejected) FROM decisions").fetchone()
        copper = db.execute("SELECT COUNT(*) FROM decisions WHERE cls = 'copper'").fetchone()[0]
    minutes = maint.get(f"{url}/records/minutes").json()["minutes"]
    assert sum(m["fragments"] for m in minutes) == total
    assert sum(m["ejected"] for m in minutes) == ejected
    assert all(m["line"] == line.cfg.line.name for m in minutes)
    assert maint.get(f"{url}/records/minutes", params={"line": "other"}).json() == {"minutes": []}
    empty = maint.get(f"{url}/records/minutes", params={"since_unix_s": 10, "until_unix_s": 5})
    assert empty.json() == {"minutes": []}

    rows = maint.get(f"{url}/records/decisions", params={"cls": "copper", "limit": 100000})
    got = rows.json()["decisions"]
    assert len(got) == copper and {d["cls"] for d in got} == {"copper"}
    assert all(d["recipe"] == "default" and d["tick"] >= 0 for d in got)
    few = maint.get(f"{url}/records/decisions", params={"limit": 3}).json()["decisions"]
    assert len(few) == 3
    assert maint.get(f"{url}/records/decisions", params={"limit": 0}).status_code == 422

    lot_id = maint.get(f"{url}/records/lots").json()["lots"][-1]["id"]
    js = maint.get(f"{url}/records/export", params={"format": "json", "lot": lot_id})
    assert js.headers["content-type"].startswith("application/json")
    as_json = js.json()["decisions"]
    cs = maint.get(f"{url}/records/export", params={"format": "csv", "lot": lot_id})
    assert cs.headers["content-type"].startswith("text/csv")
    as_csv = list(csv.DictReader(io.StringIO(cs.text)))
    assert len(as_csv) == len(as_json) > 0
    assert [int(r["track_id"]) for r in as_csv] == [d["track_id"] for d in as_json]
    assert {int(r["lot_id"]) for r in as_csv} == {lot_id}
    assert maint.get(f"{url}/records/export", params={"format": "xml"}).status_code == 422


def test_shifts_sum_the_minutes_of_their_span(served: Served, api_keys: ApiKeys) -> None:
    line, url, _ = served
    maint = api_keys.client("maintenance")
    today = dt.datetime.now(dt.UTC).date()
    shifts = maint.get(f"{url}/records/shifts", params={"day": today.isoformat()}).json()["shifts"]
    assert [s["name"] for s in shifts] == ["early", "late"]
    midnight = dt.datetime(today.year, today.month, today.day, tzinfo=dt.UTC).timestamp()
    assert [s["start_unix_s"] - midnight for s in shifts] == [0, 43200]
    assert shifts[1]["end_unix_s"] - midnight == 86400
    with _db(line) as db:
        want = Counter(
            dict(
                db.execute(
                    "SELECT cls, COUNT(*) FROM decisions WHERE t_unix_s >= ? AND t_unix_s < ? "
                    "GROUP BY cls",
                    (midnight, midnight + 86400),
                ).fetchall()
            )
        )
    got: Counter[str] = Counter()
    for s in shifts:
        got.update(s["classes"])
    assert got == want and sum(want.values()) > 0
    bad = maint.get(f"{url}/records/shifts", params={"day": "2026-02-30"})
    assert bad.status_code == 400 and "no such date" in bad.json()["detail"]
    assert maint.get(f"{url}/records/shifts", params={"day": "0"}).status_code == 422


def _alarm(client: httpx.Client, url: str, key: str) -> dict[str, object] | None:
    body = client.get(f"{url}/alarms").json()
    return next((a for a in body["active"] + body["cleared"] if a["key"] == key), None)


def test_a_corrupt_database_is_an_alarm_while_the_line_keeps_sorting(
    api_keys: ApiKeys, tmp_path: Path
) -> None:
    folder = tmp_path / "records"
    folder.mkdir()
    cfg = _cfg(folder)
    db_path = folder / f"{cfg.line.name}.sqlite"
    db_path.write_bytes(b"not a database, a damaged disk block " * 500)
    maint = api_keys.client("maintenance")
    with served_line(api_keys, 5, cfg=cfg) as (line, url):
        recs = line.records
        assert recs is not None
        line.run_frames(60)
        assert until(lambda: (_alarm(maint, url, "records") or {}).get("state") == "active")
        a = _alarm(maint, url, "records")
        assert a is not None and "not a database" in str(a["message"])
        assert str(db_path) in str(a["message"]) and a["severity"] == "warning"
        assert line.state.state.name == "EXECUTE" and line.frames >= 60  # still sorting
        kept = recs.writer.pending_rows()
        assert kept > 0 and recs.writer.dropped == 0  # held in memory
        assert maint.get(f"{url}/records/lots").status_code == 503
        db_path.rename(folder / "damaged.sqlite")  # maintenance moves it aside
        line.run_frames(30)
        assert recs.writer.flush(20.0)
        assert until(lambda: (_alarm(maint, url, "records") or {}).get("state") == "cleared")
        with sqlite3.connect(db_path) as db:
            n = db.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
        assert n >= kept and n == recs.writer.written
        assert maint.get(f"{url}/records/lots").status_code == 200
