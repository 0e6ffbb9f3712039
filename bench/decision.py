"""Decision-core speed: per-frame time of predict, associate, update, crossing, schedule.

``sortline bench decision [--json OUT] [--quick] [--sizes 100,1000,...]
[--frames F] [--budget-s S] [--repeats R]``

Identical synthetic detection streams (``control.synthetic``: boxes riding the
belt, class probabilities per box) are fed to three implementations, one
frame at a time, on one thread. N is the number of LIVE tracks (issue 7): a
track lives from the moment its fragment enters the camera view until its
trailing edge is ``pass_mm`` past the valve line, so the view holds fewer
fragments than N (``n_in_view`` = N x view length / live span, about 0.72 N
on the default line; ``live_span_mm``). The density stays 2,500 fragments
per square metre (10-16 mm boxes about 20 mm apart); belt, camera view and
valve bar are widened with N, so the figures show how cost grows with N
alone. Each row reports the live tracks it measured (``live_tracks_mean``):

- ``sortline``: ``control.Controller.update`` (Numba kernels), returning
  ``Tracks`` and ``Pulses`` batches: the whole per-frame cost;
- ``sortline_cut`` (on request, ``--impls``): the same with the earlier rule
  of aiming around neighbours (``ControlParams(aim_rule="cut")``);
- ``sortline_strict`` (on request): the search rule without its fallback to
  thinner margins (``aim_fallback_margin = aim_margin``, the rule before
  session 10);
- ``scipy_lsa``: the same pipeline with dense global
  ``scipy.optimize.linear_sum_assignment`` (``bench/_decision_ref.py``);
- ``bytetrack``: supervision 0.30.9 ``ByteTrack`` on the same boxes
  (association only).

Frames before the belt is in steady state are not timed. Slow rows stop after
``--budget-s`` seconds (at least 5 timed frames); rows whose dense matrix would
not fit are skipped with the reason. Reports per row p50/p99 ms per frame of
wall time (``p50_ms``, ``p99_ms``) and of the thread's CPU time
(``cpu_p50_ms``, ``cpu_p99_ms``: the compute cost without the time the thread
waited for a core on a shared machine), medians over ``--repeats``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import emit_json
from calibration.geometry import LineGeometry
from core.classes import DEFAULT_CLASSES
from core.types import Detections

WARMUP_FRAMES = 24  # the first objects reach the valves and leave
FRAME_TICKS = 250
TARGET_P99_MS_1000 = 0.5
DENSE_LIMIT = 30e6  # matrix entries the SciPy row may build (about 240 MB)


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sortline bench decision", description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="100,1000,3000,10000", help="live tracks N, comma list")
    p.add_argument("--frames", type=int, default=200, help="timed frames per row")
    p.add_argument("--budget-s", type=float, default=20.0, help="time limit per slow row")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--impls", default="sortline,scipy_lsa,bytetrack")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, default=None, help="write results here")
    p.add_argument("--quick", action="store_true", help="tiny run that proves the script works")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.frames, args.budget_s, args.repeats = "60", 8, 5.0, 1
    args.size_list = [int(s) for s in args.sizes.split(",") if s.strip()]
    if not args.size_list or min(args.size_list) < 1 or args.frames < 1 or args.repeats < 1:
        p.error("--sizes must be positive integers; --frames and --repeats >= 1")
    return args


DENSITY_PER_M2 = 2500.0  # 1,000 fragments in the default 1000 x 400 mm view
MEAN_BOX_MM = 13.0  # mean box side of the stream at this density (10-16 mm)


def live_span_mm(geometry: LineGeometry) -> float:
    """Belt length over which a fragment has a live track, mm: from entering the
    view (leading edge at its top) until the trailing edge is ``pass_mm`` past
    the valve line (``ControlParams.pass_mm``; tentative tracks end earlier, at
    the bottom of the view)."""
    from control.params import ControlParams

    top, _ = geometry.camera.view_y_range_mm
    return geometry.valves.y_valve_mm + ControlParams().pass_mm - top + MEAN_BOX_MM


def in_view_for(n_live: int) -> int:
    """Fragments in the camera view that hold ``n_live`` live tracks at the
    bench's density (the view and the live span scale together with width)."""
    base = LineGeometry()
    return max(round(n_live * base.camera.view_length_mm / live_span_mm(base)), 1)


