from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import faults

TIMES = ("detect_s", "safe_s", "recover_s")


@pytest.mark.slow
def test_faults_bench_quick_runs_real_processes_and_passes(tmp_path: Path) -> None:
    out = tmp_path / "faults.json"
    code = faults.main(["--quick", "--json", str(out)])
    data = json.loads(out.read_text())
    assert data["benchmark"] == "faults" and data["command"].startswith("sortline bench faults")
    assert data["machine"]["cpus"] >= 1 and data["note"]
    rows = data["results"]
    assert len(rows) == len(faults.QUICK)
    for row in rows:
        assert row["status"] == "run", row.get("why")
        assert set(row) >= {"scenario", "passed", *TIMES, "lost", "criteria", "details"}
        assert row["passed"], row["criteria"]
        assert row["detect_s"] is not None and row["recover_s"] is not None
        assert all(isinstance(v, int) for v in row["lost"].values())
    paused = next(r for r in rows if r["scenario"].startswith("controller paused"))
    assert (
        0 < paused["safe_s"] <= faults.WATCHDOG_MS / 1000.0 + faults.PROBE_ALLOWANCE_S
    )  # the PLC's watchdog, read over Modbus
    assert code == 0
