"""The induction bar's physics on hand-built cases (``sim/plant/induction.py``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from calibration.geometry import LineGeometry
from core.sensor_rows import SensorRows
from sim.plant.induction import (
    InductionBar,
    InductionSensor,
    channel_weights,
    layer_response,
    material_em,
)
from sim.plant.materials import ELECTRICAL
from sim.plant.plant import IdlePlc, VirtualPlant
from sim.plant.scenario import load_scenario

BAR = InductionBar()
LAM = math.hypot(1e3 / BAR.coil_radius_mm, 3.8317e3 / 20.0)  # a 40 mm piece


def _resp(name: str, thick_mm: float = 1.0) -> complex:
    el = ELECTRICAL[name]
    sigma = sum(el.sigma_s_m) / 2
    mu_r = sum(el.mu_r) / 2
    return layer_response(sigma, mu_r, thick_mm, LAM, BAR.frequency_hz)


def _phase_deg(z: complex) -> float:
    """Angle of (in-phase, quadrature) = (Re R, -Im R), degrees."""
    return math.degrees(math.atan2(-z.imag, z.real))


def test_response_ordering_by_material() -> None:
    mag = {n: abs(_resp(n)) for n in ("steel", "copper", "aluminium", "brass", "stainless")}
    assert mag["copper"] > mag["brass"] > mag["stainless"]
    assert mag["aluminium"] > mag["brass"]
    assert min(mag["steel"], mag["copper"], mag["aluminium"]) > 3 * mag["stainless"]
    for name in ("plastic", "rubber", "residue"):
        assert _resp(name) == 0j


def test_copper_and_aluminium_differ_in_phase() -> None:
    cu, al = _phase_deg(_resp("copper")), _phase_deg(_resp("aluminium"))
    brass, ss = _phase_deg(_resp("brass")), _phase_deg(_resp("stainless"))
    assert cu > al + 5.0  # both resistive-dominated below 180 deg, copper nearer
    assert al > brass > ss
    assert 85.0 < ss < 110.0  # stainless: weak, mostly resistive


def test_steel_is_reactive_and_non_ferrous_opposes() -> None:
    steel = _resp("steel")
    assert steel.real > 0.5 and steel.real > -steel.imag
    for name in ("copper", "aluminium", "brass"):
        assert _resp(name).real < 0 < -_resp(name).imag


@pytest.mark.parametrize("name", ["copper", "aluminium", "brass"])
def test_thickness_against_skin_depth(name: str) -> None:
    thin, mid, thick, thicker = (_resp(name, t) for t in (0.02, 0.5, 5.0, 20.0))
    assert abs(thin) < abs(mid)  # far below the skin depth: weak, resistive
    assert _phase_deg(thin) < _phase_deg(mid) < _phase_deg(thick)
    assert abs(thick - thicker) < 0.02  # far above it: a half-space


def test_pcb_weak_and_battery_strong() -> None:
    rng = np.random.default_rng(0)
    cu = abs(material_em(BAR, "copper", "plate", 40, 40, rng).response)
    pcb = [material_em(BAR, "pcb", "board", 40, 30, rng) for _ in range(20)]
    cell = [material_em(BAR, "battery", "cylinder", 65, 18, rng) for _ in range(20)]
    assert max(abs(e.response) * e.fill for e in pcb) < 0.5 * cu
    assert all(e.fill < 1 for e in pcb)
    assert all(e.response.real > 0.3 for e in cell)  # the steel can


def _square(
    x0: float, x1: float, y0: float, y1: float, step: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xs, ys = np.meshgrid(np.arange(x0, x1, step) + step / 2, np.arange(y0, y1, step) + step / 2)
    return xs.ravel(), ys.ravel(), np.full(xs.size, step * step)


def test_overlap_scaling() -> None:
    c = 10
    xc, yb, r = float(BAR.coil_x_mm[c]), BAR.y_bar_mm, BAR.coil_radius_mm
    full = channel_weights(BAR, *_square(xc - 6 * r, xc + 6 * r, yb - 6 * r, yb + 6 * r))
    half = channel_weights(BAR, *_square(xc, xc + 6 * r, yb - 6 * r, yb + 6 * r))
    small = channel_weights(BAR, *_square(xc - 5, xc + 5, yb - 5, yb + 5))
    smaller = channel_weights(BAR, *_square(xc - 2.5, xc + 2.5, yb - 5, yb + 5))
    assert full[c] == pytest.approx(1.0, abs=0.01)
    assert half[c] == pytest.approx(0.5, abs=0.01)
    assert smaller[c] == pytest.approx(0.5 * small[c], rel=0.02)
    assert small.argmax() == c and small[c - 2] < 0.1 * small[c]
    far = channel_weights(BAR, *_square(xc - 5, xc + 5, yb + 200, yb + 210))
    assert not far.any()


class _Belt:
    """A hand-built plant: one piece lying on the belt, the belt at 0.1 mm/tick."""

    def __init__(self, pieces: list[tuple[int, str, float, float, float]]) -> None:
        self.pieces = pieces  # (id, class, x, u, size mm); y = u + travel
        self.travel_mm = 0.0
        self.now_s = 0.0
        self.tick_unwrapped = 0

    def move(self, ticks: int) -> None:
        self.tick_unwrapped += ticks
        self.travel_mm = self.tick_unwrapped * 0.1
        self.now_s = self.travel_mm / 2500.0

    def footprints_near(self, lo: float, hi: float) -> list[Any]:
        out = []
        for fid, name, x, u, size in self.pieces:
            y = u + self.travel_mm
            if y + size / 2 >= lo and y - size / 2 <= hi:
                fx, fy, _ = _square(-size / 2, size / 2, -size / 2, size / 2, 2.0)
                out.append((fid, name, "plate", size, size, x, y, fx, fy, 0.0))
        return out


def _run(belt: _Belt, bar: InductionBar, mm: float, seed: int = 1) -> SensorRows:
    sensor = InductionSensor(bar, 0.1, 0, 4.0, seed)
    for _ in range(int(mm / 2.5)):
        belt.move(25)
        sensor.after_move(belt)
    return sensor.drain()


QUIET = InductionBar(noise=0.0, drift_amp=0.0, drift_walk=0.0)


def test_a_piece_passing_the_bar() -> None:
    x = float(QUIET.coil_x_mm[7])
    rows = _run(_Belt([(1, "steel", x, QUIET.y_bar_mm - 100, 40.0)]), QUIET, 300.0)
    assert np.all(rows.tick % QUIET.every_ticks == 0) and np.all(np.diff(rows.tick) == 50)
    base = rows.in_phase[0]
    peak = int(np.argmax(rows.in_phase[:, 7] - base[7]))
    # centre at the bar line after 100 mm = 1000 ticks of travel
    assert abs(int(rows.tick[peak]) - 1000) <= 50
    assert int(np.argmax(rows.in_phase[peak] - base)) == 7
    assert rows.in_phase[peak, 7] - base[7] > 300  # strong, reactive
    # crosstalk: a neighbour picks up more than the Gaussian alone gives it
    no_xt = _run(
        _Belt([(1, "steel", x, QUIET.y_bar_mm - 100, 40.0)]),
        InductionBar(noise=0.0, drift_amp=0.0, drift_walk=0.0, crosstalk=0.0),
        300.0,
    )
    assert rows.in_phase[peak, 6] - base[6] > no_xt.in_phase[peak, 6] - no_xt.in_phase[0, 6]


def test_nothing_from_plastic() -> None:
    x = float(QUIET.coil_x_mm[3])
    pieces = [(k, n, x, QUIET.y_bar_mm - 100, 40.0) for k, n in enumerate(("plastic", "rubber"))]
    rows = _run(_Belt(pieces), QUIET, 300.0)
    assert np.ptp(rows.in_phase, axis=0).max() == 0.0
    assert np.ptp(rows.quadrature, axis=0).max() == 0.0


def test_baseline_drifts() -> None:
    bar = InductionBar(noise=0.0, drift_walk=0.0, drift_amp=15.0, drift_period_s=2.0)
    belt = _Belt([])
    rows = _run(belt, bar, 2500.0)  # one second of belt
    swing = np.ptp(rows.in_phase, axis=0)
    assert swing.min() > 10.0  # every channel's baseline moved, nothing on the belt


def test_stuck_piece_passes_once_per_loop() -> None:
    bar = InductionBar(
        noise=0.0, drift_amp=0.0, drift_walk=0.0, stuck_x_mm=500.0, belt_loop_mm=1000.0
    )
    rows = _run(_Belt([]), bar, 3000.0)
    c = int(np.argmin(np.abs(bar.coil_x_mm - 500.0)))
    hot = rows.in_phase[:, c] - np.median(rows.in_phase[:, c]) > 10.0
    starts = np.flatnonzero(hot[1:] & ~hot[:-1])
    assert len(starts) == 3 and np.all(np.abs(np.diff(rows.tick[starts]) - 10_000) <= 50)


def test_in_the_virtual_plant() -> None:
    """The plant drives the bar: rows on every K-th count, and a pass of the
    default feed shows metal on the channels metal crossed."""
    g = LineGeometry()
    scenario = load_scenario("default")
    plant = VirtualPlant(g, scenario, IdlePlc(), seed=5)
    sensor = InductionSensor(QUIET, g.belt.mm_per_tick, scenario.motion.encoder_start, 4.0, 5)
    plant.sensors.append(sensor)
    plant.run_for(1.0)
    rows = sensor.drain()
    assert len(rows) > 400 and np.all(rows.tick % QUIET.every_ticks == 0)
    assert np.abs(rows.in_phase).max() > 100.0
    assert len(sensor.drain()) == 0


def _phase_at(sigma: float, thick_mm: float, f_hz: float) -> float:
    return _phase_deg(layer_response(sigma, 1.0, thick_mm, LAM, f_hz))


def test_a_second_frequency_reads_conductivity() -> None:
    """Thin copper and thick brass of the same conductivity x thickness: at 5 kHz
    their phases nearly agree (a thin sheet's phase follows sigma x t); the ratio
    of the responses at 50 and 5 kHz, in which the piece's coupling and coil
    overlap cancel, tells them apart: copper, several skin depths thick at 50
    kHz, has already reached most of its response at 5 kHz, brass has not."""
    cu, brass = 5.8e7, 1.45e7  # S/m (materials.ELECTRICAL's ranges)
    cu_t, brass_t = 0.5, 2.0  # mm: sigma x t equal
    assert abs(_phase_at(cu, cu_t, 5e3) - _phase_at(brass, brass_t, 5e3)) < 4.0

    def ratio(sigma: float, t: float) -> float:
        high = layer_response(sigma, 1.0, t, LAM, 5e4)
        return abs(high / layer_response(sigma, 1.0, t, LAM, 5e3))

    assert ratio(brass, brass_t) > ratio(cu, cu_t) + 0.1
    # skin depth delta = 1 / sqrt(pi f mu0 sigma): copper 0.30 mm at 50 kHz
    delta_mm = 1e3 / math.sqrt(math.pi * 5e4 * 4e-7 * math.pi * cu)
    assert delta_mm == pytest.approx(0.296, abs=0.005)


def test_two_frequency_bar_keeps_the_first_frequencys_rows() -> None:
    """Rows frequency-major; frequency 0 of a two-frequency bar is exactly what a
    single-frequency bar of the same seed reads (its own noise streams), and
    copper reads differently at the second frequency."""
    x = float(BAR.coil_x_mm[7])
    two = InductionBar(frequencies_hz=(5000.0, 50000.0))
    piece = [(1, "copper", x, BAR.y_bar_mm - 100, 40.0)]
    one_rows = _run(_Belt(piece), BAR, 300.0, seed=3)
    two_rows = _run(_Belt(piece), two, 300.0, seed=3)
    c = BAR.channels
    assert two_rows.in_phase.shape == (len(one_rows), 2 * c) and two.values_per_row == 2 * c
    assert np.array_equal(two_rows.in_phase[:, :c], one_rows.in_phase)
    assert np.array_equal(two_rows.quadrature[:, :c], one_rows.quadrature)
    peak = int(np.argmax(np.abs(two_rows.in_phase[:, 7] - two_rows.in_phase[0, 7])))
    z0 = complex(two_rows.in_phase[peak, 7], two_rows.quadrature[peak, 7])
    z1 = complex(two_rows.in_phase[peak, c + 7], two_rows.quadrature[peak, c + 7])
    assert z0.real < -200 and z1.real < -200 and abs(z1 - z0) > 20.0


@pytest.mark.parametrize("hz", [(), (5000.0, 5000.0), (5000.0, -1.0), (1e3, 5e3, 5e4)])
def test_bar_frequencies_refused(hz: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="frequencies_hz"):
        InductionBar(frequencies_hz=hz)


def test_coupling_falls_with_the_coils_reach_at_its_lift_off() -> None:
    """``gain`` is the reference coil's (15 mm at 10 mm): the default bar's
    coupling is the piece's own height above the lift-off only, as before; a
    7.5 mm coil at the same lift-off reads the same piece exp(-2 (1/7.5 - 1/15) h)
    as strong (its field falls off faster), and a bar mounted closer reads more."""

    def em(bar: InductionBar) -> Any:
        return material_em(bar, "aluminium", "sheet", 40.0, 30.0, np.random.default_rng(5))

    ref = em(BAR)
    # the same draws: the height is lift-off + u, u in [0, 4) mm
    h_mm = BAR.lift_off_mm - 15.0 / 2.0 * math.log(ref.coupling)
    assert BAR.lift_off_mm <= h_mm < BAR.lift_off_mm + 4.0
    small = em(InductionBar(coil_radius_mm=7.5, pitch_mm=15.625, channels=64))
    assert small.coupling / ref.coupling == pytest.approx(
        math.exp(-2.0 * (1 / 7.5 - 1 / 15.0) * h_mm), rel=1e-9
    )
    closer = em(InductionBar(lift_off_mm=5.0))
    assert closer.coupling / ref.coupling == pytest.approx(math.exp(2.0 / 15.0 * 5.0), rel=1e-9)
    assert closer.responses == ref.responses  # the piece itself reads the same
