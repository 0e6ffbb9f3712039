"""Real processes for ``bench/faults.py``: the line (``sortline run``), the
plant (``sortline sim plant``) or the PLC alone (``sortline sim plc``), an
independent Modbus TCP reader of the PLC's outputs, and wall-clock polling.

Every process is started here with free ports on loopback and stopped by
its own pid; nothing is shared between scenarios.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.net import free_port

EXECUTE = 6
WATCHDOG_MS = 300  # the embedded default [plc] watchdog_ms, which these configs keep
RECOVER_MAX_S = 10.0
DETECT_MAX_S = 1.0
VIDEO_FRAMES = 300  # `sim record --seconds 3` at 100 fps


def rnd(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def row(name: str, criteria: dict[str, bool], **kw: Any) -> dict[str, Any]:
    """One result row: times rounded to ms, passed = every criterion held."""
    out: dict[str, Any] = {"scenario": name, "status": "run", "passed": all(criteria.values())}
    out.update({k: rnd(kw.pop(k, None)) for k in ("detect_s", "safe_s", "recover_s")})
    out["lost"] = kw.pop("lost", {})
    out["criteria"] = criteria
    out["details"] = kw
    return out


IR_STATE = 3
IR_VALVES = range(24, 40)


def sortline(*args: str, module: str = "sortline.cli") -> list[str]:
    return [sys.executable, "-m", module, *args]


def http_json(
    url: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """(status code, decoded JSON or text) of a GET, or a POST with ``body``;
    (0, error text) when nothing answers within 1 s."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=1.0) as r:
            raw = r.read().decode()
            code = r.status
    except urllib.error.HTTPError as exc:
        raw, code = exc.read().decode(errors="replace"), exc.code
    except (OSError, TimeoutError) as exc:
        return 0, str(exc)
    try:
        return code, json.loads(raw)
    except ValueError:
        return code, raw


def until(
    cond: Callable[[], bool], timeout_s: float, period_s: float = 0.01, t0: float | None = None
) -> float | None:
    """Seconds since ``t0`` (default: now) until ``cond()`` held, polled every
    ``period_s``; None when it did not within ``timeout_s``."""
    start = time.monotonic()
    t0 = start if t0 is None else t0
    while True:
        if cond():
            return time.monotonic() - t0
        if time.monotonic() - start > timeout_s:
            return None
        time.sleep(period_s)


