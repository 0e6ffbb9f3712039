"""Cost of the sensor fusion in the frame loop (``sortline.sensor.fusion``).

``sortline bench fusion [--tracks 50,250,1000] [--calls N] [--model M] [--json OUT] [--quick]
[--baseline DIR] [--rounds N]``

A track table with N confirmed, undecided tracks spread over the camera's
view (40-80 mm boxes, random class evidence), and a ring of 4,096 rows of a
32-coil bar at the model's frequencies (one or two; noise, with metal under
a third of the footprints); each call is
one frame's ``SensorFusion.apply`` (integrate every footprint, the shipped
induction model, the fused outlook), the belt moving 25 mm per frame. Times
per call with ``time.perf_counter`` (p50, p99, max) and the thread's own CPU
time (``time.thread_time``: p50, p99), which a shared machine's preemption
does not inflate; the load average is written beside them.

Before and after in one run: ``--baseline DIR`` names another tree of the
project (e.g. ``git archive HEAD | tar -x -C DIR``: the code before a change);
each size is then timed ``--rounds`` times alternately with that tree's code
(in a child process) and this one's, the load average beside every round, and
each side's quietest round (lowest median thread CPU time per call) is
reported with all rounds kept.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import write_result

N_CH = 32
EVERY = 50


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sortline bench fusion", description=__doc__.split("\n")[0])
    p.add_argument("--tracks", default="50,250,1000", help="tracks in view, comma-separated")
    p.add_argument("--calls", type=int, default=3000, help="timed frames per size")
    p.add_argument("--model", default="", help="induction model (default: the line's default)")
    p.add_argument("--json", type=Path)
    p.add_argument("--quick", action="store_true", help="a short run that proves it works")
    p.add_argument("--baseline", type=Path, help="another tree of the project to time alongside")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds with --baseline")
    args = p.parse_args(argv)
    if args.baseline is not None and not (args.baseline / "bench" / "fusion.py").is_file():
        p.error(f"--baseline {args.baseline}: no bench/fusion.py there (a tree of the project)")
    if args.rounds < 1:
        p.error(f"--rounds {args.rounds}: at least 1")
    return args


def _case(n: int, seed: int, spec: str = ""):  # type: ignore[no-untyped-def]
    from control.tracker import TrackTable
    from core.classes import DEFAULT_CLASSES
    from models.induction import BUILTIN, InductionModel, resolve
    from sim.plant.induction import InductionBar
    from sortline.sensor.fusion import SensorFusion
    from sortline.sensor.ring import RowRing
    from sortline.sensor.scene import fusion_params

    rng = np.random.default_rng(seed)
    k = len(DEFAULT_CLASSES)
    tab = TrackTable(k, max(n, 1))
    tab.n = n
    tab.X[:n, 0] = rng.uniform(40, 960, n)
    tab.X[:n, 1] = rng.uniform(-180, 180, n)  # u at travel 0
    tab.H[:n] = rng.uniform(20, 40, (n, 2))
    tab.AX[:n] = np.sort(2.0 * tab.H[:n] * rng.uniform(0.6, 1.0, (n, 2)), axis=1)  # the size
    tab.CONF[:n], tab.DEC[:n], tab.NEV[:n] = 1, 0, rng.integers(1, 16, n)
    tab.TID[:n] = np.arange(n)  # ids, views and whole views: each track's bar position is
    tab.NVIEW[:n], tab.AXN[:n] = 8, 5  # taken and looked up every call (sortline.sensor.anchor)
    tab.EV[:n] = np.log(rng.dirichlet(np.ones(k), n)) * tab.NEV[:n, None]
    model = InductionModel.load(resolve(spec or BUILTIN))
    bar = InductionBar(frequencies_hz=model.frequencies_hz)
    width = bar.values_per_row
    ring = RowRing(width, capacity=4096, guard=256)
    rows = 4000
    ticks = (EVERY * np.arange(rows)).astype(np.uint32)
    vals = rng.normal(0, 3, (rows, width)).astype(np.float32)
    vals[rng.random((rows, width)) < 0.1] += 300.0
    ring.append(ticks, vals, vals)
    fusion = SensorFusion(ring, fusion_params(bar, 0.1), model, DEFAULT_CLASSES)
    vecs = (
        np.full(k, -1, np.int64),
        np.full(k, 0.5),
        np.arange(k, dtype=np.int64),
    )
    return tab, ring, fusion, vecs


def _time(n: int, calls: int, seed: int, spec: str = "") -> dict[str, float | str]:
    tab, ring, fusion, (frac, thr, order) = _case(n, seed, spec)
    t_now = int(ring.last_tick) - 4000  # every footprint's rows are in the ring
    out = np.empty(calls)
    cpu = np.empty(calls)
    for i in range(calls + 50):
        tick = t_now + 250 * (i % 40)
        travel = 0.1 * (tick - t_now)
        c0, t0 = time.thread_time(), time.perf_counter()
        fusion.apply(tab, tick % (1 << 32), travel, frac, thr, order)
        if i >= 50:
            out[i - 50] = time.perf_counter() - t0
            cpu[i - 50] = time.thread_time() - c0
    ms, cpu_ms = out * 1e3, cpu * 1e3
    return {
        "tracks": n,
        "model": fusion.model.version,
        "frequencies": len(fusion.model.frequencies_hz),
        "calls": calls,
        "p50_ms": round(float(np.percentile(ms, 50)), 4),
        "p99_ms": round(float(np.percentile(ms, 99)), 4),
        "max_ms": round(float(ms.max()), 4),
        "cpu_p50_ms": round(float(np.percentile(cpu_ms, 50)), 4),
        "cpu_p99_ms": round(float(np.percentile(cpu_ms, 99)), 4),
        "fused_per_call": round(fusion.fused_rows / (calls + 50), 1),
    }


_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
from bench import fusion
assert fusion.__file__.startswith(sys.argv[1]), fusion.__file__
print(json.dumps(fusion._time(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[2]), sys.argv[4])))
"""


