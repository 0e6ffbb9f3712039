"""The fusion kernel (``control.kernels_fusion._footprint_integrals``) against a
NumPy twin of what it computed before it was made faster (issue 17, session 9):
the same table of the normal CDF, the per-cell integrals with shared cells
split evenly, the joint fit as Gauss-Seidel sweeps over a dense residual, one
frequency or two. Every integral column must agree to rounding (the kernel sums
in another order), on hand-built scenes and random dense ones, on a ring whose
rows wrap around its end."""

from __future__ import annotations

import numpy as np
import pytest

from control.kernels_fusion import (
    _PHI_STEP,
    _PHI_TABLE,
    _RIDGE,
    _SETTLED,
    F_AMP_I,
    F_AMP_I2,
    F_AMP_Q,
    F_AMP_Q2,
    F_CELLS,
    F_COMPLETE,
    F_COVER,
    F_LENGTH,
    F_MAJOR,
    F_MINOR,
    F_PEAK,
    F_SHARED,
    F_SIGNAL,
    F_SUM_I,
    F_SUM_I2,
    F_SUM_Q,
    F_SUM_Q2,
    F_WIDTH,
    N_INTEGRALS,
    FusionParams,
    _footprint_integrals,
)
from sortline.sensor.ring import RowRing

C = 32
T_NOW = 40_000.0
P = FusionParams(
    y_bar_mm=-300.0, mm_per_tick=0.1, x_first_mm=0.0, pitch_mm=31.25, margin_x_mm=10.0,
    margin_y_mm=10.0, signal_units=12.0, row_ticks=50.0, coil_sigma_mm=15.0, crosstalk=0.06,
)  # fmt: skip


def _phi(z: np.ndarray) -> np.ndarray:
    """The kernel's table of the normal CDF, linear between entries, 0 and 1 beyond."""
    t = (np.asarray(z, np.float64) + 8.0) / _PHI_STEP
    top = _PHI_TABLE.shape[0] - 1
    i = np.clip(t, 0, top - 1).astype(np.int64)
    v = _PHI_TABLE[i] + (t - i) * (_PHI_TABLE[i + 1] - _PHI_TABLE[i])
    return np.where(t <= 0, 0.0, np.where(t >= top, 1.0, v))


