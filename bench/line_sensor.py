"""The whole line with the induction bar against the same line on the camera alone.

``sortline bench line_sensor [--presets default] [--frames N] [--seed N[,N...]]
[--sensor-model M[,M...]] [--anchor-views A[,A...]] [--segmenter S] [--seg-model M]
[--visions V[,V...]] [--json OUT] [--quick]``

Recipe "aluminium to the eject fraction" (aluminium, threshold 0.5; nothing
else ejected). Each preset runs twice on the same seed, stepped, over real
Modbus TCP on loopback (``bench/line.py``'s line): once as configured
(camera alone), once with ``[sensor] enabled``: the embedded plant's bar
streams UDP rows to the line's ``SensorReader`` and ``SensorFusion`` adds
their evidence in the controller (``sortline.sensor.wiring``, as ``sortline
run`` does). The plant is the same in both runs (the bar draws from its own
random streams). ``--sensor-model`` picks the induction model (default: the
line's; several, comma-separated: one fused run each, the before and after
of a model in one run); the bar is the model's (its frequencies, coil pitch and
radius, row spacing; as many coils as cover the belt). ``[sensor] stall_ms`` is
2,000 ms here (``--stall-ms``): the line is stepped, and on a loaded machine
its wall clock runs far from the belt's, so the 200 ms default called the
bar stalled (camera alone) for up to 94 of 2,000 frames with no packet lost.
Purity, recovery and co-ejection from the plant's ground truth, and what is
in the eject bin and what aluminium missed it (``eject_bin``: per class and
outcome, from the plant's per-fragment outcomes: ``ok``, ``co_ejected`` = blown
out with a neighbour's air, ``false_eject`` = a run meant for it, wrongly).

``--visions`` decomposes the camera-alone run by stage, as ``sortline bench
line --decompose`` does (``bench._line_truth``): ``truth-segments`` (the
plant's true segments and classes: what tracking, prediction and the air
lose), ``truth-classes`` (the line's own segmentation, true classes: what
segmentation adds to that), ``model`` (the line as it is; the default). A
truth stage runs on the camera alone (the bar would only add evidence to
classes that are already true) and is pooled under its own name.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import numpy as np

from bench._common import write_result

RECIPE = """name = "aluminium"
version = 1
description = "aluminium to the air-jet bin"
[fractions]
eject = 0
[classes.aluminium]
fraction = "eject"
threshold = 0.5
priority = 10
"""
VISIONS = ("model", "truth-classes", "truth-segments")
KEYS = ("frames", "objects_seen", "objects_targeted", "purity", "recovery", "co_ejection_rate",
        "deadline_misses", "latency_ms")  # fmt: skip


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="sortline bench line_sensor", description=__doc__.split("\n")[0]
    )
    p.add_argument("--presets", default="default")
    p.add_argument("--frames", type=int, default=1500, help="frames per run (100 per second)")
    p.add_argument("--seed", default="21", help="seed(s), comma-separated")
    p.add_argument(
        "--sensor-model", default="",
        help="induction model(s), comma-separated: one fused run each (default: the line's)",
    )  # fmt: skip
    p.add_argument(
        "--shared-damping", type=float, default=None,
        help="[sensor] shared_damping (default: the line's)",
    )  # fmt: skip
    p.add_argument(
        "--stall-ms", type=float, default=2000.0,
        help="[sensor] stall_ms for the run: the line is stepped, its wall clock is not the "
        "belt's, and a loaded machine makes the 200 ms default a false stall",
    )  # fmt: skip
    p.add_argument(
        "--anchor-views", default="",
        help="[sensor] anchor_views, comma-separated: one fused run each per model "
        "(default: the line's; 0: back-projected every frame)",
    )  # fmt: skip
    p.add_argument(
        "--segmenter", default=None, choices=("classic", "learned"),
        help="[vision] segmenter for every run (default: the line's)",
    )  # fmt: skip
    p.add_argument(
        "--seg-model", default=None,
        help='[vision] segmenter_model for every run (with --segmenter learned)',
    )  # fmt: skip
    p.add_argument(
        "--visions", default="model",
        help="comma list of camera-alone stages: model (the line as it is), truth-classes "
        "(its segmentation, true classes), truth-segments (true segments and classes)",
    )  # fmt: skip
    p.add_argument("--camera", action=argparse.BooleanOptionalAction, default=True,
                   help="also run the line on the camera alone (default: yes)")  # fmt: skip
    p.add_argument("--json", type=Path)
    p.add_argument("--quick", action="store_true", help="150 frames: proves it runs")
    args = p.parse_args(argv)
    for v in args.visions.split(","):
        if v not in VISIONS:
            p.error(f"--visions: {v!r} is not one of {', '.join(VISIONS)}")
    return args


def _nearest(o: dict[str, Any], crossed: list[dict[str, Any]], mm_per_tick: float) -> Any:
    """The fragment nearest ``o`` where both crossed the valve line: its class
    and the gap between them, mm (centre distance less both half sizes; < 0:
    touching or overlapping), None when alone."""
    best: tuple[float, str] | None = None
    for n in crossed:
        if n is o:
            continue
        du = (float(n["cross_tick"]) - float(o["cross_tick"])) * mm_per_tick
        dx = float(n["x_cross_mm"]) - float(o["x_cross_mm"])
        gap = float(np.hypot(du, dx)) - 0.5 * (float(n["size_mm"]) + float(o["size_mm"]))
        if best is None or gap < best[0]:
            best = (gap, str(n["class_name"]))
    return None if best is None else {"class": best[1], "gap_mm": round(best[0], 1)}


def _bins(outcomes: list[dict[str, Any]], mm_per_tick: float) -> dict[str, Any]:
    """What landed in the eject bin (class -> outcome -> count), what became of
    the aluminium (outcome -> count), and each wrong one (a non-aluminium in
    the bin, an aluminium missed) with its motion and nearest neighbour, from
    the plant's per-fragment outcomes."""
    eject: dict[str, dict[str, int]] = {}
    alu: dict[str, int] = {}
    wrong: list[dict[str, Any]] = []
    crossed = [o for o in outcomes if o["outcome"] != "in_flight" and o["cross_tick"] is not None]
    for o in crossed:
        in_bin = o.get("bin") == "eject"
        if in_bin:
            per = eject.setdefault(o["class_name"], {})
            per[o["outcome"]] = per.get(o["outcome"], 0) + 1
        if o["class_name"] == "aluminium":
            key = o["outcome"] if in_bin or o["outcome"] != "ok" else "passed"
            alu[key] = alu.get(key, 0) + 1
        if (in_bin and o["class_name"] != "aluminium") or (
            o["class_name"] == "aluminium" and not in_bin
        ):
            wrong.append({
                "class": o["class_name"], "outcome": o["outcome"], "motion": o["motion"],
                "size_mm": round(float(o["size_mm"]), 1), "tracks": o["tracks"],
                "nearest": _nearest(o, crossed, mm_per_tick),
            })  # fmt: skip
    return {"eject_bin": eject, "aluminium": alu, "wrong": wrong}


