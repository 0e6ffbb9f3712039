"""A PostgreSQL server from the Debian binaries, on loopback and a free port:
``initdb`` into a folder (trust authentication, superuser ``sortline``), then
``pg_ctl`` start and stop. The plant (``sortline plant up``) and the records
tests both run theirs through this one helper.

Run as root, the server runs as the ``postgres`` user (``initdb`` refuses
root) through ``runuser``; its folder is handed to that user.
"""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PG_PACKAGE", "PgServer", "PgStartError", "pg_bin"]

PG_PACKAGE = "postgresql"  # the Debian package with initdb, pg_ctl, postgres
_TIMEOUT_S = 120.0


class PgStartError(RuntimeError):
    """initdb, pg_ctl or the server failed (one line, with the log's last words)."""


def pg_bin() -> Path | None:
    """The newest Debian PostgreSQL server binaries (15 on bookworm, 17 on
    trixie); None when none is installed."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found else None


def _as_postgres(cmd: list[str], timeout_s: float = _TIMEOUT_S) -> None:
    if os.geteuid() == 0:  # initdb refuses root
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.CalledProcessError as exc:
        said = " ".join((exc.stderr or exc.stdout or "").split())[-300:]
        raise PgStartError(f"{_prog(cmd)} failed (exit {exc.returncode}): {said}") from None
    except subprocess.TimeoutExpired:
        raise PgStartError(f"{_prog(cmd)} took longer than {timeout_s:g} s") from None


def _prog(cmd: list[str]) -> str:
    return next((Path(c).name for c in cmd if "/bin/" in c), cmd[0])


@dataclass
class PgServer:
    """A server whose data lives in ``folder / "data"``, its Unix socket and
    log in ``folder``, listening on 127.0.0.1:``port``."""

    folder: Path
    port: int
    bin: Path
    user: str = "sortline"

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    @property
    def log(self) -> Path:
        return self.folder / "log"

    def init(self) -> PgServer:
        """``initdb`` unless the folder already holds a cluster (a plant
        started again in the same ``--dir``)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.folder, pw.pw_uid, pw.pw_gid)
            reach = ["runuser", "-u", "postgres", "--", "test", "-x", str(self.folder)]
            if subprocess.run(reach, capture_output=True, timeout=30).returncode != 0:
                raise PgStartError(
                    f"{self.folder}: the postgres user cannot reach this folder (run as root, "
                    "PostgreSQL runs as postgres): choose one whose parents it may pass "
                    "through, e.g. under /tmp"
                )
        if not (self.folder / "data" / "PG_VERSION").exists():
            _as_postgres([str(self.bin / "initdb"), "-D", str(self.folder / "data"),
                          "-A", "trust", "-U", self.user])  # fmt: skip
        return self

    def ctl(self, *args: str) -> None:
        _as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), *args])

    def start(self) -> PgServer:
        opts = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        try:
            self.ctl("-o", opts, "-l", str(self.log), "-w", "start")
        except PgStartError as exc:
            raise PgStartError(f"{exc}; log: {self._log_tail()}") from None
        return self

    def stop(self) -> None:
        self.ctl("-m", "fast", "-w", "stop")

    def running(self) -> bool:
        try:
            self.ctl("status")
        except PgStartError:
            return False
        return True

    def _log_tail(self) -> str:
        try:
            return " | ".join(self.log.read_text(errors="replace").splitlines()[-3:])
        except OSError:
            return "(no log)"

    def create_database(self, name: str | None = None) -> str:
        """A new database (``name``, or a fresh ``t_...``; kept if it exists) -> its URL."""
        from sortline.records.db import PgDb

        name = name or "t_" + uuid.uuid4().hex[:10]
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"database name {name!r}: use a-z, 0-9 and _ (at most 63)")
        db = PgDb(self.admin_url)
        try:
            found = db.execute("SELECT 1 FROM pg_database WHERE datname = ?", (name,)).fetchone()
            if found is None:
                db.execute(f'CREATE DATABASE "{name}"')
        finally:
            db.close()
        return self.url(name)
