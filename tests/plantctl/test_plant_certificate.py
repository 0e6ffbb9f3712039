"""One certificate for a plant lot: the same lot name opened on three lines
of one PostgreSQL records database. Its counts per line, fraction and class
equal the decisions table summed over the lines; each line's recipe, model
and calibration versions are on it; decisions outside the lot are not."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from control.recipe import Recipe, load_recipe
from core.classes import DEFAULT_CLASSES
from core.types import TrackState
from sortline.plantctl.certificate import render_plant_certificate
from sortline.plantctl.postgres import PgServer
from sortline.records import Context, Offer, Records
from sortline.records.db import PgDb
from sortline.records.query import Reader

from ..sortline.test_records import COPPER, STEEL, pulses, tracks

D = int(TrackState.DECIDED)
BATTERY = DEFAULT_CLASSES.index("battery")
CONTEXTS = {
    "line-1": Context("default", 1, "builtin:sortline-cnn", "0.6", None),
    "line-2": Context("default", 2, "builtin:sortline-cnn", "0.6", 3),
    "line-3": Context("copper-only", 1, "builtin:sortline-cnn", "0.7", 5),
}


@pytest.fixture(scope="module")
def recipe() -> Recipe:
    return load_recipe("builtin:default", DEFAULT_CLASSES)  # copper, brass, battery -> eject


def feed(recs: Records, recipe: Recipe, frames: range, seed: int) -> None:
    """One decided fragment per frame: copper, steel or battery by a fixed pattern."""
    ctx = CONTEXTS[recs.line]
    for f in frames:
        cls = (COPPER, STEEL, BATTERY, STEEL)[(f * seed) % 4]
        frac = 0 if cls in (COPPER, BATTERY) else -1
        tr = tracks([(f + 1, D, cls, frac)])
        recs.writer.offer(Offer(1.8e9 + f, f, 100 * f, tr, pulses([f + 1] if frac == 0 else []),
                                recipe, ctx))  # fmt: skip
    assert recs.writer.flush(20.0), recs.writer.last_error


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    db = PgDb(url)
    try:
        return [tuple(r) for r in db.execute(sql).fetchall()]
    finally:
        db.close()


@pytest.fixture(scope="module")
def plant_db(pg: PgServer, recipe: Recipe, tmp_path_factory: pytest.TempPathFactory) -> str:
    url = pg.create_database()
    spool = tmp_path_factory.mktemp("spool")
    lines = {n: Records(url, n, DEFAULT_CLASSES, batch_s=0.02, spool=spool / f"{n}.sqlite")
             for n in CONTEXTS}  # fmt: skip
    for i, (name, recs) in enumerate(lines.items()):
        feed(recs, recipe, range(0, 10), i + 1)  # before the lot: not on it
        recs.open_lot("PLANT-7", f"yard {i}", "ann")
        feed(recs, recipe, range(10, 40 + 10 * i), i + 1)
        if name == "line-1":  # reopened later under the same name: both count
            recs.open_lot("OTHER", "yard", "ann")
            feed(recs, recipe, range(60, 70), 1)
            recs.open_lot("PLANT-7", "yard 0", "bob")
            feed(recs, recipe, range(70, 75), 1)
        recs.close_lot("ann")
        feed(recs, recipe, range(100, 110), i + 1)  # after: not on it
    for recs in lines.values():
        recs.close()
    return url


def test_counts_equal_the_decisions_table_summed_over_lines(plant_db: str) -> None:
    data = Reader(plant_db, "").plant_certificate_data("PLANT-7")
    assert data is not None
    in_lot = "FROM decisions d JOIN lots l ON l.id = d.lot_id WHERE l.name = 'PLANT-7'"
    by_line = rows(plant_db, f"SELECT d.line, d.fraction, d.cls, COUNT(*) {in_lot} "
                             "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")  # fmt: skip
    got = sorted((ln, fr, c, n) for ln, v in data["per_line"].items()
                 for fr, f in v["fractions"].items() for c, n in f["classes"].items())  # fmt: skip
    assert got == by_line and len({r[0] for r in by_line}) == 3
    totals = dict(rows(plant_db, f"SELECT d.fraction, COUNT(*) {in_lot} GROUP BY 1"))
    assert {f: v["count"] for f, v in data["fractions"].items()} == totals
    assert data["decisions"] == 30 + 40 + 50 + 5 == sum(totals.values())
    assert {ln: v["decisions"] for ln, v in data["per_line"].items()} == {
        "line-1": 35, "line-2": 40, "line-3": 50,
    }  # fmt: skip
    assert [(x["line"], x["name"]) for x in data["lots"]] == [
        ("line-1", "PLANT-7"), ("line-1", "PLANT-7"), ("line-2", "PLANT-7"), ("line-3", "PLANT-7"),
    ]  # fmt: skip
    versions = {(c["line"], c["recipe"], c["recipe_version"], c["model_version"],
                 c["calibration_version"]) for c in data["contexts"]}  # fmt: skip
    assert versions == {(ln, c.recipe, c.recipe_version, c.model_version, c.calibration_version)
                        for ln, c in CONTEXTS.items()}  # fmt: skip
    assert Reader(plant_db, "").plant_certificate_data("NOPE") is None


def test_the_html_shows_every_line_and_fraction(plant_db: str) -> None:
    data = Reader(plant_db, "").plant_certificate_data("PLANT-7")
    assert data is not None
    page = render_plant_certificate(data, "postgresql://x@h/db")
    per_line = re.search(r'<table id="per-line">(.*?)</table>', page)
    assert per_line is not None
    for ln, v in data["per_line"].items():
        cells = [v["fractions"].get(f, {}).get("count", 0) for f in data["fractions"]]
        row = "".join(f'<td class="n">{n}</td>' for n in cells)
        assert f"<td>{ln}</td>{row}" in per_line[1]
    assert '<span id="decisions">125</span>' in page
    assert "copper-only v1" in page and "v5" in page and "nominal" in page


def test_the_cli_writes_the_certificate_or_says_what_is_missing(
    plant_db: str, tmp_path: Path
) -> None:
    out = tmp_path / "PLANT-7.html"
    cmd = [sys.executable, "-m", "sortline.cli", "plant", "certificate", "--url", plant_db]
    r = subprocess.run([*cmd, "--lot", "PLANT-7", "--out", str(out)],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "125 decisions" in r.stdout and '<span id="decisions">125</span>' in out.read_text()
    r = subprocess.run([*cmd, "--lot", "NOPE", "--out", str(tmp_path / "x.html")],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2 and not (tmp_path / "x.html").exists()
    assert r.stderr.strip().splitlines() == [
        f"sortline plant certificate: error: no lot named 'NOPE' in {plant_db}"
    ]
