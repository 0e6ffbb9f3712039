"""The real-time loop's frame latency with and without people watching:
three dashboard clients (each the status stream at 4 Hz, the camera preview
polled at 4 Hz, ``/valves`` and ``/alarms`` every 2 s) and a Prometheus-style
scrape of ``/metrics`` every second, side by side in one run:

    sortline bench api_load --phase-s 20 --json bench/results/api_load.json

The line runs on the wall clock with its status API on a free loopback
port, its camera and PLC the virtual plant in its own process (``sortline
sim plant``, as a real camera and PLC are outside the controller;
``--plant embedded`` puts the plant in the controller's process, as
``sortline run`` with no arguments does). Phases alternate
idle / loaded / idle / loaded ..., so drift in the shared machine's load hits
both alike; the clients run in a child process (as browsers would, outside
the controller's process and GIL), started at the beginning of each loaded
phase and stopped at its end. Every frame's latency (arrival to pulses handed
to the bridge, ``Cycle.latency_ms``) is kept with its phase by a listener;
the controller process's CPU time per phase (every thread: loop, PLC
bridge, API; and the plant when embedded) and its other children's (the
preview's renderer, ``sortline.preview_proc``) show what serving costs
whatever else the machine runs. The summary compares each loaded phase with the idle
phases beside it and gives the mean change of p50 and p99 with a 95 %
interval over the pairs: "measurable" when the interval excludes 0.

``--api process,thread`` measures the API in its own process (as ``sortline
run`` serves it, ``sortline.api_proc``) and in a thread of the controller's
process, one after the other in one run; ``--client-nice 19`` runs the
clients (browsers and Prometheus, on other machines in a plant) at the
lowest priority, so the load generator's own CPU on the two shared cores is
not what is measured.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import write_result

CLIENTS = 3
_LOADS = {
    "all": f"{CLIENTS} dashboards (stream, preview, valves, alarms) + /metrics scrape 1/s",
    "stream": f"{CLIENTS} status streams at 4 Hz",
    "preview": f"{CLIENTS} preview pollers at 4 Hz (+ valves, alarms every 2 s)",
    "scrape": "/metrics scrape 1/s",
    "jpeg": f"{CLIENTS} preview pollers at 4 Hz",
    "polls": f"{CLIENTS} clients polling /valves and /alarms every 2 s",
}


# ------------------------------------------------------------------ the clients
def _dashboard(url: str, key: str, stop: threading.Event, out: dict[str, int], mix: str) -> None:
    import httpx

    h = {"Authorization": f"Bearer {key}"}

    def stream() -> None:
        with httpx.Client(headers=h, timeout=10) as c:
            while not stop.is_set():
                try:
                    with c.stream("GET", f"{url}/stream", params={"rate_hz": 4}) as r:
                        for line in r.iter_lines():
                            if line.startswith("data: "):
                                out["events"] += 1
                            if stop.is_set():
                                return
                except httpx.HTTPError:
                    out["errors"] += 1
                    time.sleep(0.5)

    if mix in ("all", "stream"):
        threading.Thread(target=stream, daemon=True).start()
    if mix not in ("all", "preview", "jpeg", "polls"):
        stop.wait()
        return
    with httpx.Client(headers=h, timeout=10) as c:
        n = 0
        while not stop.wait(0.25):
            try:
                if mix != "polls":
                    r = c.get(f"{url}/preview.jpg")
                    out["previews"] += r.status_code == 200
                    out["preview_bytes"] += len(r.content)
                if n % 8 == 0 and mix != "jpeg":
                    out["polls"] += c.get(f"{url}/valves").is_success
                    out["polls"] += c.get(f"{url}/alarms").is_success
            except httpx.HTTPError:
                out["errors"] += 1
            n += 1


def _scraper(url: str, stop: threading.Event, out: dict[str, int]) -> None:
    import httpx

    with httpx.Client(timeout=10) as c:
        while not stop.wait(1.0):
            try:
                out["scrapes"] += c.get(f"{url}/metrics").is_success
            except httpx.HTTPError:
                out["errors"] += 1


def run_clients(url: str, key: str, seconds: float, mix: str = "all") -> dict[str, int]:
    """Child process: three dashboards and a scraper for ``seconds`` (``mix``:
    all of it, or only the stream, the preview polling or the scrape)."""
    keys = ("events", "previews", "preview_bytes", "polls", "scrapes", "errors")
    out = dict.fromkeys(keys, 0)
    stop = threading.Event()
    threads = [
        threading.Thread(target=_dashboard, args=(url, key, stop, out, mix), daemon=True)
        for _ in range(CLIENTS)
    ]
    if mix in ("all", "scrape"):
        threads.append(threading.Thread(target=_scraper, args=(url, stop, out), daemon=True))
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(timeout=5)
    out["cpu_ms"] = round(1e3 * time.process_time())  # the clients' own CPU: on this machine
    return out


# --------------------------------------------------------------------- the line
class _PhaseLatency:
    """A listener: each frame's latency, kept under the current phase."""

    def __init__(self) -> None:
        self.phase = "warm-up"
        self.by_phase: dict[str, list[float]] = {}

    def on_cycle(self, cycle: Any) -> None:
        self.by_phase.setdefault(self.phase, []).append(cycle.latency_ms)

    def close(self) -> None:
        pass


