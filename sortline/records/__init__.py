"""Production records: every sort decision, kept as the plant's proof.

- ``db``: one connection interface over SQLite (WAL) and PostgreSQL
  (psycopg 3), chosen by ``[records] url``;
- ``store``: the schema, its migrations, the (idempotent) writes;
- ``decisions``: cycles -> decision rows, ``p_fraction`` (estimated purity);
- ``acks``: which pulses the PLC acknowledged, from the bridge's counters;
- ``writer``: ``RecordsWriter``, fed by the real-time loop through a bounded
  deque, committing in batches on its own thread; ``spool``: rows on local
  disk while a server database is down;
- ``query``: ``Reader``, per-minute composition, decisions, lots, shifts;
- ``export``: decisions as CSV or JSON; ``certificate``: the lot certificate.

``Records`` ties them together for one line (``records_from_config``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sortline.records import store as st
from sortline.records.db import sqlite_path
from sortline.records.decisions import Offer
from sortline.records.query import Reader, StoreUnavailableError
from sortline.records.store import Context, LotError
from sortline.records.writer import RecordsWriter

if TYPE_CHECKING:
    from sortline.config import LineConfig

__all__ = [
    "Context",
    "LotError",
    "Offer",
    "Reader",
    "Records",
    "RecordsWriter",
    "StoreUnavailableError",
    "records_from_config",
    "records_url",
]


class Records:
    """One line's records: the writer (real-time side), the reader (API side)
    and lot changes. Lot changes write through their own connection and tell
    the writer, which stamps each decision with the lot open at its time."""

    def __init__(
        self,
        url: str | Path,
        line: str,
        class_names: Sequence[str],
        *,
        shifts: Sequence[tuple[str, str]] = (),
        timezone: str = "UTC",
        **writer_kw: Any,
    ) -> None:
        self.url = url if isinstance(url, str) else f"sqlite:///{url}"
        self.path = sqlite_path(self.url) if self.url.startswith("sqlite:///") else None
        self.line = line
        self.writer = RecordsWriter(self.url, line, tuple(class_names), **writer_kw)
        self.reader = Reader(self.url, line, shifts, timezone)

    @property
    def where(self) -> str:
        return self.writer.where

    # the records alarm reads these (sortline.alarm_rules.observe)
    @property
    def failed(self) -> int:
        return self.writer.failed

    @property
    def written(self) -> int:
        return self.writer.written

    @property
    def dropped(self) -> int:
        return self.writer.dropped

    @property
    def last_error(self) -> str:
        return self.writer.last_error

    def open_lot(
        self, name: str, source: str, who: str
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Close the open lot (if any), open a new one -> (new lot, closed lot)."""
        with self.reader.conn() as c:
            new, closed = st.open_lot(c, self.line, name, source, who, time.time())
        if closed is not None:
            self.writer.lots.note(closed)
        self.writer.lots.note(new)
        closed_view = None if closed is None else self.reader.lot(closed.id)
        return self.reader.lot(new.id) or {}, closed_view

    def close_lot(self, who: str) -> dict[str, Any]:
        """Close the open lot; ``LotError`` when none is open. Waits (bounded)
        for the decisions made before it closed to be committed."""
        with self.reader.conn() as c:
            lot = st.close_lot(c, self.line, who, time.time())
        self.writer.lots.note(lot)
        self.writer.flush(2.0)
        return self.reader.lot(lot.id) or {}

    def close(self) -> None:
        self.writer.close()


def records_url(cfg: LineConfig) -> str:
    """The database ``[records] url`` names: ``""`` = ``sqlite:///<dir>/<line>.sqlite``;
    a relative SQLite path is taken from the config file's folder."""
    from sortline.config import records_dir

    url = cfg.records.url
    if not url:
        return f"sqlite:///{records_dir(cfg) / f'{cfg.line.name}.sqlite'}"
    if url.startswith("sqlite:///"):
        return f"sqlite:///{cfg.resolve_path(str(sqlite_path(url)))}"
    return url


def records_from_config(
    cfg: LineConfig,
    class_names: Sequence[str],
    plc_counts: Callable[[], tuple[int, int, int]] | None = None,
) -> Records:
    """The line's records; ``plc_counts``: the bridge's pulses (submitted,
    resolved, failed), to mark decisions acknowledged (``writer.AckWindows``).
    A server database (PostgreSQL) gets an on-disk spool in the records folder
    for its outages."""
    from sortline.config import records_dir

    r = cfg.records
    url = records_url(cfg)
    spool = (
        None if url.startswith("sqlite:") else records_dir(cfg) / f"{cfg.line.name}-spool.sqlite"
    )
    return Records(
        url, cfg.line.name, class_names,
        shifts=[(s.name, s.start) for s in r.shifts], timezone=r.timezone,
        batch_s=r.batch_ms / 1e3, batch_rows=r.batch_rows, queue_cycles=r.queue_cycles,
        memory_rows=r.memory_rows, retention_s=r.retention_days * 86400.0,
        plc_counts=plc_counts, spool=spool, spool_rows=r.spool_rows,
    )  # fmt: skip
