"""Rendering speed of the virtual plant: stepped frames per second per preset.

``sortline bench render [--presets default,crowded] [--frames N] [--repeats R]
[--threads T] [--json OUT] [--quick]``

Each repeat builds a fresh plant (IdlePlc: no valve commands), warms it up
until the belt is full, then times ``step()`` (physics sub-steps, sprite
renders, blending, lighting, noise, ground truth) frame by frame. OpenCV runs
on ``--threads`` threads (default 1: the brief asks for one core). Reports
per preset the median and p99 frame time over all timed frames and the
median over repeats of each repeat's frames per second, plus the thread's
CPU time per frame (less sensitive to other load on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sortline bench render", description=__doc__.split("\n")[0])
    p.add_argument("--presets", default=None, help="comma list (default: all five presets)")
    p.add_argument("--frames", type=int, default=500, help="timed frames per repeat")
    p.add_argument("--warmup", type=int, default=40, help="untimed frames first (fill the belt)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="OpenCV threads")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, default=None, help="write results here")
    p.add_argument("--quick", action="store_true", help="tiny run that proves the script works")
    args = p.parse_args(argv)
    if args.quick:
        args.presets = args.presets or "default"
        args.frames, args.warmup, args.repeats = 15, 5, 1
    args.presets = args.presets or "easy,default,crowded,fast,dirty"
    if args.frames < 1 or args.repeats < 1 or args.warmup < 0 or args.threads < 1:
        p.error("--frames and --repeats must be >= 1, --warmup >= 0, --threads >= 1")
    return args


def _time_preset(name: str, args: argparse.Namespace) -> dict[str, Any]:
    from calibration.geometry import LineGeometry
    from sim.plant.plant import IdlePlc, VirtualPlant
    from sim.plant.scenario import load_scenario

    scen = load_scenario(name)
    per_frame: list[float] = []
    cpu_frame: list[float] = []
    fps: list[float] = []
    visible: list[int] = []
    init_s: list[float] = []
    for r in range(args.repeats):
        t_init = time.perf_counter()
        plant = VirtualPlant(LineGeometry(), scen, IdlePlc(), seed=args.seed + r)
        init_s.append(time.perf_counter() - t_init)
        for _ in range(args.warmup):
            plant.step()
        times = np.empty(args.frames)
        cpu = np.empty(args.frames)
        for i in range(args.frames):
            c0, t0 = time.thread_time(), time.perf_counter()
            plant.step()
            times[i] = time.perf_counter() - t0
            cpu[i] = time.thread_time() - c0
            visible.append(len(plant.visible_truth()))
        per_frame.extend(times.tolist())
        cpu_frame.extend(cpu.tolist())
        fps.append(args.frames / float(times.sum()))
    ms = np.asarray(per_frame) * 1e3
    cpu_ms = np.asarray(cpu_frame) * 1e3
    return {
        "preset": name,
        "frames_timed": int(ms.size),
        "repeats": args.repeats,
        "frame_ms_median": round(float(np.median(ms)), 3),
        "frame_ms_p99": round(float(np.percentile(ms, 99)), 3),
        "frame_ms_max": round(float(ms.max()), 3),
        "cpu_ms_median": round(float(np.median(cpu_ms)), 3),
        "cpu_ms_p99": round(float(np.percentile(cpu_ms, 99)), 3),
        "fps_median_of_repeats": round(float(np.median(fps)), 1),
        "fps_per_repeat": [round(f, 1) for f in fps],
        "visible_fragments_median": float(np.median(visible)),
        "plant_start_s_median": round(float(np.median(init_s)), 3),
        # one core's worth of CPU per frame under the 10 ms frame period, 99 % of frames
        "cpu_keeps_up_100fps": bool(np.percentile(cpu_ms, 99) < 10.0),
    }


def main(argv: list[str] | None = None) -> int:
    args = _parse(list(sys.argv[1:] if argv is None else argv))
    import cv2

    cv2.setNumThreads(args.threads)
    from sim.plant.scenario import preset_names

    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    unknown = sorted(set(presets) - set(preset_names()))
    if unknown:
        print(f"sortline bench render: unknown preset(s) {unknown}; have {preset_names()}",
              file=sys.stderr)  # fmt: skip
        return 2
    results = []
    for name in presets:
        res = _time_preset(name, args)
        results.append(res)
        print(
            f"{name:8s} median {res['frame_ms_median']:7.2f} ms  p99 {res['frame_ms_p99']:7.2f} ms"
            f"  (cpu {res['cpu_ms_median']:6.2f} / {res['cpu_ms_p99']:6.2f})"
            f"  {res['fps_median_of_repeats']:7.1f} fps  ({res['visible_fragments_median']:.0f}"
            " fragments in view)"
        )
    out = {
        "benchmark": "render",
        "command": "sortline bench render " + shlex.join(argv or sys.argv[1:]),
        "quick": args.quick,
        "opencv_threads": args.threads,
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "note": "stepped sim time, 1280x512 BGR; machine shared with other work (see loadavg)",
        "results": results,
    }
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
