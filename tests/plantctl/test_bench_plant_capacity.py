"""``sortline bench plant_capacity --quick``: two lines' recorded streams through
their records writers and Sparkplug publishers into a real PostgreSQL and
mosquitto; every record arrives, every message is matched, the JSON says so."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench import plant_capacity
from sortline.plantctl.plant import missing_tools

pytestmark = pytest.mark.skipif(
    missing_tools() is not None or shutil.which("mosquitto_sub") is None,
    reason="needs Debian mosquitto, mosquitto-clients and postgresql",
)


def test_quick_run_records_everything_and_matches_every_message(tmp_path: Path) -> None:
    out = tmp_path / "plant_capacity.json"
    assert plant_capacity.main(["--quick", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["command"] == f"sortline bench plant_capacity --quick --json {out}"
    (row,) = result["results"]
    assert row["lines"] == 2 and row["records_dropped"] == 0 and row["store_failures"] == 0
    assert row["records_written"] == row["records_offered"] > 2 * 500 * 2
    assert 800 < row["records_s_offered"] < 1200  # 2 lines x 500 fragments/s
    assert row["mqtt_messages"] > 20 and row["mqtt_dropped"] == 0
    assert row["mqtt_latency_ms"]["matched"] == row["mqtt_messages"]
    assert 0 < row["writer_lag_s"]["p50"] <= row["writer_lag_s"]["p99"]
    cpu = row["cpu_percent_of_one_core"]
    assert set(cpu) == {"postgresql", "mosquitto", "subscriber", "line_processes"}
    assert cpu["postgresql"] > 0 and cpu["line_processes"] > 0
    assert isinstance(row["saturated"], list) and isinstance(row["late"], list)
    assert row["busiest"] in cpu
