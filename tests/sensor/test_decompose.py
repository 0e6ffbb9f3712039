"""The joint amplitude fit (``kernels_fusion._decompose``) against the bar's own
physics (``sim.plant.induction.channel_weights``), touching footprints, its
slow twin, and footprints moved back by their velocity relative to the belt."""

from __future__ import annotations

import math

import numpy as np
import pytest

from control.kernels_fusion import (
    _RIDGE,
    _SETTLED,
    F_AMP_I,
    F_AMP_I2,
    F_AMP_Q,
    F_AMP_Q2,
    F_COVER,
    F_SUM_I,
    F_SUM_I2,
    F_SUM_Q,
    F_SUM_Q2,
    FusionParams,
)
from sim.plant.induction import InductionBar, channel_weights
from sortline.sensor.ring import RowRing
from sortline.sensor.scene import VelocityBook, fusion_params, integrate

BAR = InductionBar(noise=0.0, drift_amp=0.0, drift_walk=0.0)
P: FusionParams = fusion_params(BAR, 0.1)
T_NOW = 20_000  # footprints are given at this count; rows every 50 counts up to 30,000


def _rows(pieces: list[tuple[tuple[float, float, float, float], complex]]) -> RowRing:
    """A clean ring of the bar's rows over rectangles (x0, x1, u0, u1 at T_NOW, mm)
    with complex responses, sampled on a 1 mm grid as the plant samples a footprint."""
    ticks = np.arange(50, 30_001, 50)
    i_rows = np.zeros((ticks.size, BAR.channels))
    q_rows = np.zeros_like(i_rows)
    for r, t in enumerate(ticks):
        back = (T_NOW - t) * 0.1  # the belt has carried each piece this far since row r
        z = np.zeros(BAR.channels, np.complex128)
        for (x0, x1, y0, y1), resp in pieces:
            gx, gy = np.meshgrid(np.arange(x0 + 0.5, x1, 1.0), np.arange(y0 + 0.5, y1, 1.0))
            w = channel_weights(BAR, gx.ravel(), gy.ravel() - back, np.ones(gx.size))
            z += resp * w
        zx = z.copy()
        zx[:-1] += BAR.crosstalk * z[1:]
        zx[1:] += BAR.crosstalk * z[:-1]
        i_rows[r], q_rows[r] = BAR.gain * zx.real, -BAR.gain * zx.imag
    ring = RowRing(BAR.channels, capacity=1024, guard=8, gate=1e9, alpha=0.0)
    ring.append(ticks.astype(np.uint32), i_rows, q_rows)
    ring.in_phase[: ring.count] = i_rows  # no baseline learnt: values as sampled
    ring.quadrature[: ring.count] = q_rows
    return ring


@pytest.mark.parametrize(
    ("box", "resp"),
    [
        ((300.0, 340.0, 100.0, 160.0), complex(0.35, -0.05)),  # steel: reactive
        ((410.0, 432.0, 40.0, 58.0), complex(-0.30, -0.25)),  # a small aluminium piece
        ((120.0, 200.0, -150.0, -60.0), complex(-0.01, -0.08)),  # stainless: weak
    ],
)
def test_amplitude_is_the_pieces_response(
    box: tuple[float, float, float, float], resp: complex
) -> None:
    """A rectangle read by the bar: its fitted amplitude is gain x response (shrunk by
    the ridge), whatever share of a coil it covers."""
    ring = _rows([(box, resp)])
    out = integrate(ring, P, np.array([box]), np.array([True]), T_NOW)
    want = BAR.gain * resp / (1 + _RIDGE)
    got = complex(out[0, F_AMP_I], -out[0, F_AMP_Q])
    assert abs(got - want) < 0.03 * abs(want)
    assert out[0, F_COVER] > 0


