"""``/valves``: usage and health from the PLC's cycle counters (fabricated
counters), and over real HTTP on loopback against a stepped line on the
crowded virtual plant: disable a valve as engineer (audited; refused to an
operator), no pulse handed to the PLC covers it and its counter stays put
while the others run, enable it and pulses use it again; 404, 409, strict
bodies; a later calibration keeps the operator's valves disabled."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from calibration.record import BeltSection, Calibration, ValvesSection
from calibration.store import CalibrationStore
from core.types import Pulses
from sortline.alarm_rules import valve_verdicts
from sortline.config import load_config
from sortline.listeners import Cycle
from sortline.runtime import SortingLine
from sortline.valves import ValveRefusedError, ValveUsage, health

from .conftest import KEY_NAMES, ApiKeys, served_line

N_VALVES = 80
CYCLES_REFRESH_S = 1.3  # the bridge reads the valve counters about once a second


# ------------------------------------------------------- usage and health
def test_usage_counts_the_last_minute_and_when_each_valve_last_moved() -> None:
    u = ValveUsage(health_window_s=120.0)
    assert u.view(0.0).cycles is None
    u.add(1000.0, (5, 5, 5))
    u.add(1030.0, (6, 5, 5))
    u.add(1050.0, (6, 5, 9))
    v = u.view(1080.0)
    assert v.cycles is not None and v.cycles.tolist() == [6, 5, 9]
    assert v.last_minute is not None and v.last_minute.tolist() == [1, 0, 4]  # since 1030 > 1020
    assert v.last_used_unix_s is not None
    assert np.isnan(v.last_used_unix_s[1]) and v.last_used_unix_s[[0, 2]].tolist() == [1030, 1050]
    assert v.ran is None  # less than the 120 s window seen
    v = u.view(1100.0)
    assert v.last_minute is not None and v.last_minute.tolist() == [0, 0, 4]
    assert v.ran is None
    v = u.view(1130.0)
    assert v.last_minute is not None and v.last_minute.tolist() == [0, 0, 0]
    assert v.ran is not None and v.ran.tolist() == [1, 0, 4]  # over 1010..1130
    u.add(1110.0, (0, 0, 0))  # the PLC restarted its counters: afresh
    v = u.view(1110.0)
    assert v.last_used_unix_s is not None and np.isnan(v.last_used_unix_s).all()
    assert v.last_minute is not None and v.last_minute.tolist() == [0, 0, 0]


@pytest.mark.parametrize(
    ("ran", "expect"),
    [
        ([9, 9, 9, 9], ["ok"] * 4),
        ([9, 9, 0, 9, 9], ["ok", "unknown", "dead", "unknown", "ok"]),  # beside a dead one
        ([9, 9, 1, 9, 9], ["ok", "unknown", "weak", "unknown", "ok"]),
        ([0, 0, 0, 0, 0], ["unknown"] * 5),  # belt empty: nothing judged
        ([9, 9, 0, 0, 9], ["ok", "unknown", "unknown", "unknown", "unknown"]),
        ([0, 9, 9, 9, 9], ["dead", "unknown", "ok", "ok", "ok"]),
        ([9], ["unknown"]),
    ],
)
def test_health_verdicts(ran: list[int], expect: list[str]) -> None:
    assert health(np.asarray(ran, np.int64), 5, 0.25, 120.0) == expect
    assert health(None, 5, 0.25, 120.0) == []


def test_health_flags_exactly_what_the_alarm_rule_flags() -> None:
    rng = np.random.default_rng(7)
    for _ in range(300):
        ran = rng.integers(0, 12, size=int(rng.integers(2, 9))).astype(np.int64)
        flagged = {int(k.split(".")[1]) for k in valve_verdicts(ran, 5, 0.25, 120.0)}
        got = health(ran, 5, 0.25, 120.0)
        assert {v for v, h in enumerate(got) if h in ("dead", "weak")} == flagged, ran


# ---------------------------------------------------------- over HTTP
class PulseLog:
    """Listener: every pulse batch the line handed to the bridge."""

    def __init__(self) -> None:
        self.batches: list[Pulses] = []

    def on_cycle(self, cycle: Cycle) -> None:
        self.batches.append(cycle.pulses)

    def close(self) -> None:
        pass

    def coverage(self, since: int = 0) -> np.ndarray:
        """(N_VALVES,) int64: pulses of batches ``since..`` that open each valve."""
        cov = np.zeros(N_VALVES, np.int64)
        for p in self.batches[since:]:
            for a, f, last in zip(p.actuator, p.first_valve, p.last_valve, strict=True):
                if a == 0:
                    cov[int(f) : int(last) + 1] += 1
        return cov


@pytest.fixture(scope="module")
def served(
    api_keys: ApiKeys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[SortingLine, str, PulseLog]]:
    pulses = PulseLog()
    audit = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    with served_line(
        api_keys, 30, audit=audit, prepare=lambda line: line.loop.attach(pulses),
        scenario="crowded", seed=3, records=False,
    ) as (line, url):  # fmt: skip
        yield line, url, pulses


def counters(line: SortingLine) -> tuple[int, ...]:
    """The PLC's per-valve counters after a fresh read."""
    time.sleep(CYCLES_REFRESH_S)
    return line.parts.bridge.snapshot().valve_cycles


