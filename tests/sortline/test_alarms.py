"""The alarm book: the book itself, the evaluator on fabricated observations
(deadline-miss rate, dead and weak valves, model uncertainty, PLC faults), and
injected causes on a real stepped line over HTTP on loopback (E-stop, a
stalled camera, a records folder that became unwritable)."""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from core.types import Detections
from sortline.alarm_rules import (
    AlarmEvaluator,
    Observation,
    Raised,
    UncertaintyListener,
    classified_below,
    valve_verdicts,
)
from sortline.alarms import AlarmBook, NothingToAcknowledgeError, UnknownAlarmError
from sortline.config import AlarmsSection, load_config
from sortline.runtime import SortingLine
from vision.camera import Camera, RawFrame, SourceStalledError

from .conftest import ApiKeys, configured_line, served_line

CFG = AlarmsSection()


# ------------------------------------------------------------------ the book
def test_book_raises_refreshes_clears_reraises_and_acknowledges() -> None:
    book = AlarmBook(history=10, n_valves=4)
    book.update({"camera": Raised("critical", "camera stalled: cam0")}, now=1.0)
    book.update({"camera": Raised("critical", "camera stalled: cam0 (2)")}, now=2.0)
    a = book.get("camera")
    assert a is not None and (a.count, a.state, a.last_seen_unix_s) == (1, "active", 2.0)
    assert a.message == "camera stalled: cam0 (2)" and a.first_seen_unix_s == 1.0
    assert book.acknowledge("camera", "ann", now=2.5).acked_by == "ann"
    with pytest.raises(NothingToAcknowledgeError, match="already by ann"):
        book.acknowledge("camera", "bob")
    book.update({}, now=3.0)
    a = book.get("camera")
    assert a is not None and (a.state, a.cleared_unix_s, a.acknowledged) == ("cleared", 3.0, True)
    with pytest.raises(NothingToAcknowledgeError, match="cleared"):
        book.acknowledge("camera", "ann")
    book.update({"camera": Raised("critical", "camera lost: cam0")}, now=4.0)
    a = book.get("camera")
    assert a is not None and (a.count, a.acknowledged, a.first_seen_unix_s) == (2, False, 1.0)
    assert [e.event for e in book.view().history] == [
        "raised", "acknowledged", "cleared", "raised",
    ]  # fmt: skip
    with pytest.raises(NothingToAcknowledgeError, match="never raised"):
        book.acknowledge("valve.3", "ann")  # a key the line has, never raised
    for key in ("valve.4", "valve.03", "nonsense"):
        with pytest.raises(UnknownAlarmError):
            book.acknowledge(key, "ann")
    for i in range(20):  # the journal is bounded
        book.update({"records": Raised("warning", "x")} if i % 2 else {}, now=5.0 + i)
    assert len(book.view().history) == 10


# ------------------------------------------------------------- evaluator
def run(seq: list[Observation], cfg: AlarmsSection = CFG) -> list[dict[str, Raised]]:
    ev = AlarmEvaluator(cfg)
    return [ev.evaluate(o) for o in seq]


def obs(t_s: float, **kw: Any) -> Observation:
    return Observation(t_s=t_s, plc_where="10.0.0.5:502", **kw)


@pytest.mark.parametrize(
    ("misses", "raised"),
    [
        ([0, 3, 5], [False, False, False]),  # 5 in a minute: at the limit
        ([0, 3, 9], [False, False, True]),  # 9 in a minute: above it
        ([0, 0, 9, 9, 9], [False, False, True, True, False]),  # the burst leaves the window
        ([100, 100, 103], [False, False, False]),  # misses before the first look: baseline
    ],
)
def test_deadline_miss_rate(misses: list[int], raised: list[bool]) -> None:
    ts = [0.0, 10.0, 20.0, 70.0, 90.0][: len(misses)]
    out = run([obs(t, deadline_misses=m) for t, m in zip(ts, misses, strict=True)])
    assert ["deadline_misses" in o for o in out] == raised
    if any(raised):
        r = next(o["deadline_misses"] for o in out if "deadline_misses" in o)
        assert r.severity == "warning" and "9 in the last 60 s (more than 5)" in r.message


