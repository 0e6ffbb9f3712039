"""Crossing prediction per motion kind: the decision core against a 5-point line fit.

``sortline bench predict [--presets default,rolling] [--seconds S] [--seed N]
[--meas-sigma-mm 0.25] [--line-frames N] [--line-seed N] [--bounce-share X]
[--json OUT] [--quick]``
(``--quick``: under a minute; full run: a few minutes on a quiet 2-core machine)

The virtual plant (``sim.plant``, an idle PLC) runs each preset; every frame,
each fragment at least ``MIN_VISIBLE`` visible becomes a detection whose
centre is its true centroid (``FrameTruth.centroid_mm``) plus Gaussian noise
of ``--meas-sigma-mm`` per axis (a segmented centroid's error; 0.25 mm is
0.3 px of the default camera) and whose box has the outline's extents
around that centre, clipped to the view. Three controllers take the same
detections: ``sortline`` (``ControlParams()``: rest, constant velocity and
constant acceleration), ``sortline_2m`` (the two models of before the
acceleration model, ``TWO_MODEL_PARAMS``) and ``sortline_prev`` (the motion
model's defaults before issue 16, ``PREV_PARAMS``). ``cv_fit5``: a
least-squares constant-velocity line through the fragment's last 5 measured
centres, extrapolated to the valve line.

``oracle``: the ceiling (``bench/_predict_oracle.py``): the plant's own path
form per motion kind (rest; a straight slide braking to rest; for rollers a
circular arc run at a constant deceleration), fitted to the same detections
over the track's whole history, as the maximum a posteriori path under the
plant's spread of curvature and deceleration (``oracle_lsq``: by plain least
squares); it knows each fragment's family, not its parameters. A bouncer is
kicked after the view: the oracle predicts its path before the kick.
``noise_ceiling``: rollers' and sliders' true centres re-measured many times
at several noise levels, the oracle refitted: what share noise alone puts
out of reach, and what tolerance or noise a 0.97 hit rate would take.

For each fragment that crossed the valve line (its true centroid crossing,
``FragmentRecord.cross_tick`` and ``x_cross_mm``) and each horizon h (5 and
10 frames), the prediction is read at the last frame at least h frames
before the true crossing, from the track matched to the fragment in that
frame (nearest centre within 15 mm) and from the fit, on the same
fragments (both must exist). Errors: crossing tick of the centre (frames)
and x at the crossing (mm). A **hit** is |time error| <= half a frame and
|x error| <= 0.85 mm (the external check's 10 px of its camera; 1.1 px of
ours). For the decision core, the share of true crossings within +-1 and
+-2 of its own sigmas (``Tracker`` rows ``CROSS[:, 3]``, ``XC[:, 2]``).

The line part runs ``bench/line.py``'s whole line (rendered camera, vision,
the shipped model, virtual PLC over Modbus) on ``default`` and ``rolling``
with the decision core's defaults and with ``TWO_MODEL_PARAMS`` (before):
recovery, purity and valve-ms per ejected fragment; the closed loop
(``bench/air.py``: true outlines as detections) the same on its own seeds.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench import _predict_oracle as oracle
from bench._common import write_result

HORIZONS = (5, 10)
KINDS = ("lying", "rolling", "sliding", "bouncing")
HIT_X_MM = 0.85
HIT_T_FRAMES = 0.5
MIN_VISIBLE = 0.2
MATCH_MM = 15.0
TAIL_S = 0.5
# the motion model's defaults before issue 16: 2 mm measurement noise for both
# the gate and the filter, a 4 % velocity prior, fixed process noise
PREV_PARAMS: dict[str, Any] = {
    "gate_sigma_mm": 2.0,
    "meas_sigma_mm": 2.0,
    "meas_sigma_min_mm": 2.0,
    "meas_adapt": 0.0,
    "accel_q_mm2_tick3": 2e-10,
    "maneuver_q_mm2_tick3": 0.0,
    "init_speed_sigma_frac": 0.04,
}


# the two-model filter (rest, constant velocity) of before the acceleration model
TWO_MODEL_PARAMS: dict[str, Any] = {"accel_model": False, "move_stay": 0.97}


def two_model_params() -> Any:
    """``ControlParams`` with ``TWO_MODEL_PARAMS``."""
    import dataclasses

    from control.params import ControlParams

    return dataclasses.replace(ControlParams(), **TWO_MODEL_PARAMS)


def prev_params() -> Any:
    """``ControlParams`` with ``PREV_PARAMS`` (the rest model stays, but with
    the old noises it cannot tell rest from motion any better than before)."""
    import dataclasses

    from control.params import ControlParams

    return dataclasses.replace(ControlParams(), **PREV_PARAMS, accel_model=False)


def detections(truth: Any, geometry: Any, n_classes: int, sigma_mm: float, rng: Any) -> Any:
    """(Detections, fragment ids (D,), measured centres (D, 2) view mm) of one frame."""
    from bench.air import extents_detections

    cam = geometry.camera
    top, bottom = cam.view_y_range_mm
    rows, ext, centre = [], [], []
    for i in range(len(truth.fragment_id)):
        if truth.visible_frac[i] < MIN_VISIBLE:
            continue
        poly = truth.polygons_px[i]
        x, y = cam.px_to_mm(poly[:, 0], poly[:, 1])
        c = truth.centroid_mm[i] + rng.normal(0.0, sigma_mm, 2)
        hx, hy = 0.5 * (x.max() - x.min()), 0.5 * (y.max() - y.min())
        box = (c[0] - hx, c[0] + hx, max(c[1] - hy, top), min(c[1] + hy, bottom))
        if box[3] > box[2] + 0.5:
            rows.append(i)
            ext.append(box)
            centre.append(c)
    idx = np.asarray(rows, np.int64)
    e = np.asarray(ext, np.float64).reshape(-1, 4)
    dets = extents_detections(truth, idx, e, n_classes)
    return dets, truth.fragment_id[idx].astype(np.int64), np.asarray(centre).reshape(-1, 2)


def _match(
    centres: np.ndarray, frag_ids: np.ndarray, tracks: Any, travel_mm: float
) -> dict[int, int]:
    """fragment id -> id of the track whose centre is nearest its measured centre."""
    if len(frag_ids) == 0 or len(tracks) == 0:
        return {}
    dx = centres[:, 0:1] - tracks.centroid_mm[None, :, 0]
    dy = centres[:, 1:2] - (tracks.centroid_mm[None, :, 1] + travel_mm)
    dist = np.abs(dx) + np.abs(dy)
    best = dist.argmin(axis=1)
    ok = dist[np.arange(len(frag_ids)), best] < MATCH_MM
    return dict(zip(frag_ids[ok].tolist(), tracks.track_id[best[ok]].tolist(), strict=True))


def _predictions(ctl: Any, matched: dict[int, int], offset: float) -> dict[int, tuple]:
    """fragment id -> (centre tick, x mm, sigma tick, sigma x mm) of its track
    (plant ticks: ``offset`` = plant tick - controller tick)."""
    tab = ctl._tracker.table
    row = {int(t): i for i, t in enumerate(tab.TID[: tab.n].tolist())}
    out = {}
    for fid, tid in matched.items():
        i = row.get(tid)
        if i is not None:
            c = tab.CROSS[i]
            xc = tab.XC[i]  # before issue 16: no centre sigmas, the edges' stand in
            out[fid] = (0.5 * (c[0] + c[1]) + offset, xc[0], c[min(3, c.size - 1)], xc[-1])
    return out


def fit5(ticks: np.ndarray, xy: np.ndarray, y_line_mm: float) -> tuple[float, float]:
    """Least-squares constant-velocity line through the last 5 (tick, x, y)
    points, extrapolated to ``y_line_mm`` -> (tick, x mm)."""
    t = ticks[-5:] - ticks[-1]
    a = np.column_stack([np.ones_like(t), t])
    (x0, vx), (y0, vy) = np.linalg.lstsq(a, xy[-5:], rcond=None)[0].T
    d = (y_line_mm - y0) / max(vy, 1e-9)
    return float(ticks[-1] + d), float(x0 + vx * d)


def run_preset(
    preset: str,
    seconds: float,
    seed: int,
    sigma_mm: float,
    models: dict[str, Any],
    bounce_share: float | None = None,
    paths: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One plant run -> per fragment, horizon and model: errors, sigmas.
    ``bounce_share``: the preset with this share of bouncers instead of its
    own (a bench-only variant that puts bouncing pieces in numbers);
    ``paths``: gets per fragment and horizon its true centres, frame times
    and ticks up to the prediction (``noise_ceiling``)."""
    from control.controller import Controller
    from control.recipe import load_recipe
    from core.classes import DEFAULT_CLASSES
    from sim.plant.plant import IdlePlc, VirtualPlant
    from sim.plant.scenario import load_scenario
    from sortline.config import load_config

    geometry = load_config().geometry
    recipe = load_recipe("builtin:default", DEFAULT_CLASSES)
    scenario = load_scenario(preset)
    if bounce_share is not None:
        motion = scenario.motion.model_copy(update={"bounce_share": bounce_share})
        scenario = scenario.model_copy(update={"motion": motion})
    plant = VirtualPlant(geometry, scenario, IdlePlc(), seed=seed)
    ctls = {
        name: Controller(geometry, recipe, DEFAULT_CLASSES, params=p) for name, p in models.items()
    }
    rng = np.random.default_rng((seed, 16))
    seen: dict[int, list[tuple[float, float, float]]] = {}  # fid -> (tick, x, y) measured
    truth_of: dict[int, list[tuple[float, float, float]]] = {}  # fid -> (time s, true x, y)
    pred: dict[str, dict[int, list[tuple]]] = {name: {} for name in models}
    travel0: float | None = None
    frame_ticks: list[int] = []
    for _ in range(round((seconds + TAIL_S) * geometry.camera.fps)):
        plant.step()
        truth = plant.visible_truth()
        tick = plant.tick_unwrapped
        frame_ticks.append(tick)
        travel0 = truth.travel_mm if travel0 is None else travel0
        dets, fids, centres = detections(truth, geometry, len(DEFAULT_CLASSES), sigma_mm, rng)
        true_c = dict(zip(truth.fragment_id.tolist(), truth.centroid_mm.tolist(), strict=True))
        for fid, c in zip(fids.tolist(), centres, strict=True):
            seen.setdefault(fid, []).append((float(tick), float(c[0]), float(c[1])))
            truth_of.setdefault(fid, []).append((plant.now_s, *true_c[fid]))
        for name, ctl in ctls.items():
            tracks, _ = ctl.update(dets, plant.tick)
            matched = _match(centres, fids, tracks, truth.travel_mm - travel0)
            t_ctl = ctl._tracker.t_last
            offset = float(tick - (tick if t_ctl is None else t_ctl))
            for fid, p in _predictions(ctl, matched, offset).items():
                pred[name].setdefault(fid, []).append((float(tick), *p))
    per_frame = float(np.median(np.diff(frame_ticks)))
    y_line = geometry.valves.y_valve_mm
    mpt = geometry.belt.mm_per_tick
    out: list[dict[str, Any]] = []
    for rec in plant.fragments:
        if rec.cross_tick is None or rec.x_cross_mm is None or rec.fragment_id not in seen:
            continue
        meas = np.asarray(seen[rec.fragment_id])
        true_path = np.asarray(truth_of[rec.fragment_id])
        family = oracle.family_of(rec.motion, rec.rolls)
        prior = oracle.priors(rec.motion, rec.rolls, rec.kind)
        for h in HORIZONS:
            t_k = rec.cross_tick - h * per_frame
            k = int(np.searchsorted(meas[:, 0], t_k, side="right")) - 1
            if k < 4 or rec.cross_tick - meas[k, 0] >= (h + 1) * per_frame:
                continue
            rows = {name: [p for p in pred[name].get(rec.fragment_id, []) if p[0] == meas[k, 0]]
                    for name in models}  # fmt: skip
            if not all(rows.values()):
                continue
            # view y grows with belt travel, and ticks count travel: a line in ticks
            tf, xf = fit5(meas[: k + 1, 0], meas[: k + 1, 1:3], y_line)
            base = {"preset": preset, "fragment": rec.fragment_id, "motion": rec.motion,
                    "horizon_frames": h}  # fmt: skip
            t_err = (tf - rec.cross_tick) / per_frame
            out.append({**base, "model": "cv_fit5", "t_err_frames": t_err,
                        "x_err_mm": xf - rec.x_cross_mm})  # fmt: skip
            times = true_path[: k + 1, 0]
            for name, pr in (("oracle_lsq", None), ("oracle", prior)):
                to, xo = oracle.predict(meas[: k + 1, 0], times, meas[: k + 1, 1:3], family,
                                        y_line, mpt, sigma_mm, pr)  # fmt: skip
                out.append({**base, "model": name, "t_err_frames": (to - rec.cross_tick)
                            / per_frame, "x_err_mm": xo - rec.x_cross_mm})  # fmt: skip
            if paths is not None:
                paths.append({**base, "family": family, "prior": prior, "cross_tick":
                              rec.cross_tick, "x_cross_mm": rec.x_cross_mm, "ticks":
                              meas[: k + 1, 0], "times": times, "true_xy":
                              true_path[: k + 1, 1:3]})  # fmt: skip
            for name in models:
                _, tp, xp, st, sx = rows[name][0]
                t_err = (tp - rec.cross_tick) / per_frame
                out.append({**base, "model": name, "t_err_frames": t_err,
                            "x_err_mm": xp - rec.x_cross_mm, "sigma_t_frames": st / per_frame,
                            "sigma_x_mm": sx})  # fmt: skip
    return out