def test_get_valves_shows_the_plc_counters(
    served: tuple[SortingLine, str, PulseLog], api_keys: ApiKeys
) -> None:
    line, url, _ = served
    line.run_frames(60)
    plc = counters(line)
    body = api_keys.client("maintenance").get(f"{url}/valves").json()
    assert body["n_valves"] == N_VALVES and len(body["valves"]) == N_VALVES
    assert [v["cycles"] for v in body["valves"]] == list(plc)
    assert sum(plc) > 0
    v0 = body["valves"][0]
    assert v0["x_mm"] == 6.25 and v0["enabled"] is True and v0["disabled_by_operator"] is None
    assert {v["health"] for v in body["valves"]} == {"unknown"}  # no full window yet
    used = [v for v in body["valves"] if v["cycles"]]
    assert all(v["last_used_unix_s"] is None or v["last_used_unix_s"] <= time.time() for v in used)
    assert all(v["cycles_last_minute"] <= v["cycles"] for v in body["valves"])
    assert api_keys.client(None).get(f"{url}/valves").status_code == 401


def test_disable_stops_pulses_on_the_valve_and_enable_brings_them_back(
    served: tuple[SortingLine, str, PulseLog], api_keys: ApiKeys
) -> None:
    line, url, pulses = served
    eng = api_keys.client("engineer")
    n = int(np.argmax(pulses.coverage()))  # the busiest valve so far
    r = api_keys.client("operator").post(f"{url}/valves/{n}/disable", json={})
    assert r.status_code == 403 and not line.valves_off
    t0 = time.time()
    r = eng.post(f"{url}/valves/{n}/disable", json={"reason": "leaking"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["index"], body["enabled"], body["disabled_by_calibration"]) == (n, False, False)
    by = body["disabled_by_operator"]
    assert by["who"] == KEY_NAMES["engineer"] and by["reason"] == "leaking"
    assert t0 <= by["t_unix_s"] <= time.time()
    entry = eng.get(f"{url}/audit").json()[-1]
    assert entry["action"] == f"POST /valves/{n}/disable" and entry["who"] == "eng-eve"
    assert entry["status"] == 200 and "leaking" in entry["detail"]
    assert eng.get(f"{url}/status").json()["valves_disabled"] == [n]

    mark = len(pulses.batches)
    line.run_frames(40)  # pulses handed over before the swap fire meanwhile
    assert n in line.parts.controller.geometry.valves.disabled_valves
    before, acked = counters(line), line.parts.bridge.snapshot().pulses_acked
    line.run_frames(200)
    after = counters(line)
    cov = pulses.coverage(mark)
    assert cov[n] == 0 and cov.sum() > 0, cov  # none covers n; the others go on
    assert after[n] == before[n] and sum(after) > sum(before)
    assert line.parts.bridge.snapshot().pulses_acked > acked
    v = api_keys.client("maintenance").get(f"{url}/valves").json()["valves"][n]
    assert v["enabled"] is False and v["disabled_by_operator"]["who"] == "eng-eve"

    r = eng.post(f"{url}/valves/{n}/enable")  # no body: allowed
    assert r.status_code == 200 and r.json()["enabled"] is True, r.text
    assert eng.get(f"{url}/audit").json()[-1]["detail"] == f"valve {n} enabled"
    mark = len(pulses.batches)
    for _ in range(20):
        line.run_frames(20)
        if pulses.coverage(mark)[n]:
            break
    assert pulses.coverage(mark)[n] > 0
    assert n not in line.parts.controller.geometry.valves.disabled_valves
    assert eng.get(f"{url}/status").json()["valves_disabled"] == []


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/valves/80/disable", {}, 404),
        ("/valves/999/enable", {}, 404),
        ("/valves/-1/disable", {}, 404),
        ("/valves/x/disable", {}, 422),
        ("/valves/3/disable", {"reason": ""}, 422),
        ("/valves/3/disable", {"reason": 5}, 422),
        ("/valves/3/disable", {"why": "x"}, 422),
        ("/valves/3/enable", {"reason": "was fine"}, 200),  # never disabled: no change
    ],
)
def test_refusals(
    served: tuple[SortingLine, str, PulseLog], api_keys: ApiKeys, path: str, body: object,
    status: int,
) -> None:  # fmt: skip
    line, url, _ = served
    r = api_keys.client("engineer").post(url + path, json=body)
    assert r.status_code == status, r.text
    assert not line.valves_off


