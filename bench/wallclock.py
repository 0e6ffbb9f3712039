"""Wall-clock runs of the whole line, the virtual plant in the controller's
process vs in its own process, side by side in one run:

    sortline bench wallclock --seconds 60 --json bench/results/wallclock.json

Per preset and arrangement: frames processed and dropped (and the drop
rate), deadline misses, frame latency p50/p99, purity and recovery from the
plant's ground truth, and the CPU time of each process (``os.wait4``'s
rusage: user + system seconds, and the share of one core over the run).

- ``in-process``: ``sortline run --duration S`` on the embedded default (the
  plant renders in a thread of the controller's process);
- ``separate``: ``sortline sim plant`` in its own process, and ``sortline run
  --config`` reading its frame ring as a camera and its virtual PLC over
  Modbus TCP, scored through its score endpoint.

Both are real processes started from here, with a free PLC and API port,
and the same scenario and seed. Synthetic scenes (the virtual plant).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import write_result
from core.net import free_port as _free_port

PRESETS = ("default", "crowded")


def _sortline() -> list[str]:
    return [sys.executable, "-m", "sortline.cli"]


def _wait(proc: subprocess.Popen[bytes], timeout_s: float) -> tuple[int, float]:
    """(exit code, CPU seconds) of a child, from ``os.wait4``."""
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            proc.kill()
        time.sleep(0.05)


def _row(report: dict[str, Any], seconds: float) -> dict[str, Any]:
    frames, dropped = report["frames"], report["frames_dropped"]
    return {
        "frames": frames,
        "frames_dropped": dropped,
        "drop_rate": round(dropped / max(frames + dropped, 1), 5),
        "deadline_misses": report["deadline_misses"],
        "latency_ms": report["latency_ms"],
        "purity": report["purity"],
        "recovery": report["recovery"],
        "objects_seen": report["objects_seen"],
        "pulses_acked": report["plc"]["pulses_acked"],
        "timebase": {
            k: report["timebase"][k]
            for k in ("mode", "mismatches", "frames_unstamped", "error_ticks_p99")
        },
        "seconds": seconds,
    }


def run_in_process(preset: str, seconds: float, seed: int, tmp: Path) -> dict[str, Any]:
    out = tmp / f"in-{preset}.json"
    cfg = tmp / f"in-{preset}.toml"
    cfg.write_text(
        f'[sim]\nscenario = "{preset}"\nseed = {seed}\n[api]\nport = {_free_port()}\n'
        f"[records]\nenabled = false\n[plc]\nport = {_free_port()}\n"
    )
    proc = subprocess.Popen(
        [*_sortline(), "run", "--config", str(cfg), "--duration", str(seconds),
         "--report", str(out)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    code, cpu_s = _wait(proc, seconds + 180)
    if code != 0:
        raise RuntimeError(f"sortline run exited {code} on {preset}")
    row = _row(json.loads(out.read_text()), seconds)
    row["cpu_s"] = {"controller+plant": round(cpu_s, 1)}
    return row


def run_separate(preset: str, seconds: float, seed: int, tmp: Path) -> dict[str, Any]:
    ring, plc_port, score_port = (
        f"sortline-bench-{os.getpid()}-{preset}",
        _free_port(),
        (_free_port()),
    )
    plant = subprocess.Popen(
        [*_sortline(), "sim", "plant", "--scenario", preset, "--seed", str(seed),
         "--ring", ring, "--plc-port", str(plc_port), "--score-port", str(score_port)],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert plant.stdout is not None
    plant.stdout.readline()  # its start line: ring, PLC and score endpoint are up
    cfg = tmp / f"sep-{preset}.toml"
    cfg.write_text(
        f'[camera]\nsource = "shm:{ring}"\n[plc]\nport = {plc_port}\n'
        f'[sim]\nenabled = false\nscore_url = "http://127.0.0.1:{score_port}"\n'
        f"[api]\nport = {_free_port()}\n[records]\nenabled = false\n"
    )
    out = tmp / f"sep-{preset}.json"
    try:
        line = subprocess.Popen(
            [*_sortline(), "run", "--config", str(cfg), "--duration", str(seconds),
             "--report", str(out)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        code, cpu_line = _wait(line, seconds + 180)
    finally:
        plant.send_signal(signal.SIGTERM)
        _, cpu_plant = _wait(plant, 30)
    if code != 0:
        raise RuntimeError(f"sortline run exited {code} on {preset} (separate plant)")
    row = _row(json.loads(out.read_text()), seconds)
    row["cpu_s"] = {"controller": round(cpu_line, 1), "plant": round(cpu_plant, 1)}
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sortline bench wallclock", description=__doc__)
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--seconds", type=float, default=60.0, help="wall-clock seconds per run")
    ap.add_argument("--seed", type=int, default=101, help="plant seed")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="sortline-wallclock-") as d:
        for preset in [p for p in args.presets.split(",") if p]:
            for arrangement, fn in (("in-process", run_in_process), ("separate", run_separate)):
                row = {"preset": preset, "plant": arrangement}
                row.update(fn(preset, args.seconds, args.seed, Path(d)))
                rows.append(row)
                print(
                    f"{preset:8s} {arrangement:10s} frames {row['frames']} dropped "
                    f"{row['frames_dropped']} ({100 * row['drop_rate']:.2f} %) misses "
                    f"{row['deadline_misses']} latency p50/p99 {row['latency_ms']['p50']}/"
                    f"{row['latency_ms']['p99']} ms purity {row['purity']} recovery "
                    f"{row['recovery']} cpu {row['cpu_s']}",
                    flush=True,
                )
    note = (
        "virtual plant (synthetic scenes), shipped model, default recipe; wall clock; "
        "CPU = user + system seconds of each process over the run (incl. warm-up)"
    )
    write_result("wallclock", argv, note, rows, Path(args.json) if args.json else None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