def _stats(values: list[float]) -> dict[str, Any]:
    a = np.asarray(values, np.float64)
    if not a.size:
        return {"frames": 0}
    q = np.percentile(a, [50, 99])
    return {
        "frames": int(a.size),
        "p50_ms": round(float(q[0]), 3),
        "p99_ms": round(float(q[1]), 3),
        "max_ms": round(float(a.max()), 3),
    }


def _children_cpu_s(exclude: set[int]) -> float:
    """CPU seconds (user + system) so far of this process's children but
    ``exclude`` (the plant and the clients): the preview's renderer."""
    me, tick_s, total = os.getpid(), 1.0 / os.sysconf("SC_CLK_TCK"), 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        pid = int(stat.parent.name)
        if int(fields[1]) == me and pid not in exclude:
            total += (int(fields[11]) + int(fields[12])) * tick_s
    return total


def _begin(
    lat: _PhaseLatency, name: str, line: Any, exclude: set[int], mark: dict[str, Any]
) -> None:
    mark["snap"], mark["t0"], mark["cpu"] = line.snapshot(), time.monotonic(), time.process_time()
    mark["children_cpu"] = _children_cpu_s(exclude)
    lat.phase = name


def _load_phase(
    url: str,
    key: str,
    seconds: float,
    begin: Any,
    mix: str,
    exclude: set[int],
    client_nice: int = 0,
) -> dict[str, int]:
    """Start the client process, wait until it has imported what it needs (its
    start-up is not the API's cost), then start the phase and the clients."""
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.api_load", "--clients", url, key, str(seconds), mix],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "SORTLINE_BENCH_CLIENT_NICE": str(client_nice)},
    )  # fmt: skip
    exclude.add(child.pid)
    assert child.stdin is not None and child.stdout is not None
    if child.stdout.readline().strip() != "ready":
        raise RuntimeError("the client process did not start")
    begin()
    child.stdin.write("go\n")
    child.stdin.flush()
    out, _ = child.communicate(timeout=seconds + 60)
    return dict(json.loads(out))


