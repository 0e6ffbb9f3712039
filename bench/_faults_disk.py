"""The records-disk scenarios of ``bench/faults.py``, on the rig of
``bench/_faults_rig.py`` with production records on (SQLite in WAL mode).

**Disk full** is made by the kernel, not by a mock: ``prlimit --fsize``
lowers the running line process's (soft) file-size limit to 1 byte, so every
write that extends a regular file (the database, its WAL, the audit log)
fails with EFBIG as it would with ENOSPC (CPython ignores SIGXFSZ); raising
the limit again is the disk freed. Pipes, sockets and the shared-memory
camera ring are not regular files and keep working.

**Read-only file system**: the kernel cannot be asked for it here (root
writes regardless of permissions, and Linux refuses to remount read-only, or
to make a bind mount read-only, while files on it are open for writing, as
the database is), so it is made at the libc boundary of the real line
process: ``bench/_erofs.c``, compiled with gcc and loaded with LD_PRELOAD,
fails every write, truncate, sync and open-for-writing of a file under the
records directory with EROFS while a flag file exists, as the kernel does
once ext4 has remounted itself read-only after an I/O error. Removing the
flag is the file system writable again (a remount, in a plant).
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._faults_procs import DETECT_MAX_S, RECOVER_MAX_S, lost, row, until
from bench._faults_rig import start_rig

FULL_S = 3.0
SHIM = Path(__file__).with_name("_erofs.c")


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


def _disk_fault(
    tmp: Path,
    title: str,
    how: str,
    fault_on: Callable[[int], None],
    fault_off: Callable[[int], None],
    line_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The line with records on; ``fault_on(pid)`` for ``FULL_S`` seconds, then
    ``fault_off(pid)``: alarm, sorting on, rows kept and written after, an
    intact database."""
    records = tmp / "records"
    rig = start_rig(tmp, records=records, line_env=line_env)
    line = rig.line
    pid = line.proc.pid
    try:
        db = records / "virtual-plant.sqlite"  # the rig's line name
        until(lambda: _rows(db) > 0, 10, 0.1)
        before = line.status()
        rows_before = _rows(db)
        acked0 = line.acked()
        t0 = time.monotonic()
        fault_on(pid)  # the disk fails from here
        detect = until(lambda: any(a.startswith("records:") for a in line.alarms()), 10, 0.05, t0)
        states: set[str] = set()
        while time.monotonic() - t0 < FULL_S:
            states.add(line.state())
            time.sleep(0.05)
        acked_full = line.acked() - acked0
        alarm_text = [a for a in line.alarms() if a.startswith("records:")]
        rows_full = _rows(db)
        t1 = time.monotonic()
        fault_off(pid)  # the disk is back
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
            fault_off(pid)
        rig.stop()
    recorded = rows_after - rows_before
    crit = {
        f"records alarm within {DETECT_MAX_S:g} s": detect is not None and detect <= DETECT_MAX_S,
        "kept sorting in Execute while the disk failed": states == {"EXECUTE"},
        "pulses acknowledged while the disk failed": acked_full > 0,
        "nothing committed while the disk failed": rows_full == rows_before,
        f"alarm cleared within {RECOVER_MAX_S:g} s of the disk coming back": cleared is not None
        and cleared <= RECOVER_MAX_S,
        "the rows kept in memory were written after": caught_up is not None,
        "database intact (PRAGMA integrity_check)": integrity == "ok",
        "both processes alive": alive,
    }
    return row(
        title, crit, detect_s=detect, recover_s=cleared, lost=lost(before, after),
        decisions_seen=seen, decisions_recorded=recorded,
        decisions_not_recorded=max(seen - recorded, 0),
        pulses_acked_while_failed=acked_full, alarm=alarm_text[:1], integrity=integrity,
        how=how + "; decisions counted from the line's objects_seen and from the database "
        "with the bench's own read-only connection",
    )  # fmt: skip


def records_disk_full(tmp: Path) -> dict[str, Any]:
    if shutil.which("prlimit") is None:
        return row("records disk full", {"prlimit (util-linux) available": False})
    return _disk_fault(
        tmp,
        f"records disk full ({FULL_S:g} s: the line's file-size limit at 1 byte), then freed",
        "prlimit --fsize on the running line process (EFBIG on every file-extending write)",
        lambda pid: _prlimit(pid, "1"),
        lambda pid: _prlimit(pid, "unlimited"),
    )


def build_shim(out_dir: Path) -> Path | None:
    """``bench/_erofs.c`` compiled into ``out_dir`` (None without gcc)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        return None
    lib = out_dir / "erofs.so"
    cmd = [gcc, "-shared", "-fPIC", "-O2", "-o", str(lib), str(SHIM), "-ldl"]
    subprocess.run(cmd, check=True, timeout=60, capture_output=True)
    return lib


def records_disk_read_only(tmp: Path) -> dict[str, Any]:
    lib = build_shim(tmp)
    if lib is None:
        return row("records file system read-only", {"gcc available": False})
    flag = tmp / "records-read-only"
    env = {
        "LD_PRELOAD": str(lib),
        "SORTLINE_RO_FLAG": str(flag),
        "SORTLINE_RO_DIR": str((tmp / "records").resolve()),
    }
    return _disk_fault(
        tmp,
        f"records file system read-only ({FULL_S:g} s, EROFS), then writable",
        "bench/_erofs.c preloaded into the line process: EROFS on every write, sync and "
        "open-for-writing under the records directory while a flag file exists",
        lambda _pid: flag.touch(),
        lambda _pid: flag.unlink(missing_ok=True),
        env,
    )
