"""The encoder and belt scenarios of ``bench/faults.py``, on the rig of
``bench/_faults_rig.py`` (``sortline sim plc --inject-port`` + a camera
played by the bench + ``sortline run``): the encoder count frozen while the
belt runs, jumping forward and back, the belt stopped and restarted."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench._faults_procs import (
    DETECT_MAX_S,
    RECOVER_MAX_S,
    WATCHDOG_MS,
    Line,
    lost,
    row,
    until,
)
from bench._faults_rig import Rig, start_rig

JUMP_TICKS = 50_000  # 5 m of belt at 0.1 mm/tick: no belt runs that far in one poll
HOLD_S = 1.5


def recover(line: Line, t0: float, timeout_s: float = 30.0) -> float | None:
    """Seconds since ``t0`` until the line is in Execute and a new pulse is acked."""
    acked = line.acked()
    return until(lambda: line.state() == "EXECUTE" and line.acked() > acked, timeout_s, 0.02, t0)


def resets(line: Line) -> int:
    return int(line.status()["controller"]["encoder_resets"])


def _alive(rig: Rig) -> bool:
    return rig.line.proc.alive() and rig.plc.alive()


def encoder_frozen(tmp: Path) -> dict[str, Any]:
    rig = start_rig(tmp)
    line = rig.line
    try:
        before = line.status()
        valves = rig.probe.wait_valve_open()
        t0 = time.monotonic()
        rig.inject_post("/encoder", {"freeze": True})
        safe = until(rig.probe.safe, 2, 0.005, t0)
        detect = until(lambda: any("encoder count stuck" in c for c in line.causes()), 3, t0=t0)
        plc_state = rig.probe.read()
        time.sleep(0.4)  # the alarm book is evaluated off the loop
        state, causes, alarms = line.state(), line.causes(), line.alarms()
        time.sleep(max(0.0, t0 + HOLD_S - time.monotonic()))
        t1 = time.monotonic()
        plc_view = rig.inject_post("/encoder", {"freeze": False})
        rec = recover(line, t1)
        after = line.status()
        alive = _alive(rig)
    finally:
        rig.stop()
    wd = WATCHDOG_MS / 1000.0
    crit = {
        "held": state == "HELD",
        "cause names the stuck encoder": any("encoder count stuck" in c for c in causes),
        f"detect <= {DETECT_MAX_S} s": detect is not None and detect <= DETECT_MAX_S,
        f"valves off and PLC not in Execute within watchdog_ms ({WATCHDOG_MS} ms)": (
            safe is not None and safe <= wd
        ),
        "PLC counted an encoder stall": int(plc_view.get("encoder_stalls", 0)) >= 1,
        f"recover <= {RECOVER_MAX_S} s": rec is not None and rec <= RECOVER_MAX_S,
        "both processes alive": alive,
    }
    return row("encoder frozen while the belt runs (1.5 s), then counting again", crit,
                detect_s=detect, safe_s=safe, recover_s=rec, lost=lost(before, after),
                state=state, causes=causes, alarms=alarms, valves_open_at_freeze=valves,
                plc_state_frozen=None if plc_state is None else plc_state[0],
                safe="the PLC's encoder supervision (speed input > 0, count standing "
                "0.1 s): Suspended, running pulses cut")  # fmt: skip


def _jump(tmp: Path, ticks: int) -> dict[str, Any]:
    rig = start_rig(tmp)
    line = rig.line
    try:
        before = line.status()
        r0 = resets(line)
        states: set[str] = set()
        t0 = time.monotonic()
        rig.inject_post("/encoder", {"jump_ticks": ticks})

        def seen() -> bool:
            states.add(line.state())
            return resets(line) > r0

        detect = until(seen, 3, t0=t0)
        rec = recover(line, t0)
        time.sleep(0.5)
        states.add(line.state())
        after = line.status()
        alarms = line.alarms()
        alive = _alive(rig)
    finally:
        rig.stop()
    count_spaces = after["controller"]["encoder_resets"] - r0
    crit = {
        "jump seen: tracking restarted on the new count": count_spaces >= 1,
        f"detect <= {DETECT_MAX_S} s": detect is not None and detect <= DETECT_MAX_S,
        "never aborted or stopped": not states & {"ABORTED", "STOPPED", "?"},
        f"recover <= {RECOVER_MAX_S} s": rec is not None and rec <= RECOVER_MAX_S,
        "both processes alive": alive,
    }
    way = "forward" if ticks > 0 else "back"
    return row(f"encoder count jumps {way} by {abs(ticks)} ticks", crit, detect_s=detect,
                recover_s=rec, lost=lost(before, after), states_seen=sorted(states),
                encoder_resets=count_spaces, alarms=alarms,
                recover_from="the jump (one glitch: the count is right again at once)",
                safe="not demanded: the belt runs; pulses the PLC held when the count "
                "jumped run on the jumped count (misplaced, not unsafe); new ones are "
                "planned on the new count")  # fmt: skip


def encoder_jump_forward(tmp: Path) -> dict[str, Any]:
    return _jump(tmp, JUMP_TICKS)


def encoder_jump_back(tmp: Path) -> dict[str, Any]:
    return _jump(tmp, -JUMP_TICKS)


def belt_stop_restart(tmp: Path) -> dict[str, Any]:
    rig = start_rig(tmp)
    line = rig.line
    try:
        before = line.status()
        valves = rig.probe.wait_valve_open()
        t0 = time.monotonic()
        rig.inject_post("/belt", {"speed_m_s": 0.0})
        safe = until(rig.probe.safe, 2, 0.005, t0)
        detect = until(lambda: line.state() == "SUSPENDED", 3, t0=t0)
        state, causes = line.state(), line.causes()
        time.sleep(max(0.0, t0 + HOLD_S - time.monotonic()))
        t1 = time.monotonic()
        rig.inject_post("/belt", {"speed_m_s": 2.5})
        rec = recover(line, t1)
        after = line.status()
        alive = _alive(rig)
    finally:
        rig.stop()
    crit = {
        "suspended, not held": state == "SUSPENDED",
        f"detect <= {DETECT_MAX_S} s": detect is not None and detect <= DETECT_MAX_S,
        f"valves off within watchdog_ms ({WATCHDOG_MS} ms)": (
            safe is not None and safe <= WATCHDOG_MS / 1000.0
        ),
        f"recover <= {RECOVER_MAX_S} s": rec is not None and rec <= RECOVER_MAX_S,
        "both processes alive": alive,
    }
    return row("belt stopped (drive at 0 m/s, 1.5 s) and restarted", crit, detect_s=detect,
                safe_s=safe, recover_s=rec, lost=lost(before, after), state=state,
                causes=causes, valves_open_at_stop=valves)  # fmt: skip
