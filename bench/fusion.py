"""Cost of the sensor fusion in the frame loop (``sortline.sensor.fusion``).

``sortline bench fusion [--tracks 50,250,1000] [--calls N] [--model M] [--json OUT] [--quick]``

A track table with N confirmed, undecided tracks spread over the camera's
view (40-80 mm boxes, random class evidence), and a ring of 4,096 rows of a
32-coil bar at the model's frequencies (one or two; noise, with metal under
a third of the footprints); each call is
one frame's ``SensorFusion.apply`` (integrate every footprint, the shipped
induction model, the fused outlook), the belt moving 25 mm per frame. Times
per call with ``time.perf_counter`` (p50, p99, max) and the thread's own CPU
time (``time.thread_time``: p50, p99), which a shared machine's preemption
does not inflate; the load average is written beside them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

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
    return p.parse_args(argv)


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
    tab.CONF[:n], tab.DEC[:n], tab.NEV[:n] = 1, 0, rng.integers(1, 16, n)
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


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv if argv is not None else [])
    sizes = [int(s) for s in args.tracks.split(",")]
    calls = 200 if args.quick else args.calls
    if args.quick:
        sizes = sizes[:2]
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
