"""The plant on one machine: a broker, a database and N virtual lines.

``Plant.up()`` starts PostgreSQL (initdb into ``<folder>/postgres`` unless a
cluster is there), mosquitto, then every line, and waits until each line's
status API answers; ``watch()`` restarts a line process that died (with a
back-off when it keeps dying young) and stops when the broker or database
dies; ``down()`` stops the lines (SIGTERM, SIGKILL after a bound), the
broker, then the database. ``<folder>/plant.json`` (mode 0600: it holds the
API keys) says what runs where, for scripts and tests.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.files import atomic_write_json
from core.net import free_port
from sortline.plantctl.broker import MOSQUITTO_PACKAGE, Broker
from sortline.plantctl.lines import LineProcess, LineSpec
from sortline.plantctl.postgres import PG_PACKAGE, PgServer, PgStartError, pg_bin
from sortline.plantctl.procs import stop_all

__all__ = ["Plant", "PlantOptions", "missing_tools"]

DATABASE = "sortline"
KEY_ROLES = ("maintenance", "operator")
YOUNG_S = 30.0  # a line that dies younger than this is restarted after a back-off
BACKOFF_MAX_S = 30.0


def missing_tools() -> str | None:
    """One line naming the Debian package of a missing binary, or None."""
    if shutil.which("mosquitto") is None:
        return f"mosquitto not found: apt-get install {MOSQUITTO_PACKAGE}"
    if pg_bin() is None:
        return (
            "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb): "
            f"apt-get install {PG_PACKAGE}"
        )
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "runuser not found (PostgreSQL cannot run as root): apt-get install util-linux"
    return None


@dataclass(frozen=True)
class PlantOptions:
    lines: int = 3
    folder: Path | None = None  # None: a temp folder, removed at the end
    restart: bool = True
    group: str = "plant"
    start_timeout_s: float = 180.0  # a first start compiles the kernels (~30 s per line)
    stop_timeout_s: float = 20.0  # SIGTERM to SIGKILL


class Plant:
    """``say`` prints one line of news (the command passes ``print``)."""

    def __init__(self, opts: PlantOptions, say: Callable[[str], None] = print) -> None:
        if not 1 <= opts.lines <= 50:
            raise ValueError(f"--lines {opts.lines}: give 1 to 50 lines")
        self.opts, self.say = opts, say
        self.owns_folder = opts.folder is None
        if opts.folder is None:
            import tempfile

            self.folder = Path(tempfile.mkdtemp(prefix="sortline-plant-"))
            made = True
        else:
            self.folder = opts.folder.resolve()
            made = not self.folder.exists()
            self.folder.mkdir(parents=True, exist_ok=True)
        if made:  # the postgres user passes through to its folder (an existing one: as it is)
            os.chmod(self.folder, 0o711)
        self.pg: PgServer | None = None
        self.broker: Broker | None = None
        self.database_url = ""
        self.keys: dict[str, str] = {}
        self.lines: list[LineProcess] = []

    # ------------------------------------------------------------------ up
    def up(self, stop: threading.Event) -> None:
        """Start everything; ``RuntimeError`` (one line) when a part fails."""
        bin_ = pg_bin()
        assert bin_ is not None, "missing_tools() is checked first"
        self.pg = PgServer(self.folder / "postgres", free_port(), bin_)
        self.pg.init().start()
        self.database_url = self.pg.create_database(DATABASE)
        self.say(f"plant: database {self.database_url} up")
        self.broker = Broker(self.folder / "broker", free_port()).start()
        self.say(f"plant: broker {self.broker.url} up")
        self.keys, hashes = _keys()
        for i in range(self.opts.lines):
            name = f"line-{i + 1}"
            spec = LineSpec(
                name=name, api_port=free_port(), plc_port=free_port(),
                folder=self.folder / "lines" / name, records_url=self.database_url,
                mqtt_url=self.broker.url, group=self.opts.group, seed=i + 1, keys=hashes,
            )  # fmt: skip
            line = LineProcess(spec)
            line.write_config()
            line.start()
            self.lines.append(line)
        self.write_info()
        self._wait_ready(stop)

    def _wait_ready(self, stop: threading.Event) -> None:
        deadline = time.monotonic() + self.opts.start_timeout_s
        waiting = list(self.lines)
        while waiting and not stop.is_set():
            for line in list(waiting):
                how = line.exited()
                if how is not None:
                    raise RuntimeError(
                        f"{line.spec.name} ended while starting ({how}): {_tail(line.spec.log)}"
                    )
                if _health(line.spec.api_url) is not None:
                    waiting.remove(line)
            if time.monotonic() > deadline:
                names = ", ".join(x.spec.name for x in waiting)
                raise RuntimeError(
                    f"{names}: no status API after {self.opts.start_timeout_s:g} s "
                    f"(see {waiting[0].spec.log})"
                )
            stop.wait(0.2)

    # --------------------------------------------------------------- watch
    def watch(self, stop: threading.Event, seconds: float | None = None) -> int:
        """Until ``stop`` is set or ``seconds`` pass -> 0; 1 when the broker or
        the database died (the plant cannot go on without them)."""
        deadline = None if seconds is None else time.monotonic() + seconds
        while not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                return 0
            if self.broker is None or not self.broker.alive():
                self.say("plant: the MQTT broker (mosquitto) died: stopping the plant")
                return 1
            if self.pg is None or not _postmaster_alive(self.pg):
                self.say("plant: PostgreSQL died: stopping the plant")
                return 1
            self.check_lines()
            stop.wait(0.2)
        return 0

    def check_lines(self) -> None:
        """Report a line process that ended; start it again when its back-off is over."""
        for line in self.lines:
            self._check(line)

    def _check(self, line: LineProcess) -> None:
        now = time.monotonic()
        if line.proc is None:  # waiting out its back-off
            if now >= line.next_start_s:
                line.start()
                line.restarts += 1
                self.say(f"plant: {line.spec.name} restarted (pid {line.pid}, restart "
                         f"{line.restarts})")  # fmt: skip
                self.write_info()
            return
        how = line.exited()
        if how is None:
            return
        lived_s = now - line.started_s
        line.exits.append(how)
        self.say(f"plant: {line.spec.name} (pid {line.pid}) ended: {how} after {lived_s:.1f} s")
        line.proc = None
        if not self.opts.restart:
            line.next_start_s = float("inf")
            return
        line.young_deaths = line.young_deaths + 1 if lived_s < YOUNG_S else 0
        n = line.young_deaths
        delay = 0.0 if n <= 1 else min(2.0 ** (n - 1), BACKOFF_MAX_S)
        if delay:
            self.say(f"plant: {line.spec.name} keeps dying young: next start in {delay:g} s")
        line.next_start_s = now + delay

    # ---------------------------------------------------------------- down
    def down(self) -> None:
        """Lines (SIGTERM, SIGKILL after the bound), broker, database; the
        temp folder removed when the plant made it."""
        procs = [x.proc for x in self.lines if x.proc is not None]
        killed = stop_all(procs, self.opts.stop_timeout_s)
        if killed:
            self.say(f"plant: killed line processes {killed} (no exit within "
                     f"{self.opts.stop_timeout_s:g} s of SIGTERM)")  # fmt: skip
        if self.broker is not None:
            self.broker.stop()
        if self.pg is not None:
            with contextlib.suppress(PgStartError):
                self.pg.stop()
        if self.owns_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    # ---------------------------------------------------------------- info
    def info(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "database": self.database_url,
            "broker": "" if self.broker is None else self.broker.url,
            "group": self.opts.group,
            "keys": dict(self.keys),
            "lines": [_line_info(x) for x in self.lines],
        }

    def write_info(self) -> None:
        path = self.folder / "plant.json"
        atomic_write_json(path, self.info())
        os.chmod(path, 0o600)

    def table(self) -> str:
        i = self.info()
        rows = [("line", "pid", "status API", "PLC (Modbus TCP)", "log")]
        rows += [(x["name"], str(x["pid"]), x["api"], f"127.0.0.1:{x['plc_port']}", x["log"])
                 for x in i["lines"]]  # fmt: skip
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
        out = [f"sortline plant: {len(self.lines)} lines, folder {i['folder']}"]
        out += ["  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
                for r in rows]  # fmt: skip
        out.append(f"  broker    {i['broker']}  (Sparkplug B: spBv1.0/{i['group']}/#)")
        out.append(f"  database  {i['database']}  (records of every line)")
        for role, key in i["keys"].items():
            out.append(f"  API key   {role:11s} {key}")
        out.append(f"  what runs where: {self.folder / 'plant.json'}")
        return "\n".join(out)


def _line_info(x: LineProcess) -> dict[str, Any]:
    s = x.spec
    return {"name": s.name, "api": s.api_url, "plc_port": s.plc_port, "pid": x.pid,
            "restarts": x.restarts, "config": str(s.config), "log": str(s.log)}  # fmt: skip


def _keys() -> tuple[dict[str, str], tuple[tuple[str, str, str], ...]]:
    """A maintenance and an operator key for every line of this plant."""
    from sortline.auth import hash_key, new_key

    keys = {role: new_key() for role in KEY_ROLES}
    hashes = tuple((f"plant-{role}", role, hash_key(k)) for role, k in keys.items())
    return keys, hashes


def _health(api_url: str) -> dict[str, Any] | None:
    import json

    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2.0) as r:
            return dict(json.loads(r.read()))
    except (OSError, urllib.error.URLError, ValueError):
        return None


def _postmaster_alive(pg: PgServer) -> bool:
    try:
        pid = int((pg.folder / "data" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return False
    return True


def _tail(log: Path, lines: int = 3) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
