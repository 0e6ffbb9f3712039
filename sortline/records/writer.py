"""``RecordsWriter``: sort decisions from the real-time loop to the store.

The real-time thread only calls ``offer`` (an append to a bounded deque;
beyond ``queue_cycles`` the cycle is dropped and counted). The writer thread
wakes every ``batch_s / 4`` (at most 50 ms), turns cycles into decision rows
and commits them in batches: at least every ``batch_s`` or once
``batch_rows`` wait, so a ``kill -9`` loses at most the rows of the last
``batch_s`` plus one commit.

When the store fails (locked, corrupt, disk full, server gone), rows stay in
memory up to ``memory_rows`` (the oldest beyond that are dropped and
counted), or, given a ``spool`` file (a PostgreSQL store), move to that
on-disk spool up to ``spool_rows``; ``failed`` and ``last_error`` say so (the
``records`` alarm), and the writer tries again every ``retry_s``, reopening
the database; the rows (spooled ones first) are committed when it is usable
again. Inserts are idempotent (``store``), so a replay never doubles a row.

``pulse_result``: ``sent`` when handed to the PLC bridge, then ``acked`` or
``unknown`` once the bridge's counters settle it (``AckWindows``);
``not_sent`` for an ejection decided but not commanded (deadline missed,
off the bar); ``none`` for the pass fraction.

``p_fraction`` and the estimated purity: ``sortline.records.decisions``.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from sortline.records import store as st
from sortline.records.acks import AckWindows
from sortline.records.db import Db, StoreError, open_db, redact
from sortline.records.decisions import Offer, decisions_of
from sortline.records.spool import Spool

log = logging.getLogger("sortline.records")

__all__ = ["LotSpans", "RecordsWriter"]

PRUNE_EVERY_S = 3600.0


class LotSpans:
    """The line's lots as time spans, to stamp each decision with its lot."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[tuple[float, float, int]] = []  # opened, closed (inf: open), id

    def note(self, lot: st.Lot) -> None:
        end = float("inf") if lot.closed_unix_s is None else lot.closed_unix_s
        with self._lock:
            self._spans = [s for s in self._spans if s[2] != lot.id]
            bisect.insort(self._spans, (lot.opened_unix_s, end, lot.id))
            del self._spans[:-64]

    def lot_at(self, t_unix_s: float) -> int | None:
        with self._lock:
            i = bisect.bisect_right(self._spans, (t_unix_s, float("inf"), 2**62)) - 1
            if i >= 0 and self._spans[i][0] <= t_unix_s < self._spans[i][1]:
                return self._spans[i][2]
        return None


