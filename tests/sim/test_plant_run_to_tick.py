"""``VirtualPlant.run_to_tick`` lands on exact encoder counts (the triggered
camera) without changing what ``step()`` does."""

from __future__ import annotations

import math

import pytest

from calibration.geometry import BeltGeometry, LineGeometry
from core.types import Pulses
from sim.plant.plant import IdlePlc, VirtualPlant, _travel_of_count
from sim.plant.scenario import load_scenario


class RecordingPlc(IdlePlc):
    def __init__(self) -> None:
        self.ticks: list[int] = []

    def advance(self, tick_u32: int, speed_mm_s: float, now_s: float) -> Pulses:
        self.ticks.append(tick_u32)
        return Pulses.empty()


@pytest.mark.parametrize("mm_per_tick", [0.1, 0.07, 0.3, 1 / 3])
def test_travel_of_count_is_the_first_travel_of_that_count(mm_per_tick: float) -> None:
    for count in [0, 1, 3, 7, 250, 12345, 999_999, 2**32 + 5]:
        x = _travel_of_count(count, mm_per_tick)
        assert math.floor(x / mm_per_tick) == count
        assert math.floor(math.nextafter(x, -math.inf) / mm_per_tick) < count or x == 0


@pytest.mark.parametrize(("mm_per_tick", "every"), [(0.1, 250), (0.07, 333), (0.3, 7)])
def test_run_to_tick_stops_exactly_there_and_tells_the_plc(mm_per_tick: float, every: int) -> None:
    geom = LineGeometry(belt=BeltGeometry(mm_per_tick=mm_per_tick))
    plc = RecordingPlc()
    plant = VirtualPlant(geom, load_scenario("default"), plc, seed=2)
    start = plant.tick_unwrapped
    for k in range(1, 40):
        target = start + k * every
        plant.run_to_tick(target)
        assert plant.tick_unwrapped == target and plc.ticks[-1] == target
        frame = plant.render()
        assert frame.tick == target and frame.frame_id == k - 1
    assert plant.now_s == pytest.approx(plant.travel_mm / plant.nominal_speed_mm_s, rel=0.03)
    plant.run_to_tick(plant.tick_unwrapped)  # already there: nothing moves
    with pytest.raises(ValueError, match="backwards"):
        plant.run_to_tick(plant.tick_unwrapped - 1)


def test_run_to_tick_across_the_wrap() -> None:
    scen = load_scenario("default").model_copy(
        update={
            "motion": load_scenario("default").motion.model_copy(
                update={"encoder_start": 2**32 - 600}
            )
        }
    )
    plant = VirtualPlant(LineGeometry(), scen, IdlePlc(), seed=1)
    plant.run_to_tick(2**32 + 500)
    assert plant.tick == 500
    assert plant.render().tick == 500


def test_step_is_run_for_one_period_then_render() -> None:
    a = VirtualPlant(LineGeometry(), load_scenario("default"), IdlePlc(), seed=4)
    b = VirtualPlant(LineGeometry(), load_scenario("default"), IdlePlc(), seed=4)
    for _ in range(5):
        fa = a.step()
        b.run_for(LineGeometry().camera.frame_period_s)
        fb = b.render()
        assert (fa.tick, fa.t_s, fa.frame_id) == (fb.tick, fb.t_s, fb.frame_id)
        assert (fa.image == fb.image).all()
