"""PLC bridge speed on loopback: pulse write-to-acknowledge latency and pulses/s.

``sortline bench plc [--samples N] [--rate P_S] [--seconds S] [--burst N]
[--repeats R] [--plc subprocess|inprocess] [--json OUT] [--quick]``

The virtual PLC runs as ``sortline sim plc`` in its own process (default; its
encoder runs by wall clock at 2.5 m/s) or in this process (``inprocess``:
shares the GIL with the bridge, a pessimistic setting). Three measurements
per repeat, all through ``PlcBridge`` exactly as the controller uses it:

- latency: one pulse at a time, ``submit()`` to acknowledged (``flush()``
  returns), heartbeat and status polls interleaved as in service;
- sustained: ``--rate`` pulses/s offered in 10 ms frames (like a 100 fps
  controller) for ``--seconds``; achieved acknowledged pulses/s and the frame
  submit-to-ack latency;
- burst: ``--burst`` pulses submitted at once; acknowledged pulses/s.

Reports medians over repeats of each repeat's p50/p99 and rates.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

TARGET_P99_MS = 5.0
TARGET_PULSES_S = 2000.0
FRAME_S = 0.01
AHEAD_S = 0.15  # on tick this far ahead of the encoder (about valve line / belt speed)


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sortline bench plc", description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=2000, help="latency samples per repeat")
    p.add_argument("--rate", type=float, default=4000.0, help="offered pulses/s (sustained)")
    p.add_argument("--seconds", type=float, default=5.0, help="sustained run length")
    p.add_argument("--burst", type=int, default=4000,
                   help="pulses submitted at once (the bridge queues at most 4096)")  # fmt: skip
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--plc", choices=("subprocess", "inprocess"), default="subprocess")
    p.add_argument("--rt", type=int, default=None, metavar="PRIO",
                   help="SCHED_FIFO priority for the bridge thread, this (caller) thread "
                   "and the virtual PLC process (Linux, needs CAP_SYS_NICE)")  # fmt: skip
    p.add_argument("--json", type=Path, default=None, help="write results here")
    p.add_argument("--quick", action="store_true", help="tiny run that proves the script works")
    args = p.parse_args(argv)
    if args.quick:
        args.samples, args.seconds, args.burst, args.repeats = 30, 0.3, 300, 1
    if min(args.samples, args.burst, args.repeats) < 1 or args.rate <= 0 or args.seconds <= 0:
        p.error("--samples, --burst, --repeats must be >= 1; --rate and --seconds > 0")
    return args


def _cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` (None: this one)."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def _virtual_plc(mode: str, rt: int | None = None) -> Iterator[tuple[int, int | None]]:
    """A running virtual PLC with its belt at 2.5 m/s; yields (TCP port, its pid
    or None when it runs in this process)."""
    if mode == "inprocess":
        from sim.vplc.core import PlcCore
        from sim.vplc.server import BeltDriver, VirtualPlcServer

        core = PlcCore(80, watchdog_ms=1000, clock=time.monotonic)
        belt = BeltDriver(core, 2500.0, 0.1)
        with VirtualPlcServer(core) as server:
            belt.start()
            try:
                yield server.port, None
            finally:
                belt.stop()
        return
    cmd = [sys.executable, "-m", "sortline.cli", "sim", "plc", "--port", "0"]
    if rt is not None:
        cmd = ["chrt", "-f", str(rt), *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "virtual PLC: Modbus TCP 127.0.0.1:PORT ..."
        if "Modbus TCP" not in line:
            raise RuntimeError(f"sortline sim plc did not start: {line!r}")
        yield int(line.split()[4].rsplit(":", 1)[1]), proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _pulses(bridge: Any, n: int, rng: np.random.Generator, ahead_s: float = AHEAD_S) -> Any:
    from core.ticks import wrap_tick
    from core.types import Pulses

    now = bridge.estimate_tick()
    on0 = wrap_tick(int(now) + int(ahead_s * 25_000))
    first = rng.integers(0, 78, n)
    on = (on0 + np.arange(n, dtype=np.int64)) % (1 << 32)
    return Pulses(
        actuator=np.zeros(n, dtype=np.int16), first_valve=first, last_valve=first + 2,
        on_tick=on, off_tick=(on + 100) % (1 << 32), track_id=np.arange(n),
        fraction=np.zeros(n, dtype=np.int16),
    )  # fmt: skip


def _pct(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
            "max": float(a.max()), "n": int(a.size)}  # fmt: skip


def _latency(
    bridge: Any, samples: int, rng: np.random.Generator, plc_pid: int | None
) -> dict[str, float]:
    lat_ms = []
    cpu0 = (_cpu_s(None), _cpu_s(plc_pid) if plc_pid else 0.0)
    for _ in range(samples):
        p = _pulses(bridge, 1, rng)
        t0 = time.perf_counter()
        bridge.submit(p)
        if not bridge.flush(2.0):
            raise RuntimeError(f"pulse not acknowledged: {bridge.snapshot().last_error}")
        lat_ms.append((time.perf_counter() - t0) * 1000.0)
    out = _pct(lat_ms)
    # CPU per pulse (heartbeats and polls included): load-independent cost
    out["bench_process_cpu_ms_per_pulse"] = (_cpu_s(None) - cpu0[0]) * 1000.0 / samples
    if plc_pid:
        out["plc_process_cpu_ms_per_pulse"] = (_cpu_s(plc_pid) - cpu0[1]) * 1000.0 / samples
    return out


def _sustained(
    bridge: Any, rate: float, seconds: float, rng: np.random.Generator
) -> dict[str, Any]:
    per_frame = max(round(rate * FRAME_S), 1)
    acked0 = bridge.snapshot().pulses_acked
    lat_ms = []
    t_start = time.perf_counter()
    next_t = t_start
    while next_t - t_start < seconds:
        p = _pulses(bridge, per_frame, rng)
        t0 = time.perf_counter()
        bridge.submit(p)
        bridge.flush(2.0)
        lat_ms.append((time.perf_counter() - t0) * 1000.0)
        next_t += FRAME_S
        time.sleep(max(next_t - time.perf_counter(), 0.0))
    elapsed = time.perf_counter() - t_start
    acked = bridge.snapshot().pulses_acked - acked0
    return {"offered_pulses_s": per_frame / FRAME_S, "pulses_s": acked / elapsed,
            "frame_latency_ms": _pct(lat_ms)}  # fmt: skip


def _burst(bridge: Any, n: int, rng: np.random.Generator) -> dict[str, float]:
    time.sleep(AHEAD_S + 0.2)  # earlier pulses have run: the PLC's table is empty
    acked0 = bridge.snapshot().pulses_acked
    p = _pulses(bridge, n, rng, ahead_s=max(AHEAD_S, n / 2000.0 + 0.5))
    t0 = time.perf_counter()
    bridge.submit(p)
    ok = bridge.flush(60.0)
    elapsed = time.perf_counter() - t0
    acked = bridge.snapshot().pulses_acked - acked0
    return {"pulses": n, "acked": acked, "complete": ok, "seconds": elapsed,
            "pulses_s": acked / elapsed}  # fmt: skip


def _repeat(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    from plc.bridge import BridgeConfig, PlcBridge

    rng = np.random.default_rng(seed)
    if args.rt is not None:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(args.rt))
    with _virtual_plc(args.plc, args.rt) as (port, plc_pid):
        cfg = BridgeConfig(port=port, deadline_lead_ms=5.0, watchdog_ms=1000, rt_priority=args.rt)
        bridge = PlcBridge(cfg)
        bridge.start()
        try:
            if not bridge.wait_connected(10.0):
                raise RuntimeError(f"bridge did not connect: {bridge.snapshot().last_error}")
            time.sleep(0.1)  # a few status polls: speed known
            out = {
                "latency_ms": _latency(bridge, args.samples, rng, plc_pid),
                "sustained": _sustained(bridge, args.rate, args.seconds, rng),
                "burst": _burst(bridge, args.burst, rng),
            }
            snap = bridge.snapshot()
            out["counters"] = {k: getattr(snap, k) for k in (
                "pulses_submitted", "pulses_sent", "pulses_acked", "pulses_late",
                "pulses_rejected_by_plc", "pulses_overflow", "reconnects",
                "read_errors")}  # fmt: skip
            return out
        finally:
            bridge.stop()


def _median(runs: list[dict[str, Any]], *path: str) -> float:
    vals = []
    for r in runs:
        v: Any = r
        for key in path:
            v = v[key]
        vals.append(float(v))
    return float(np.median(vals))


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    load_start = os.getloadavg()[0]
    try:
        runs = [_repeat(args, seed) for seed in range(args.repeats)]
    finally:
        if args.rt is not None:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    summary = {
        "latency_ms_p50": _median(runs, "latency_ms", "p50"),
        "latency_ms_p99": _median(runs, "latency_ms", "p99"),
        "sustained_pulses_s": _median(runs, "sustained", "pulses_s"),
        "sustained_frame_latency_ms_p99": _median(runs, "sustained", "frame_latency_ms", "p99"),
        "burst_pulses_s": _median(runs, "burst", "pulses_s"),
    }
    summary["meets_targets"] = bool(
        summary["latency_ms_p99"] <= TARGET_P99_MS
        and min(summary["sustained_pulses_s"], summary["burst_pulses_s"]) >= TARGET_PULSES_S
    )
    result = {
        "benchmark": "plc",
        "command": "sortline bench plc " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "plc": args.plc,
        "rt_priority": args.rt,
        "quick": args.quick,
        "targets": {"latency_ms_p99": TARGET_P99_MS, "pulses_s": TARGET_PULSES_S},
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_1m_at_start": load_start,
            "loadavg_1m_at_end": os.getloadavg()[0],
            "note": "shared machine: other jobs ran during the measurement",
        },
        "summary": summary,
        "runs": runs,
    }
    text = json.dumps(result, indent=2)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
