"""The whole line on the virtual plant, per scenario preset: purity, recovery,
co-ejection, deadline misses and per-frame latency, from the plant's ground
truth. Stepped (the plant waits for the controller and the PLC's
acknowledgement every frame), over real Modbus TCP on loopback.

    sortline bench line --json bench/results/line.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

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


def run_preset(preset: str, frames: int, seed: int) -> dict[str, Any]:
    from sortline.config import load_config
    from sortline.runtime import SortingLine

    line = SortingLine(
        load_config(), stepped=True, plc_port=0, scenario=preset, seed=seed, records=False
    )
    line.start()
    t0 = time.perf_counter()
    try:
        line.run_frames(frames)
        report = line.report()
    finally:
        line.stop()
    row: dict[str, Any] = {"preset": preset, "seed": seed}
    row.update({k: report[k] for k in KEYS})
    score = report["score"] or {}
    row["missed"] = score.get("missed")
    row["late"] = score.get("late")
    row["valve_ms_per_ejected"] = score.get("valve_ms_per_ejected")
    row["wall_s"] = round(time.perf_counter() - t0, 2)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sortline bench line", description=__doc__)
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--frames", type=int, default=1000, help="frames per preset (100 per s)")
    ap.add_argument("--seed", type=int, default=101, help="plant seed (not a training seed)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--quick", action="store_true", help="one preset, 60 frames (a smoke test)")
    args = ap.parse_args(argv)
    presets = ["default"] if args.quick else [p for p in args.presets.split(",") if p]
    frames = 60 if args.quick else args.frames
    rows = []
    for preset in presets:
        row = run_preset(preset, frames, args.seed)
        rows.append(row)
        print(
            f"{preset:8s} purity {row['purity']}  recovery {row['recovery']}  "
            f"co-ejection {row['co_ejection_rate']}  misses {row['deadline_misses']}  "
            f"latency p50/p99 {row['latency_ms']['p50']}/{row['latency_ms']['p99']} ms",
            flush=True,
        )
    note = "virtual plant, shipped model, default recipe; stepped; synthetic scenes"
    write_result("line", argv, note, rows, Path(args.json) if args.json else None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
