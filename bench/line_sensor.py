"""The whole line with the induction bar against the same line on the camera alone.

``sortline bench line_sensor [--presets default] [--frames N] [--seed N] [--json OUT] [--quick]``

Recipe "aluminium to the eject fraction" (aluminium, threshold 0.5; nothing
else ejected). Each preset runs twice on the same seed, stepped, over real
Modbus TCP on loopback (``bench/line.py``'s line): once as configured
(camera alone), once with ``[sensor] enabled``: the embedded plant's bar
streams UDP rows to the line's ``SensorReader`` and ``SensorFusion`` adds
their evidence in the controller (``sortline.sensor.wiring``, as ``sortline
run`` does). The plant is the same in both runs (the bar draws from its own
random streams).
Purity, recovery and co-ejection from the plant's ground truth.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

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
KEYS = ("frames", "objects_seen", "objects_targeted", "purity", "recovery", "co_ejection_rate",
        "deadline_misses", "latency_ms")  # fmt: skip


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="sortline bench line_sensor", description=__doc__.split("\n")[0]
    )
    p.add_argument("--presets", default="default")
    p.add_argument("--frames", type=int, default=1500, help="frames per run (100 per second)")
    p.add_argument("--seed", type=int, default=21)
    p.add_argument("--json", type=Path)
    p.add_argument("--quick", action="store_true", help="150 frames: proves it runs")
    return p.parse_args(argv)


def run(preset: str, frames: int, seed: int, fused: bool, tmp: Path) -> dict[str, Any]:
    from sortline.config import load_config
    from sortline.runtime import SortingLine

    recipe = tmp / "aluminium.toml"
    recipe.write_text(RECIPE, encoding="utf-8")
    cfg = load_config()
    update: dict[str, Any] = {"control": cfg.control.model_copy(update={"recipe": str(recipe)})}
    if fused:  # the line as configured with [sensor] enabled (a free UDP port)
        update["sensor"] = cfg.sensor.model_copy(update={"enabled": True, "port": 0})
    cfg = cfg.model_copy(update=update)
    line = SortingLine(cfg, stepped=True, plc_port=0, scenario=preset, seed=seed, records=False)
    link = line.parts.sensor
    t0 = time.perf_counter()
    try:
        line.start()
        line.run_frames(frames)
        report = line.report()
    finally:
        line.stop()
    row: dict[str, Any] = {"preset": preset, "seed": seed, "sensor": fused}
    row.update({k: report[k] for k in KEYS})
    row["wall_s"] = round(time.perf_counter() - t0, 1)
    if link is not None:
        row["track_updates_fused"] = link.fusion.fused_rows
        row["frames_sensor_stalled"] = link.fusion.skipped_stalled
        row["sensor"] = {"fused": True, **link.status()}
    return row


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv if argv is not None else [])
    frames = 150 if args.quick else args.frames
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets.split(","):
            for fused in (False, True):
                row = run(preset, frames, args.seed, fused, Path(tmp))
                print({k: row[k] for k in ("preset", "purity", "recovery", "objects_targeted")})
                rows.append(row)
    note = (
        "recipe: aluminium to eject; each preset twice on one seed, stepped, camera alone "
        "then camera + induction bar (UDP rows, SensorFusion); scores from the plant's truth"
    )
    write_result("line_sensor", argv, note, rows, args.json)
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
