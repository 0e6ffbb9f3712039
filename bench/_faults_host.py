"""The host scenarios of ``bench/faults.py``, on the rig of
``bench/_faults_rig.py``: CPU starvation (busy processes beside a line
whose threads were lowered in priority) and the wall clock stepped an hour
forward and back under a running line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

from bench._faults_encoder import recover
from bench._faults_procs import RECOVER_MAX_S, lost, row
from bench._faults_rig import Rig, start_rig

STARVE_S = 4.0
LINE_NICE = 10  # the line's threads; the busy processes run at 0 (higher priority)


def _renice(pid: int, nice: int) -> int:
    """Set every thread of ``pid`` to ``nice`` (Linux: priority is per thread);
    the number of threads changed."""
    n = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.setpriority(os.PRIO_PROCESS, int(tid), nice)
            n += 1
        except (PermissionError, ProcessLookupError):
            pass
    return n


def _watch(
    rig: Rig,
    seconds: float,
    states: set[str],
    unsafe: list[tuple[int, int]],
    causes: set[str] | None = None,
) -> None:
    """Sample the line's state and the PLC's outputs; ``unsafe`` gets every
    reading of valves open while the PLC is not in Execute, ``causes`` the
    line's causes whenever it is not in Execute."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        health = rig.line.health()
        states.add(str(health.get("state", "?")))
        if causes is not None and health.get("state") != "EXECUTE":
            causes.update(health.get("causes", []))
        r = rig.probe.read()
        if r is not None and r[0] != 6 and r[1] > 0:
            unsafe.append(r)
        time.sleep(0.05)


def cpu_starvation(tmp: Path) -> dict[str, Any]:
    rig = start_rig(tmp)
    line = rig.line
    busy: list[subprocess.Popen[bytes]] = []
    try:
        before = line.status()
        threads = _renice(line.proc.pid, LINE_NICE)
        busy = [
            subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(os.cpu_count() or 2)
        ]
        states: set[str] = set()
        unsafe: list[tuple[int, int]] = []
        _watch(rig, STARVE_S, states, unsafe)
        during = line.status()
        for p in busy:
            p.kill()
            p.wait(5)
        busy = []
        _renice(line.proc.pid, 0)
        t1 = time.monotonic()
        rec = recover(line, t1)
        after = line.status()
        alive = line.proc.alive() and rig.plc.alive()
    finally:
        for p in busy:
            p.kill()
            p.wait(5)
        rig.stop()
    crit = {
        "the line's threads lowered in priority": threads > 0,
        "no valve open while the PLC was out of Execute": not unsafe,
        "never aborted or stopped": not states & {"ABORTED", "STOPPED"},
        f"recover <= {RECOVER_MAX_S} s": rec is not None and rec <= RECOVER_MAX_S,
        "both processes alive": alive,
    }
    return row(f"CPU starvation ({os.cpu_count()} busy processes at nice 0, the line at "
                f"nice {LINE_NICE}, {STARVE_S:g} s)", crit, recover_s=rec,
                lost=lost(before, after), states_seen=sorted(states),
                latency_ms_p99_during=during.get("latency_ms", {}).get("p99"),
                during=lost(before, during), line_threads_reniced=threads,
                detect="deadline misses and dropped frames are counted (lost); the line "
                "holds only if the camera or the PLC link stalls")  # fmt: skip


def wall_clock_step(tmp: Path) -> dict[str, Any]:
    rig = start_rig(tmp, module="bench._faults_clock")
    line = rig.line
    try:
        before = line.status()
        t_before = time.monotonic()
        states: set[str] = set()
        unsafe: list[tuple[int, int]] = []
        acked = [line.acked()]
        causes: set[str] = set()
        for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGUSR2):  # +1 h, 0, -1 h
            line.proc.signal(sig)
            _watch(rig, 1.2, states, unsafe, causes)
            acked.append(line.acked())
        mid = line.status()  # at -1 h
        elapsed = time.monotonic() - t_before
        line.proc.signal(signal.SIGUSR1)  # back to the true time
        after = line.status()
        alarms = line.alarms()
        time.sleep(0.2)
        stepped = rig.line.proc.stderr().count("wall clock stepped")
        alive = line.proc.alive() and rig.plc.alive()
    finally:
        rig.stop()
    lo = lost(before, after)
    crit = {
        "the clock was stepped (+1 h, back, -1 h, back)": stepped == 4,
        "stayed in Execute": states == {"EXECUTE"},
        # deadlines on the wall clock would make every pulse late after +1 h
        # (none sent) or hold them an hour after -1 h: pulses must keep flowing
        "3+ pulses acknowledged after every step": all(b - a >= 3 for a, b in pairwise(acked)),
        "both processes alive": alive,
        "uptime follows the monotonic clock (within 2 s)": abs(
            mid["uptime_s"] - before["uptime_s"] - elapsed
        )
        < 2.0,
    }
    return row("wall clock stepped +1 h, back, -1 h (1.2 s each) under a running line", crit,
                lost=lo, states_seen=sorted(states), causes_seen=sorted(causes),
                deadline_misses="counted in lost: on this shared machine they come from load "
                "(cpu-starvation shows the rate); pulses flowing after each step is the test",
                acked=acked, alarms=alarms,
                uptime_error_s=round(mid["uptime_s"] - before["uptime_s"] - elapsed, 1),
                uptime="GET /status uptime_s is monotonic time since start: it must not jump "
                "with the clock",
                how="time.time/time_ns offset in the line process (bench/_faults_clock.py); "
                "deadlines, watchdog, encoder samples and frame times use time.monotonic",
                )  # fmt: skip
