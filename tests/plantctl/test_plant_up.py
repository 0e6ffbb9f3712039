"""``sortline plant up --lines 3`` as a real process: PostgreSQL, mosquitto and
three ``sortline run`` processes on loopback. Checked from outside: the
records by SQL (psycopg, not sortline's reader), the Sparkplug traffic by an
independent ``mosquitto_sub`` and the hand-written decoder, the lines' state
by their status API. One line is killed with SIGKILL: its NDEATH arrives, the
plant restarts it (a new NBIRTH), and the other two lines record on, in
Execute, without a gap. Then SIGTERM: everything stops, nothing is left."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from sortline.plantctl.plant import missing_tools

from ..sortline.sparkplug_decoder import decode

pytestmark = pytest.mark.skipif(
    missing_tools() is not None or shutil.which("mosquitto_sub") is None,
    reason="needs Debian mosquitto, mosquitto-clients and postgresql",
)
KILLED = "line-2"
LOT = "PLANT-LOT-1"


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def until(cond: Callable[[], bool], timeout_s: float, what: str | Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"not within {timeout_s:g} s: {what if isinstance(what, str) else what()}"
            )
        time.sleep(0.1)


class PlantProcess:
    """``sortline plant up`` with its output collected line by line."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sortline.cli", "plant", "up", "--lines", "3",
             "--dir", str(folder), "--seconds", "240"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.out: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.out.append(line.rstrip("\n"))

    def said(self, pattern: str) -> re.Match[str] | None:
        return next((m for x in list(self.out) if (m := re.search(pattern, x))), None)

    def wait_for(self, pattern: str, timeout_s: float) -> re.Match[str]:
        until(lambda: self.said(pattern) is not None or self.proc.poll() is not None,
              timeout_s, f"{pattern!r} in {self.out[-5:]}")  # fmt: skip
        m = self.said(pattern)
        assert m is not None, f"plant ended ({self.proc.returncode}): {self.out[-8:]}"
        return m

    def log_tail(self, line: str) -> str:
        log = self.folder / "lines" / line / "line.log"
        return " | ".join(log.read_text(errors="replace").splitlines()[-4:]) if log.exists() else ""

    def info(self) -> dict[str, Any]:
        return dict(json.loads((self.folder / "plant.json").read_text()))


