"""Scoring on hand-built ground truth with known answers."""

from __future__ import annotations

import pytest

from sim.plant.score import Scorer, fragment_outcomes, score_fragments
from sim.plant.truth import FragmentRecord, RunRecord


def rec(fid, cls, bin_, hits=None, match=None, u=0.5):
    hits = hits or {}
    return FragmentRecord(
        fragment_id=fid, class_name=cls, class_id=0, kind="plate", size_mm=30.0,
        length_mm=30.0, width_mm=20.0, spawn_t_s=0.0, spawn_tick=0, x_feed_mm=100.0,
        rolls=False, bounces=False, bin=bin_, run_hits=hits,
        run_match=match if match is not None else dict(hits),
        hit_u_centre=u if hits else None,
    )  # fmt: skip


def run(run_id, valves=2, air_ms=10.0):
    return RunRecord(run_id, 0, 10, 10 + valves - 1, 0.0, 100.0, air_ms, run_id)


# a stream of ten crossed fragments and one still upstream
RECORDS = [
    rec(0, "copper", "eject", {0: 1.0}),  # hit, right
    rec(1, "brass", "eject", {1: 0.9}),  # hit, right
    rec(2, "battery", "pass", {2: 0.3}, u=0.8),  # air came late
    rec(3, "copper", "pass", {3: 0.2}, u=0.1),  # air came early
    rec(4, "brass", "pass"),  # never commanded: missed
    rec(5, "steel", "eject", {1: 0.4}, match={1: 0.1}),  # neighbour of 1: co-ejected
    rec(6, "plastic", "eject", {4: 1.0}),  # the run was meant for it: false eject
    rec(7, "rubber", "pass"),
    rec(8, "pcb", "pass"),
    rec(9, "battery", "pass", {5: 0.5}, u=0.5),  # covered the middle, too little
    rec(10, "copper", None),  # in flight
]
RUNS = [run(i) for i in range(6)]


def test_pooled_figures():
    s = score_fragments(RECORDS, RUNS)
    assert (s.crossed, s.in_flight, s.targeted, s.ejected) == (10, 1, 6, 4)
    assert s.purity == pytest.approx(2 / 4)
    assert s.recovery == pytest.approx(2 / 6)
    assert s.co_ejection_rate == pytest.approx(1 / 4)
    assert (s.co_ejected, s.false_ejects) == (1, 1)
    assert (s.missed, s.late, s.early, s.partial) == (1, 1, 1, 1)
    assert s.air_valve_ms == pytest.approx(6 * 2 * 10.0)
    assert s.valve_ms_per_ejected == pytest.approx(120.0 / 4)


@pytest.mark.parametrize(
    ("cls", "n", "recovery", "co_rate", "missed", "late"),
    [
        ("copper", 2, 0.5, 0.0, 0, 0),
        ("brass", 2, 0.5, 0.0, 1, 0),
        ("battery", 2, 0.0, 0.0, 0, 1),
        ("steel", 1, None, 1.0, 0, 0),
        ("plastic", 1, None, 0.0, 0, 0),
        ("aluminium", 0, None, None, 0, 0),
    ],
)
def test_per_class(cls, n, recovery, co_rate, missed, late):
    g = score_fragments(RECORDS, RUNS).classes[cls]
    assert (g.n, g.recovery, g.co_ejection_rate, g.missed, g.late) == (
        n, recovery, co_rate, missed, late,
    )  # fmt: skip


def test_per_fraction_and_confusion():
    s = score_fragments(RECORDS, RUNS)
    assert set(s.fractions) == {"eject", "pass"}
    ej, ps = s.fractions["eject"], s.fractions["pass"]
    assert (ej.n, ej.purity, ej.co_ejected, ej.false_ejects) == (4, 0.5, 1, 1)
    assert (ps.n, ps.purity) == (6, pytest.approx(2 / 6))
    assert s.confusion["copper"] == {"eject": 1, "pass": 1}
    assert s.confusion["steel"] == {"eject": 1}
    assert s.confusion["aluminium"] == {}
    d = s.to_dict()
    assert d["objects_ejected"] == 4 and d["objects_targeted"] == 6
    assert d["fractions"]["eject"]["purity"] == 0.5


def test_other_recipe_and_empty_cases():
    s = score_fragments(RECORDS, RUNS, {"plastic": "eject"})
    assert s.targeted == 1 and s.recovery == 1.0 and s.purity == pytest.approx(1 / 4)
    empty = score_fragments([], [])
    assert empty.purity is None and empty.recovery is None and empty.crossed == 0
    with pytest.raises(ValueError, match="unknown class"):
        score_fragments(RECORDS, RUNS, {"gold": "eject"})


@pytest.mark.parametrize("final_after_mm", [0.0, 150.0, 1e9])
def test_incremental_scorer_equals_the_batch_score(final_after_mm):
    scorer = Scorer(final_after_mm)
    crossed = [r for r in RECORDS if r.bin is not None]
    for i, r in enumerate(crossed):
        scorer.settled(r, travel_mm=100.0 * i)
        for targets in (None, {"plastic": "eject"}):
            got = scorer.score(i + 2, RUNS[: i + 1], 100.0 * i, targets).to_dict()
            want = score_fragments([*crossed[: i + 1], RECORDS[-1]], RUNS[: i + 1], targets)
            assert got == want.to_dict()


def test_fragment_outcomes():
    out = {d["fragment_id"]: d for d in fragment_outcomes(RECORDS, RUNS)}
    want = {0: "ok", 1: "ok", 2: "late", 3: "early", 4: "missed", 5: "co_ejected",
            6: "false_eject", 7: "ok", 9: "partial", 10: "in_flight"}  # fmt: skip
    assert {k: out[k]["outcome"] for k in want} == want
    assert out[5]["tracks"] == [1] and out[0]["target"] == "eject" and out[7]["target"] == "pass"


def test_air_per_fraction_and_class():
    s = score_fragments(RECORDS, RUNS)  # every run: 2 valves x 10 ms = 20 valve-ms
    ej, ps = s.fractions["eject"], s.fractions["pass"]
    assert ej.air_valve_ms == pytest.approx(60.0) and ej.valve_ms_per_ejected == pytest.approx(15.0)
    assert ps.air_valve_ms == pytest.approx(60.0) and ps.valve_ms_per_ejected is None
    cu = s.classes["copper"]
    assert cu.air_valve_ms == pytest.approx(40.0) and cu.valve_ms_per_ejected == pytest.approx(40.0)
    assert s.classes["steel"].air_valve_ms == 0.0  # co-ejected: the air was not meant for it


def test_scorer_forgets_old_fragments_but_keeps_their_tally():
    scorer = Scorer(final_after_mm=50.0)
    crossed = [r for r in RECORDS if r.bin is not None]
    for i, r in enumerate(crossed):
        scorer.settled(r, travel_mm=100.0 * i)
    want = score_fragments(crossed, RUNS).to_dict()
    before = scorer.score(len(crossed), RUNS, 1000.0).to_dict()  # the default recipe, seen
    ids = scorer.forget(6, RUNS, 1000.0)
    assert ids == {r.fragment_id for r in crossed[:6]}
    after = scorer.score(len(crossed) - 6, RUNS, 1000.0).to_dict()
    assert before == want and after == want and after["forgotten"] == 0
    late = scorer.score(len(crossed) - 6, RUNS, 1000.0, {"plastic": "eject"})
    assert late.forgotten == 6 and late.crossed == len(crossed) - 6