def _stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    te = np.abs([r["t_err_frames"] for r in rows])
    xe = np.abs([r["x_err_mm"] for r in rows])
    hit = (te <= HIT_T_FRAMES) & (xe <= HIT_X_MM)
    out: dict[str, Any] = {
        "n": len(rows),
        "hit_rate": round(float(hit.mean()), 4),
        "t_err_median_frames": round(float(np.median(te)), 4),
        "t_err_p95_frames": round(float(np.percentile(te, 95)), 4),
        "x_err_median_mm": round(float(np.median(xe)), 4),
        "x_err_p95_mm": round(float(np.percentile(xe, 95)), 4),
    }
    if "sigma_t_frames" in rows[0]:
        st = np.array([r["sigma_t_frames"] for r in rows])
        sx = np.array([r["sigma_x_mm"] for r in rows])
        out.update(
            t_within_1sigma=round(float((te <= st).mean()), 4),
            t_within_2sigma=round(float((te <= 2 * st).mean()), 4),
            x_within_1sigma=round(float((xe <= sx).mean()), 4),
            x_within_2sigma=round(float((xe <= 2 * sx).mean()), 4),
            sigma_t_median_frames=round(float(np.median(st)), 4),
            sigma_x_median_mm=round(float(np.median(sx)), 4),
        )
    return out


