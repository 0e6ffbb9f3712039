"""The plant with the real virtual PLC (``sim.vplc.core.PlcCore``) driven by an
oracle that knows the truth: pulses written through the PLC's register map
fire at their ticks and eject what they cover. This bounds what a perfect
controller can reach on each scene, and pins plant + PLC working together."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calibration.geometry import LineGeometry
from plc import regmap as rm
from sim.plant.plant import VirtualPlant
from sim.plant.scenario import load_scenario
from sim.plant.score import score_fragments
from sim.vplc.core import PlcCore

GEOM = LineGeometry()
TARGETS = {"copper": "eject", "brass": "eject", "battery": "eject"}


class Oracle:
    """Commands each targeted fragment once, from its true outline, when it
    is low in the view, at its true speed over the last frame (fragments roll
    and slide: ``sim.plant.feed``); writes the heartbeat every frame."""

    def __init__(self, plc: PlcCore, margin_mm: float, shift_mm: float = 0.0) -> None:
        self.plc = plc
        self.margin_mm = margin_mm
        self.shift_mm = shift_mm  # deliberate timing error (mm of belt travel)
        self.done: set[int] = set()
        self.last: dict[int, tuple[int, float, float]] = {}  # id -> tick, x, y of the last frame
        self.seq = plc.acked_seq
        self.beat = 0

    def frame(self, plant: VirtualPlant) -> None:
        self.beat = (self.beat + 1) % 65536
        assert self.plc.write_holding(rm.HR_HEARTBEAT, [self.beat]) is None
        truth = plant.visible_truth()
        cam, valves, belt = GEOM.camera, GEOM.valves, GEOM.belt
        ticks_per_mm = 1.0 / belt.mm_per_tick
        now = plant.tick_unwrapped
        for i in range(len(truth)):
            fid = int(truth.fragment_id[i])
            if fid in self.done or truth.class_name[i] not in TARGETS:
                continue
            x, y = cam.px_to_mm(truth.polygons_px[i][:, 0], truth.polygons_px[i][:, 1])
            cx, cy = truth.centroid_mm[i]
            before = self.last.get(fid)
            self.last[fid] = (now, float(cx), float(cy))
            if y.min() < 0.0 or y.max() > cam.view_y_range_mm[1]:
                continue  # wait until it is low in the view (outlines are unclipped:
                # one that rolled past the image's side is still known)
            self.done.add(fid)
            # travel per tick of this fragment (the belt's plus its own) and drift
            speed_mm_tick, drift_mm_tick = belt.mm_per_tick, 0.0
            if before is not None:
                dt = max(now - before[0], 1)
                speed_mm_tick = max((cy - before[2]) / dt, 0.25 * belt.mm_per_tick)
                drift_mm_tick = (cx - before[1]) / dt
            x = x + drift_mm_tick * (valves.y_valve_mm - cy) / speed_mm_tick
            m = self.margin_mm
            first = int(valves.valve_at_mm(x.min() - m))
            last = int(valves.valve_at_mm(x.max() + m))
            speed = plant.speed_mm_s
            d_on = (valves.y_valve_mm - y.max() - m + self.shift_mm) / speed_mm_tick
            d_off = (valves.y_valve_mm - y.min() + m + self.shift_mm) / speed_mm_tick
            on = now + d_on - valves.open_delay_ms * 1e-3 * speed * ticks_per_mm
            off = now + d_off - valves.close_delay_ms * 1e-3 * speed * ticks_per_mm
            self.seq = rm.seq_add(self.seq, 1)
            words = rm.pack_records(
                [self.seq], [0], [first], [last],
                [math.floor(on) % 2**32], [math.ceil(off) % 2**32],
            )  # fmt: skip
            assert self.plc.write_holding(rm.slot_address(self.seq), words) is None


def sort_with_oracle(
    scenario: str,
    seconds: float,
    margin_mm: float,
    shift_mm: float = 0.0,
    tumble: float | None = None,
):
    plc = PlcCore(n_valves=GEOM.valves.n_valves, watchdog_ms=300.0)
    scen = load_scenario(scenario)
    if tumble is not None:
        scen = scen.model_copy(
            update={"ejection": scen.ejection.model_copy(update={"tumble_share": tumble})}
        )
    plant = VirtualPlant(GEOM, scen, plc, seed=11)
    oracle = Oracle(plc, margin_mm, shift_mm)
    for _ in range(int(seconds * GEOM.camera.fps)):
        plant.step()
        oracle.frame(plant)
    return plant, plc


def test_perfect_pulses_sort_the_default_scene():
    plant, plc = sort_with_oracle("default", seconds=3.0, margin_mm=4.0)
    s = plant.score(TARGETS)
    assert s.targeted >= 15
    assert plc.counters["late"] == 0
    assert s.recovery is not None and s.recovery >= 0.9  # rolling parts can escape
    assert s.purity is not None and s.purity >= 0.85
    assert s.valve_ms_per_ejected is not None and s.valve_ms_per_ejected > 0
    assert len(plant.runs) >= s.targeted and plant.runs[0].air_ms > 0
    bins = plant.bins()
    assert len(bins["eject"]) == s.ejected and sum(map(len, bins.values())) == s.crossed
    outcomes = plant.outcomes(TARGETS)
    assert len(outcomes) == len(plant.fragments)
    assert sum(o["outcome"] == "co_ejected" for o in outcomes) == s.co_ejected


@pytest.mark.parametrize("shift_mm", [-80.0, 80.0])
def test_pulses_a_fragment_length_off_miss(shift_mm):
    plant, _ = sort_with_oracle("easy", seconds=2.0, margin_mm=2.0, shift_mm=shift_mm)
    s = plant.score(TARGETS)
    assert s.targeted >= 5
    assert s.recovery is not None and s.recovery <= 0.3
    kind = "late" if shift_mm > 0 else "early"
    assert getattr(s, kind) + s.missed + s.partial >= 0.7 * s.targeted


def test_wide_margins_co_eject_neighbours_on_a_crowded_belt():
    plant, _ = sort_with_oracle("crowded", seconds=2.0, margin_mm=40.0)
    s = plant.score(TARGETS)
    assert s.to_dict() == score_fragments(plant.fragments, plant.runs, TARGETS).to_dict()
    assert s.co_ejected >= 3
    assert s.co_ejection_rate is not None and s.co_ejection_rate > 0.05
    assert np.isclose(s.co_ejection_rate, s.co_ejected / s.ejected)


def test_covered_fragments_that_tumble_fall_back():
    plant, _ = sort_with_oracle("easy", seconds=1.5, margin_mm=4.0, tumble=1.0)
    s = plant.score(TARGETS)
    assert s.targeted >= 3 and s.ejected == 0
    assert s.tumbled == s.targeted and s.missed == 0


def test_sorting_across_the_encoder_wrap():
    """The plant starts 0.5 m of belt before the 32-bit count wraps."""
    plc = PlcCore(n_valves=GEOM.valves.n_valves, watchdog_ms=300.0)
    scen = load_scenario("easy")
    scen = scen.model_copy(
        update={"motion": scen.motion.model_copy(update={"encoder_start": 2**32 - 5000})}
    )
    plant = VirtualPlant(GEOM, scen, plc, seed=11)
    oracle = Oracle(plc, margin_mm=4.0)
    wrapped = False
    for _ in range(150):
        frame = plant.step()
        wrapped |= frame.tick < 2**31
        oracle.frame(plant)
    s = plant.score(TARGETS)
    assert wrapped and plant.tick_unwrapped > 2**32
    assert s.targeted >= 3 and s.recovery == 1.0 and s.purity == 1.0


def test_bounded_memory_keeps_the_score():
    """With room for only 20 fragments, a recipe scored during the run keeps
    every fragment in its figures while the plant drops old records (only
    those settled more than ~7 m of belt ago can go)."""

    def run(keep: int, score_every: int = 20):
        plc = PlcCore(n_valves=GEOM.valves.n_valves, watchdog_ms=300.0)
        plant = VirtualPlant(GEOM, load_scenario("default"), plc, seed=5, keep_fragments=keep)
        oracle = Oracle(plc, margin_mm=2.0)
        for i in range(500):
            plant.step()
            oracle.frame(plant)
            if i % score_every == 0:
                plant.score(TARGETS)
        return plant

    full, small = run(10**6), run(20)
    assert full.score(TARGETS).to_dict() == small.score(TARGETS).to_dict()
    assert len(small.fragments) < len(full.fragments) - 30
    assert small.score({"plastic": "eject"}).forgotten > 0
    # the runs go with the fragments they hit; the air they used stays counted
    assert len(small.runs) == len(full.runs) and small.runs.base > 0
    with pytest.raises(IndexError, match="not kept"):
        small.runs[0]
    with pytest.raises(ValueError, match="keep_fragments 0"):
        small.keep_fragments = 0
    unscored = run(20, score_every=10**6)  # scored once at frame 0, then only at the end
    assert unscored.runs.base > 0
    assert unscored.score(TARGETS).air_valve_ms == full.score(TARGETS).air_valve_ms