def pooled(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per configuration (camera alone, or the sensor model) over every seed and
    preset: aluminium in the eject bin over everything in it (purity) and over
    every aluminium that crossed (recovery), from the rows' bins."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        s = r["sensor"]
        vision = r.get("vision", "model")
        key = f"{s['model']} anchor {s['anchor_views']}" if isinstance(s, dict) else "camera"
        key = key if vision == "model" else f"camera, {vision}"
        o = out.setdefault(key, {"config": key, "runs": 0, "in_bin": 0, "al_in_bin": 0, "al": 0})
        o["runs"] += 1
        o["in_bin"] += sum(sum(v.values()) for v in r.get("eject_bin", {}).values())
        o["al_in_bin"] += sum(r.get("eject_bin", {}).get("aluminium", {}).values())
        o["al"] += sum(r.get("aluminium", {}).values())
    for o in out.values():
        o["purity"] = round(o["al_in_bin"] / max(o["in_bin"], 1), 4)
        o["recovery"] = round(o["al_in_bin"] / max(o["al"], 1), 4)
    return list(out.values())


def run(
    preset: str,
    frames: int,
    seed: int,
    fused: bool,
    tmp: Path,
    model: str = "",
    damping: float | None = None,
    stall_ms: float = 2000.0,
    anchor_views: int | None = None,
    segmenter: str | None = None,
    seg_model: str | None = None,
    vision: str = "model",
) -> dict[str, Any]:
    """One stepped run; ``vision``: "model" or a truth stage (module doc, camera alone)."""
    from sortline.config import load_config
    from sortline.runtime import SortingLine

    recipe = tmp / "aluminium.toml"
    recipe.write_text(RECIPE, encoding="utf-8")
    cfg = load_config()
    update: dict[str, Any] = {"control": cfg.control.model_copy(update={"recipe": str(recipe)})}
    v_update = {"segmenter": segmenter} if segmenter else {}
    v_update.update({"segmenter_model": seg_model} if seg_model else {})
    if v_update:
        update["vision"] = cfg.vision.model_copy(update=v_update)
    if fused:  # the line as configured with [sensor] enabled (a free UDP port)
        s_update: dict[str, Any] = {"enabled": True, "port": 0, "stall_ms": stall_ms}
        if model:
            from models.induction import InductionModel, resolve
            from sortline.sensor.cli import model_bar

            m = InductionModel.load(resolve(model))
            bar = model_bar(m.frequencies_hz, m.bar_mm)  # the model's bar, as it was fitted on
            s_update.update(
                model=model, frequencies_hz=list(bar.frequencies_hz), pitch_mm=bar.pitch_mm,
                coil_radius_mm=bar.coil_radius_mm, channels=bar.channels,
                every_ticks=bar.every_ticks,
            )  # fmt: skip
        if damping is not None:
            s_update["shared_damping"] = damping
        if anchor_views is not None:
            s_update["anchor_views"] = anchor_views
        update["sensor"] = cfg.sensor.model_copy(update=s_update)
    cfg = cfg.model_copy(update=update)
    line = SortingLine(cfg, stepped=True, plc_port=0, scenario=preset, seed=seed, records=False)
    link = line.parts.sensor
    tap = None
    if vision != "model":
        from bench._line_truth import TruthTap

        assert line.parts.plant is not None and not fused, "a truth stage: plant, camera alone"
        tap = TruthTap(line.parts.plant.plant)
    t0 = time.perf_counter()
    try:
        line.start()
        if tap is not None:
            from bench._line_truth import Mode, TruthVision

            mode: Mode = "classes" if vision == "truth-classes" else "segments"
            n_classes = len(line.parts.class_names)
            stage = TruthVision(line.loop.vision, tap, line.parts.geometry, n_classes, mode)
            line.loop.vision = cast(Any, stage)  # the vision stage only: same process() call
        line.run_frames(frames)
        report = line.report()
        runner = line.parts.plant
        bins = (
            _bins(runner.plant.outcomes({"aluminium": "eject"}), cfg.belt.mm_per_tick)
            if runner is not None
            else {}
        )
    finally:
        line.stop()
    row: dict[str, Any] = {"preset": preset, "seed": seed, "sensor": fused, "vision": vision}
    row["segmenter"] = cfg.vision.segmenter
    row["segmenter_model"] = (
        cfg.vision.segmenter_model if cfg.vision.segmenter == "learned" else None
    )
    row.update({k: report[k] for k in KEYS})
    row.update(bins)
    row["wall_s"] = round(time.perf_counter() - t0, 1)
    if link is not None:
        row["track_updates_fused"] = link.fusion.fused_rows
        row["frames_sensor_stalled"] = link.fusion.skipped_stalled
        row["sensor"] = {
            "fused": True, "model": link.fusion.model.version,
            "frequencies_hz": list(link.fusion.model.frequencies_hz),
            "shared_damping": link.fusion.shared_damping, "stall_ms": stall_ms,
            "anchor_views": link.fusion.anchor_views,
            **link.status(),
        }  # fmt: skip
    return row


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv if argv is not None else [])
    frames = 150 if args.quick else args.frames
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in (int(s) for s in str(args.seed).split(",")):
            for preset in args.presets.split(","):
                models = str(args.sensor_model).split(",")
                given = [int(a) for a in str(args.anchor_views).split(",") if a != ""]
                anchors: list[int | None] = list(given) or [None]
                visions = args.visions.split(",")
                cams = [(False, "", None, v) for v in visions if v != "model" or args.camera]
                runs = cams + [(True, m, a, "model") for m in models for a in anchors]
                for fused, model, anchor, vision in runs:
                    row = run(
                        preset, frames, seed, fused, Path(tmp), model, args.shared_damping,
                        args.stall_ms, anchor, args.segmenter, args.seg_model, vision,
                    )  # fmt: skip
                    print({k: row.get(k) for k in
                           ("preset", "seed", "vision", "purity", "recovery", "objects_targeted",
                            "eject_bin", "aluminium")})  # fmt: skip
                    rows.append(row)
    for summary in pooled(rows):
        print(summary)
        rows.append({"pooled": True, **summary})
    note = (
        "recipe: aluminium to eject; each preset twice on one seed, stepped, camera alone "
        "then camera + induction bar (UDP rows, SensorFusion); scores from the plant's truth"
    )
    write_result("line_sensor", argv, note, rows, args.json)
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
