"""The whole line on the virtual plant: purity, recovery, co-ejection,
deadline misses and per-frame latency, from the plant's ground truth.
Stepped (the plant waits for the controller and the PLC's acknowledgement
every frame), over real Modbus TCP on loopback.

    sortline bench line [--quick] --json bench/results/line_grid.json \
                        --png bench/results/line_grid.png
    sortline bench line --presets easy,default,crowded,fast,dirty --json bench/results/line.json
    sortline bench line --presets default,crowded --prefer recovery,balanced,purity
    sortline bench line --presets crowded,shred --segmenter classic,learned --decompose

Without ``--presets`` (``--prefer``, ``--decompose``, ``--line-config``) it is
the line's report card: a grid of belt speeds (1.5, 2.5, 3.5 m/s), feeds
(``default``, ``crowded``, ``dirty`` at their own; the 25 mm ``shred`` at
250 to 2,000 fragments/s) and valve pitches (12.5 mm; 6.25 mm, the fine bar),
each cell with fragments/s seen, frames a camera at the line's rate would
have lost, frame latency and the PLC's acknowledgement latency, CPU per
stage, deadline misses, purity, recovery, co-ejection and air per ejected
fragment (``bench/_line_grid.py``); ``--quick``: ``default`` at its own feed
and ``shred`` at 500/s, both at 2.5 m/s. The JSON holds ``cells``.

``--prefer`` runs every preset once per value of the default recipe's
``prefer`` (the purity/recovery trade-off), side by side on the same scenes;
``recovery`` is the rule from before aiming existed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, cast

from bench._common import write_result
from bench._line_grid import Cell, Probe, cell_scenario, full_cells, quick_cells
from control.controller import AIM_RULES

PRESETS = ("easy", "default", "crowded", "fast", "dirty")
KEYS = (
    "frames",
    "frames_dropped",
    "objects_seen",
    "objects_targeted",
    "objects_ejected",
    "purity",
    "recovery",
    "co_ejection_rate",
    "deadline_misses",
    "latency_ms",
)


def _config(
    prefer: str | None,
    workdir: Path,
    line_config: str | None = None,
    segmenter: str | None = None,
    seg_model: str | None = None,
) -> Any:
    """The default line config (overlaid with ``line_config``), its recipe's
    ``prefer``, its ``[vision] segmenter`` and ``segmenter_model`` set when given."""
    from importlib import resources

    from sortline.config import load_config

    cfg = load_config(line_config)
    if segmenter is not None:
        vision = cfg.vision.model_copy(update={"segmenter": segmenter})
        cfg = cfg.model_copy(update={"vision": vision})
    if seg_model is not None:
        vision = cfg.vision.model_copy(update={"segmenter_model": seg_model})
        cfg = cfg.model_copy(update={"vision": vision})
    if prefer is None:
        return cfg
    text = resources.files("control.recipes").joinpath("default.toml").read_text("utf-8")
    lines = [ln for ln in text.splitlines() if not ln.startswith("prefer")]
    at = next(k for k, ln in enumerate(lines) if ln.startswith("co_ejection_tolerance"))
    lines.insert(at + 1, f'prefer = "{prefer}"')
    path = workdir / f"default-{prefer}.toml"
    path.write_text("\n".join(lines) + "\n")
    return cfg.model_copy(update={"control": cfg.control.model_copy(update={"recipe": str(path)})})


def run_preset(
    preset: str,
    frames: int,
    seed: int,
    prefer: str | None = None,
    line_config: str | None = None,
    vision: str = "model",
    cell: Cell | None = None,
    baseline: bool = False,
    segmenter: str | None = None,
    aim_rule: str | None = None,
    seg_model: str | None = None,
) -> dict[str, Any]:
    """One stepped run. ``vision``: "model" (the line as it is), or ground truth
    in place of a stage (``bench._line_truth``): "truth-classes" (the line's
    segmentation, true classes), "truth-segments" (true segments and classes).
    ``cell``: the preset at the cell's speed and feed, with a ``Probe``.
    ``baseline``: the line's vision as before issue 15's second round (every
    view classified, no merge flags), for side-by-side runs. ``segmenter``: the
    ``[vision] segmenter`` ("classic", "learned"; None: the config's);
    ``seg_model``: its ``segmenter_model`` (e.g. "builtin:seg-v2"; None: the config's).
    ``aim_rule``: the decision core's rule for aiming around neighbours
    ("search", "cut"; None: its default)."""
    import tempfile

    from sortline.runtime import SortingLine

    probe = None if cell is None else Probe()
    with tempfile.TemporaryDirectory() as tmp:
        scenario = preset if cell is None else cell_scenario(cell, Path(tmp))
        line = SortingLine(
            _config(prefer, Path(tmp), line_config, segmenter, seg_model),
            stepped=True, plc_port=0, scenario=scenario, seed=seed, records=False,
        )  # fmt: skip
        if probe is not None:
            probe.attach(line)
        if aim_rule is not None:
            line.parts.controller.set_aim_rule(aim_rule)
        if baseline:
            _baseline_vision(line.loop.vision)
        tap = None
        if vision != "model":
            from bench._line_truth import TruthTap

            assert line.parts.plant is not None, "ground truth needs the embedded plant"
            tap = TruthTap(line.parts.plant.plant)
        line.start()
        if tap is not None:
            from bench._line_truth import MergeModel, Mode, TruthVision

            merge = MergeModel.parse(vision) if vision.startswith("truth-merged") else None
            mode: Mode = (
                "merged" if merge else "classes" if vision == "truth-classes" else "segments"
            )
            n_classes = len(line.parts.class_names)
            stage = TruthVision(line.loop.vision, tap, line.parts.geometry, n_classes, mode, merge)
            line.loop.vision = cast(Any, stage)  # the vision stage only: same process() call
        t0 = time.perf_counter()
        try:
            line.run_frames(frames)
            report = line.report()
            period_s = _frame_period_s(line, cell)
            probed = None if probe is None else probe.figures(line, 1.0 / period_s)
        finally:
            line.stop()
    row: dict[str, Any] = {
        "preset": preset, "seed": seed, "prefer": prefer or "recipe", "vision": vision,
        "vision_version": "every view, no merge flags" if baseline else "tracks, merge flags",
        "line_config": line_config or "default",
        "aim_rule": aim_rule or line.parts.controller.params.aim_rule,
        "segmenter": line.cfg.vision.segmenter,
        "segmenter_model": (line.cfg.vision.segmenter_model
                            if line.cfg.vision.segmenter == "learned" else None),
        "valve_pitch_mm": line.parts.geometry.valves.pitch_mm,
    }  # fmt: skip
    row.update({k: report[k] for k in KEYS})
    score = report["score"] or {}
    row["missed"] = score.get("missed")
    row["late"] = score.get("late")
    row["valve_ms_per_ejected"] = score.get("valve_ms_per_ejected")
    row["targets_aimed"] = report["controller"].get("targets_aimed")
    # a loaded machine can starve the stepped loop's heartbeat: the PLC's watchdog then
    # de-energises the valves and targets pass unfired, whatever vision did
    row["plc_watchdog_trips"] = (
        (report.get("plc") or {}).get("plc_counters", {}).get("watchdog_trips")
    )
    vision_stage: Any = line.loop.vision
    times = getattr(vision_stage, "inner", vision_stage).times  # under truth: the line's own
    row["crops_per_frame"] = round(times.crops / max(times.frames, 1), 1)
    row["segments_per_frame"] = round(times.fragments / max(times.frames, 1), 1)
    row["merged_per_frame"] = round(times.merged / max(times.frames, 1), 2)
    tally = getattr(vision_stage, "tally", None)
    if vision.startswith("truth-merged") and tally:
        row["truth_touching_merged"] = round(
            tally["touching_merged"] / max(tally["touching"], 1), 3
        )
    row["wall_s"] = round(time.perf_counter() - t0, 2)
    if cell is not None and probed is not None:
        sim_s = report["frames"] * period_s
        row.update(
            preset=Path(cell.preset).stem,
            speed_m_s=cell.speed_m_s,
            feed_obj_s=cell.feed_obj_s if cell.feed_obj_s is not None else _own_feed(cell.preset),
            fragments_per_s=round(report["objects_seen"] / sim_s, 1) if sim_s else None,
            **probed,
        )
    return row


def _baseline_vision(pipeline: Any) -> None:
    """Every view classified, no merge flags (and no colour split, off by default
    too): the line's vision before issue 15's track classification and merge work."""
    import dataclasses

    from vision.track_crops import CropPolicy

    pipeline.set_crop_policy(CropPolicy(mode="every"))
    pipeline.set_merge_params(None)  # a method: the bench's timing wrapper passes it on
    seg = pipeline.segmenter
    seg.params = dataclasses.replace(seg.params, split_colour_diff=0.0)


def _runs(visions: list[str], segmenters: list[Any]) -> list[tuple[str, Any]]:
    """(vision, segmenter) pairs; true segments (merged or not) do not depend on
    the segmenter: once."""
    out: list[tuple[str, Any]] = []
    for vision in visions:
        for k, seg in enumerate(segmenters):
            if not vision.startswith(("truth-segments", "truth-merged")) or k == 0:
                out.append((vision, seg))
    return out


def _frame_period_s(line: Any, cell: Cell | None) -> float:
    """Belt time between frames: the PLC's trigger distance over the belt speed
    (trigger time base), else the camera's frame period."""
    cam, geo = line.cfg.camera, line.parts.geometry
    if cam.timebase != "trigger" or cell is None:
        return 1.0 / geo.camera.fps
    return cam.trigger_every_ticks * geo.belt.mm_per_tick / (cell.speed_m_s * 1000.0)


def _own_feed(preset: str) -> float:
    from sim.plant.scenario import load_scenario

    return float(load_scenario(preset).feed.rate_obj_s)


def _grid(args: argparse.Namespace, argv: list[str] | None) -> int:
    feeds = sorted(_floats(args.feeds)) if args.feeds else None
    if feeds is not None and min(feeds) <= 0:
        raise SystemExit(f"sortline bench line: --feeds {args.feeds!r}: feeds must be > 0")
    cells = (
        quick_cells()
        if args.quick
        else full_cells(args.cells.split(",") if args.cells else None, shred_feeds=feeds)
    )
    if args.speeds:
        cells = [c for c in cells if c.speed_m_s in _floats(args.speeds)]
    if feeds is not None:
        cells = [c for c in cells if c.feed_obj_s is None or c.feed_obj_s in feeds]
    frames = args.frames if args.frames is not None else (200 if args.quick else 500)
    rows = []
    t0 = time.perf_counter()
    runs = [(c, b) for c in cells for b in ((True, False) if args.compare else (False,))]
    for i, (cell, base) in enumerate(runs, 1):
        row = run_preset(
            cell.preset, frames, args.seed, line_config=cell.line_config, cell=cell, baseline=base
        )
        rows.append(row)
        tag = " (baseline)" if base else ""
        print(
            f"[{i}/{len(runs)} {time.perf_counter() - t0:5.0f} s] {cell.label() + tag:53s} "
            f"{row['fragments_per_s']:7.1f} frag/s  purity {row['purity']}  recovery "
            f"{row['recovery']}  co-ej {row['co_ejection_rate']}  frame p99 "
            f"{row['frame_ms']['p99']} ms  lost at rate {row['frames_lost_at_camera_rate']}  "
            f"misses {row['deadline_misses']}  crops/frame {row['crops_per_frame']}",
            flush=True,
        )
    note = (
        "report card: virtual plant (synthetic scenes), shipped model, default recipe; stepped "
        "over real Modbus; each cell a preset at a belt speed, feed and valve pitch "
        "(bench/_line_grid.py); frame times on this machine, rendering excluded"
    )
    out = write_result("line", argv, note, rows, None)
    out["cells"] = rows
    if args.json:
        from core.files import atomic_write_json

        atomic_write_json(Path(args.json), out)
    if args.png:
        plot(rows, Path(args.png))
    print(markdown(rows))
    return 0


def _floats(text: str) -> set[float]:
    try:
        return {float(v) for v in text.split(",") if v}
    except ValueError:
        raise SystemExit(f"sortline bench line: {text!r} is not a comma list of numbers") from None


def markdown(rows: list[dict[str, Any]]) -> str:
    """The report card as a Markdown table."""
    head = (
        "| preset | m/s | feed /s | pitch mm | seen /s | purity | recovery | co-ej. | "
        "frame p50/p99 ms | lost at rate | misses | air ms/ejected |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    out = [head]
    for r in rows:
        out.append(
            f"| {r['preset']} | {r['speed_m_s']:g} | {r['feed_obj_s']:g} | "
            f"{r['valve_pitch_mm']:g} | {r['fragments_per_s']} | {r['purity']} | "
            f"{r['recovery']} | {r['co_ejection_rate']} | {r['frame_ms']['p50']}/"
            f"{r['frame_ms']['p99']} | {r['frames_lost_at_camera_rate']} | "
            f"{r['deadline_misses']} | {r['valve_ms_per_ejected']} |"
        )
    return "\n".join(out)


def plot(rows: list[dict[str, Any]], png: Path) -> None:
    """Purity, recovery and frame p99 against feed: colour = belt speed,
    marker = preset, solid = 12.5 mm valve pitch, dashed = 6.25 mm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {1.5: "tab:blue", 2.5: "tab:green", 3.5: "tab:red"}
    markers = {"shred": "o", "default": "s", "crowded": "^", "dirty": "D"}
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.8))
    series: dict[tuple[str, float, float, bool], list[dict[str, Any]]] = {}
    for r in rows:  # --compare: the baseline rows are their own series, dotted
        base = r.get("vision_version", "").startswith("every view")
        key = (r["preset"], r["speed_m_s"], r["valve_pitch_mm"], base)
        series.setdefault(key, []).append(r)
    for (preset, speed, pitch, base), rs in sorted(series.items()):
        rs = sorted(rs, key=lambda r: r["feed_obj_s"])
        x = [r["feed_obj_s"] for r in rs]
        kw = {
            "color": colours.get(speed, "k"),
            "marker": markers.get(preset, "x"),
            "ls": ":" if base else "-" if pitch == 12.5 else "--",
            "label": f"{preset} {speed:g} m/s {pitch:g} mm" + (" before" if base else ""),
            "fillstyle": "full" if pitch == 12.5 else "none",
        }
        ax[0].plot(x, [r["purity"] for r in rs], **kw)
        ax[1].plot(x, [r["recovery"] for r in rs], **kw)
        ax[2].plot(x, [r["frame_ms"]["p99"] for r in rs], **kw)
    for a, name in zip(ax, ("purity", "recovery", "frame p99 (ms)"), strict=True):
        a.set_xscale("log")
        a.set_xlabel("feed (fragments/s)")
        a.set_ylabel(name)
        a.grid(alpha=0.3)
    ax[2].set_yscale("log")
    ax[2].axhline(10.0, color="k", lw=0.8, ls=":")  # one frame at 2.5 m/s (25 mm a frame)
    ax[2].legend(fontsize=6, loc="upper left", ncol=2)
    fig.suptitle(
        "sortline bench line: the report card (virtual plant, stepped; colour = speed, "
        "dashed/hollow = 6.25 mm bar)"
    )
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sortline bench line", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument(
        "--presets",
        help="comma list of presets or scenario files, each at its own feed and speed "
        "(the per-preset table) instead of the report card's grid",
    )
    ap.add_argument("--frames", type=int, help="frames per run (100 per s; default 1000 per "
                    "preset, 500 per grid cell, 200 with --quick)")  # fmt: skip
    ap.add_argument("--seed", type=int, default=101, help="plant seed (not a training seed)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--png", help="the grid's plot (purity, recovery, frame p99 against feed)")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="a small grid: default at its own feed and shred at 500/s, 2.5 m/s (under 2 min)",
    )
    ap.add_argument(
        "--prefer",
        default="",
        help="comma list of recipe 'prefer' values to compare (default: the recipe's own)",
    )
    ap.add_argument("--line-config", help="a line config overlay (e.g. examples/fine-bar.toml)")
    ap.add_argument(
        "--compare",
        action="store_true",
        help="grid: run every cell twice, first as the baseline (every view classified, no "
        "merge flags), then as the line is",
    )
    ap.add_argument(
        "--segmenter",
        default="",
        help="comma list of [vision] segmenter values to compare (classic, learned; default: "
        "the config's), side by side on the same scenes",
    )
    ap.add_argument(
        "--seg-model",
        default="",
        help="comma list of [vision] segmenter_model values (e.g. builtin:seg-v1,builtin:seg-v2;"
        " default: the config's): each learned run once per model",
    )
    ap.add_argument("--cells", help="grid: only these presets (comma list, e.g. shred,crowded)")
    ap.add_argument("--speeds", help="grid: only these belt speeds, m/s (comma list)")
    ap.add_argument(
        "--feeds",
        help="grid: shred at these feeds, fragments/s (comma list; any value, e.g. 50,100 "
        "below the grid's 250-2,000 to find the highest feed that holds a target)",
    )
    ap.add_argument(
        "--decompose",
        action="store_true",
        help="per preset also run with true segments and classes, and with the line's "
        "segmentation and true classes: how much purity each stage loses",
    )
    ap.add_argument(
        "--aim-rule",
        default="",
        help="comma list of the decision core's aiming rules to compare (search, "
        "search-least / search-cover: with the last resort least / cover, "
        "search-strict: cover without its fallback margin either, cut; "
        "default: its own), each run on the same scenes",
    )
    ap.add_argument(
        "--visions",
        help="comma list of the vision stages to run (model, truth-classes, truth-segments, "
        "truth-merged:RATE[:frame][:noflag]: true segments with touching pairs merged at RATE, "
        "per pair or per frame, with or without the merge flag; "
        "default: model, or the first three with --decompose)",
    )
    args = ap.parse_args(argv)
    aim_rules: list[str | None] = [a for a in args.aim_rule.split(",") if a] or [None]
    for a in aim_rules:
        if a is not None and a not in AIM_RULES:
            ap.error(f"--aim-rule: {a!r} is not one of {', '.join(AIM_RULES)}")
    prefers: list[str | None] = [p for p in args.prefer.split(",") if p] or [None]
    for p in prefers:
        if p is not None and p not in ("purity", "balanced", "recovery"):
            ap.error(f"--prefer: {p!r} is not purity, balanced or recovery")
    if args.frames is not None and args.frames < 1:
        ap.error(f"--frames {args.frames} must be >= 1")
    segmenters: list[str | None] = [v for v in args.segmenter.split(",") if v] or [None]
    for v in segmenters:
        if v is not None and v not in ("classic", "learned"):
            ap.error(f"--segmenter: {v!r} is not classic or learned")
    seg_models: list[str | None] = [m for m in args.seg_model.split(",") if m] or [None]
    seg_specs: list[tuple[str | None, str | None]] = [
        (v, m) for v in segmenters for m in (seg_models if v == "learned" else [None])
    ]
    if args.presets is None and not (
        args.prefer
        or args.decompose
        or args.line_config
        or args.segmenter
        or args.seg_model
        or args.aim_rule
        or args.visions
    ):
        return _grid(args, argv)
    grid_only = [f for f, v in (("--cells", args.cells), ("--speeds", args.speeds),
                                ("--feeds", args.feeds), ("--compare", args.compare),
                                ("--png", args.png), ("--quick", args.quick)) if v]  # fmt: skip
    if grid_only:  # the per-preset table would silently leave them out
        ap.error(f"{', '.join(grid_only)}: options of the report card's grid, which "
                 "--presets, --prefer, --decompose, --line-config, --segmenter, --aim-rule "
                 "and --visions leave; name the cells with --presets")  # fmt: skip
    presets = [p for p in (args.presets or ",".join(PRESETS)).split(",") if p]
    frames = args.frames or 1000
    rows = []
    visions = ["truth-segments", "truth-classes", "model"] if args.decompose else ["model"]
    if args.visions:
        visions = [v for v in args.visions.split(",") if v]
        for v in visions:
            if v.startswith("truth-merged"):
                from bench._line_truth import MergeModel

                try:
                    MergeModel.parse(v)
                except ValueError as e:
                    ap.error(f"--visions: {e}")
            elif v not in ("model", "truth-classes", "truth-segments"):
                ap.error(
                    f"--visions: {v!r} is not model, truth-classes, truth-segments "
                    "or truth-merged:RATE[:frame][:noflag]"
                )
    for preset in presets:
        for prefer in prefers:
            for (vision, (segmenter, seg_model)), aim in (
                (vs, a) for vs in _runs(visions, seg_specs) for a in aim_rules
            ):
                row = run_preset(
                    preset, frames, args.seed, prefer, args.line_config, vision,
                    segmenter=segmenter, aim_rule=aim, seg_model=seg_model,
                )  # fmt: skip
                rows.append(row)
                print(
                    f"{preset:8s} {row['prefer']:9s} {vision:14s} {row['segmenter']:8s} "
                    f"{(row['segmenter_model'] or '-').removeprefix('builtin:'):8s} "
                    f"{row['aim_rule']:6s} "
                    f"purity {row['purity']}  "
                    f"recovery {row['recovery']}  "
                    f"co-ejection {row['co_ejection_rate']}  misses {row['deadline_misses']}  "
                    f"watchdog trips {row['plc_watchdog_trips']}  "
                    f"latency p50/p99 {row['latency_ms']['p50']}/{row['latency_ms']['p99']} ms",
                    flush=True,
                )
    note = "virtual plant, shipped model, default recipe; stepped; synthetic scenes"
    write_result("line", argv, note, rows, Path(args.json) if args.json else None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