def test_touching_pieces_are_told_apart() -> None:
    """A stone touching a steel plate: the even split of shared cells hands the
    stone part of the plate's signal, the joint fit little (what it gets is the
    plate's share the ridge leaves unexplained, ~_RIDGE of it)."""
    plate, stone = (300.0, 360.0, 100.0, 160.0), (360.0, 390.0, 110.0, 140.0)
    ring = _rows([(plate, complex(0.4, -0.05)), (stone, 0j)])
    out = integrate(ring, P, np.array([plate, stone]), np.array([True, True]), T_NOW)
    amp = np.hypot(out[:, F_AMP_I], out[:, F_AMP_Q])
    assert amp[1] < 2 * _RIDGE * amp[0]
    assert abs(out[0, F_AMP_I] - BAR.gain * 0.4 / (1 + _RIDGE)) < 0.05 * BAR.gain * 0.4
    assert out[1, F_SUM_I] > 0.2 * out[0, F_SUM_I] / 2  # what the split alone would say


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def _naive(ring: RowRing, p: FusionParams, ext: np.ndarray, t_now: float) -> np.ndarray:
    """The same fit with dense overlap matrices and obvious loops: (n, 3) amp I, Q, cover."""
    first, end = ring.window()
    ticks = np.array([ring.tick[j % ring.capacity] for j in range(first, end)])
    zi = np.array([ring.in_phase[j % ring.capacity] for j in range(first, end)])
    zq = np.array([ring.quadrature[j % ring.capacity] for j in range(first, end)])
    n, s, reach, nch = len(ext), p.coil_sigma_mm, p.ls_reach * p.coil_sigma_mm, zi.shape[1]
    g = np.zeros((n, max(len(ticks), 1), nch))
    for j, (x0, x1, y0, y1) in enumerate(ext):
        for r, t in enumerate(ticks):
            d = (t_now - t) * p.mm_per_tick + p.y_bar_mm
            if not (y0 - reach <= d <= y1 + reach):
                continue
            gy = _phi((y1 - d) / s) - _phi((y0 - d) / s)
            for c in range(nch):
                cx = p.x_first_mm + (c + 0.5) * p.pitch_mm
                if not (x0 - reach - p.pitch_mm <= cx <= x1 + reach + p.pitch_mm):
                    continue
                gx = 0.0
                for k in (c - 1, c, c + 1):
                    if 0 <= k < nch:
                        kx = p.x_first_mm + (k + 0.5) * p.pitch_mm
                        o = _phi((x1 - kx) / s) - _phi((x0 - kx) / s)
                        gx += o if k == c else p.crosstalk * o
                g[j, r, c] = gx * gy
    out = np.zeros((n, 3))
    if len(ticks) == 0:
        return out
    amp = np.zeros((n, 2))
    res = np.stack([zi, zq], axis=-1).astype(np.float64)
    cover = (g * g).sum(axis=(1, 2))
    for _ in range(p.ls_sweeps):
        moved = False
        for j in range(n):
            if cover[j] <= 1e-12:
                continue
            num = (g[j][..., None] * res).sum(axis=(0, 1)) + amp[j] * cover[j]
            new = num / (cover[j] * (1 + _RIDGE))
            res -= g[j][..., None] * (new - amp[j])
            moved |= bool(((new - amp[j]) ** 2).sum() > _SETTLED**2 * (new**2).sum() + 1e-8)
            amp[j] = new
        if not moved:
            break
    out[:, :2], out[:, 2] = amp, cover
    return out


