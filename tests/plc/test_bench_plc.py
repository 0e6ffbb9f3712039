"""``bench/plc.py --quick`` runs end to end (against ``sortline sim plc`` in a
subprocess) and writes its JSON. Speed itself is measured, never asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import plc as bench_plc


@pytest.mark.parametrize("mode", ["subprocess", "inprocess"])
def test_quick_bench_writes_json(tmp_path: Path, mode: str) -> None:
    out = tmp_path / "plc.json"
    assert bench_plc.main(["--quick", "--plc", mode, "--json", str(out)]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["command"].startswith("sortline bench plc --quick")
    summary = result["summary"]
    for key in ("latency_ms_p50", "latency_ms_p99", "sustained_pulses_s", "burst_pulses_s"):
        assert summary[key] > 0
    run = result["runs"][0]
    assert run["latency_ms"]["n"] == 30
    assert run["burst"]["complete"] and run["burst"]["acked"] == 300
    assert run["counters"]["pulses_rejected_by_plc"] == 0


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(SystemExit):
        bench_plc.main(["--samples", "0"])
