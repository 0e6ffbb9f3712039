"""``bench/line_sensor.py --quick`` runs the line with the bar and writes the
documented JSON: the eject bin by class and outcome, each wrong piece, the pooled
purity and recovery per configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import line_sensor

pytestmark = pytest.mark.timeout(300)


def test_line_sensor_bench_quick(tmp_path: Path) -> None:
    out = tmp_path / "l.json"
    assert line_sensor.main(["--quick", "--no-camera", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["command"].startswith("sortline bench line_sensor")
    row, summary = data["results"]  # the run, then the pooled figure of its configuration
    assert summary["pooled"] and summary["runs"] == 1 and summary["config"] == "3.0 anchor 4"
    al_in_bin = sum(row["eject_bin"].get("aluminium", {}).values())
    assert summary["al_in_bin"] == al_in_bin and summary["al"] == sum(row["aluminium"].values())
    sensor = row["sensor"]
    assert sensor["fused"] and sensor["frequencies_hz"] == [5000.0, 50000.0]
    assert sensor["packets_ok"] > 0 and not sensor["refused"] and sensor["stall_ms"] == 2000.0
    in_bin = sum(n for per in row["eject_bin"].values() for n in per.values())
    assert in_bin == row["aluminium"].get("ok", 0) + sum(
        1 for w in row["wrong"] if w["class"] != "aluminium"
    )
    for w in row["wrong"]:
        assert w["outcome"] in {"ok", "co_ejected", "false_eject", "missed", "late", "early",
                                "partial", "tumbled"}  # fmt: skip