def cycles_run(*deltas: list[int]) -> list[Observation]:
    """Observations 70 s apart whose per-valve counts grow by ``deltas``."""
    c = np.full(len(deltas[0]), 1000, dtype=np.int64)
    seq = [obs(0.0, valve_cycles=tuple(c.tolist()))]
    for i, d in enumerate(deltas, start=1):
        c = c + np.asarray(d)
        seq.append(obs(70.0 * i, valve_cycles=tuple(c.tolist())))
    return seq


@pytest.mark.parametrize(
    ("deltas", "expect"),
    [
        ([[9, 9, 0, 9, 9], [9, 9, 0, 9, 9]], {"valve.2": "valve 2 dead: 0 cycles"}),
        ([[9, 9, 1, 9, 9], [9, 9, 1, 9, 9]], {"valve.2": "valve 2 weak: 2 cycles"}),
        ([[0, 0, 0, 0, 0], [0, 0, 0, 0, 0]], {}),  # belt empty: all stop, none judged
        ([[9, 9, 0, 0, 9], [9, 9, 0, 0, 9]], {}),  # a dead neighbour: not judged
        ([[2, 2, 0, 2, 2], [2, 2, 0, 2, 2]], {}),  # neighbours too idle (< 5) to judge
        ([[0, 9, 9, 9, 9], [0, 9, 9, 9, 9]], {"valve.0": "valve 0 dead"}),  # end of the bar
        ([[9, 9, 0, 9, 9]], {}),  # less than a full window (120 s) yet
    ],
)
def test_dead_and_weak_valves(deltas: list[list[int]], expect: dict[str, str]) -> None:
    last = run(cycles_run(*deltas))[-1]
    got = {k: r for k, r in last.items() if k.startswith("valve.")}
    assert set(got) == set(expect)
    for key, text in expect.items():
        assert got[key].severity == "warning" and text in got[key].message
        assert "while its neighbours ran" in got[key].message


def test_a_valve_recovers_and_link_loss_keeps_the_verdict() -> None:
    ev = AlarmEvaluator(CFG)
    seq = cycles_run([9, 9, 0, 9, 9], [9, 9, 0, 9, 9])
    for o in seq:
        out = ev.evaluate(o)
    assert "valve.2" in out
    lost = ev.evaluate(obs(150.0, plc_linked=False, plc_error="timed out"))
    assert "valve.2" in lost and lost["plc.link"].severity == "critical"
    assert lost["plc.link"].message == "PLC link lost (10.0.0.5:502): timed out"
    c = np.asarray(seq[-1].valve_cycles)
    for i in range(1, 4):  # valve 2 runs again like the others
        out = ev.evaluate(obs(150.0 + 70 * i, valve_cycles=tuple((c + 9 * i).tolist())))
    assert "valve.2" not in out
    assert valve_verdicts(np.zeros(1, dtype=np.int64), 5, 0.2, 60.0) == {}


@pytest.mark.parametrize(
    ("seq", "key", "severity", "text"),
    [
        ([obs(0, estop=True)], "estop", "critical", "E-stop pressed"),
        ([obs(0, plc_state=9)], "estop.reset", "warning", "until an operator resets"),
        ([obs(0), obs(1, watchdog_trips=1)], "plc.watchdog", "warning", "tripped 1 time"),
        ([obs(0), obs(1, rejected_malformed=2)], "plc.malformed", "warning", "refused 2"),
        ([obs(0, plc_linked=False, plc_error="refused")], "plc.link", "critical", "lost"),
        ([obs(0, plc_linked=False), obs(11, plc_linked=False)], "plc.link", "critical", "lost"),
        (
            [
                obs(0, plc_started=False, plc_linked=False),
                obs(46, plc_linked=False),
                obs(57, plc_linked=False),
            ],
            "plc.link",
            "critical",
            "lost",
        ),
        ([obs(0, camera_problem="camera lost: cam7")], "camera", "critical", "cam7"),
        ([obs(0, loop_failure="frame loop failing: X")], "frame_loop", "critical", "failing"),
        ([obs(0), obs(1, frames_untimed=3)], "timebase", "warning", "3 frame(s) without"),
        ([obs(0), obs(1, timebase_mismatches=1)], "timebase", "warning", "1 trigger mismatch"),
        (
            [obs(0, frames_stamped=10), obs(5, frames_stamped=510, timebase_unchecked=300)],
            "timebase.unchecked",
            "info",
            "300 of 500 frames",
        ),
        ([obs(0), obs(1, records_failed=1, records_error="E")], "records", "warning", "(E)"),
        ([obs(0), obs(1, records_dropped=4)], "records", "warning", "4 record(s) dropped"),
    ],
)
def test_conditions(seq: list[Observation], key: str, severity: str, text: str) -> None:
    out = run(seq)[-1]
    assert key in out and out[key].severity == severity and text in out[key].message, out