@pytest.mark.parametrize("seed", range(4))
def test_decompose_equals_its_slow_twin(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ring = RowRing(BAR.channels, capacity=512, guard=8, gate=1e9, alpha=0.0)
    k = int(rng.integers(0, 200))
    ticks = (T_NOW - 8000 + 50 * np.arange(k)).astype(np.uint32)
    ring.append(ticks, np.zeros((k, BAR.channels)), np.zeros((k, BAR.channels)))
    ring.in_phase[:k] = rng.normal(0, 20, (k, BAR.channels))
    ring.quadrature[:k] = rng.normal(0, 20, (k, BAR.channels))
    n = int(rng.integers(0, 8))
    x0, y0 = rng.uniform(-50, 1000, n), rng.uniform(-200, 200, n)
    ext = np.stack([x0, x0 + rng.uniform(0, 120, n), y0, y0 + rng.uniform(0, 120, n)], axis=1)
    got = integrate(ring, P, ext, np.ones(n, bool), T_NOW)
    want = _naive(ring, P, ext, T_NOW)
    # the kernel's normal CDF is a table (< 1e-5 off), the twin's erf
    assert np.allclose(got[:, [F_AMP_I, F_AMP_Q, F_COVER]], want, rtol=1e-3, atol=1e-3)


def test_a_sliding_piece_is_found_where_it_crossed() -> None:
    """A piece sliding back on the belt at 20 % of its speed crossed the bar 100 mm
    further along the belt than where it lies now: moved back by its velocity
    (from its centres, as a tracker gives it) its rows are found."""
    now, crossed = (300.0, 340.0, 100.0, 140.0), (300.0, 340.0, 205.0, 245.0)
    ring = _rows([(crossed, complex(0.35, -0.05))])
    book = VelocityBook()
    for travel in np.arange(0.0, 80.0, 10.0):  # centre u = 120 - 0.2 x travel before T_NOW
        book.add(
            np.array([7]), travel, np.array([320.0]), np.array([120.0 + 0.8 * (travel - 80.0)])
        )
    vel = book.velocity(np.array([7]))
    assert vel[0] == pytest.approx([0.0, -0.2])
    # at T_NOW it is at y = 120; it crossed y = -300 after (120 + 300) / 0.8 = 525 mm
    # of travel, 0.2 x 525 = 105 mm further along the belt than the belt alone says
    still = integrate(ring, P, np.array([now]), np.array([True]), T_NOW)
    moved = integrate(ring, P, np.array([now]), np.array([True]), T_NOW, vel)
    assert abs(still[0, F_AMP_I]) < 0.2 * moved[0, F_AMP_I]
    assert moved[0, F_AMP_I] > 0.8 * BAR.gain * 0.35 / (1 + _RIDGE)


@pytest.mark.parametrize("seed", range(3))
def test_two_frequencies_fit_each_as_alone(seed: int) -> None:
    """A two-frequency ring (values frequency-major): frequency 0's integrals are
    a single-frequency bar's exactly; frequency 1's amplitudes and sums are what
    the same fit gives on its columns alone."""
    rng = np.random.default_rng(100 + seed)
    c = BAR.channels
    k = int(rng.integers(50, 200))
    ticks = (T_NOW - 8000 + 50 * np.arange(k)).astype(np.uint32)
    two = RowRing(2 * c, capacity=512, guard=8, gate=1e9, alpha=0.0)
    two.append(ticks, np.zeros((k, 2 * c)), np.zeros((k, 2 * c)))
    two.in_phase[:k] = rng.normal(0, 20, (k, 2 * c))
    two.quadrature[:k] = rng.normal(0, 20, (k, 2 * c))
    one = [RowRing(c, capacity=512, guard=8, gate=1e9, alpha=0.0) for _ in range(2)]
    for f, ring in enumerate(one):
        ring.append(ticks, np.zeros((k, c)), np.zeros((k, c)))
        ring.in_phase[:k] = two.in_phase[:k, f * c : (f + 1) * c]
        ring.quadrature[:k] = two.quadrature[:k, f * c : (f + 1) * c]
    n = int(rng.integers(1, 8))
    x0, y0 = rng.uniform(-50, 1000, n), rng.uniform(-200, 200, n)
    ext = np.stack([x0, x0 + rng.uniform(5, 120, n), y0, y0 + rng.uniform(5, 120, n)], axis=1)
    p2 = P._replace(n_freq=2)
    got = integrate(two, p2, ext, np.ones(n, bool), T_NOW)
    f0 = integrate(one[0], P, ext, np.ones(n, bool), T_NOW)
    f1 = integrate(one[1], P, ext, np.ones(n, bool), T_NOW)
    assert np.array_equal(got[:, :F_SUM_I2], f0[:, :F_SUM_I2])
    assert np.array_equal(got[:, [F_AMP_I2, F_AMP_Q2]], f1[:, [F_AMP_I, F_AMP_Q]])
    assert np.allclose(got[:, [F_SUM_I2, F_SUM_Q2]], f1[:, [F_SUM_I, F_SUM_Q]])
    assert np.all(f0[:, F_SUM_I2 : F_AMP_Q2 + 1] == 0)  # a single-frequency bar leaves them 0
