"""The camera and belt scenarios of ``bench/faults.py``: ``sortline sim plc``
(the PLC alone, optionally with its belt at 0 m/s) and a line whose camera
is a recorded video (``sortline sim record``), one that ends or is missing."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from bench._faults_procs import (
    DETECT_MAX_S,
    VIDEO_FRAMES,
    Line,
    free_port,
    leaves_execute,
    row,
    sortline,
    start_plc,
    until,
)


def _video(tmp: Path) -> Path:
    out = tmp.parent / "belt.mp4"
    if not out.is_file():
        r = subprocess.run(
            sortline("sim", "record", "--out", str(out), "--seconds", "3", "--seed", "4"),
            capture_output=True, text=True, timeout=240,
        )  # fmt: skip
        if r.returncode != 0:
            raise RuntimeError(f"sortline sim record: {r.stderr[-400:]}")
    return out


def _video_line(tmp: Path, source: str, plc_port: int) -> Line:
    return Line(
        f'[camera]\nsource = "{source}"\ntimebase = "free"\n[plc]\nport = {plc_port}\n'
        f"[sim]\nenabled = false\n[records]\nenabled = false\n",
        tmp,
    )


def camera_video_ended(tmp: Path) -> dict[str, Any]:
    video = _video(tmp)
    port = free_port()
    plc, _ = start_plc(port, tmp)
    line = _video_line(tmp, str(video), port)
    try:

        def read() -> int:
            cam = line.status()["camera"]
            return int(cam["frames_read"] + cam["frames_lost"])

        # the fault: the last frame of the recording (the camera then stops)
        until(lambda: read() >= VIDEO_FRAMES, 30, 0.005)
        detect = leaves_execute(line, time.monotonic())
        state, causes, alarms = line.state(), line.causes(), line.alarms()
        time.sleep(1.0)
        st = line.status()
        alive = line.proc.alive() and plc.alive()
    finally:
        line.proc.stop()
        plc.stop()
    crit = {
        "held": state == "HELD" and st["state"] == "HELD",
        "cause names the camera": any(str(video.name) in c or "camera" in c for c in causes),
        f"detect <= {DETECT_MAX_S} s": detect is not None and detect <= DETECT_MAX_S,
        "both processes alive": alive,
    }
    return row("camera stalled (a recorded video that ends)", crit, detect_s=detect,
                lost={"frames_dropped": st["frames_dropped"],
                      "camera_frames_lost": st["camera"]["frames_lost"]},
                state=state, causes=causes, alarms=alarms,
                recover="not applicable: a recording is not replayed (the line stays Held "
                "by design); recovery after a stall: scenarios 1 and 2")  # fmt: skip


def camera_missing(tmp: Path) -> dict[str, Any]:
    port = free_port()
    plc, _ = start_plc(port, tmp)
    missing = tmp / "no-such-camera.mp4"
    line = _video_line(tmp, str(missing), port)
    try:
        said = until(lambda: any("camera" in c for c in line.causes()), 10)
        state, causes = line.state(), line.causes()
        time.sleep(1.0)
        alarms, st = line.alarms(), line.status()
        alive = line.proc.alive() and plc.alive()
    finally:
        line.proc.stop()
        plc.stop()
    crit = {
        "held": state == "HELD" and st["state"] == "HELD",
        "cause names the camera": any("camera" in c for c in causes),
        "the error names the file": missing.name in st["camera"]["last_error"],
        "no frames": st["frames"] == 0,
        "both processes alive": alive,
    }
    return row("camera cannot open (missing video file)", crit, detect_s=said,
                state=state, causes=causes, alarms=alarms,
                camera_error=st["camera"]["last_error"],
                detect="from the line's status API serving")  # fmt: skip


def belt_stopped(tmp: Path) -> dict[str, Any]:
    video = _video(tmp)
    port = free_port()
    plc, _ = start_plc(port, tmp, speed_m_s=0.0)
    line = _video_line(tmp, str(video), port)
    try:
        said = until(lambda: line.state() == "SUSPENDED", 10)
        state, causes = line.state(), line.causes()
        time.sleep(0.5)
        st, alarms = line.status(), line.alarms()
        alive = line.proc.alive() and plc.alive()
    finally:
        line.proc.stop()
        plc.stop()
    crit = {
        "suspended, not held": state == "SUSPENDED" and st["state"] == "SUSPENDED",
        "both processes alive": alive,
    }
    return row("belt stopped (sim plc --speed 0)", crit, detect_s=said, state=state,
                causes=causes, alarms=alarms, speed_mm_s=st["plc"]["speed_mm_s"],
                detect="from the line's status API serving (the belt is stopped from the start)",
                recover="not run: `sortline sim plc` cannot restart its belt while running "
                "(no speed control); the plant has none either")  # fmt: skip