@pytest.mark.parametrize(
    ("seq", "absent"),
    [
        ([obs(0, plc_linked=False)], "plc.link"),  # never linked, no error yet: start-up grace
        # a first start compiles its kernels for tens of seconds before the bridge
        # starts: no link is tried yet, so none is lost; the grace runs from the start
        ([obs(0, plc_started=False, plc_linked=False),
          obs(45, plc_started=False, plc_linked=False),
          obs(46, plc_linked=False), obs(55, plc_linked=False)], "plc.link"),
        ([obs(0, watchdog_trips=7)], "plc.watchdog"),  # trips before the first look
        ([obs(0, frames_stamped=0), obs(1, frames_stamped=0, frames_untimed=1),
          obs(2, frames_stamped=5, frames_untimed=1)], "timebase"),  # before the first trigger
        ([obs(0), obs(1, watchdog_trips=1), obs(62, watchdog_trips=1)], "plc.watchdog"),
        ([obs(0, frames_stamped=10), obs(5, frames_stamped=510, timebase_unchecked=200)],
         "timebase.unchecked"),  # fewer than half
        ([obs(0, frames_stamped=10), obs(1, frames_stamped=60, timebase_unchecked=50)],
         "timebase.unchecked"),  # too few frames to judge
        ([obs(0, records_failed=1), obs(1, records_failed=1, records_written=5)], "records"),
        ([obs(0), obs(1, records_failed=1), obs(2, records_failed=1, records_written=3)],
         "records"),  # written again since: cleared
    ],
)  # fmt: skip
def test_conditions_that_do_not_hold(seq: list[Observation], absent: str) -> None:
    assert absent not in run(seq)[-1]


def test_uncertainty_counts_classified_views_only() -> None:
    conf = np.array([0.9, 0.3, np.nan, np.nan, 0.55, 0.0], np.float32)  # NaN: not classified
    assert classified_below(conf, 0.6) == (4, 3)
    assert classified_below(np.full(3, np.nan, np.float32), 0.6) == (0, 0)
    assert classified_below(np.zeros(0, np.float32), 0.6) == (0, 0)


def test_model_uncertainty_rising_over_its_baseline() -> None:
    cfg = AlarmsSection(uncertainty_window_frames=10, uncertainty_min_detections=20)
    lis = UncertaintyListener(cfg.uncertain_below, 10, cfg.uncertainty_rise, 20)
    ev = AlarmEvaluator(cfg)

    def block(low_per_frame: int, t: float) -> dict[str, Raised]:
        for _ in range(10):
            lis.add(10, low_per_frame)
        return ev.evaluate(obs(t, uncertainty=lis.reading, model="builtin:sortline-cnn"))

    assert all("model_uncertainty" not in block(1, t) for t in range(5))  # 10 % baseline
    out = block(4, 5)  # 40 %: 30 points above the baseline
    assert out["model_uncertainty"].severity == "warning"
    assert "40% of 100 detections below confidence 0.6" in out["model_uncertainty"].message
    assert "baseline 10%" in out["model_uncertainty"].message  # not dragged up
    assert "model_uncertainty" in block(4, 6)
    assert "model_uncertainty" not in block(1, 7)