def table(samples: list[dict[str, Any]], models: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows per motion kind (and ``all``), horizon and model."""
    rows = []
    for motion in (*KINDS, "all"):
        for h in HORIZONS:
            for model in models:
                sel = [
                    s for s in samples
                    if s["model"] == model and s["horizon_frames"] == h
                    and (motion == "all" or s["motion"] == motion)
                ]  # fmt: skip
                if sel:
                    rows.append(
                        {"motion": motion, "horizon_frames": h, "model": model, **_stats(sel)}
                    )
    return rows


@contextlib.contextmanager
def _defaults(make: Callable[[], Any] | None) -> Iterator[None]:
    """Controllers built inside without parameters get ``make()``."""
    import control.controller as cc

    if make is None:
        yield
        return
    original = cc.ControlParams
    cc.ControlParams = make  # type: ignore[misc,assignment]
    try:
        yield
    finally:
        cc.ControlParams = original  # type: ignore[misc]


def line_rows(frames: int, seed: int) -> list[dict[str, Any]]:
    """The whole line (``bench/line.py``) on default and rolling, both models."""
    from bench.line import run_preset as line_preset

    out = []
    for preset in ("default", "rolling"):
        for model, make in (("sortline", None), ("sortline_2m", two_model_params)):
            with _defaults(make):
                row = line_preset(preset, frames, seed)
            keep = ("frames", "objects_targeted", "objects_ejected", "recovery", "purity",
                    "valve_ms_per_ejected", "deadline_misses", "missed", "late",
                    "wall_s")  # fmt: skip
            out.append({"preset": preset, "model": model, **{k: row.get(k) for k in keep}})
            print(f"line {preset:8s} {model:14s} recovery {row['recovery']}  purity "
                  f"{row['purity']}  valve-ms/ejected {row['valve_ms_per_ejected']}",
                  flush=True)  # fmt: skip
    return out


def closed_loop_rows(seconds: float, seeds: list[int]) -> list[dict[str, Any]]:
    """``bench/air.py``'s closed loop (plant, virtual PLC logic, detections from
    the true outlines, true class at p 0.9) on default and rolling, both
    models on the same seeds: recovery and valve-ms per ejected fragment."""
    from bench.air import run_once

    out = []
    for preset in ("default", "rolling"):
        for model, make in (("sortline", None), ("sortline_2m", two_model_params)):
            from control.params import ControlParams

            params = ControlParams() if make is None else make()
            runs = [run_once(preset, seconds, seed, params) for seed in seeds]
            frags = [f for r in runs for f in r["fragments"]]
            ejected = sum(r["ejected"] or 0 for r in runs)
            air = sum(r["air_valve_ms"] or 0.0 for r in runs)
            ok = sum(1 for f in frags if f[1] == "ok")
            row = {
                "preset": preset, "model": model, "seeds": seeds, "seconds": seconds,
                "targeted": len(frags), "recovery": round(ok / max(len(frags), 1), 4),
                "valve_ms_per_ejected": round(air / max(ejected, 1), 2),
            }  # fmt: skip
            out.append(row)
            print(f"loop {preset:8s} {model:14s} recovery {row['recovery']}  valve-ms/ejected "
                  f"{row['valve_ms_per_ejected']}  (targeted {len(frags)})",
                  flush=True)  # fmt: skip
    return out


def _noise_ceiling(paths: list[dict[str, Any]], quick: bool) -> list[dict[str, Any]]:
    """``_predict_oracle.noise_ceiling`` on rollers and sliders 10 frames ahead."""
    from sortline.config import load_config

    geometry = load_config().geometry
    sel = [p for p in paths if p["motion"] in ("rolling", "sliding") and p["horizon_frames"] == 10]
    sigmas = (0.25,) if quick else (0.0, 0.02, 0.05, 0.1, 0.25)
    per_frame = geometry.belt.speed_mm_s / geometry.camera.fps / geometry.belt.mm_per_tick
    rows = oracle.noise_ceiling(sel, sigmas, 3 if quick else 20, geometry.valves.y_valve_mm,
                                geometry.belt.mm_per_tick, per_frame, HIT_T_FRAMES,
                                HIT_X_MM)  # fmt: skip
    for r in rows:
        print(f"ceiling {r['motion']:8s} sigma {r['sigma_mm']:.2f} mm n={r['n']:4d} hit "
              f"{r['hit_rate']:.3f} unreachable {r['unreachable_share']:.3f} x for 0.97 "
              f"{r['x_mm_for_0_97']} mm", flush=True)  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    from control.params import ControlParams

    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="sortline bench predict", description=__doc__.split("\n")[0])
    ap.add_argument("--presets", default="default,rolling")
    ap.add_argument("--seconds", type=float, default=20.0, help="belt time per preset")
    ap.add_argument("--seed", type=int, default=21, help="plant seed")
    ap.add_argument("--meas-sigma-mm", type=float, default=0.25, help="centroid error per axis")
    ap.add_argument("--line-frames", type=int, default=1000, help="frames per line run (0: none)")
    ap.add_argument("--line-seed", type=int, default=None, help="line runs' seed (--seed)")
    ap.add_argument("--loop-seconds", type=float, default=6.0, help="closed loop, per seed")
    ap.add_argument("--loop-seeds", default="7,8", help="closed-loop plant seeds")
    ap.add_argument(
        "--bounce-share",
        type=float,
        default=None,
        help="run the presets with this share of bouncing fragments (a bench-only variant)",
    )
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="4 s per preset, 300 line frames")
    args = ap.parse_args(argv)
    if args.bounce_share is not None and not 0 <= args.bounce_share <= 1:
        ap.error(f"--bounce-share {args.bounce_share} must lie in [0, 1]")
    if args.quick:
        args.seconds, args.line_frames = 4.0, min(args.line_frames, 300)
        args.loop_seconds, args.loop_seeds = 1.5, "7"
    t0 = time.perf_counter()
    models = {
        "sortline": ControlParams(),
        "sortline_2m": two_model_params(),
        "sortline_prev": prev_params(),
    }
    samples: list[dict[str, Any]] = []
    paths: list[dict[str, Any]] = []
    for preset in [p for p in args.presets.split(",") if p]:
        samples += run_preset(
            preset, args.seconds, args.seed, args.meas_sigma_mm, models, args.bounce_share, paths
        )
    rows = table(samples, ("sortline", "cv_fit5", "oracle", "oracle_lsq"))
    prev = table(samples, ("sortline_prev",))
    two = table(samples, ("sortline_2m",))
    for r in rows + two:
        if r:
            extra = (f"  within 1/2 sigma t {r['t_within_1sigma']:.2f}/{r['t_within_2sigma']:.2f}"
                     f" x {r['x_within_1sigma']:.2f}/{r['x_within_2sigma']:.2f}"
                     if "t_within_1sigma" in r else "")  # fmt: skip
            print(f"{r['motion']:9s} h={r['horizon_frames']:2d} {r['model']:9s} n={r['n']:4d} "
                  f"hit {r['hit_rate']:.3f}  t p95 {r['t_err_p95_frames']:.3f} fr  "
                  f"x p50/p95 {r['x_err_median_mm']:.2f}/{r['x_err_p95_mm']:.2f} mm{extra}",
                  flush=True)  # fmt: skip
    ceiling = _noise_ceiling(paths, args.quick)
    seeds = [int(x) for x in args.loop_seeds.split(",") if x]
    loop = closed_loop_rows(args.loop_seconds, seeds) if args.loop_seconds > 0 else []
    line_seed = args.seed if args.line_seed is None else args.line_seed
    line = line_rows(args.line_frames, line_seed) if args.line_frames > 0 else []
    note = (
        f"virtual plant {args.presets}, {args.seconds:g} s each, seed {args.seed}"
        + ("" if args.bounce_share is None else f", bounce share {args.bounce_share:g}")
        + "; detections "
        f"from the true centroid + N(0, {args.meas_sigma_mm} mm) per axis, boxes of the true "
        f"extents; hit = |t err| <= {HIT_T_FRAMES} frame and |x err| <= {HIT_X_MM} mm at the "
        "valve line, read the last frame >= h frames before the true crossing; "
        "rows_two_models: the two-model filter of before the acceleration model "
        "(TWO_MODEL_PARAMS), rows_prev: the motion model's defaults before issue 16 "
        "(PREV_PARAMS), both on the same detections; oracle: the ceiling, the plant's own path "
        "form per motion kind (rest; straight braking slide; circular arc at constant "
        "deceleration for rollers; a bouncer's path before its kick, which comes after the "
        "view) fitted to the same detections over the track's whole history as the maximum a "
        "posteriori path under the plant's spread of curvature and deceleration, oracle_lsq "
        "the same by plain least squares (bench/_predict_oracle.py); noise_ceiling: rollers' "
        "and sliders' true centres re-measured with N(0, sigma) and the oracle refitted "
        "(expected hit rate, share hit in under half the draws = unreachable from noise "
        "alone, x tolerance a 0.97 hit rate would need); closed_loop: bench/air.py's loop (true "
        "outlines as detections); line: bench/line.py with the shipped model (vision), "
        f"sortline and sortline_2m, {args.line_frames} frames, seed {line_seed}"
    )
    out = write_result("predict", argv, note, rows, None)
    out["rows"] = rows
    out["rows_two_models"] = two
    out["rows_prev"] = prev
    out["noise_ceiling"] = ceiling
    out["closed_loop"] = loop
    out["line"] = line
    out["hit_definition"] = {"t_frames": HIT_T_FRAMES, "x_mm": HIT_X_MM}
    out["meas_sigma_mm"] = args.meas_sigma_mm
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    if args.json is not None:
        from core.files import atomic_write_json

        atomic_write_json(args.json, out)
    print(f"wall {out['wall_s']} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
