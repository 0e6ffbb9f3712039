"""The JSON summary of a run (DESIGN.md keys), written atomically."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sortline.runtime import SortingLine


def build_report(line: SortingLine) -> dict[str, Any]:
    parts = line.parts
    stats = parts.controller_stats()
    plc = parts.bridge.snapshot()
    lat = line.latency_ms.quantiles_ms()
    score: dict[str, Any] | None = None
    if parts.plant is not None:
        score = parts.plant.score(parts.recipe.targets()).to_dict()
    plc_late = int(getattr(plc, "pulses_late", 0))
    report: dict[str, Any] = {
        "line": line.cfg.line.name,
        "config": line.cfg.source,
        "virtual_plant": parts.plant is not None,
        "duration_s": round(time.time() - line.started_unix_s, 3),
        "frames": line.frames,
        "frames_dropped": line.frames_dropped,
        "objects_seen": int(stats.get("objects_seen", 0)),
        "objects_targeted": int(stats.get("objects_targeted", 0)),
        "objects_ejected": None if score is None else score.get("objects_ejected"),
        "purity": None if score is None else score.get("purity"),
        "recovery": None if score is None else score.get("recovery"),
        "co_ejection_rate": None if score is None else score.get("co_ejection_rate"),
        "deadline_misses": int(stats.get("deadline_misses", 0)) + plc_late,
        "latency_ms": {"p50": lat["p50"], "p99": lat["p99"]},
        "state": line.state.state.name,
        "controller": stats,
        "calibration": parts.calibration_status(),
        "plc": parts.plc_status_dict(plc),
        "score": score,
    }
    return report