def _renice_all(pid: int, nice: int) -> None:
    """Every thread of ``pid`` to ``nice`` (Linux: a nice value is per thread,
    so the process's own would leave its running threads as they were)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.setpriority(os.PRIO_PROCESS, int(task.name), nice)


def _line_config(tmp: Path, plant: Any, rt_priority: int = 0) -> str:
    """The line's config: the embedded plant, or the camera ring and PLC of
    ``sortline sim plant`` in its own process (``plant``)."""
    text = f'[recipes]\ndir = "{tmp / "recipes"}"\n[records]\nenabled = false\n'
    text += f"[control]\nrt_priority = {int(rt_priority)}\n"
    if plant is not None:
        text += (
            f'[camera]\nsource = "shm:{plant.ring}"\n[plc]\nport = {plant.plc_port}\n'
            f'[sim]\nenabled = false\nscore_url = "{plant.panel}"\n'
        )
    return text


def measure(
    phase_s: float,
    pairs: int,
    warm_s: float,
    tmp: Path,
    mix: str = "all",
    plant_where: str = "separate",
    scenario: str = "default",
    rt_priority: int = 0,
    api_where: str = "process",
    nice: int = 10,
    client_nice: int = 0,
    plant_nice: int = 0,
) -> list[dict[str, Any]]:
    from bench._faults_procs import Plant, free_port
    from sortline.api import ApiServer, create_app
    from sortline.api_proc import ApiProcess
    from sortline.auth import AuditLog, KeyBook
    from sortline.config import load_config
    from sortline.runtime import SortingLine

    plant = None
    if plant_where == "separate":
        plant = Plant(f"sortline-api-load-{os.getpid()}", free_port(), free_port(), tmp,
                      extra=("--scenario", scenario)).start()  # fmt: skip
        if plant_nice and plant.proc is not None:
            _renice_all(plant.proc.pid, plant_nice)
    cfg_path = tmp / "line.toml"
    cfg_path.write_text(_line_config(tmp, plant, rt_priority))
    try:
        line = SortingLine(
            load_config(cfg_path),
            plc_port=None if plant else 0,
            scenario=None if plant else scenario,
            records=False,
        )
    except Exception:
        if plant is not None and plant.proc is not None:
            plant.proc.stop()
        raise
    lat = _PhaseLatency()
    line.loop.attach(lat)
    book, keys = KeyBook.generated(("maintenance",))
    api: ApiServer | ApiProcess
    if api_where == "process":  # as `sortline run` serves it
        api = ApiProcess(line, book, AuditLog(None), "127.0.0.1", 0, nice=nice)
    else:  # the API in a thread of the controller's process (before session 8)
        api = ApiServer(create_app(line, book, AuditLog(None)), "127.0.0.1", 0)
    rows: list[dict[str, Any]] = []
    exclude = {plant.proc.pid} if plant is not None and plant.proc is not None else set()
    line.start()
    api.start()
    url = f"http://127.0.0.1:{api.port}"
    try:
        time.sleep(warm_s)
        for i in range(2 * pairs):
            loaded = i % 2 == 1
            name = f"{'loaded' if loaded else 'idle'}-{i // 2 + 1}"
            mark: dict[str, Any] = {}
            begin = functools.partial(_begin, lat, name, line, exclude, mark)
            if loaded:
                clients = _load_phase(
                    url, keys["maintenance"], phase_s, begin, mix, exclude, client_nice
                )
            else:
                begin()
                time.sleep(phase_s)
                clients = None
            lat.phase = "between"
            snap0, t0, snap1 = mark["snap"], mark["t0"], line.snapshot()
            row: dict[str, Any] = {
                "api": api_where,
                "phase": name,
                "load": _LOADS[mix] if loaded else "none",
                "seconds": round(time.monotonic() - t0, 2),
                **_stats(lat.by_phase.get(name, [])),
                "frames_dropped": snap1.frames_dropped - snap0.frames_dropped,
                "deadline_misses": snap1.deadline_misses - snap0.deadline_misses,
                "process_cpu_s": round(time.process_time() - mark["cpu"], 2),
                "children_cpu_s": round(_children_cpu_s(exclude) - mark["children_cpu"], 2),
                "switch_interval_ms": sys.getswitchinterval() * 1e3,
                "clients": clients,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        api.stop()
        line.stop()
        if plant is not None and plant.proc is not None:
            plant.proc.stop()
    return rows


def paired_change(rows: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    """Each loaded phase's ``key`` minus the mean of the idle phases on either
    side of it (drift in the machine's load cancels), with a 95 % interval
    from Student's t over the pairs: a change is "measurable" when the
    interval excludes 0."""
    from scipy import stats

    d = []
    for i, r in enumerate(rows):
        if not r["phase"].startswith("loaded") or not r.get("frames"):
            continue
        nb = [rows[j][key] for j in (i - 1, i + 1) if 0 <= j < len(rows) and rows[j].get("frames")]
        if nb:
            d.append(r[key] - float(np.mean(nb)))
    if len(d) < 2:
        return None
    a = np.asarray(d, np.float64)
    half = float(stats.t.ppf(0.975, a.size - 1) * a.std(ddof=1) / np.sqrt(a.size))
    lo, hi = float(a.mean()) - half, float(a.mean()) + half
    return {
        "pairs": int(a.size),
        "mean_ms": round(float(a.mean()), 3),
        "ci95_ms": [round(lo, 3), round(hi, 3)],
        "each_ms": [round(x, 3) for x in d],
        "measurable": bool(lo > 0 or hi < 0),
    }


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Idle against loaded: the phases' medians of p50 and p99."""
    out: dict[str, Any] = {}
    for kind in ("idle", "loaded"):
        mine = [r for r in rows if r["phase"].startswith(kind) and r.get("frames")]
        out[kind] = {
            "phases": len(mine),
            "frames": sum(r["frames"] for r in mine),
            "p50_ms_median": float(np.median([r["p50_ms"] for r in mine])) if mine else None,
            "p99_ms_median": float(np.median([r["p99_ms"] for r in mine])) if mine else None,
            "frames_dropped": sum(r["frames_dropped"] for r in mine),
        }
        seconds = max(sum(r["seconds"] for r in mine), 1e-9)
        for key in ("process_cpu_s", "children_cpu_s"):
            out[kind][f"{key}_per_s"] = round(sum(r.get(key, 0.0) for r in mine) / seconds, 3)
    idle, busy = out["idle"], out["loaded"]
    if idle["p99_ms_median"] is not None and busy["p99_ms_median"] is not None:
        out["p99_change_ms"] = round(busy["p99_ms_median"] - idle["p99_ms_median"], 3)
        out["p50_change_ms"] = round(busy["p50_ms_median"] - idle["p50_ms_median"], 3)
    out["p99_paired"] = paired_change(rows, "p99_ms")
    out["p50_paired"] = paired_change(rows, "p50_ms")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sortline bench api_load", description=__doc__)
    ap.add_argument("--phase-s", type=float, default=20.0, help="seconds per phase")
    ap.add_argument("--pairs", type=int, default=2, help="idle/loaded pairs")
    ap.add_argument("--warm-s", type=float, default=5.0, help="seconds before the first phase")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--quick", action="store_true", help="one pair of 4 s phases (smoke test)")
    ap.add_argument(
        "--switch-interval-ms",
        type=float,
        help="sys.setswitchinterval for the controller process (Python's default: 5 ms)",
    )
    ap.add_argument(
        "--mix",
        choices=tuple(_LOADS),
        default="all",
        help="the load: everything, or one part of it (to see what costs)",
    )
    ap.add_argument(
        "--plant",
        choices=("separate", "embedded"),
        default="separate",
        help="the virtual plant in its own process (as a camera and PLC are; default) "
        "or embedded in the controller's process (as `sortline run` with no arguments)",
    )
    ap.add_argument("--scenario", default="default", help="plant preset (default: default)")
    ap.add_argument(
        "--rt-priority",
        type=int,
        default=0,
        help="[control] rt_priority of the line: SCHED_FIFO for the frame loop (0: normal)",
    )
    ap.add_argument(
        "--api",
        default="process",
        help="where the API runs, comma-separated to compare in one run: process (its own, "
        "as `sortline run` serves it; default) or thread (in the controller's process)",
    )
    ap.add_argument("--nice", type=int, default=10, help="[api] nice of the API's process")
    ap.add_argument(
        "--client-nice",
        type=int,
        default=0,
        help="nice of the clients' process: browsers and Prometheus run on other machines "
        "in a plant; 19 keeps the load generator's own CPU off this machine's two cores "
        "(the API's cost stays counted)",
    )
    ap.add_argument(
        "--plant-nice",
        type=int,
        default=0,
        help="nice of the virtual plant's threads (separate plant only): a camera and a PLC "
        "have their own hardware, the plant stand-in shares this machine's cores; a "
        "negative value (root) keeps the clients from delaying its frames",
    )
    ap.add_argument(
        "--clients", nargs=4, metavar=("URL", "KEY", "S", "MIX"), help=argparse.SUPPRESS
    )
    args = ap.parse_args(argv)
    if args.clients:
        url, key, seconds, mix = args.clients
        import httpx  # noqa: F401  (imported before "ready": not part of the phase)

        os.nice(int(os.environ.get("SORTLINE_BENCH_CLIENT_NICE", "0")))

        print("ready", flush=True)
        sys.stdin.readline()
        print(json.dumps(run_clients(url, key, float(seconds), mix)), flush=True)
        return 0
    phase_s, pairs, warm_s = (
        (4.0, 1, 2.0) if args.quick else (args.phase_s, args.pairs, args.warm_s)
    )
    load0 = os.getloadavg()[0]
    if args.switch_interval_ms is not None:
        sys.setswitchinterval(args.switch_interval_ms / 1e3)
    wheres = [w.strip() for w in args.api.split(",") if w.strip()]
    if not wheres or any(w not in ("process", "thread") for w in wheres):
        ap.error(f"--api: {args.api!r}: a comma-separated list of process, thread")
    if args.plant_nice and args.plant != "separate":
        ap.error("--plant-nice: only with --plant separate (the plant in its own process)")
    rows = []
    for where_api in wheres:
        with tempfile.TemporaryDirectory(prefix="sortline-api-load-") as tmp:
            rows += measure(
                phase_s, pairs, warm_s, Path(tmp), args.mix, args.plant, args.scenario,
                args.rt_priority, where_api, args.nice, args.client_nice, args.plant_nice,
            )  # fmt: skip
    where = "in its own process" if args.plant == "separate" else "embedded in the controller"
    note = (
        f"wall clock, virtual plant {where} (synthetic scenes, preset {args.scenario}), "
        "default recipe; frame latency "
        "= arrival to pulses handed to the bridge, every frame of each phase; clients in a "
        f"child process at nice {args.client_nice}; plant threads at nice {args.plant_nice}; "
        f"API: {', '.join(wheres)} (process: its "
        f"own, nice {args.nice}, as "
        "`sortline run` serves it; thread: in the controller's process); frame loop "
        f"rt_priority {args.rt_priority} (0: normal scheduling); "
        "GIL switch interval: each row's; load "
        f"average at start {load0:.2f}"
    )
    result = write_result("api_load", argv, note, rows, Path(args.json) if args.json else None)
    by_api = {w: summary([r for r in rows if r["api"] == w]) for w in wheres}
    result["summary"] = by_api[wheres[0]] if len(wheres) == 1 else by_api
    if args.json:
        from core.files import atomic_write_json

        atomic_write_json(Path(args.json), result)
    print(json.dumps(result["summary"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
