"""The bar line recovered from steel test pieces and camera sightings, within 2 mm."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sim.plant.induction import InductionBar, InductionSensor
from sortline.sensor.calibrate import Sighting, bar_offset


class _Rig:
    """Steel discs lying on a belt at 0.1 mm/tick; y = u + travel."""

    def __init__(self, pieces: list[tuple[float, float, float]]) -> None:
        self.pieces = pieces  # (x, u, diameter)
        self.tick_unwrapped = 0
        self.travel_mm = 0.0
        self.now_s = 0.0

    def move(self, ticks: int) -> None:
        self.tick_unwrapped += ticks
        self.travel_mm = 0.1 * self.tick_unwrapped
        self.now_s = self.travel_mm / 2500.0

    def footprints_near(self, lo: float, hi: float) -> list[Any]:
        out = []
        g = np.arange(-20.0, 20.0, 1.0) + 0.5
        gx, gy = np.meshgrid(g, g)
        for k, (x, u, d) in enumerate(self.pieces):
            y = u + self.travel_mm
            inside = gx**2 + gy**2 <= (d / 2) ** 2
            if y + d / 2 >= lo and y - d / 2 <= hi:
                fx, fy = gx[inside], gy[inside]
                out.append((k, "steel", "plate", d, d, x, y, fx, fy, 0.0))
        return out


@pytest.mark.parametrize("y_bar_mm", [-300.0, -287.3, 152.6])
def test_bar_offset_recovered_within_2_mm(y_bar_mm: float) -> None:
    bar = InductionBar(y_bar_mm=y_bar_mm, noise=3.0, drift_walk=2.0)
    rng = np.random.default_rng(int(abs(y_bar_mm) * 10))
    xs = bar.coil_x_mm[[3, 9, 15, 21, 27]] + rng.uniform(-5, 5, 5)
    pieces = [(float(x), y_bar_mm - 200.0 - 150.0 * k, 30.0) for k, x in enumerate(xs)]
    rig = _Rig(pieces)
    sensor = InductionSensor(bar, 0.1, 0, 1.0, seed=7)
    sightings = []
    camera_y = y_bar_mm + 400.0 if y_bar_mm < 0 else y_bar_mm + 250.0  # well past the bar
    for _ in range(6000):
        rig.move(25)
        sensor.after_move(rig)
        for x, u, _d in pieces:  # the camera sees a piece once it is past camera_y
            y = u + rig.travel_mm
            if camera_y <= y < camera_y + 2.5:
                # a measured centre: 0.3 mm of segmentation noise
                sightings.append(Sighting(rig.tick_unwrapped, y + rng.normal(0, 0.3), x))
    assert len(sightings) == 5
    got = bar_offset(sensor.drain(), sightings, 0.1, bar.x_first_mm, bar.pitch_mm)
    assert abs(got.y_bar_mm - y_bar_mm) < 2.0
    assert got.spread_mm < 2.0


def test_no_signal_is_refused() -> None:
    bar = InductionBar()
    rig = _Rig([])
    sensor = InductionSensor(bar, 0.1, 0, 1.0, seed=1)
    for _ in range(100):
        rig.move(25)
        sensor.after_move(rig)
    rows = sensor.drain()
    with pytest.raises(ValueError, match="test piece"):
        bar_offset(rows, [], 0.1, 0.0, 31.25)
    got = bar_offset(rows, [Sighting(2500, 0.0, 500.0)], 0.1, 0.0, 31.25)
    assert np.isfinite(got.y_bar_mm)  # noise only: a number, but see the spread of several


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_calibrate_bar_offset_on_the_virtual_rig(
    seed: int, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """``sortline calibrate bar-offset --virtual``: the hidden line (nominal +- 25 mm)
    is recovered within 2 mm from the config's bar geometry; without --virtual,
    one line and exit 2."""
    import json

    from sortline.cli import main

    out = tmp_path / "bar.json"
    argv = ["calibrate", "bar-offset", "--virtual", "--seed", str(seed), "--json", str(out)]
    assert main(argv) == 0
    rep = json.loads(out.read_text())
    assert rep["pieces"] == 5 and rep["passed"]
    assert abs(rep["y_bar_mm"] - rep["truth_y_bar_mm"]) <= 2.0
    assert rep["truth_y_bar_mm"] != rep["nominal_y_bar_mm"]  # the rig hides a real shift
    capsys.readouterr()
    assert main(["calibrate", "bar-offset"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--virtual" in err[0]
