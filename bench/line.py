"""The whole line on the virtual plant, per scenario preset: purity, recovery,
co-ejection, deadline misses and per-frame latency, from the plant's ground
truth. Stepped (the plant waits for the controller and the PLC's
acknowledgement every frame), over real Modbus TCP on loopback.

    sortline bench line --json bench/results/line.json
    sortline bench line --presets default,crowded --prefer recovery,balanced,purity

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


def _config(prefer: str | None, workdir: Path, line_config: str | None = None) -> Any:
    """The default line config (overlaid with ``line_config``), its recipe's
    ``prefer`` set when given."""
    from importlib import resources

    from sortline.config import load_config

    cfg = load_config(line_config)
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
) -> dict[str, Any]:
    """One stepped run. ``vision``: "model" (the line as it is), or ground truth
    in place of a stage (``bench._line_truth``): "truth-classes" (the line's
    segmentation, true classes), "truth-segments" (true segments and classes)."""
    import tempfile

    from sortline.runtime import SortingLine

    with tempfile.TemporaryDirectory() as tmp:
        line = SortingLine(
            _config(prefer, Path(tmp), line_config),
            stepped=True, plc_port=0, scenario=preset, seed=seed, records=False,
        )  # fmt: skip
        tap = None
        if vision != "model":
            from bench._line_truth import TruthTap

            assert line.parts.plant is not None, "ground truth needs the embedded plant"
            tap = TruthTap(line.parts.plant.plant)
        line.start()
        if tap is not None:
            from bench._line_truth import Mode, TruthVision

            mode: Mode = "classes" if vision == "truth-classes" else "segments"
            n_classes = len(line.parts.class_names)
            stage = TruthVision(line.loop.vision, tap, line.parts.geometry, n_classes, mode)
            line.loop.vision = cast(Any, stage)  # the vision stage only: same process() call
        t0 = time.perf_counter()
        try:
            line.run_frames(frames)
            report = line.report()
        finally:
            line.stop()
    row: dict[str, Any] = {
        "preset": preset, "seed": seed, "prefer": prefer or "recipe", "vision": vision,
        "line_config": line_config or "default",
        "valve_pitch_mm": line.parts.geometry.valves.pitch_mm,
    }  # fmt: skip
    row.update({k: report[k] for k in KEYS})
    score = report["score"] or {}
    row["missed"] = score.get("missed")
    row["late"] = score.get("late")
    row["valve_ms_per_ejected"] = score.get("valve_ms_per_ejected")
    row["targets_aimed"] = report["controller"].get("targets_aimed")
    row["wall_s"] = round(time.perf_counter() - t0, 2)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sortline bench line", description=__doc__)
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--frames", type=int, default=1000, help="frames per preset (100 per s)")
    ap.add_argument("--seed", type=int, default=101, help="plant seed (not a training seed)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--quick", action="store_true", help="one preset, 60 frames (a smoke test)")
    ap.add_argument(
        "--prefer",
        default="",
        help="comma list of recipe 'prefer' values to compare (default: the recipe's own)",
    )
    ap.add_argument("--line-config", help="a line config overlay (e.g. examples/fine-bar.toml)")
    ap.add_argument(
        "--decompose",
        action="store_true",
        help="per preset also run with true segments and classes, and with the line's "
        "segmentation and true classes: how much purity each stage loses",
    )
    args = ap.parse_args(argv)
    prefers: list[str | None] = [p for p in args.prefer.split(",") if p] or [None]
    for p in prefers:
        if p is not None and p not in ("purity", "balanced", "recovery"):
            ap.error(f"--prefer: {p!r} is not purity, balanced or recovery")
    presets = ["default"] if args.quick else [p for p in args.presets.split(",") if p]
    frames = 60 if args.quick else args.frames
    rows = []
    visions = ["truth-segments", "truth-classes", "model"] if args.decompose else ["model"]
    for preset in presets:
        for prefer in prefers:
            for vision in visions:
                row = run_preset(preset, frames, args.seed, prefer, args.line_config, vision)
                rows.append(row)
                print(
                    f"{preset:8s} {row['prefer']:9s} {vision:14s} purity {row['purity']}  "
                    f"recovery {row['recovery']}  "
                    f"co-ejection {row['co_ejection_rate']}  misses {row['deadline_misses']}  "
                    f"latency p50/p99 {row['latency_ms']['p50']}/{row['latency_ms']['p99']} ms",
                    flush=True,
                )
    note = "virtual plant, shipped model, default recipe; stepped; synthetic scenes"
    write_result("line", argv, note, rows, Path(args.json) if args.json else None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
