"""The frame and model scenarios of ``bench/faults.py``, on the rig of
``bench/_faults_rig.py``: the camera delivering black frames, a ring of the
wrong frame size, frames out of order; the model file replaced by a corrupt
one while the line runs."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from bench._faults_encoder import HOLD_S, recover
from bench._faults_procs import DETECT_MAX_S, RECOVER_MAX_S, lost, row, sortline, until
from bench._faults_rig import start_rig


def _cam_cause(causes: list[str]) -> bool:
    return any("camera" in c for c in causes)


def camera_black(tmp: Path) -> dict[str, Any]:
    rig = start_rig(tmp)
    line = rig.line
    try:
        before = line.status()
        t0 = time.monotonic()
        rig.camera.mode = "black"
        detect = until(lambda: _cam_cause(line.causes()), 3, t0=t0)
        time.sleep(0.4)
        state, causes, alarms = line.state(), line.causes(), line.alarms()
        time.sleep(max(0.0, t0 + HOLD_S - time.monotonic()))
        t1 = time.monotonic()
        rig.camera.mode = "ok"
        rec = recover(line, t1)
        after = line.status()
        alive = rig.line.proc.alive() and rig.plc.alive()
    finally:
        rig.stop()
    bad = after["camera"]["frames_bad"] - before["camera"]["frames_bad"]
    crit = {
        "held": state == "HELD",
        "cause names the blank frames": any("blank" in c for c in causes),
        f"detect <= {DETECT_MAX_S} s": detect is not None and detect <= DETECT_MAX_S,
        "black frames counted as bad": bad >= rig.camera.written["black"] // 2,
        f"recover <= {RECOVER_MAX_S} s": rec is not None and rec <= RECOVER_MAX_S,
        "both processes alive": alive,
    }
    return row("camera delivers black frames (1.5 s)", crit, detect_s=detect, recover_s=rec,
                lost=lost(before, after), state=state, causes=causes, alarms=alarms,
                frames_black=rig.camera.written["black"], frames_bad=bad,
                safe="not demanded: the PLC runs the pulses already planned for fragments "
                "seen before (right), no new ones while Held")  # fmt: skip


def camera_wrong_size(tmp: Path) -> dict[str, Any]:
    rig = start_rig(tmp)
    line = rig.line
    try:
        before = line.status()
        t0 = time.monotonic()
        rig.camera.replace(640, 480)
        detect = until(lambda: _cam_cause(line.causes()), 5, t0=t0)
        said = until(lambda: any("640x480" in c for c in line.causes()), 5, t0=t0)
        state, causes = line.state(), line.causes()
        time.sleep(max(0.0, t0 + 2.0 - time.monotonic()))
        t1 = time.monotonic()
        rig.camera.replace()
        rec = recover(line, t1)
        after = line.status()
        alive = rig.line.proc.alive() and rig.plc.alive()
    finally:
        rig.stop()
    crit = {
        "held": state == "HELD",
        "the cause names the wrong size": said is not None,
        f"detect <= {DETECT_MAX_S} s": detect is not None and detect <= DETECT_MAX_S,
        f"recover <= {RECOVER_MAX_S} s": rec is not None and rec <= RECOVER_MAX_S,
        "both processes alive": alive,
    }
    return row("camera ring replaced by one of the wrong frame size (640x480), then right",
                crit, detect_s=detect, recover_s=rec, lost=lost(before, after), state=state,
                causes=causes, size_named_s=said,
                note="a frame of the wrong size or dtype within a source is refused by "
                "vision.camera.check_image and counted (tests/sortline/test_frames_bad.py)",
                )  # fmt: skip


def camera_out_of_order(tmp: Path) -> dict[str, Any]:
    rig = start_rig(tmp)
    line = rig.line
    try:
        before = line.status()
        acked0 = line.acked()
        states: set[str] = set()
        causes: set[str] = set()
        t0 = time.monotonic()
        rig.camera.mode = "reorder"
        while time.monotonic() - t0 < HOLD_S:
            health = line.health()
            states.add(str(health.get("state", "?")))
            if health.get("state") != "EXECUTE":
                causes.update(health.get("causes", []))
            time.sleep(0.05)
        rig.camera.mode = "ok"
        mid = line.status()
        rec = recover(line, time.monotonic())
        after = line.status()
        alive = rig.line.proc.alive() and rig.plc.alive()
    finally:
        rig.stop()
    dropped = mid["frames_dropped"] - before["frames_dropped"]
    reordered = rig.camera.written["reorder"] // 2
    crit = {
        "stayed in Execute": states == {"EXECUTE"},
        "out-of-order frames dropped and counted": dropped >= reordered // 2,
        "pulses acknowledged meanwhile": mid["plc"]["pulses_acked"] > acked0,
        "both processes alive": alive,
    }
    return row("camera delivers frames out of order (pairs swapped, 1.5 s)", crit,
                recover_s=rec, lost=lost(before, after), states_seen=sorted(states),
                causes_seen=sorted(causes), pairs_swapped=reordered, frames_dropped=dropped,
                detect="not a line state: each late frame is dropped and counted "
                "(frames_dropped), the line runs on")  # fmt: skip


def model_replaced(tmp: Path) -> dict[str, Any]:
    from models.registry import builtin_model_path

    model = tmp / "model.onnx"
    shutil.copyfile(builtin_model_path("sortline-cnn"), model)
    rig = start_rig(tmp, f'[vision]\nmodel = "{model}"\n')
    line = rig.line
    try:
        before = line.status()
        acked0 = line.acked()
        states: set[str] = set()
        data = model.read_bytes()
        model.write_bytes(data[: len(data) // 3] + b"\0garbage" * 64)  # truncated, corrupt
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.0:
            states.add(line.state())
            time.sleep(0.05)
        after = line.status()
        alive = rig.line.proc.alive() and rig.plc.alive()
    finally:
        rig.stop()
    r = subprocess.run(
        sortline("run", "--config", str(rig.line.cfg), "--duration", "1"),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    err = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    crit = {
        "the running line keeps its model: stayed in Execute": states == {"EXECUTE"},
        "pulses acknowledged after the file was replaced": after["plc"]["pulses_acked"] > acked0,
        "a new start refuses the corrupt file": r.returncode != 0,
        "with one line naming the file": len(err) == 1 and model.name in err[0],
        "the line was alive throughout": alive,
    }
    return row("model file replaced by a corrupt one while running", crit,
                lost=lost(before, after), states_seen=sorted(states),
                restart_exit_code=r.returncode, restart_error=err[-1:] or r.stdout[-200:],
                note="nothing reloads a model at run time (no API route, no file watch): "
                "the session is held in memory; a start with the corrupt file is refused",
                )  # fmt: skip
