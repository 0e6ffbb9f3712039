"""``sortline.api_proc``: the status API in its own process, as ``sortline
run`` serves it (the other API tests use it through ``served_line``). Here:
its priority, its restart after a hard kill, a port it cannot have, and its
end when the controller's process dies."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sortline.api_proc import ApiProcess
from sortline.auth import AuditLog, hash_key, new_key
from sortline.config import load_config
from sortline.runtime import SortingLine

from .conftest import ApiKeys, until


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture(scope="module")
def line() -> Iterator[SortingLine]:
    ln = SortingLine(load_config(), stepped=True, plc_port=0)
    ln.start()
    try:
        ln.run_frames(5)
        yield ln
    finally:
        ln.stop()


def test_the_api_runs_nicer_and_comes_back_after_a_hard_kill(
    line: SortingLine, api_keys: ApiKeys
) -> None:
    api = ApiProcess(line, api_keys.book, AuditLog(None), "127.0.0.1", 0, nice=7)
    api.start()
    try:
        url, pid = f"http://127.0.0.1:{api.port}", api.pid
        assert pid is not None and pid != os.getpid()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        assert int(fields[16]) - os.nice(0) == 7  # field 19 of stat: nice
        h = api_keys.headers("maintenance")
        assert httpx.get(f"{url}/status", headers=h).json()["frames"] == line.frames
        os.kill(pid, signal.SIGKILL)

        def answers_again() -> bool:
            try:
                return httpx.get(f"{url}/status", headers=h, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        assert api.conditions() == {}
        assert until(lambda: api.pid != pid, 30.0)
        alarm = api.conditions()["api.process"]  # for the line's alarm book (`sortline run`)
        assert alarm.severity == "warning" and "exit code -9" in alarm.message
        assert until(answers_again, 60.0)  # the same port, a new process
        assert api.restarts == 1 and api.pid is not None and _alive(api.pid)
        line.run_frames(2)  # the line never noticed
        assert httpx.get(f"{url}/status", headers=h).json()["frames"] == line.frames
    finally:
        api.stop()
    assert api.pid is not None and not _alive(api.pid)


def test_a_port_in_use_is_refused_in_one_line(line: SortingLine, api_keys: ApiKeys) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        api = ApiProcess(line, api_keys.book, AuditLog(None), "127.0.0.1", port)
        with pytest.raises(RuntimeError) as err:
            api.start()
    msg = str(err.value)
    assert "\n" not in msg and "failed to start" in msg and str(port) in msg


def test_the_api_ends_with_the_controllers_process(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import os, sys
        from sortline.api_proc import ApiProcess
        from sortline.auth import AuditLog, KeyBook

        class Line:  # no routes are called: the API only has to start
            pass

        if __name__ == "__main__":
            api = ApiProcess(Line(), KeyBook([]), AuditLog(None), "127.0.0.1", 0)
            api.start()
            print(api.pid, flush=True)
            os._exit(0)  # no stop(): as a crash would leave it
        """
    )
    path = tmp_path / "parent.py"
    path.write_text(script)
    out = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=120, check=True
    )
    pid = int(out.stdout.split()[-1])
    deadline = time.monotonic() + 20.0
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _nice(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def test_sortline_run_raises_an_alarm_and_serves_again_when_its_api_is_killed(
    line_config_file: Path,
) -> None:
    key = new_key()
    api_port = int(line_config_file.read_text().split("[api]\nport = ")[1].split()[0])
    with line_config_file.open("a") as f:
        f.write(f'[[api.keys]]\nname = "mona"\nrole = "maintenance"\nhash = "{hash_key(key)}"\n')
    url, h = f"http://127.0.0.1:{api_port}", {"Authorization": f"Bearer {key}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sortline.cli", "run", "--config", str(line_config_file),
         "--duration", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip

    def status() -> dict[str, Any] | None:
        try:
            r = httpx.get(f"{url}/status", headers=h, timeout=2.0)
            return dict(r.json()) if r.status_code == 200 else None
        except httpx.HTTPError:
            return None

    try:
        assert until(lambda: (status() or {}).get("frames", 0) > 10, 120.0)
        apis = [c for c in _children(proc.pid) if _nice(c) - _nice(proc.pid) == 10]
        assert len(apis) == 1  # the API's process: the one child running nicer
        frames = status()["frames"]  # type: ignore[index]
        os.kill(apis[0], signal.SIGKILL)
        assert until(lambda: (status() or {}).get("frames", 0) > frames + 50, 60.0)
        alarms = httpx.get(f"{url}/alarms", headers=h, timeout=5.0).json()
        active = {a["key"]: a for a in alarms["active"]}
        assert "api.process" in active and "exit code -9" in active["api.process"]["message"]
        assert proc.poll() is None  # the line never stopped
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
