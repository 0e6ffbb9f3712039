"""``sortline bench records`` runs (short) and reports every decision recorded."""

from __future__ import annotations

import json
from pathlib import Path

from bench import records


def test_bench_records_quick(tmp_path: Path) -> None:
    out = tmp_path / "records.json"
    records.main(["--quick", "--json", str(out)])  # its exit status is the timing target
    data = json.loads(out.read_text())
    assert data["benchmark"] == "records" and "--quick" in data["command"]
    paced, unpaced = data["results"]
    assert (paced["mode"], unpaced["mode"]) == ("paced", "unpaced")
    for r in (paced, unpaced):
        assert r["all_recorded"] and r["decisions_in_db"] == r["decisions_offered"] > 0
        assert r["dropped"] == 0 and r["store_failures"] == 0
        assert 0 <= r["offer_us"]["p50"] <= r["offer_us"]["p99"] <= r["offer_us"]["max"]
        assert 0 < r["commit_ms"]["p50"] <= r["commit_ms"]["max"]
    assert 0.2 < paced["ejections_in_db"] / paced["decisions_in_db"] < 0.4  # the eject share