def _twin(
    ring: RowRing, p: FusionParams, ext: np.ndarray, active: np.ndarray, t_now: float = T_NOW
) -> np.ndarray:
    """(n, N_INTEGRALS) as the kernel computed them before: dense loops, obvious order
    (footprints at count ``t_now``)."""
    first, end = ring.window()
    slots = np.arange(first, end) % ring.capacity
    ticks = ring.tick[slots].astype(np.float64)
    nf = p.n_freq
    nch = ring.channels // nf
    vi, vq = ring.in_phase[slots], ring.quadrature[slots]  # float32, as the kernel reads them
    n, nr = ext.shape[0], slots.size
    out = np.zeros((n, N_INTEGRALS))
    out[:, F_WIDTH] = ext[:, 1] - ext[:, 0]
    out[:, F_LENGTH] = ext[:, 3] - ext[:, 2]
    out[:, [F_MINOR, F_MAJOR]] = np.nan  # the camera's size: the caller's to give
    if n == 0 or nr == 0:
        return out
    centres = p.x_first_mm + (np.arange(nch) + 0.5) * p.pitch_mm
    # the cells each footprint integrates, and whether all its rows are there
    cells = np.zeros((n, nr, nch), bool)
    for j, (x0, x1, y0, y1) in enumerate(ext):
        ta = t_now - (y1 + p.margin_y_mm - p.y_bar_mm) / p.mm_per_tick
        tb = t_now - (y0 - p.margin_y_mm - p.y_bar_mm) / p.mm_per_tick
        rows = (ticks >= ta) & (ticks < tb + 1e-9)
        lo = int(np.ceil((x0 - p.margin_x_mm - p.x_first_mm) / p.pitch_mm - 0.5))
        hi = int(np.floor((x1 + p.margin_x_mm - p.x_first_mm) / p.pitch_mm - 0.5))
        c0, c1 = max(lo, 0), min(hi, nch - 1)
        coils = (np.arange(nch) >= c0) & (np.arange(nch) <= c1)
        cells[j] = rows[:, None] & coils[None, :]
        ok = ticks[0] <= ta and ticks[-1] >= tb
        out[j, F_COMPLETE] = float(ok and rows.sum() >= np.floor((tb - ta) / p.row_ticks) - 1)
    cover = cells.sum(axis=0)
    for j in np.flatnonzero(active).tolist():
        r, c = np.nonzero(cells[j])
        if r.size == 0:
            continue
        w = 1.0 / cover[r, c]
        out[j, F_SUM_I] = np.sum(w * vi[r, c])
        out[j, F_SUM_Q] = np.sum(w * vq[r, c])
        if nf > 1:
            out[j, F_SUM_I2] = np.sum(w * vi[r, nch + c])
            out[j, F_SUM_Q2] = np.sum(w * vq[r, nch + c])
        m2 = vi[r, c] * vi[r, c] + vq[r, c] * vq[r, c]
        out[j, F_PEAK] = np.max(w * np.sqrt(m2))
        out[j, F_CELLS] = r.size
        out[j, F_SHARED] = np.mean(cover[r, c] > 1)
        out[j, F_SIGNAL] = np.mean(m2 > p.signal_units**2)
    # the joint fit: each footprint's overlap with every cell of its window
    reach, s = p.ls_reach * p.coil_sigma_mm, p.coil_sigma_mm
    g = np.zeros((n, nr, nch))
    for j, (x0, x1, y0, y1) in enumerate(ext):
        ta = t_now - (y1 + reach - p.y_bar_mm) / p.mm_per_tick
        tb = t_now - (y0 - reach - p.y_bar_mm) / p.mm_per_tick
        rows = (ticks >= ta) & (ticks < tb + 1e-9)
        c0 = max(int(np.ceil((x0 - reach - p.x_first_mm) / p.pitch_mm - 0.5)) - 1, 0)
        c1 = min(int(np.floor((x1 + reach - p.x_first_mm) / p.pitch_mm - 0.5)) + 1, nch - 1)
        if not rows.any() or c1 < c0:
            continue
        d = (t_now - ticks[rows]) * p.mm_per_tick + p.y_bar_mm
        gy = _phi((y1 - d) / s) - _phi((y0 - d) / s)
        ov = _phi((x1 - centres) / s) - _phi((x0 - centres) / s)
        gx = ov.copy()
        gx[1:] += p.crosstalk * ov[:-1]
        gx[:-1] += p.crosstalk * ov[1:]
        g[j][np.ix_(rows, np.arange(c0, c1 + 1))] = np.outer(gy, gx[c0 : c1 + 1])
    cov = (g * g).sum(axis=(1, 2))
    res = [
        np.stack([vi[:, f * nch : (f + 1) * nch], vq[:, f * nch : (f + 1) * nch]], -1).astype(
            np.float64
        )
        for f in range(nf)
    ]
    amp = np.zeros((n, nf, 2))
    live = [True] * nf
    for _ in range(p.ls_sweeps):
        moved = [False] * nf
        for j in range(n):
            if cov[j] <= 1e-12:
                continue
            for f in range(nf):
                if not live[f]:
                    continue
                num = (g[j][..., None] * res[f]).sum(axis=(0, 1)) + amp[j, f] * cov[j]
                new = num / (cov[j] * (1 + _RIDGE))
                step = new - amp[j, f]
                res[f] -= g[j][..., None] * step
                amp[j, f] = new
                moved[f] |= bool((step**2).sum() > _SETTLED**2 * (new**2).sum() + 1e-8)
        live = moved
        if not any(moved):
            break
    out[:, F_AMP_I], out[:, F_AMP_Q], out[:, F_COVER] = amp[:, 0, 0], amp[:, 0, 1], cov
    if nf > 1:
        out[:, F_AMP_I2], out[:, F_AMP_Q2] = amp[:, 1, 0], amp[:, 1, 1]
    return out


def _ring(nf: int, rng: np.random.Generator, rows: int = 700, capacity: int = 512) -> RowRing:
    """Rows every 50 counts up to T_NOW - 100 with noise and metal patches; more rows
    than the ring holds, so the readable ones wrap around its end."""
    ring = RowRing(C * nf, capacity=capacity, guard=8, gate=1e9, alpha=0.0)
    ticks = (T_NOW - 100 - 50 * np.arange(rows)[::-1]).astype(np.uint32)
    ring.append(ticks, np.zeros((rows, C * nf)), np.zeros((rows, C * nf)))
    vals = rng.normal(0, 4, (2, capacity, C * nf))
    vals[:, rng.random((capacity, C * nf)) < 0.08] += rng.normal(0, 300, 2)[:, None]
    ring.in_phase[:], ring.quadrature[:] = vals[0], vals[1]
    return ring


