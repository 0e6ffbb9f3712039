"""The induction bar on the operators' side: ``/status`` carries what its
reader received and ``/metrics`` exports it (parsed with prometheus_client's
parser), both following the bar as it goes silent and comes back; a line
without the bar says so and exports none of it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sortline.auth import Role
from sortline.config import load_config
from sortline.sensor import wiring
from tests.sortline.conftest import ApiKeys, served_line

AsRole = Callable[[Role | None], httpx.Client]


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _sensor_metrics(url: str, as_role: AsRole) -> dict[str, float]:
    r = as_role(None).get(f"{url}/metrics")
    assert r.status_code == 200
    return {
        name: v
        for (name, labels), v in _samples(r.text).items()
        if name.startswith("sortline_sensor_") and dict(labels).get("reason") is None
    }


def test_the_bar_in_status_and_metrics(
    tmp_path: Path, api_keys: ApiKeys, as_role: AsRole, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wiring, "GRACE_S", 0.0)
    cfg = load_config()
    data = cfg.model_dump()
    data["sensor"].update({"enabled": True, "port": 0, "stall_ms": 100.0})
    cfg = type(cfg).model_validate(data)
    with served_line(api_keys, 120, cfg=cfg, seed=3, records=False) as (line, url):
        bar = as_role("maintenance").get(f"{url}/status").json()["sensor"]
        assert bar["receiving"] and not bar["stalled"] and not bar["fault"]
        assert bar["packets_ok"] > 50 and bar["rows_kept"] > 0 and bar["packets_refused"] == {}
        m = _sensor_metrics(url, as_role)
        assert m["sortline_sensor_receiving"] == 1.0 and m["sortline_sensor_fault"] == 0.0
        assert m["sortline_sensor_packets_total"] >= bar["packets_ok"]
        assert m["sortline_sensor_packets_lost_total"] == bar["packets_lost"]

        assert line.parts.plant is not None
        line.parts.plant.sensor_mute = True  # the bar goes silent
        time.sleep(0.3)
        line.run_frames(5)
        bar = as_role("maintenance").get(f"{url}/status").json()["sensor"]
        assert bar["stalled"] and not bar["receiving"]
        assert _sensor_metrics(url, as_role)["sortline_sensor_receiving"] == 0.0
        assert line.snapshot().state == "EXECUTE"  # sorting on the camera alone

        line.parts.plant.sensor_mute = False
        line.run_frames(10)
        bar = as_role("maintenance").get(f"{url}/status").json()["sensor"]
        assert bar["receiving"] and not bar["stalled"]


def test_a_line_without_the_bar(api_keys: ApiKeys, as_role: AsRole) -> None:
    with served_line(api_keys, 5, seed=3, records=False) as (_, url):
        assert as_role("maintenance").get(f"{url}/status").json()["sensor"] is None
        assert _sensor_metrics(url, as_role) == {}
