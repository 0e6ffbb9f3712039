"""The records-disk scenario of ``bench/faults.py``, on the rig of
``bench/_faults_rig.py`` with production records on (SQLite in WAL mode).

Disk full is made by the kernel, not by a mock: ``prlimit --fsize`` lowers
the running line process's (soft) file-size limit to 1 byte, so every write that
extends a regular file (the database, its WAL, the audit log) fails with
EFBIG as it would with ENOSPC (CPython ignores SIGXFSZ); raising the limit
again is the disk freed. Pipes, sockets and the shared-memory camera ring are
not regular files and keep working. A file system that turns read-only
under the running line is not simulated: root writes regardless of
permissions, and Linux refuses to remount read-only while files are open
for writing (the database is); a write would then fail with EROFS, the same
path through the records writer as EFBIG here.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from bench._faults_procs import DETECT_MAX_S, RECOVER_MAX_S, lost, row, until
from bench._faults_rig import start_rig

FULL_S = 3.0


def _prlimit(pid: int, fsize: str) -> None:
    """Set the soft file-size limit of ``pid`` (the hard limit stays unlimited:
    raising a hard limit again needs CAP_SYS_RESOURCE, which containers drop)."""
    subprocess.run(
        ["prlimit", f"--pid={pid}", f"--fsize={fsize}:unlimited"], check=True, timeout=10
    )


def _rows(db: Path) -> int:
    """Decisions in the database, read with our own connection (read-only;
    -1 while there is no database to read yet)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5.0) as c:
            return int(c.execute("SELECT count(*) FROM decisions").fetchone()[0])
    except sqlite3.OperationalError:
        if not db.exists():
            return -1
        raise


def _integrity(db: Path) -> str:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5.0) as c:
        return str(c.execute("PRAGMA integrity_check").fetchone()[0])


def records_disk_full(tmp: Path) -> dict[str, Any]:
    if shutil.which("prlimit") is None:
        return row("records disk full", {"prlimit (util-linux) available": False})
    records = tmp / "records"
    rig = start_rig(tmp, records=records)
    line = rig.line
    pid = line.proc.pid
    try:
        db = records / "virtual-plant.sqlite"  # the rig's line name
        until(lambda: _rows(db) > 0, 10, 0.1)
        before = line.status()
        rows_before = _rows(db)
        acked0 = line.acked()
        t0 = time.monotonic()
        _prlimit(pid, "1")  # the disk is full from here
        detect = until(lambda: any(a.startswith("records:") for a in line.alarms()), 10, 0.05, t0)
        states: set[str] = set()
        while time.monotonic() - t0 < FULL_S:
            states.add(line.state())
            time.sleep(0.05)
        acked_full = line.acked() - acked0
        alarm_text = [a for a in line.alarms() if a.startswith("records:")]
        rows_full = _rows(db)
        t1 = time.monotonic()
        _prlimit(pid, "unlimited")  # freed
        cleared = until(
            lambda: not any(a.startswith("records:") for a in line.alarms()), 30, 0.05, t1
        )
        caught_up = until(lambda: _rows(db) > rows_full, 10, 0.1, t1)
        time.sleep(1.5)  # one batch interval and more: what was kept is written
        after = line.status()
        rows_after = _rows(db)
        seen = int(after["controller"]["objects_seen"]) - int(before["controller"]["objects_seen"])
        integrity = _integrity(db)
        alive = line.proc.alive() and rig.plc.alive()
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            _prlimit(pid, "unlimited")
        rig.stop()
    recorded = rows_after - rows_before
    crit = {
        f"records alarm within {DETECT_MAX_S:g} s": detect is not None and detect <= DETECT_MAX_S,
        "kept sorting in Execute while the disk was full": states == {"EXECUTE"},
        "pulses acknowledged while the disk was full": acked_full > 0,
        "nothing committed while full": rows_full == rows_before,
        f"alarm cleared within {RECOVER_MAX_S:g} s of freeing the disk": cleared is not None
        and cleared <= RECOVER_MAX_S,
        "the rows kept in memory were written after": caught_up is not None,
        "database intact (PRAGMA integrity_check)": integrity == "ok",
        "both processes alive": alive,
    }
    return row(
        f"records disk full ({FULL_S:g} s: the line's file-size limit at 1 byte), then freed",
        crit, detect_s=detect, recover_s=cleared, lost=lost(before, after),
        decisions_seen=seen, decisions_recorded=recorded,
        decisions_not_recorded=max(seen - recorded, 0),
        pulses_acked_while_full=acked_full, alarm=alarm_text[:1], integrity=integrity,
        how="prlimit --fsize on the running line process (EFBIG on every file-extending "
        "write); decisions counted from the line's objects_seen and from the database "
        "with the bench's own read-only connection",
    )  # fmt: skip