def _time_baseline(tree: Path, n: int, calls: int, spec: str) -> dict[str, float | str]:
    """``_time`` run by the code of another tree, in a child process."""
    import json
    import subprocess
    import sys

    cmd = [sys.executable, "-c", _CHILD, str(tree.resolve()), str(n), str(calls), spec]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"--baseline {tree}: the child failed: {done.stderr.strip()[-500:]}")
    row: dict[str, float | str] = json.loads(done.stdout.strip().splitlines()[-1])
    return row


def _compare(tree: Path, n: int, calls: int, spec: str, rounds: int) -> dict[str, Any]:
    """Alternating rounds of the baseline tree and this one; the quietest of each
    (lowest median thread CPU time per call), every round kept."""
    import os

    sides: dict[str, list[dict[str, float | str]]] = {"before": [], "after": []}
    for _ in range(rounds):
        for side in ("before", "after"):
            row = (
                _time_baseline(tree, n, calls, spec)
                if side == "before"
                else _time(n, calls, n, spec)
            )
            row["loadavg_1m"] = round(os.getloadavg()[0], 2)
            sides[side].append(row)
    # the quietest round of each side: the least thread CPU per call at the median
    # (other jobs on the machine slow the thread itself, not only preempt it)
    best = {k: min(v, key=lambda r: float(r["cpu_p50_ms"])) for k, v in sides.items()}
    return {"tracks": n, "baseline": str(tree), **best, "rounds": sides}


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv if argv is not None else [])
    sizes = [int(s) for s in args.tracks.split(",")]
    calls = 200 if args.quick else args.calls
    if args.quick:
        sizes = sizes[:2]
    if args.baseline is not None:
        pairs = [_compare(args.baseline, n, calls, args.model, args.rounds) for n in sizes]
        for pair in pairs:
            print({k: pair[k] for k in ("tracks", "before", "after")})
        note = (
            "SensorFusion.apply per frame, the code of --baseline (before) against this "
            "tree's (after), alternating rounds, each side's quietest round (lowest "
            "cpu_p50_ms) with all kept"
        )
        write_result("fusion", argv, note, pairs, args.json)
        return 0
    rows = [_time(n, calls, seed=n, spec=args.model) for n in sizes]
    for r in rows:
        print(r)
    note = (
        "SensorFusion.apply per frame: footprints of N confirmed undecided tracks "
        "integrated over a 4,096-row ring of a 32-coil bar, the shipped induction model, "
        "the fused outlook; one thread"
    )
    write_result("fusion", argv, note, rows, args.json)
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
