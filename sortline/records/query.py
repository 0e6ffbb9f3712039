"""Reading the records back: per-minute composition, decisions, lots, shifts.

Each call opens its own read connection (WAL: readers never wait for the
writer). Fractions report ``count`` and ``purity_est`` (the mean
``p_fraction`` of their decisions; None when none had class evidence), see
``sortline.records.writer``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import zoneinfo
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sortline.records import store as st
from sortline.records.db import Db, StoreError, open_db, sqlite_path

__all__ = ["Reader", "StoreUnavailableError"]

DECISION_COLUMNS = (
    "id", "line", "boot", "track_id", "frame_id", "t_unix_s", "tick", "cls", "class_prob",
    "fraction", "p_fraction", "ejected", "actuator", "first_valve", "last_valve", "on_tick",
    "off_tick", "pulses", "pulse_result", "lot_id", "recipe", "recipe_version", "model",
    "model_version", "calibration_version",
)  # fmt: skip
_DECISION_SELECT = (
    "SELECT d.id, d.line, d.boot, d.track_id, d.frame_id, d.t_unix_s, d.tick, d.cls, "
    "d.class_prob, d.fraction, d.p_fraction, d.ejected, d.actuator, d.first_valve, "
    "d.last_valve, d.on_tick, d.off_tick, d.pulses, d.pulse_result, d.lot_id, c.recipe, "
    "c.recipe_version, c.model, c.model_version, c.calibration_version "
    "FROM decisions d JOIN contexts c ON c.id = d.context_id"
)


class StoreUnavailableError(RuntimeError):
    """The records database cannot be read now (missing, corrupt, locked)."""


class _Tally:
    """Counts per class and per fraction with the purity sums."""

    def __init__(self) -> None:
        self.classes: dict[str, int] = {}
        self.fr: dict[str, list[float]] = {}  # name -> [count, p_sum, p_n]
        self.fragments = 0
        self.ejected = 0

    def add(
        self, cls: str, fraction: str, count: int, ejected: int, p_sum: float, p_n: int
    ) -> None:
        self.classes[cls] = self.classes.get(cls, 0) + count
        f = self.fr.setdefault(fraction, [0, 0.0, 0])
        f[0] += count
        f[1] += p_sum
        f[2] += p_n
        self.fragments += count
        self.ejected += ejected

    def fractions(self) -> dict[str, dict[str, Any]]:
        return {
            name: {"count": int(c), "purity_est": round(s / n, 6) if n else None}
            for name, (c, s, n) in sorted(self.fr.items())
        }


class Reader:
    """Queries over one records database for one line (``line`` filters the
    lots it opens and the default of the queries)."""

    def __init__(self, url: str | Path, line: str, shifts: Sequence[tuple[str, str]] = (),
                 timezone: str = "UTC") -> None:  # fmt: skip
        self.url = url if isinstance(url, str) else f"sqlite:///{url}"
        self.line = line
        self.shifts = sorted(shifts, key=lambda s: s[1])
        self.tz = zoneinfo.ZoneInfo(timezone)

    @contextlib.contextmanager
    def conn(self, busy_timeout_ms: int = 2000) -> Iterator[Db]:
        """A read (and lot-change) connection; ``StoreUnavailableError`` when
        the database cannot be used now."""
        if self.url.startswith("sqlite:///") and not sqlite_path(self.url).exists():
            raise StoreUnavailableError(f"records database {self.url} does not exist yet")
        try:
            c = open_db(self.url, busy_timeout_ms)
        except StoreError as exc:
            raise StoreUnavailableError(f"records database: {exc}") from None
        try:
            if c.get_version() != st.SCHEMA_VERSION:
                raise StoreUnavailableError("records database: not migrated yet")
            yield c
        except StoreError as exc:
            raise StoreUnavailableError(f"records database: {exc}") from None
        finally:
            c.close()

    # ------------------------------------------------------------ minutes
    def minutes(
        self, since_unix_s: float, until_unix_s: float, line: str | None
    ) -> list[dict[str, Any]]:
        args: list[Any] = [st.minute_of(since_unix_s), until_unix_s]
        where = "t_unix_s >= ? AND t_unix_s < ?"
        if line:
            where += " AND line = ?"
            args.append(line)
        with self.conn() as c:
            rows = c.execute(
                "SELECT t_unix_s, line, cls, fraction, count, ejected, p_sum, p_n FROM minutes "
                f"WHERE {where} ORDER BY t_unix_s, line",
                args,
            ).fetchall()
        out: dict[tuple[float, str], _Tally] = {}
        for t, ln, cls, frac, n, ej, ps, pn in rows:
            out.setdefault((t, ln), _Tally()).add(cls, frac, n, ej, ps, pn)
        return [
            {"t_unix_s": t, "line": ln, "fragments": k.fragments, "ejected": k.ejected,
             "classes": dict(sorted(k.classes.items())), "fractions": k.fractions()}
            for (t, ln), k in out.items()
        ]  # fmt: skip

    # ---------------------------------------------------------- decisions
    def decisions(
        self,
        since_unix_s: float | None = None,
        until_unix_s: float | None = None,
        lot: int | None = None,
        cls: str | None = None,
        limit: int | None = 1000,
        line: str | None = None,
    ) -> list[dict[str, Any]]:
        conds: list[str] = []
        args: list[Any] = []
        for cond, val in (
            ("d.t_unix_s >= ?", since_unix_s), ("d.t_unix_s < ?", until_unix_s),
            ("d.lot_id = ?", lot), ("d.cls = ?", cls), ("d.line = ?", line),
        ):  # fmt: skip
            if val is not None:
                conds.append(cond)
                args.append(val)
        sql = _DECISION_SELECT + (" WHERE " + " AND ".join(conds) if conds else "")
        sql += " ORDER BY d.t_unix_s, d.id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self.conn() as c:
            rows = c.execute(sql, args).fetchall()
        out = [dict(zip(DECISION_COLUMNS, r, strict=True)) for r in rows]
        for d in out:
            d["ejected"] = bool(d["ejected"])
        return out

    # --------------------------------------------------------------- lots
    def _lot_tallies(self, c: Db, ids: Sequence[int]) -> dict[int, _Tally]:
        out: dict[int, _Tally] = {i: _Tally() for i in ids}
        if not ids:
            return out
        marks = ",".join("?" * len(ids))
        for lot_id, cls, frac, n, ej, ps, pn in c.execute(
            "SELECT lot_id, cls, fraction, COUNT(*), SUM(ejected), "
            "COALESCE(SUM(p_fraction), 0), COUNT(p_fraction) FROM decisions "
            f"WHERE lot_id IN ({marks}) GROUP BY lot_id, cls, fraction",
            list(ids),
        ):
            out[lot_id].add(cls, frac, n, ej, ps, pn)
        return out

    def lot_view(self, lot: st.Lot, tally: _Tally) -> dict[str, Any]:
        return {**asdict(lot), "fractions": tally.fractions(),
                "classes": dict(sorted(tally.classes.items()))}  # fmt: skip

    def lots(self, limit: int = 200) -> list[dict[str, Any]]:
        with self.conn() as c:
            lots = st.list_lots(c, None, limit)
            tallies = self._lot_tallies(c, [lot.id for lot in lots])
        return [self.lot_view(lot, tallies[lot.id]) for lot in lots]

    def lot(self, lot_id: int) -> dict[str, Any] | None:
        with self.conn() as c:
            lot = st.get_lot(c, lot_id)
            if lot is None:
                return None
            return self.lot_view(lot, self._lot_tallies(c, [lot_id])[lot_id])

    def current_lot(self) -> dict[str, Any] | None:
        with self.conn() as c:
            lot = st.current_lot(c, self.line)
            if lot is None:
                return None
            return self.lot_view(lot, self._lot_tallies(c, [lot.id])[lot.id])

    def certificate_data(self, lot_id: int) -> dict[str, Any] | None:
        """What a certificate prints: per fraction the counts per class, the
        estimated purity; the lot's span; every recipe/model/calibration
        combination that decided in it, with how many decisions each."""
        with self.conn() as c:
            lot = st.get_lot(c, lot_id)
            if lot is None:
                return None
            per: dict[str, _Tally] = {}
            for frac, cls, n, ej, ps, pn in c.execute(
                "SELECT fraction, cls, COUNT(*), SUM(ejected), COALESCE(SUM(p_fraction), 0), "
                "COUNT(p_fraction) FROM decisions WHERE lot_id = ? GROUP BY fraction, cls",
                (lot_id,),
            ):
                per.setdefault(frac, _Tally()).add(cls, frac, n, ej, ps, pn)
            span = c.execute(
                "SELECT MIN(t_unix_s), MAX(t_unix_s), COUNT(*) FROM decisions WHERE lot_id = ?",
                (lot_id,),
            ).fetchone()
            ctx = c.execute(
                "SELECT c.recipe, c.recipe_version, c.model, c.model_version, "
                "c.calibration_version, COUNT(*), MIN(d.t_unix_s), MAX(d.t_unix_s) "
                "FROM decisions d JOIN contexts c ON c.id = d.context_id WHERE d.lot_id = ? "
                "GROUP BY c.id ORDER BY MIN(d.t_unix_s)",
                (lot_id,),
            ).fetchall()
        fractions = {
            name: {"count": t.fragments, "ejected": t.ejected,
                   "purity_est": t.fractions()[name]["purity_est"],
                   "classes": dict(sorted(t.classes.items()))}
            for name, t in sorted(per.items())
        }  # fmt: skip
        keys = ("recipe", "recipe_version", "model", "model_version", "calibration_version",
                "decisions", "first_unix_s", "last_unix_s")  # fmt: skip
        return {
            "lot": asdict(lot), "fractions": fractions, "decisions": int(span[2]),
            "first_decision_unix_s": span[0], "last_decision_unix_s": span[1],
            "contexts": [dict(zip(keys, r, strict=True)) for r in ctx],
        }  # fmt: skip

    def plant_certificate_data(self, name: str) -> dict[str, Any] | None:
        """A plant lot: every lot called ``name`` on any line of this database,
        as one certificate (None when there is none): the lots, per fraction the
        counts per class over all lines, per line its counts per fraction, and
        per line every recipe/model/calibration combination that decided."""
        with self.conn() as c:
            lots = st.lots_named(c, name)
            if not lots:
                return None
            ids = [lot.id for lot in lots]
            marks = ",".join("?" * len(ids))
            counts = c.execute(
                "SELECT line, fraction, cls, COUNT(*), SUM(ejected), "
                "COALESCE(SUM(p_fraction), 0), COUNT(p_fraction) FROM decisions "
                f"WHERE lot_id IN ({marks}) GROUP BY line, fraction, cls",
                ids,
            ).fetchall()
            span = c.execute(
                "SELECT MIN(t_unix_s), MAX(t_unix_s), COUNT(*) FROM decisions "
                f"WHERE lot_id IN ({marks})",
                ids,
            ).fetchone()
            ctx = c.execute(
                "SELECT d.line, c.recipe, c.recipe_version, c.model, c.model_version, "
                "c.calibration_version, COUNT(*), MIN(d.t_unix_s), MAX(d.t_unix_s) "
                "FROM decisions d JOIN contexts c ON c.id = d.context_id "
                f"WHERE d.lot_id IN ({marks}) GROUP BY d.line, c.id "
                "ORDER BY d.line, MIN(d.t_unix_s)",
                ids,
            ).fetchall()
        plant: dict[str, _Tally] = {}
        per_line: dict[str, dict[str, _Tally]] = {lot.line: {} for lot in lots}
        for ln, frac, cls, n, ej, ps, pn in counts:
            plant.setdefault(frac, _Tally()).add(cls, frac, n, ej, ps, pn)
            per_line.setdefault(ln, {}).setdefault(frac, _Tally()).add(cls, frac, n, ej, ps, pn)
        keys = ("line", "recipe", "recipe_version", "model", "model_version",
                "calibration_version", "decisions", "first_unix_s", "last_unix_s")  # fmt: skip
        return {
            "name": name, "lots": [asdict(lot) for lot in lots],
            "lines": sorted(per_line), "fractions": _fraction_views(plant),
            "per_line": {
                ln: {"decisions": sum(t.fragments for t in per.values()),
                     "fractions": _fraction_views(per)}
                for ln, per in sorted(per_line.items())
            },
            "decisions": int(span[2]), "first_decision_unix_s": span[0],
            "last_decision_unix_s": span[1],
            "contexts": [dict(zip(keys, r, strict=True)) for r in ctx],
        }  # fmt: skip

    # ------------------------------------------------------------- shifts
    def shift_spans(self, day: dt.date) -> list[tuple[str, float, float]]:
        """The shifts starting on ``day`` (local to ``timezone``): (name, start, end)
        unix s; each runs until the next shift starts (the first of the next day
        after the last); none on the calendar's last day."""
        if not self.shifts or day >= dt.date.max:
            return []
        starts: list[tuple[str, float]] = []
        for d in (day, day + dt.timedelta(days=1)):
            for name, hhmm in self.shifts:
                h, m = (int(x) for x in hhmm.split(":"))
                t = dt.datetime(d.year, d.month, d.day, h, m, tzinfo=self.tz).timestamp()
                starts.append((name, t))
        n = len(self.shifts)
        return [(starts[i][0], starts[i][1], starts[i + 1][1]) for i in range(n)]

    def shifts_of(self, day: dt.date) -> list[dict[str, Any]]:
        out = []
        spans = self.shift_spans(day)
        with self.conn() as c:
            for name, t0, t1 in spans:
                k = _Tally()
                for cls, frac, n, ej, ps, pn in c.execute(
                    "SELECT cls, fraction, SUM(count), SUM(ejected), SUM(p_sum), SUM(p_n) "
                    "FROM minutes WHERE line = ? AND t_unix_s >= ? AND t_unix_s < ? "
                    "GROUP BY cls, fraction",
                    (self.line, t0, t1),
                ):
                    k.add(cls, frac, n, ej, ps, pn)
                out.append(
                    {"name": name, "start_unix_s": t0, "end_unix_s": t1,
                     "fractions": k.fractions(), "classes": dict(sorted(k.classes.items()))}
                )  # fmt: skip
        return out


def _fraction_views(per: dict[str, _Tally]) -> dict[str, dict[str, Any]]:
    """fraction -> its count, ejected, estimated purity and counts per class."""
    return {
        name: {"count": t.fragments, "ejected": t.ejected,
               "purity_est": t.fractions()[name]["purity_est"],
               "classes": dict(sorted(t.classes.items()))}
        for name, t in sorted(per.items())
    }  # fmt: skip