def _kernel(ring: RowRing, p: FusionParams, ext: np.ndarray, active: np.ndarray) -> np.ndarray:
    first, end = ring.window()
    out = np.full((ext.shape[0], N_INTEGRALS), np.nan)
    x0, x1, y0, y1 = (np.ascontiguousarray(ext[:, k], np.float64) for k in range(4))
    _footprint_integrals(
        ring.tick, ring.in_phase, ring.quadrature, first, end, x0, x1, y0, y1,
        np.ascontiguousarray(active, np.bool_), T_NOW, p, out,
    )  # fmt: skip
    return out


def _check(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    assert np.all(np.isfinite(np.delete(got, [F_MINOR, F_MAJOR], axis=1)))
    assert np.all(np.isnan(got[:, [F_MINOR, F_MAJOR]]))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


# footprints now (x0, x1, u0, u1 mm at T_NOW): the bar line is 300 mm upstream
HAND = {
    "alone": [(300.0, 350.0, 100.0, 160.0)],
    "touching": [(300.0, 360.0, 100.0, 160.0), (360.0, 390.0, 110.0, 140.0)],
    "chain": [(100.0 + 35 * k, 150.0 + 35 * k, 40.0 + 9 * k, 90.0 + 9 * k) for k in range(6)],
    "off the bar and upstream": [
        (-200.0, -150.0, 0.0, 40.0),  # left of the first coil: no channels
        (500.0, 540.0, -480.0, -440.0),  # not yet over the bar: rows missing
        (520.0, 560.0, 0.0, 50.0),
    ],
    "one inside another": [(200.0, 320.0, 0.0, 120.0), (240.0, 270.0, 30.0, 60.0)],
}


@pytest.mark.parametrize("nf", [1, 2])
@pytest.mark.parametrize("case", sorted(HAND))
def test_hand_built_scenes_as_before(case: str, nf: int) -> None:
    ring = _ring(nf, np.random.default_rng(7))
    ext = np.array(HAND[case], np.float64)
    active = np.ones(ext.shape[0], bool)
    p = P._replace(n_freq=nf)
    got, want = _kernel(ring, p, ext, active), _twin(ring, p, ext, active)
    _check(got, want)
    assert np.all(got[:, F_CELLS] >= 0)
    if case == "touching":  # the joint fit at work: the pieces share cells
        assert np.all(got[:, F_SHARED] > 0) and np.all(got[:, F_COVER] > 0)
    if case == "off the bar and upstream":
        assert got[0, F_CELLS] == 0 and got[1, F_COMPLETE] == 0 and got[2, F_COMPLETE] == 1


@pytest.mark.parametrize("nf", [1, 2])
@pytest.mark.parametrize("seed", range(3))
def test_dense_random_scenes_as_before(nf: int, seed: int) -> None:
    """Dozens of overlapping footprints (as the bench's 250 in view), some inactive,
    one or three sweeps: every column as before."""
    rng = np.random.default_rng(seed)
    ring = _ring(nf, rng)
    n = 40
    x0, u0 = rng.uniform(-40, 1000, n), rng.uniform(-150, 150, n)
    ext = np.stack([x0, x0 + rng.uniform(5, 90, n), u0, u0 + rng.uniform(5, 90, n)], axis=1)
    active = rng.random(n) < 0.8
    for sweeps in (1, 3):
        p = P._replace(n_freq=nf, ls_sweeps=sweeps)
        _check(_kernel(ring, p, ext, active), _twin(ring, p, ext, active))


def test_inactive_rows_are_not_integrated_but_fitted() -> None:
    """An inactive footprint still takes its part of the joint fit (its neighbours'
    amplitudes are what they are with it), its sums stay 0."""
    ring = _ring(2, np.random.default_rng(3))
    ext = np.array(HAND["touching"])
    p = P._replace(n_freq=2)
    both = _kernel(ring, p, ext, np.array([True, True]))
    one = _kernel(ring, p, ext, np.array([True, False]))
    assert one[1, F_SUM_I] == 0 and one[1, F_CELLS] == 0
    assert np.array_equal(
        one[:, [F_AMP_I, F_AMP_Q2, F_COVER]], both[:, [F_AMP_I, F_AMP_Q2, F_COVER]]
    )
    assert np.array_equal(one[0], both[0], equal_nan=True)


def _bench_frame_ring(ring: RowRing, rows: int = 600, capacity: int = 512) -> RowRing:
    """The newest ``rows`` rows of the bench's ring in a smaller ring that wraps (the
    twin's dense overlaps of the bench's 4,096 rows would not fit in memory)."""
    small = RowRing(ring.channels, capacity=capacity, guard=8, gate=1e9, alpha=0.0)
    end = ring.window()[1]
    slots = np.arange(end - rows, end) % ring.capacity
    small.append(ring.tick[slots].astype(np.uint32), np.zeros((rows, ring.channels)),
                 np.zeros((rows, ring.channels)))  # fmt: skip
    lo, hi = small.window()
    keep = slots[rows - (hi - lo) :]
    small.in_phase[np.arange(lo, hi) % capacity] = ring.in_phase[keep]
    small.quadrature[np.arange(lo, hi) % capacity] = ring.quadrature[keep]
    return small


def _slow_outlook(fusion, tab, integrals: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    """(n, K) the fused class probabilities by the slow path of the combination."""
    from sortline.sensor.fusion import camera_term, flatten_shared, sensor_term

    n, model, names = integrals.shape[0], fusion.model, fusion.class_names
    score = camera_term(model, names, tab.EV[:n] / tab.NEV[:n, None])
    score += sensor_term(model, names, integrals, fusion.weight)
    score = flatten_shared(score - score.max(axis=1, keepdims=True), integrals[:, F_SHARED],
                           fusion.shared_damping)  # fmt: skip
    return np.exp(score) / np.exp(score).sum(axis=1, keepdims=True)


@pytest.mark.parametrize("n", [50, 250])
def test_the_bench_frame_as_before(n: int) -> None:
    """``SensorFusion.apply`` on ``bench/fusion.py``'s case (tracks over the whole view,
    the shipped two-frequency model, its rows' values; a recipe that sends the most
    likely class to a fraction at its median probability), frame after frame: every
    integral as the twin's (the camera's size beside them), each track's class,
    probability and target as the slow path's (``camera_term`` + ``sensor_term``,
    flattened by the shared share, normalised)."""
    from bench.fusion import _case

    tab, big, fusion, (frac, thr, order) = _case(n, n)
    fusion.ring = ring = _bench_frame_ring(big)
    t0 = int(big.last_tick) - 4000
    target = -1
    for i in (0, 7, 31):
        tick = t0 + 250 * i
        travel = 0.1 * (tick - t0)
        fusion.apply(tab, tick % (1 << 32), travel, frac, thr, order)
        x, h = tab.X[:n], tab.H[:n]  # the bench's tracks lie still: nothing moves them back
        ext = np.stack([x[:, 0] - h[:, 0], x[:, 0] + h[:, 0], x[:, 1] - (h[:, 1] - travel),
                        x[:, 1] + (h[:, 1] + travel)], axis=1)  # fmt: skip
        want = _twin(ring, fusion.params, ext, np.ones(n, bool), float(ring.unwrap(tick)))
        want[:, [F_MINOR, F_MAJOR]] = tab.AX[:n]
        assert np.all(want[:, F_COMPLETE] == 1) and np.all(want[:, F_CELLS] > 0)
        np.testing.assert_allclose(fusion.last_integrals, want, rtol=1e-9, atol=1e-9)
        prob = _slow_outlook(fusion, tab, want)
        np.testing.assert_array_equal(tab.CLS[:n], prob.argmax(axis=1))
        np.testing.assert_allclose(tab.CPROB[:n], prob.max(axis=1), rtol=1e-9)
        if target < 0:  # from the next frame on, this class goes to fraction 0
            target = int(prob.mean(axis=0).argmax())
            frac[target], thr[target] = 0, float(np.median(prob[:, target]))
            continue
        sent = np.where(prob[:, target] >= thr[target], 0, -1)
        np.testing.assert_array_equal(tab.FRAC[:n], sent)
        np.testing.assert_array_equal(tab.TCLS[:n], np.where(sent == 0, target, -1))
        assert 0 < np.count_nonzero(sent == 0) < n  # the recipe's test is not empty