def test_uncertainty_listener_counts_detections_below_the_threshold() -> None:
    lis = UncertaintyListener(0.6, window_frames=2, rise=0.15, min_detections=3)
    conf = np.array([0.9, 0.5, 0.2, 0.95], dtype=np.float32)
    n = len(conf)
    dets = Detections(
        frame_id=1, tick=0, bbox_px=np.zeros((n, 4), np.float32),
        centroid_mm=np.zeros((n, 2)), extent_mm=np.zeros((n, 4)),
        area_mm2=np.ones(n, np.float32), class_id=np.zeros(n, np.int16), confidence=conf,
        class_prob=np.zeros((n, 0), np.float32),
    )  # fmt: skip

    @dataclass
    class C:
        detections: Detections

    for _ in range(2):
        lis.on_cycle(C(dets))  # type: ignore[arg-type]
    assert lis.reading is not None and lis.reading.share == 0.5
    assert lis.reading.detections == 8 and lis.reading.frames == 2


# ------------------------------------------------------- over HTTP, injected
class Stall:
    """The plant's camera, stalled while ``on``."""

    def __init__(self, cam: Camera) -> None:
        self.cam, self.on = cam, False

    @property
    def name(self) -> str:
        return "stallcam:" + self.cam.name

    def open(self) -> None:
        self.cam.open()

    def close(self) -> None:
        self.cam.close()

    def read(self, timeout_s: float) -> RawFrame:
        if self.on:
            time.sleep(0.25)  # longer than [camera] stall_ms
            raise SourceStalledError(f"{self.name}: no frame for {timeout_s:.2f} s")
        return self.cam.read(timeout_s)


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, api_keys: ApiKeys
) -> Iterator[tuple[SortingLine, str, Path]]:
    global http
    http = api_keys.client("operator")
    tmp = tmp_path_factory.mktemp("alarms")
    records = tmp / "records"
    cfg = tmp / "line.toml"
    cfg.write_text(f'[records]\ndir = "{records}"\n[alarms]\nperiod_s = 0.05\n')

    def stall(line: SortingLine) -> None:
        line.camera.camera = Stall(line.camera.camera)

    with served_line(api_keys, 20, load_config(cfg), prepare=stall) as (line, url):
        yield line, url, records


http: httpx.Client  # the operator's key (op-ann), set by ``served``


