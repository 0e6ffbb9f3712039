"""The encoder, belt, frame, clock and records-disk scenarios of ``sortline bench faults``
(real processes on loopback: ``sortline sim plc --inject-port``, a camera
played by the bench into a frame ring, ``sortline run``), bounded in time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import faults

CI = (
    "encoder-frozen",
    "belt-stop-restart",
    "camera-black",
    "camera-out-of-order",
    "wall-clock-step",
    "records-disk-full",
    "records-disk-read-only",
)


@pytest.mark.slow
def test_rig_scenarios_pass_with_valves_off_where_demanded(tmp_path: Path) -> None:
    out = tmp_path / "faults.json"
    code = faults.main(["--only", ",".join(CI), "--json", str(out)])
    rows = {r["scenario"].split(" (")[0]: r for r in json.loads(out.read_text())["results"]}
    assert len(rows) == len(CI)
    for row in rows.values():
        assert row["status"] == "run", row.get("why")
        assert row["passed"], (row["scenario"], row["criteria"], row["details"])
    frozen = rows["encoder frozen while the belt runs"]
    assert 0 < frozen["safe_s"] <= faults.WATCHDOG_MS / 1000.0  # read from the PLC's outputs
    assert any("encoder count stuck" in c for c in frozen["details"]["causes"])
    black = rows["camera delivers black frames"]
    assert black["details"]["frames_bad"] > 0 and black["recover_s"] is not None
    for name in ("records disk full", "records file system read-only"):
        disk = rows[name]
        assert "cannot write" in disk["details"]["alarm"][0], disk["details"]
        assert disk["details"]["pulses_acked_while_failed"] > 0  # sorting went on
    assert code == 0


def test_unknown_scenario_is_an_error_row(tmp_path: Path) -> None:
    row = faults.run_one("no-such", tmp_path)
    assert row["status"] == "error" and not row["passed"] and "no-such" in row["why"]
