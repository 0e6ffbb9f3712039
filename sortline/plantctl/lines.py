"""A virtual line of the plant: one ``sortline run --config <generated toml>``
process with its own embedded virtual plant, API port, PLC port and name,
recording into the plant's PostgreSQL and publishing Sparkplug B to its broker.

The line geometry here is chosen so three lines, the broker and the database
fit this project's 2-core machine with headroom: the belt at 1 m/s, the
camera triggered every 40 mm (25 frames/s) at 640 x 256 px over the default
1000 x 400 mm view, the ``easy`` feed (12 fragments/s). A line holds after
1 s without a frame or a heartbeat (camera stall, PLC watchdog; defaults 200
and 300 ms) and takes 200 ms (not 40) for a Modbus answer: a demo machine
shared with other work pauses a process for a few hundred ms at times.
``docs/plant.md`` gives what that costs.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.tomlw import dumps
from sortline.plantctl.procs import describe_exit, spawn

__all__ = ["DEMO_LINE", "LineProcess", "LineSpec", "line_toml"]

# [section] -> {key: value}: what the plant's virtual lines set beyond the embedded default
DEMO_LINE: dict[str, dict[str, Any]] = {
    "belt": {"speed_mm_s": 1000.0},
    "camera": {
        "fps": 25.0,
        "trigger_every_ticks": 400,
        "width_px": 640,
        "height_px": 256,
        "stall_ms": 1000.0,  # 25 frames, not 5: a shared demo machine may pause a line
    },
    # a shared demo machine may pause a line for a few hundred ms: held only past 1 s
    "plc": {"watchdog_ms": 1000.0, "timeout_ms": 200.0},
    "sim": {"scenario": "easy"},
}


@dataclass(frozen=True)
class LineSpec:
    """Where one line runs and what it is told."""

    name: str
    api_port: int
    plc_port: int
    folder: Path  # its config, records spool, audit log and recipes
    records_url: str
    mqtt_url: str
    group: str
    seed: int
    keys: tuple[tuple[str, str, str], ...] = ()  # (name, role, scrypt hash)

    @property
    def config(self) -> Path:
        return self.folder / "line.toml"

    @property
    def log(self) -> Path:
        return self.folder / "line.log"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


def line_toml(spec: LineSpec, extra: Mapping[str, Mapping[str, Any]] = DEMO_LINE) -> str:
    """The line's config: an overlay on the embedded default."""
    sections: dict[str, dict[str, Any]] = {k: dict(v) for k, v in extra.items()}

    def put(section: str, **values: Any) -> None:
        sections.setdefault(section, {}).update(values)

    put("line", name=spec.name)
    put("plc", port=spec.plc_port)
    put("api", port=spec.api_port,
        keys=[{"name": n, "role": r, "hash": h} for n, r, h in spec.keys])  # fmt: skip
    put("records", dir=str(spec.folder), url=spec.records_url)
    put("mqtt", url=spec.mqtt_url, group=spec.group, keepalive_s=5)
    put("sim", seed=spec.seed)
    return dumps(sections, f"sortline plant up: line {spec.name} (generated)")


@dataclass
class LineProcess:
    """The line's process; ``restarts`` counts how often it was started again."""

    spec: LineSpec
    proc: subprocess.Popen[bytes] | None = None
    started_s: float = 0.0
    restarts: int = 0
    exits: list[str] = field(default_factory=list)
    young_deaths: int = 0  # in a row, each younger than the plant's YOUNG_S
    next_start_s: float = 0.0  # monotonic time before which it is not started again

    def write_config(self) -> None:
        self.spec.folder.mkdir(parents=True, exist_ok=True)
        self.spec.config.write_text(line_toml(self.spec))

    def command(self) -> list[str]:
        return [sys.executable, "-m", "sortline.cli", "run", "--config", str(self.spec.config)]

    def start(self) -> None:
        self.proc = spawn(self.command(), self.spec.log)
        self.started_s = time.monotonic()

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def exited(self) -> str | None:
        """How it ended (``signal 9 (SIGKILL)``) if it is no longer running, else None."""
        if self.proc is None or self.proc.poll() is None:
            return None
        return describe_exit(int(self.proc.returncode))