class Proc:
    """A sortline subprocess whose first stdout line says it is serving
    (``module``: run through another entry point, e.g. a clock wrapper)."""

    def __init__(
        self,
        args: list[str],
        log: Path,
        wait_line: str | None = None,
        module: str = "sortline.cli",
        env: dict[str, str] | None = None,
    ) -> None:
        """``env``: variables added to this process's environment (e.g. LD_PRELOAD)."""
        self.args = args
        self.log = log
        self._err = open(log.with_suffix(".err"), "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            sortline(*args, module=module), stdout=subprocess.PIPE, stderr=self._err, text=True,
            env=None if env is None else {**os.environ, **env},
        )  # fmt: skip
        self.lines: list[str] = []
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if wait_line is None or wait_line in line:
                return
        self.stop()  # the error text is read after the process ended (stop closes only ours)
        err = self.log.with_suffix(".err").read_text(errors="replace")
        raise RuntimeError(f"{' '.join(args[:2])} did not start: {err[-800:]}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def stderr(self) -> str:
        self._err.flush()
        return self.log.with_suffix(".err").read_text(errors="replace")

    def stop(self) -> int | None:
        """SIGCONT (in case it was paused), SIGTERM, then SIGKILL; the exit code."""
        if self.proc.poll() is None:
            try:
                self.signal(signal.SIGCONT)
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._err.close()
        return self.proc.returncode


@dataclass
class Plant:
    """``sortline sim plant`` paced: frame ring + virtual PLC + panel (score port)."""

    ring: str
    plc_port: int
    score_port: int
    tmp: Path
    seed: int = 9
    proc: Proc | None = None
    extra: tuple[str, ...] = ()  # more `sim plant` arguments (e.g. --scenario crowded)

    def start(self) -> Plant:
        self.proc = Proc(
            ["sim", "plant", "--seed", str(self.seed), "--ring", self.ring,
             "--plc-port", str(self.plc_port), "--score-port", str(self.score_port),
             *self.extra],
            self.tmp / "plant.log",
        )  # fmt: skip
        return self

    @property
    def panel(self) -> str:
        return f"http://127.0.0.1:{self.score_port}"


def start_plc(port: int, tmp: Path, speed_m_s: float | None = None) -> tuple[Proc, str]:
    """``sortline sim plc`` on ``port`` with its panel; (process, panel URL)."""
    args = ["sim", "plc", "--port", str(port), "--panel-port", "0"]
    if speed_m_s is not None:
        args += ["--speed", str(speed_m_s)]
    proc = Proc(args, tmp / "plc.log")
    panel = proc.lines[0].split(", panel ")[1].split(";")[0].strip()
    return proc, panel


def _printed_key(lines: list[str], role: str) -> str | None:
    """The key ``sortline run`` generated for ``role`` and printed (no
    ``[[api.keys]]`` in the config, API on loopback), if it printed one."""
    for line in lines:
        m = re.search(rf"{role} API key for this run \(named '[^']*'\): (\S+)", line)
        if m:
            return m.group(1)
    return None


class Line:
    """``sortline run --config`` with its status API on a free port."""

    def __init__(
        self,
        cfg_text: str,
        tmp: Path,
        module: str = "sortline.cli",
        env: dict[str, str] | None = None,
    ) -> None:
        self.api_port = free_port()
        cfg = tmp / "line.toml"
        cfg.write_text(cfg_text + f'[api]\nport = {self.api_port}\nhost = "127.0.0.1"\n')
        self.cfg = cfg
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.proc = Proc(
            ["run", "--config", str(cfg)], tmp / "line.log", "status on http", module, env
        )
        self.t_serving = time.monotonic()
        self.headers: dict[str, str] = {}
        key = _printed_key(self.proc.lines, "operator")
        if key is not None:
            self.headers["Authorization"] = f"Bearer {key}"

    def health(self) -> dict[str, Any]:
        code, body = http_json(f"{self.url}/health", headers=self.headers)
        return body if code == 200 and isinstance(body, dict) else {}

    def state(self) -> str:
        return str(self.health().get("state", "?"))

    def causes(self) -> list[str]:
        return list(self.health().get("causes", []))

    def status(self, tries: int = 3) -> dict[str, Any]:
        """``GET /status``; a request nothing answered within 1 s is tried again
        (up to ``tries`` in all: a loaded machine can stall the API a moment);
        any answer other than 200 is an error at once."""
        for _ in range(tries):
            code, body = http_json(f"{self.url}/status", headers=self.headers)
            if code != 0:
                break
        if code != 200 or not isinstance(body, dict):
            raise RuntimeError(f"GET /status: {code} {str(body)[:200]}")
        return body

    def alarms(self) -> list[str]:
        """Keys and messages of the active alarms ([] when there is no /alarms)."""
        code, body = http_json(f"{self.url}/alarms", headers=self.headers)
        if code != 200 or not isinstance(body, dict):
            return []
        return [f"{a['key']}: {a['message']}" for a in body.get("active", [])]

    def command(self, name: str) -> tuple[int, Any]:
        return http_json(f"{self.url}/commands/{name}", {"who": "bench"}, self.headers)

    def acked(self) -> int:
        return int(self.status()["plc"]["pulses_acked"])


class PlcProbe:
    """Reads the PLC's state and valve outputs over Modbus TCP, independently
    of the line (its own pymodbus client in the bench process)."""

    def __init__(self, port: int, device_id: int = 1) -> None:
        from pymodbus.client import ModbusTcpClient

        self.client = ModbusTcpClient("127.0.0.1", port=port, timeout=0.2, retries=0)
        self.device_id = device_id

    def read(self) -> tuple[int, int] | None:
        """(PackML state, valves open) or None when the PLC does not answer."""
        try:
            if not self.client.connected and not self.client.connect():
                return None
            rr = self.client.read_input_registers(0, count=40, device_id=self.device_id)
        except Exception:
            self.client.close()
            return None
        if rr.isError():
            return None
        words = rr.registers
        return words[IR_STATE], sum(bin(words[a]).count("1") for a in IR_VALVES)

    def wait_valve_open(self, timeout_s: float = 5.0) -> int:
        """Valves open (waits up to ``timeout_s`` for one; 0 if none opened)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            r = self.read()
            if r is not None and r[1] > 0:
                return r[1]
            time.sleep(0.002)
        return 0

    def plc_counters(self) -> dict[str, int] | None:
        """The PLC's own pulses_cut (IR 20-21) and watchdog_trips (IR 22-23)."""
        try:
            rr = self.client.read_input_registers(20, count=4, device_id=self.device_id)
        except Exception:
            return None
        if rr.isError():
            return None
        w = rr.registers
        return {"pulses_cut": (w[0] << 16) | w[1], "watchdog_trips": (w[2] << 16) | w[3]}

    def safe(self) -> bool:
        r = self.read()
        return r is not None and r[0] != EXECUTE and r[1] == 0

    def close(self) -> None:
        self.client.close()


LOST_KEYS = (
    ("frames_dropped", ("frames_dropped",)),
    ("camera_frames_lost", ("camera", "frames_lost")),
    ("deadline_misses", ("deadline_misses",)),
    ("pulses_late", ("plc", "pulses_late")),
    ("pulses_stale", ("plc", "pulses_stale")),
    ("pulses_cut_by_plc", ("plc", "plc_counters", "pulses_cut")),
)


def counters(status: dict[str, Any]) -> dict[str, int]:
    out = {}
    for name, path in LOST_KEYS:
        v: Any = status
        for k in path:
            v = v.get(k) if isinstance(v, dict) else None
        out[name] = int(v) if isinstance(v, int | float) else 0
    return out


def lost(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    """What the line counted as lost between two /status snapshots. PLC
    counters restart with a new PLC boot: then the count after is the loss."""
    b, a = counters(before), counters(after)
    return {k: a[k] - b[k] if a[k] >= b[k] else a[k] for k in a}


def leaves_execute(line: Line, t0: float, timeout_s: float = 5.0) -> float | None:
    return until(lambda: line.state() not in ("EXECUTE", "?"), timeout_s, t0=t0)