class Subscriber:
    """``mosquitto_sub`` on the plant's group: (topic, decoded payload) in order."""

    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen(
            ["mosquitto_sub", "-p", str(port), "-t", "spBv1.0/plant/#", "-F", "%t %x"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.messages: list[tuple[str, dict[str, Any]]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            topic, _, hexed = line.strip().partition(" ")
            self.messages.append((topic, decode(bytes.fromhex(hexed))))

    def of(self, kind: str, node: str | None = None) -> list[tuple[int, dict[str, Any]]]:
        """(index in arrival order, payload) of ``kind`` messages (of ``node``)."""
        return [
            (i, m) for i, (t, m) in enumerate(list(self.messages))
            if t.split("/")[2] == kind and (node is None or t.split("/")[3] == node)
        ]  # fmt: skip

    def nodes(self) -> set[str]:
        return {t.split("/")[3] for t, _ in list(self.messages)}

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(5.0)


def bd_seq(msg: dict[str, Any]) -> int:
    return int(next(m["value"] for m in msg["metrics"] if m["name"] == "bdSeq"))


def sql(url: str, query: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, connect_timeout=5) as c:
        return [tuple(r) for r in c.execute(query, args).fetchall()]


class StatePoller:
    """Reads the lines' ``/status`` (maintenance key) every 0.2 s in the background."""

    def __init__(self, apis: dict[str, str], key: str) -> None:
        self.seen: dict[str, list[str]] = {name: [] for name in apis}
        self._stop = threading.Event()
        self._client = httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=5.0)
        self._thread = threading.Thread(target=self._run, args=(apis,), daemon=True)
        self._thread.start()

    def _run(self, apis: dict[str, str]) -> None:
        while not self._stop.wait(0.2):
            for name, api in apis.items():
                try:
                    r = self._client.get(f"{api}/status")
                    st = r.json() if r.status_code == 200 else {"state": f"HTTP {r.status_code}"}
                    causes = st.get("causes") or []
                    self.seen[name].append(
                        st["state"] + (f" ({'; '.join(causes)})" if causes else "")
                    )
                except httpx.HTTPError as exc:
                    self.seen[name].append(type(exc).__name__)

    def stop(self) -> dict[str, list[str]]:
        self._stop.set()
        self._thread.join(10.0)
        self._client.close()
        return self.seen


def processes_mentioning(text: str) -> list[str]:
    """Command lines of running processes that contain ``text``."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            found.append(f"{d.name}: {cmd.strip()}")
    return found


@pytest.fixture
def plant() -> Iterator[PlantProcess]:
    # under /tmp, not pytest's tmp_path: run as root, PostgreSQL runs as postgres,
    # which cannot pass through pytest's 0700 folders
    folder = Path(tempfile.mkdtemp(prefix="sortline-plant-test-"))
    folder.chmod(0o711)
    p = PlantProcess(folder / "plant")
    try:
        yield p
    finally:
        if p.proc.poll() is None:
            p.proc.send_signal(signal.SIGTERM)
            try:
                p.proc.wait(60.0)
            except subprocess.TimeoutExpired:
                p.proc.kill()
                p.proc.wait(10.0)
        shutil.rmtree(folder, ignore_errors=True)


def test_three_lines_one_killed_and_restarted_the_others_untouched(
    plant: PlantProcess,
) -> None:
    port = int(plant.wait_for(r"plant: broker mqtt://127\.0\.0\.1:(\d+) up", 60.0)[1])
    sub = Subscriber(port)  # before the lines start: it sees their first births
    try:
        plant.wait_for(r"plant: running", 180.0)
        info = plant.info()
        names = [x["name"] for x in info["lines"]]
        assert names == ["line-1", "line-2", "line-3"]
        db = info["database"]

        def per_line() -> dict[str, int]:
            return dict(sql(db, "SELECT line, COUNT(*) FROM decisions GROUP BY line"))  # type: ignore[arg-type]

        # all three lines in the plant's records and on the broker
        until(lambda: len(per_line()) == 3 and min(per_line().values()) > 20, 60.0,
              "decisions of three lines")  # fmt: skip
        until(lambda: {n for n in names if sub.of("NDATA", n)} == set(names), 30.0,
              "NDATA of three lines")  # fmt: skip
        assert sub.nodes() == set(names)
        for n in names:
            (_, birth), *_ = sub.of("NBIRTH", n)
            assert birth["seq"] == 0 and bd_seq(birth) == 0
        operator = httpx.Client(
            headers={"Authorization": f"Bearer {info['keys']['operator']}"}, timeout=10.0
        )
        for x in info["lines"]:  # one plant lot, opened on every line
            r = operator.post(f"{x['api']}/records/lots", json={"name": LOT, "source": "yard"})
            assert r.status_code == 200, r.text

        # one line killed: its death, its restart, the others untouched
        others = {x["name"]: x["api"] for x in info["lines"] if x["name"] != KILLED}
        poller = StatePoller(others, info["keys"]["maintenance"])
        time.sleep(1.0)
        before = per_line()
        pid = next(x["pid"] for x in info["lines"] if x["name"] == KILLED)
        t_kill = time.time()
        os.kill(pid, signal.SIGKILL)
        until(lambda: sub.of("NDEATH", KILLED), 15.0, "the killed line's NDEATH")
        (i_death, death), *_ = sub.of("NDEATH", KILLED)
        assert bd_seq(death) == bd_seq(sub.of("NBIRTH", KILLED)[-1][1])
        plant.wait_for(rf"plant: {KILLED} \(pid {pid}\) ended: signal 9 \(SIGKILL\)", 10.0)
        new_pid = int(plant.wait_for(rf"plant: {KILLED} restarted \(pid (\d+)", 10.0)[1])
        assert new_pid != pid
        until(lambda: any(i > i_death for i, _ in sub.of("NBIRTH", KILLED)), 90.0,
              lambda: f"the restarted line's NBIRTH; plant said {plant.out[-3:]}; "
                      f"its log: {plant.log_tail(KILLED)}")  # fmt: skip
        rebirth = next(m for i, m in sub.of("NBIRTH", KILLED) if i > i_death)
        # a new session of a new process, with the next bdSeq (kept in its folder)
        assert rebirth["seq"] == 0 and bd_seq(rebirth) == (bd_seq(death) + 1) % 256
        boots = f"SELECT COUNT(DISTINCT boot) FROM decisions WHERE line = '{KILLED}'"
        until(lambda: sql(db, boots)[0][0] == 2, 60.0, "decisions of the restarted line")
        time.sleep(1.0)
        states = poller.stop()
        after = per_line()
        for name in others:
            assert set(states[name]) == {"EXECUTE"} and len(states[name]) > 10, states[name]
            assert after[name] > before[name] + 20
            times = [r[0] for r in sql(db, "SELECT t_unix_s FROM decisions WHERE line = %s "
                                           "AND t_unix_s >= %s ORDER BY t_unix_s",
                                       (name, t_kill - 2.0))]  # fmt: skip
            gaps = [b - a for a, b in itertools.pairwise(times)]
            assert times[0] < t_kill and max(gaps) < 3.0, (name, max(gaps))
        assert json.loads((plant.folder / "plant.json").read_text())["lines"][1]["pid"] == new_pid

        # the plant lot's certificate: every line's decisions in it, the killed one's both boots
        # (the restarted line announces itself on MQTT when its loop runs; its API's own
        # process may take a moment longer to listen)
        until(lambda: _answers(f"{info['lines'][1]['api']}/health"), 30.0,
              "the restarted line's API")  # fmt: skip
        for x in info["lines"]:
            r = operator.post(f"{x['api']}/records/lots/current/close")
            assert r.status_code == 200 and r.json()["name"] == LOT, r.text
        lot_rows = "FROM decisions d JOIN lots l ON l.id = d.lot_id WHERE l.name = %s"
        in_lot = dict(sql(db, f"SELECT d.line, COUNT(*) {lot_rows} GROUP BY 1", (LOT,)))
        assert sorted(in_lot) == names and min(in_lot.values()) > 0
        boots_in_lot = f"SELECT COUNT(DISTINCT d.boot) {lot_rows} AND d.line = %s"
        assert sql(db, boots_in_lot, (LOT, KILLED)) == [(2,)]  # the restart kept its lot open
        out = plant.folder / "lot.html"
        r2 = subprocess.run(
            [sys.executable, "-m", "sortline.cli", "plant", "certificate", "--url", db,
             "--lot", LOT, "--out", str(out)], capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert r2.returncode == 0, r2.stderr
        assert f'<span id="decisions">{sum(in_lot.values())}</span>' in out.read_text()
        operator.close()
    finally:
        sub.close()

    # a clean stop: every child gone, the database stopped
    plant.proc.send_signal(signal.SIGTERM)
    assert plant.proc.wait(60.0) == 0, plant.out[-8:]
    assert plant.said(r"plant: stopped") and not plant.said(r"killed line processes")
    assert processes_mentioning(str(plant.folder)) == []
    assert not (plant.folder / "postgres" / "data" / "postmaster.pid").exists()


@pytest.mark.parametrize(
    ("args", "empty_path", "message"),
    [
        ([], True, "mosquitto not found: apt-get install mosquitto"),
        (["--lines", "0"], False, "--lines 0: give 1 to 50"),
        (["--seconds", "0"], False, "--seconds must be > 0"),
        (["--group", "a/b"], False, "--group 'a/b': a Sparkplug group id (letters, digits, _ . -)"),
    ],
    ids=["no-mosquitto", "lines", "seconds", "group"],
)
def test_refusals_are_one_line_and_start_nothing(
    tmp_path: Path, args: list[str], empty_path: bool, message: str
) -> None:
    env = {**os.environ, "PATH": str(tmp_path)} if empty_path else None
    r = subprocess.run(
        [sys.executable, "-m", "sortline.cli", "plant", "up", "--dir", str(tmp_path / "p"), *args],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"sortline plant up: error: {message}"]
    assert not (tmp_path / "p").exists()
