"""``/calibration`` over HTTP against a running (stepped) line on a real
calibration store: the active version and its figures, activation and
rollback through the store, taken by the controller and the PLC bridge's
line parameters at the loop's next cycle; refusals, roles and the audit log."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from calibration.record import BeltSection, Calibration, ValvesSection
from calibration.store import CalibrationStore
from sortline.auth import Role
from sortline.config import load_config
from sortline.runtime import SortingLine

from .conftest import ApiKeys, served_line

Served = tuple[SortingLine, str, CalibrationStore, Path]
AsRole = Callable[[Role | None], httpx.Client]

N_VALVES = 80


def _cal(
    y_valve_mm: float, open_delay_ms: float, n: int = N_VALVES, passed: bool = True
) -> Calibration:
    return Calibration(
        line="virtual-plant",
        passed=passed,
        source="test rig",
        belt=BeltSection(mm_per_tick=0.1),
        valves=ValvesSection(
            y_valve_mm=y_valve_mm,
            open_delay_ms=[open_delay_ms] * n,
            close_delay_ms=[2.0] * n,
            disabled_valves=[7] if n == N_VALVES else [],
        ),
    )


@pytest.fixture(scope="module")
def served(
    api_keys: ApiKeys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[SortingLine, str, CalibrationStore, Path]]:
    tmp = tmp_path_factory.mktemp("cal")
    store = CalibrationStore(tmp / "cal", "virtual-plant")
    store.activate(store.save(_cal(300.0, 3.0), who="alice").version, who="alice")
    cfg = tmp / "line.toml"
    cfg.write_text('[calibration]\nstore = "cal"\npoll_s = 0.05\n')
    audit = tmp / "audit.jsonl"
    with served_line(api_keys, 3, cfg=load_config(cfg), audit=audit, records=False) as (
        line,
        url,
    ):
        yield line, url, store, audit


def test_active_calibration_and_its_figures(served: Served, as_role: AsRole) -> None:
    _, url, _, _ = served
    r = as_role("maintenance").get(f"{url}/calibration")
    assert r.status_code == 200, r.text
    v = r.json()
    assert (v["active"]["version"], v["active"]["who"], v["active"]["action"]) == (
        1,
        "alice",
        "activate",
    )
    f = v["calibration"]["figures"]
    assert (f["y_valve_mm"], f["open_delay_ms_median"], f["disabled_valves"]) == (300.0, 3.0, [7])
    assert v["applied_version"] == 1 and v["line_params"]["deadline_lead_ms"] == 3.0 + 5.0
    assert v["error"] is None
    assert httpx.get(f"{url}/calibration").status_code == 401


def test_activate_and_roll_back_reach_controller_and_plc(served: Served, as_role: AsRole) -> None:
    line, url, store, audit = served
    v2 = store.save(_cal(320.0, 4.0), who="bob")
    for role in ("maintenance", "operator"):
        r = as_role(role).post(f"{url}/calibration/{v2.version}/activate", json={})
        assert r.status_code == 403
    assert store.active_version() == 1
    r = as_role("engineer").post(
        f"{url}/calibration/{v2.version}/activate", json={"note": "valve block swapped"}
    )
    assert r.status_code == 200, r.text
    v = r.json()
    assert (v["active"]["version"], v["active"]["who"], v["active"]["note"]) == (
        2,
        "eng-eve",
        "valve block swapped",
    )
    assert v["calibration"]["figures"]["y_valve_mm"] == 320.0
    line.run_frames(2)  # the real-time loop takes the new parameters at its next cycle
    assert line.parts.controller.geometry.valves.y_valve_mm == 320.0
    plc = line.parts.bridge.snapshot()
    assert (plc.deadline_lead_ms, plc.mm_per_tick) == (4.0 + 5.0, 0.1)
    now = as_role("maintenance").get(f"{url}/calibration").json()
    assert now["applied_version"] == 2 and now["line_params"]["y_valve_mm"] == 320.0

    r = as_role("engineer").post(f"{url}/calibration/rollback", json={"note": "worse purity"})
    assert r.status_code == 200, r.text
    assert (r.json()["active"]["version"], r.json()["active"]["action"]) == (1, "rollback")
    line.run_frames(2)
    assert line.parts.controller.geometry.valves.y_valve_mm == 300.0
    assert line.parts.bridge.snapshot().deadline_lead_ms == 3.0 + 5.0

    hist = as_role("maintenance").get(f"{url}/calibration/history").json()
    assert [(a["version"], a["action"]) for a in hist["activations"]] == [
        (1, "activate"),
        (2, "activate"),
        (1, "rollback"),
    ]
    assert [(x["version"], x["created_by"]) for x in hist["versions"]] == [(1, "alice"), (2, "bob")]
    entries = [json.loads(x) for x in audit.read_text().splitlines()]
    assert ("eng-eve", 200, "POST /calibration/2/activate") in [
        (e["who"], e["status"], e["action"]) for e in entries
    ]
    assert any(e["action"] == "POST /calibration/rollback" and e["status"] == 200 for e in entries)


def test_refusals_leave_the_store_and_line_alone(served: Served, as_role: AsRole) -> None:
    line, url, store, _ = served
    before = store.active_version()
    eng = as_role("engineer")
    failed = store.save(_cal(310.0, 3.0, passed=False), who="bob")
    r = eng.post(f"{url}/calibration/{failed.version}/activate", json={})
    assert r.status_code == 422 and "failed its checks" in r.json()["detail"]
    unfit = store.save(_cal(310.0, 3.0, n=10), who="bob")
    r = eng.post(f"{url}/calibration/{unfit.version}/activate", json={"force": True, "note": "x"})
    assert r.status_code == 422 and "10 valves" in r.json()["detail"]
    r = eng.post(f"{url}/calibration/99/activate")
    assert r.status_code == 404 and r.json()["detail"].startswith("no calibration version 99")
    r = eng.post(f"{url}/calibration/1/activate", json={"force": "yes"})
    assert r.status_code == 422
    assert store.active_version() == before
    line.run_frames(1)
    assert line.parts.params.calibration_version == before
    # forced, with a note: taken
    r = eng.post(
        f"{url}/calibration/{failed.version}/activate",
        json={"force": True, "note": "rig camera out; delays checked by hand"},
    )
    assert r.status_code == 200 and r.json()["active"]["version"] == failed.version


def test_a_line_without_a_store(api_keys: ApiKeys, as_role: AsRole) -> None:
    with served_line(api_keys, 1, records=False) as (_, url):
        v = as_role("maintenance").get(f"{url}/calibration").json()
        assert (v["store"], v["active"], v["applied_version"]) == (None, None, None)
        r = as_role("engineer").post(f"{url}/calibration/rollback")
        assert r.status_code == 409 and "[calibration] store" in r.json()["detail"]
        hist = as_role("maintenance").get(f"{url}/calibration/history").json()
        assert hist == {"activations": [], "versions": []}