def scaled_geometry(n_in_view: int) -> LineGeometry:
    """The default line widened (belt, camera, valve bar) so that ``n_in_view``
    fragments keep the same density: cost is then measured against N alone."""
    base = LineGeometry()
    width = 1e6 * n_in_view / DENSITY_PER_M2 / base.camera.view_length_mm
    cam = base.camera.model_copy(
        update={"view_width_mm": width, "width_px": max(round(width / base.camera.mm_per_px_y), 8)}
    )
    n_valves = max(round(width / base.valves.pitch_mm), 1)
    valves = base.valves.model_copy(update={"n_valves": n_valves})
    belt = base.belt.model_copy(update={"width_mm": width})
    return LineGeometry(belt=belt, camera=cam, valves=valves)


def make_stream(n_in_view: int, n_frames: int, seed: int) -> tuple[LineGeometry, list[Detections]]:
    """Frames of a belt carrying ``n_in_view`` boxes per camera view on average
    (``in_view_for(N)`` for N live tracks)."""
    from control.synthetic import SyntheticCamera, random_objects

    geo = scaled_geometry(n_in_view)
    top, bottom = geo.camera.view_y_range_mm
    travel_mm = n_frames * FRAME_TICKS * geo.belt.mm_per_tick
    span = (top - travel_mm - 50.0, bottom)
    n_obj = int(n_in_view * (span[1] - span[0]) / (bottom - top))
    cell = float(np.sqrt(geo.camera.view_width_mm * (bottom - top) / n_in_view))
    size = (min(10.0, 0.5 * cell), max(min(60.0, 0.8 * cell), 2.0))
    obj = random_objects(geo, n_obj, span, len(DEFAULT_CLASSES), seed, size_mm=size, min_gap_mm=1.0)
    cam = SyntheticCamera(geo, obj, len(DEFAULT_CLASSES), p_true=0.8, noise_mm=0.3, seed=seed)
    return geo, [cam.frame(f)[0] for f in range(n_frames)]


def _make(impl: str, geo: LineGeometry) -> Any:
    if impl in ("sortline", "sortline_cut", "sortline_strict"):
        from control.controller import Controller
        from control.params import ControlParams
        from control.recipe import load_recipe

        params = {
            "sortline_cut": ControlParams(aim_rule="cut"),
            "sortline_strict": ControlParams(aim_fallback_margin=ControlParams().aim_margin),
        }.get(impl)
        recipe = load_recipe("builtin:default", DEFAULT_CLASSES)
        ctl = Controller(geo, recipe, DEFAULT_CLASSES, params=params)

        class _Core:
            def update(self, dets: Detections) -> int:
                tracks, _ = ctl.update(dets)
                return len(tracks)

        return _Core()
    if impl == "scipy_lsa":
        from bench._decision_ref import ScipyReference

        return ScipyReference(geo, len(DEFAULT_CLASSES))
    if impl == "bytetrack":
        from bench._decision_ref import ByteTrackPeer

        return ByteTrackPeer(geo.camera.fps)
    raise ValueError(f"unknown implementation {impl!r}")


def _skip_reason(impl: str, n: int) -> str | None:
    if impl == "scipy_lsa" and (1.3 * n) * n > DENSE_LIMIT:
        return f"dense {int(1.3 * n)}x{n} cost matrix exceeds {DENSE_LIMIT:.0e} entries"
    if impl == "bytetrack":
        try:
            import supervision  # noqa: F401
        except ImportError:
            return "supervision (bench extra) not installed"
        if n > 3000:
            return "seconds per frame already at 3,000 boxes; not run at 10,000"
    return None


def run_row(
    impl: str, geo: LineGeometry, frames: list[Detections], n_timed: int, budget_s: float
) -> dict[str, Any]:
    """One repeat: warm up, then time ``update`` per frame."""
    core = _make(impl, geo)
    for dets in frames[:WARMUP_FRAMES]:
        core.update(dets)
    times: list[float] = []
    cpu: list[float] = []
    live: list[int] = []
    t_start = time.perf_counter()
    for dets in frames[WARMUP_FRAMES : WARMUP_FRAMES + n_timed]:
        c0 = time.thread_time()
        t0 = time.perf_counter()
        live.append(core.update(dets))
        times.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
        if len(times) >= 5 and time.perf_counter() - t_start > budget_s:
            break
    ms = np.array(times) * 1e3
    cpu_ms = np.array(cpu) * 1e3
    return {
        "p50_ms": float(np.median(ms)),
        "p99_ms": float(np.percentile(ms, 99)),
        "cpu_p50_ms": float(np.median(cpu_ms)),
        "cpu_p99_ms": float(np.percentile(cpu_ms, 99)),
        "frames": len(ms),
        "live_tracks_mean": float(np.mean(live)),
    }