def test_the_last_enabled_valve_stays_enabled(
    served: tuple[SortingLine, str, PulseLog], api_keys: ApiKeys
) -> None:
    line, url, _ = served
    try:
        for v in range(N_VALVES - 1):
            line.set_valve_enabled(v, False, "test")
        r = api_keys.client("engineer").post(f"{url}/valves/{N_VALVES - 1}/disable", json={})
        assert r.status_code == 409 and "last enabled valve" in r.json()["detail"]
        assert api_keys.client("engineer").get(f"{url}/audit").json()[-1]["status"] == 409
    finally:
        for v in range(N_VALVES - 1):
            line.set_valve_enabled(v, True, "test")
    line.run_frames(2)
    assert line.parts.controller.geometry.valves.disabled_valves == ()


# ---------------------------------------------------- with a calibration
def _cal(disabled: list[int]) -> Calibration:
    return Calibration(
        line="virtual-plant", passed=True, source="test", belt=BeltSection(mm_per_tick=0.1),
        valves=ValvesSection(
            y_valve_mm=300.0, open_delay_ms=[3.0] * N_VALVES, close_delay_ms=[2.0] * N_VALVES,
            disabled_valves=disabled,
        ),
    )  # fmt: skip


def test_a_new_calibration_keeps_the_operators_disabled_valves(tmp_path: Path) -> None:
    store = CalibrationStore(tmp_path / "cal", "virtual-plant")
    store.activate(store.save(_cal([]), who="alice").version, who="alice")
    cfg = tmp_path / "line.toml"
    cfg.write_text('[calibration]\nstore = "cal"\npoll_s = 60\n')
    line = SortingLine(load_config(cfg), stepped=True, plc_port=0, records=False)
    line.start()
    try:
        line.run_frames(2)
        line.set_valve_enabled(7, False, "eng", "stuck")
        line.run_frames(1)
        assert line.parts.controller.geometry.valves.disabled_valves == (7,)
        store.activate(store.save(_cal([3]), who="bob").version, who="bob")
        line.poll_calibration_now()
        line.run_frames(1)
        assert line.parts.controller.geometry.valves.disabled_valves == (3, 7)
        assert line.parts.vision.geometry.valves.disabled_valves == (3, 7)
        assert line.calibration_disabled_valves() == (3,)
        with pytest.raises(ValveRefusedError, match="by the calibration"):
            line.set_valve_enabled(3, True, "eng")
        line.set_valve_enabled(7, True, "eng")
        line.run_frames(1)
        assert line.parts.controller.geometry.valves.disabled_valves == (3,)
        assert line.status()["valves_disabled"] == []
    finally:
        line.stop()


def test_valves_route_schema(served: tuple[SortingLine, str, PulseLog]) -> None:
    _, url, _ = served
    schema = httpx.get(f"{url}/openapi.json").json()
    for action in ("disable", "enable"):
        responses = schema["paths"][f"/valves/{{n}}/{action}"]["post"]["responses"]
        assert {"200", "401", "403", "404", "409", "422"} <= set(responses)