def until(cond: Callable[[], bool], line: SortingLine, step: bool, timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        if step:
            line.run_frames(1)
        else:
            time.sleep(0.02)
    return False


def alarm(url: str, key: str) -> dict[str, Any] | None:
    body = http.get(f"{url}/alarms").json()
    return next((a for a in body["active"] + body["cleared"] if a["key"] == key), None)


def is_active(url: str, key: str, count: int | None = None) -> bool:
    a = alarm(url, key)
    return a is not None and a["state"] == "active" and count in (None, a["count"])


def is_cleared(url: str, key: str) -> bool:
    a = alarm(url, key)
    return a is not None and a["state"] == "cleared"


def estop(line: SortingLine, url: str, pressed: bool) -> None:
    plant = line.parts.plant
    assert plant is not None
    plant.plc.set_estop(pressed)
    if not pressed:  # latched Aborted: asks for a Reset, then Start, as an operator would
        assert until(lambda: is_active(url, "estop.reset"), line, False), alarm(url, "estop.reset")
        line.run_frames(2)
        assert http.post(f"{url}/commands/reset", json={"who": "t"}).json()["state"] == "IDLE"
        assert http.post(f"{url}/commands/start", json={"who": "t"}).json()["state"] == "EXECUTE"


def stall(line: SortingLine, _: str, on: bool) -> None:
    line.camera.camera.on = on  # type: ignore[attr-defined]


def records_broken(records: Path) -> Callable[[SortingLine, str, bool], None]:
    """The records database locked by another process's write transaction, and freed."""
    held: list[sqlite3.Connection] = []

    def cause(line: SortingLine, _: str, on: bool) -> None:
        if on:
            assert line.records is not None
            other = sqlite3.connect(line.records.path, isolation_level=None)
            other.execute("BEGIN EXCLUSIVE")
            held.append(other)
        else:
            other = held.pop()
            other.execute("ROLLBACK")
            other.close()

    return cause


@pytest.mark.parametrize(
    ("name", "key", "severity", "text", "step"),
    [
        ("estop", "estop", "critical", "E-stop pressed", False),
        ("stall", "camera", "critical", "camera stalled: stallcam:", True),
        ("records", "records", "warning", "cannot write (OperationalError: database is lock", True),
    ],
)
def test_injected_cause_raises_clears_acks_and_reraises(
    served: tuple[SortingLine, str, Path], name: str, key: str, severity: str, text: str,
    step: bool,
) -> None:  # fmt: skip
    line, url, records = served
    cause = {"estop": estop, "stall": stall, "records": records_broken(records)}[name]
    for count in (1, 2):
        cause(line, url, True)
        raised = functools.partial(is_active, url, key, count)
        assert until(raised, line, step), alarm(url, key)
        a = alarm(url, key)
        assert a is not None and a["severity"] == severity and text in a["message"], a
        assert a["acknowledged"] is False
        if name == "records":
            assert str(records) in a["message"]
        r = http.post(f"{url}/alarms/{key}/ack", json={"who": "op-ann"})
        assert r.status_code == 200, r.text
        assert r.json()["acked_by"] == "op-ann" and r.json()["acked_unix_s"] > a["raised_unix_s"]
        r = http.post(f"{url}/alarms/{key}/ack", json={"who": "op-bob"})  # a note only
        assert r.status_code == 409 and "already by op-ann" in r.json()["detail"]
        cause(line, url, False)
        assert until(lambda: is_cleared(url, key), line, True), alarm(url, key)
        r = http.post(f"{url}/alarms/{key}/ack", json={"who": "op-ann"})
        assert r.status_code == 409 and "not active" in r.json()["detail"]
    events = [(e["event"], e["count"]) for e in http.get(f"{url}/alarms").json()["history"]
              if e["key"] == key]  # fmt: skip
    assert events == [("raised", 1), ("acknowledged", 1), ("cleared", 1),
                      ("raised", 2), ("acknowledged", 2), ("cleared", 2)]  # fmt: skip
    assert line.state.state.name == "EXECUTE"
    if name == "estop":  # released, the line asked for a Reset each time
        assert until(lambda: is_cleared(url, "estop.reset"), line, False)  # next evaluation
        a = alarm(url, "estop.reset")
        assert a is not None and (a["severity"], a["state"], a["count"]) == (
            "warning",
            "cleared",
            2,
        )
        assert "until an operator resets it" in a["message"]


@pytest.mark.parametrize(
    ("key", "body", "status"),
    [
        ("no.such.alarm", {"who": "x"}, 404),
        ("valve.999", {"who": "x"}, 404),
        ("deadline_misses", {"who": "x"}, 409),  # known, not active
        ("camera", {"who": ""}, 422),
        ("camera", {"who": 5}, 422),
        ("camera", {"who": "x", "extra": 1}, 422),
        ("camera", {"who": None, "x": 1}, 422),
    ],
)
def test_ack_refusals(
    served: tuple[SortingLine, str, Path], key: str, body: object, status: int
) -> None:
    _, url, _ = served
    r = http.post(f"{url}/alarms/{key}/ack", json=body)
    assert r.status_code == status, r.text


def test_alarms_route_schema(served: tuple[SortingLine, str, Path]) -> None:
    _, url, _ = served
    body = http.get(f"{url}/alarms").json()
    assert set(body) == {"active", "cleared", "history"}
    schema = http.get(f"{url}/openapi.json").json()
    ack = schema["paths"]["/alarms/{key}/ack"]["post"]["responses"]
    assert {"200", "404", "409", "422"} <= set(ack)


def test_a_valve_disabled_on_purpose_is_not_judged() -> None:
    ran = np.array([50, 0, 50, 40], dtype=np.int64)
    assert set(valve_verdicts(ran, 5, 0.2, 120.0)) == {"valve.1"}
    assert valve_verdicts(ran, 5, 0.2, 120.0, disabled=frozenset({1})) == {}


def test_a_line_warming_up_has_not_started_its_plc_link(tmp_path) -> None:
    """Before ``start`` (the kernels' warm-up runs first) the bridge tries no link,
    and the observation says so: the PLC link cannot be "lost" yet."""
    from sortline.alarm_rules import observe

    unc = UncertaintyListener(0.5, 10, 0.1, 10)
    with configured_line(tmp_path, "") as line:
        before = observe(line, unc)
        assert not before.plc_started and not before.plc_linked
        assert "plc.link" not in AlarmEvaluator(CFG).evaluate(before)
        line.start()
        assert observe(line, unc).plc_started