class RecordsWriter:
    """Offer cycles from the real-time loop; a thread commits their decisions.

    Counters for the alarm and the bench: ``written`` (rows committed),
    ``dropped`` (cycles the full queue refused + rows beyond the memory
    bound), ``failed`` (commits that failed), ``last_error``."""

    def __init__(
        self,
        url: str | Path,
        line: str,
        class_names: tuple[str, ...],
        *,
        boot: str | None = None,
        batch_s: float = 0.2,
        batch_rows: int = 500,
        queue_cycles: int = 4096,
        memory_rows: int = 200_000,
        retention_s: float = 365 * 86400.0,
        retry_s: float = 1.0,
        clock: Callable[[], float] = time.time,
        plc_counts: Callable[[], tuple[int, int, int]] | None = None,
        spool: Path | None = None,
        spool_rows: int = 1_000_000,
    ) -> None:
        self.url = url if isinstance(url, str) else f"sqlite:///{url}"
        self.where = redact(self.url)
        self.line = line
        self.class_names = tuple(class_names)
        self.boot = boot or f"{int(time.time() * 1e3):x}"
        self.batch_s, self.batch_rows = batch_s, batch_rows
        self.memory_rows, self.retention_s, self.retry_s = memory_rows, retention_s, retry_s
        self._clock = clock
        self.queue_cycles = queue_cycles
        self._q: deque[Offer] = deque()
        self.offered = 0  # cycles accepted by offer (real-time thread only)
        self._taken = 0  # ... and turned into rows (writer thread)
        self._rows: deque[st.DecisionRow] = deque()
        self._seen: OrderedDict[int, None] = OrderedDict()
        self.lots = LotSpans()
        self.written = self.dropped = self.failed = 0
        self.dropped_cycles = self.dropped_rows = 0
        self.last_error = ""
        # the newest 10,000 commits (over 30 min at 5 a second): for benches
        self.commit_ms: deque[float] = deque(maxlen=10_000)
        self.lag_s: deque[float] = deque(maxlen=10_000)  # oldest row's age at its commit
        self._conn: Db | None = None
        self._spool_path, self._spool_rows = spool, spool_rows
        self._spool: Spool | None = None
        self.spooled = 0  # rows waiting in the on-disk spool
        self._contexts = st.ContextIds(line)
        self._next_try = 0.0
        self._next_prune = 0.0
        self._cv = threading.Condition()
        self._wake = threading.Event()
        self._flush_now = False
        self._closed = False
        self._plc_counts = plc_counts
        self._acks = AckWindows(plc_counts() if plc_counts is not None else (0, 0, 0))
        self._try_open()
        self._thread = threading.Thread(target=self._run, name="records", daemon=True)
        self._thread.start()

    # ------------------------------------------------------ real-time side
    def offer(self, o: Offer) -> bool:
        """Hand over one cycle; never blocks, never wakes a thread (a deque
        append: ~1 us; a ``queue.Queue`` put waking the writer cost ~50 us
        here). False, and counted, when ``queue_cycles`` wait already."""
        if len(self._q) >= self.queue_cycles or self._closed:
            self._acks.lost = True
            self.dropped_cycles += 1
            self.dropped += 1
            return False
        self._q.append(o)
        self.offered += 1
        return True

    # ---------------------------------------------------------- the others
    def pending_rows(self) -> int:
        """Rows converted and not yet committed (in memory and spooled)."""
        return len(self._rows) + self.spooled

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Commit everything offered so far; False if that did not happen in
        ``timeout_s`` (the store failing, say)."""
        deadline = time.monotonic() + timeout_s
        target = self.offered
        with self._cv:
            while self._taken < target or self._rows or self.spooled:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._flush_now = True
                self._wake.set()
                self._cv.wait(min(left, 0.05))
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join(timeout_s)
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._spool is not None:
            self._spool.close()

    # ------------------------------------------------------ writer thread
    def _run(self) -> None:
        poll_s = min(self.batch_s / 4, 0.05)
        last = time.monotonic()
        while True:
            stop = self._closed
            self._wake.wait(poll_s)
            self._wake.clear()
            failing = time.monotonic() < self._next_try  # memory_rows is the bound then
            while self._q and (failing or len(self._rows) < self.batch_rows):
                self._take(self._q.popleft())
                with self._cv:
                    self._taken += 1
            if self._q:
                self._wake.set()  # more waiting: straight back after this commit
            due = time.monotonic() - last >= self.batch_s or len(self._rows) >= self.batch_rows
            if due or self._flush_now or stop:
                self._flush_now = False
                last = time.monotonic()
                if self._commit(final=stop) and self._plc_counts is not None:
                    self._resolve(self._plc_counts())
            with self._cv:
                self._cv.notify_all()
            if stop:
                return

    def _take(self, o: Offer) -> None:
        try:
            rows = decisions_of(o, self.class_names, self.line, self.boot, self._seen)
        except Exception as exc:  # a malformed cycle must not stop the records
            self._acks.lost = True
            self.failed += 1
            self.last_error = f"cycle {o.frame_id}: {type(exc).__name__}: {exc}"
            log.exception("records: cannot read cycle %d", o.frame_id)
            return
        self._rows.extend(rows)
        self._acks.taken(len(o.pulses), (r.track_id for r in rows if r.ejected))
        over = len(self._rows) - self.memory_rows
        if over > 0:
            for _ in range(over):
                self._rows.popleft()
            self.dropped_rows += over
            self.dropped += over

    def _try_open(self) -> bool:
        if self._spool_path is not None and self._spool is None:
            try:
                self._spool = Spool(self._spool_path, self._spool_rows)
                self.spooled = self._spool.size  # left by an earlier run: replayed
            except StoreError as exc:
                log.warning("records spool %s unusable: %s", self._spool_path, exc)
                self._spool_path = None
        if self._conn is not None:
            return True
        try:
            db = open_db(self.url)
            try:
                st.migrate(db)
                lot = st.current_lot(db, self.line)
            except BaseException:
                db.close()
                raise
        except (StoreError, OSError) as exc:
            self._failure(exc)
            return False
        self._conn = db
        self._contexts.clear()
        if lot is not None:
            self.lots.note(lot)
        self._next_prune = 0.0
        self._maybe_prune()  # at every (re)open, then hourly
        return True

    def _failure(self, exc: BaseException) -> None:
        self.failed += 1
        self.last_error = (
            f"{exc}" if isinstance(exc, StoreError) else f"{type(exc).__name__}: {exc}"
        )
        self._next_try = time.monotonic() + self.retry_s
        log.warning("records store %s failing: %s", self.where, self.last_error)

    def _stamped(self) -> list[st.DecisionRow]:
        return [replace(r, lot_id=self.lots.lot_at(r.t_unix_s)) for r in self._rows]

    def _spill(self) -> None:
        """The store failed: move the rows in memory to the on-disk spool."""
        if self._spool is None or not self._rows:
            return
        rows = self._stamped()
        try:
            dropped = self._spool.put(rows)
        except StoreError as exc:  # the local disk too: they stay in memory (bounded)
            log.warning("records spool failing: %s", exc)
            return
        self._rows.clear()
        self.spooled = self._spool.size
        self.dropped_rows += dropped
        self.dropped += dropped

    def _insert(self, rows: list[st.DecisionRow]) -> None:
        assert self._conn is not None
        t0 = time.perf_counter()
        st.insert_decisions(self._conn, rows, self._contexts)
        self.commit_ms.append((time.perf_counter() - t0) * 1e3)
        self.lag_s.append(self._clock() - min(r.t_unix_s for r in rows))
        self.written += len(rows)

    def _replay(self) -> None:
        """Spooled rows first, oldest first, a batch per transaction."""
        while self._spool is not None and self._spool.size:
            last_id, rows = self._spool.peek(self.batch_rows)
            self._insert(rows)
            self._spool.remove_upto(last_id)
            self.spooled = self._spool.size

    def _commit(self, final: bool = False) -> bool:
        """Commit the rows in memory (after the spooled ones); True when none are left."""
        if time.monotonic() < self._next_try and not final:
            self._spill()
            return False
        if not self._try_open():
            self._spill()
            return False
        assert self._conn is not None
        try:
            self._replay()
            if self._rows:
                rows = self._stamped()
                self._insert(rows)
                for _ in range(len(rows)):
                    self._rows.popleft()
        except StoreError as exc:
            self._failure(exc)
            if not exc.transient:  # corrupt, I/O error, file replaced, server gone: reopen
                self._conn.close()
                self._conn = None
            self._spill()
            return False
        self._maybe_prune()
        return True

    def _resolve(self, counts: tuple[int, int, int]) -> None:
        """Mark committed decisions acked (or unknown) from the bridge's counters."""
        settled = self._acks.settle(*counts)
        if not settled or self._conn is None:
            return
        try:
            st.set_pulse_results(self._conn, self.line, self.boot, settled)
        except StoreError as exc:  # the rows stay "sent": true, only less precise
            log.warning("records: cannot mark pulse results: %s", exc)

    def _maybe_prune(self) -> None:
        now = time.monotonic()
        if now < self._next_prune or self._conn is None:
            return
        self._next_prune = now + PRUNE_EVERY_S
        try:
            d, m = st.prune(self._conn, self.line, self._clock() - self.retention_s)
        except StoreError as exc:
            log.warning("records: pruning failed: %s", exc)
            return
        if d or m:
            log.info("records: pruned %d decisions and %d minute rows past retention", d, m)
