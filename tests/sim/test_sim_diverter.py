"""Diverter flaps switch with a dead time: what crosses the valve line while
the flap is over takes the diverter's chute."""

from __future__ import annotations

import pytest

from calibration.geometry import LineGeometry
from plc import regmap as rm
from sim.plant.plant import VirtualPlant
from sim.plant.scenario import load_scenario
from sim.vplc.core import PlcCore

GEOM = LineGeometry()


def run_with_flap(dead_ms: float, on_after_mm: float, open_mm: float):
    """One flap command over ``open_mm`` of travel starting ``on_after_mm`` from now."""
    scen = load_scenario("easy")
    scen = scen.model_copy(
        update={"ejection": scen.ejection.model_copy(update={"diverter_dead_ms": dead_ms})}
    )
    plc = PlcCore(n_valves=GEOM.valves.n_valves, n_diverters=1)
    plant = VirtualPlant(GEOM, scen, plc, seed=4)
    plant.step()
    t0 = plant.tick_unwrapped
    on, off = t0 + round(on_after_mm / 0.1), t0 + round((on_after_mm + open_mm) / 0.1)
    seq = rm.seq_add(plc.acked_seq, 1)
    words = rm.pack_records([seq], [1], [0], [0], [on % 2**32], [off % 2**32])
    assert plc.write_holding(rm.HR_HEARTBEAT, [1]) is None
    assert plc.write_holding(rm.slot_address(seq), words) is None
    for i in range(300):
        plant.step()
        assert plc.write_holding(rm.HR_HEARTBEAT, [2 + i % 60000]) is None
    return plant, on, off


@pytest.mark.parametrize("dead_ms", [0.0, 40.0])
def test_flap_takes_what_crosses_while_it_is_over(dead_ms):
    plant, on, off = run_with_flap(dead_ms, on_after_mm=1500.0, open_mm=2500.0)
    dead = dead_ms * 1e-3 * plant.nominal_speed_mm_s / 0.1
    crossed = [r for r in plant.fragments if r.bin is not None]
    inside = [
        r
        for r in crossed
        if on + dead + 50 < r.cross_lead_tick and r.cross_trail_tick < off + dead - 50
    ]
    outside = [
        r for r in crossed if r.cross_trail_tick < on - 50 or r.cross_lead_tick > off + dead + 300
    ]
    assert len(inside) >= 3 and len(outside) >= 3
    assert all(r.bin == "divert1" for r in inside)
    assert all(r.bin == "pass" for r in outside)
    s = plant.score({"plastic": "divert1"})
    assert "divert1" in s.fractions and s.fractions["divert1"].n == sum(
        r.bin == "divert1" for r in crossed
    )