def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    def row(impl: str, n: int) -> dict[str, Any] | None:
        return next(
            (r for r in results if r["impl"] == impl and r["n_tracks"] == n and "p50_ms" in r), None
        )

    out: dict[str, Any] = {"target_p99_ms_at_1000": TARGET_P99_MS_1000}
    ours, ref = row("sortline", 1000), row("scipy_lsa", 1000)
    if ours:
        out["p99_ms_at_1000"] = ours["p99_ms"]
        out["cpu_p99_ms_at_1000"] = ours["cpu_p99_ms"]
        out["meets_p99_target_wall"] = ours["p99_ms"] <= TARGET_P99_MS_1000
        out["meets_p99_target_cpu"] = ours["cpu_p99_ms"] <= TARGET_P99_MS_1000
    if ours and ref:
        out["speedup_vs_scipy_at_1000_p50"] = ref["p50_ms"] / ours["p50_ms"]
    mine = sorted(
        (r for r in results if r["impl"] == "sortline" and "p50_ms" in r),
        key=lambda r: r["n_tracks"],
    )
    if len(mine) >= 2:
        out["sortline_us_per_track_p50"] = {
            str(r["n_tracks"]): 1e3 * r["p50_ms"] / r["live_tracks_mean"] for r in mine
        }
        out["sortline_cpu_us_per_track_p50"] = {
            str(r["n_tracks"]): 1e3 * r["cpu_p50_ms"] / r["live_tracks_mean"] for r in mine
        }
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parse(argv)
    load_at_start = list(os.getloadavg())
    impls = [s.strip() for s in args.impls.split(",") if s.strip()]
    results: list[dict[str, Any]] = []
    for n in args.size_list:
        n_timed = min(args.frames, max(60, 300_000 // n))  # bounded memory at large N
        n_view = in_view_for(n)
        geo, frames = make_stream(n_view, WARMUP_FRAMES + n_timed, args.seed)
        for impl in impls:
            reason = _skip_reason(impl, n)
            if reason:
                results.append(
                    {"impl": impl, "n_tracks": n, "n_in_view": n_view, "skipped": reason}
                )
                print(f"{impl:10s} N={n:6d}  skipped: {reason}", flush=True)
                continue
            reps = [run_row(impl, geo, frames, n_timed, args.budget_s) for _ in range(args.repeats)]
            row = {
                "impl": impl,
                "n_tracks": n,
                "n_in_view": n_view,
                "p50_ms": float(np.median([r["p50_ms"] for r in reps])),
                "p99_ms": float(np.median([r["p99_ms"] for r in reps])),
                "cpu_p50_ms": float(np.median([r["cpu_p50_ms"] for r in reps])),
                "cpu_p99_ms": float(np.median([r["cpu_p99_ms"] for r in reps])),
                "frames_per_repeat": int(np.median([r["frames"] for r in reps])),
                "repeats": len(reps),
                "live_tracks_mean": float(np.median([r["live_tracks_mean"] for r in reps])),
            }
            results.append(row)
            print(f"{impl:10s} N={n:6d}  p50 {row['p50_ms']:9.3f} ms  p99 {row['p99_ms']:9.3f} ms  "
                  f"cpu p50 {row['cpu_p50_ms']:9.3f} p99 {row['cpu_p99_ms']:9.3f}  "
                  f"live {row['live_tracks_mean']:.0f} (in view {n_view})", flush=True)  # fmt: skip
    out = {
        "command": "sortline bench decision " + " ".join(argv),
        "results": results,
        "summary": _summary(results),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_at_start": load_at_start,
            "loadavg_at_end": list(os.getloadavg()),
            "note": "one thread; the load averages say whether other jobs shared the machine",
        },
    }
    emit_json(out, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
