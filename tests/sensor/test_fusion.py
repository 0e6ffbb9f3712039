"""Fusion: footprints matched to sensor rows by encoder count, the kernel against
its slow twin, shared footprints, and the hook in a real ``Controller``."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.geometry import LineGeometry
from control.controller import Controller
from control.kernels_fusion import (
    F_AMP_I,
    F_AMP_Q,
    F_CELLS,
    F_COMPLETE,
    F_COVER,
    F_LENGTH,
    F_SHARED,
    F_SUM_I,
    F_SUM_Q,
    F_WIDTH,
    N_INTEGRALS,
    FusionParams,
)
from control.recipe import parse_recipe
from core.classes import DEFAULT_CLASSES
from core.types import Detections
from models.induction import FEATURE_NAMES, InductionModel
from sortline.sensor.fusion import SensorFusion
from sortline.sensor.ring import RowRing
from sortline.sensor.scene import integrate

P = FusionParams(
    y_bar_mm=-300.0, mm_per_tick=0.1, x_first_mm=0.0, pitch_mm=31.25,
    margin_x_mm=0.0, margin_y_mm=0.0, signal_units=12.0, row_ticks=50.0,
)  # fmt: skip
C = 32
RECIPE = parse_recipe(
    'name = "al"\nversion = 1\n[fractions]\neject = 0\n[classes.aluminium]\nfraction = "eject"\n',
    "test",
    DEFAULT_CLASSES,
)


def _ring(n_rows: int = 400, every: int = 50) -> RowRing:
    ring = RowRing(C, capacity=1024, guard=8, gate=1e9, alpha=0.0)
    ticks = (every * np.arange(1, n_rows + 1)).astype(np.uint32)
    ring.append(ticks, np.zeros((n_rows, C)), np.zeros((n_rows, C)))
    ring.in_phase[:] = 0.0  # the baseline (all zeros) is subtracted: values as written
    return ring


def _naive(ring: RowRing, p: FusionParams, ext: np.ndarray, active: np.ndarray, t_now: float):  # type: ignore[no-untyped-def]
    """The obvious loops over every row and channel."""
    first, end = ring.window()
    cap = ring.capacity
    xc = p.x_first_mm + (np.arange(C) + 0.5) * p.pitch_mm
    cells = []
    for x0, x1, y0, y1 in ext:
        cs = set()
        for j in range(first, end):
            t = ring.tick[j % cap]
            y_lo = y0 - (t_now - t) * p.mm_per_tick - p.margin_y_mm
            y_hi = y1 - (t_now - t) * p.mm_per_tick + p.margin_y_mm
            if y_lo <= p.y_bar_mm <= y_hi:
                for c in range(C):
                    if x0 - p.margin_x_mm <= xc[c] <= x1 + p.margin_x_mm:
                        cs.add((j, c))
        cells.append(cs)
    out = np.zeros((len(ext), N_INTEGRALS))
    for k, cs in enumerate(cells):
        if not active[k]:
            continue
        for j, c in cs:
            share = sum((j, c) in other for other in cells)
            out[k, F_SUM_I] += ring.in_phase[j % cap, c] / share
            out[k, F_SUM_Q] += ring.quadrature[j % cap, c] / share
            out[k, F_CELLS] += 1
            out[k, F_SHARED] += share > 1
        out[k, F_SHARED] /= max(out[k, F_CELLS], 1)
    return out


def test_encoder_matching_on_a_hand_built_case() -> None:
    """A piece 40 mm long at y 100..140 now (tick 20,000) crossed the bar line
    (-300) from tick 15,600 (its leading edge) to 16,000 (its trailing edge)."""
    ring = _ring()
    rows = (ring.tick >= 15_600) & (ring.tick <= 16_000)
    ring.in_phase[rows, 5:7] = 10.0
    ring.quadrature[rows, 5:7] = -2.0
    ext = np.array([[5 * 31.25, 7 * 31.25, 100.0, 140.0]])  # channels 5 and 6
    out = integrate(ring, P, ext, np.array([True]), 20_000)
    n_rows = int(rows.sum())
    assert out[0, F_CELLS] == 2 * n_rows and out[0, F_COMPLETE] == 1
    assert out[0, F_SUM_I] == pytest.approx(20.0 * n_rows)
    assert out[0, F_SUM_Q] == pytest.approx(-4.0 * n_rows)
    late = integrate(ring, P, ext + np.array([0, 0, 60, 60]), np.array([True]), 20_000)
    assert late[0, F_SUM_I] == 0.0  # 60 mm further on: other rows, nothing there
    future = integrate(ring, P, ext - np.array([0, 0, 420, 420]), np.array([True]), 20_000)
    assert future[0, F_COMPLETE] == 0  # upstream of the bar: its rows do not exist yet
    holey = RowRing(C, capacity=1024, guard=8, gate=1e9, alpha=0.0)
    keep = (ring.tick[: ring.count] < 15_600) | (ring.tick[: ring.count] > 15_850)
    t = ring.tick[: ring.count][keep]
    holey.append(t.astype(np.uint32), np.zeros((t.size, C)), np.zeros((t.size, C)))
    lost = integrate(holey, P, ext, np.array([True]), 20_000)
    assert lost[0, F_COMPLETE] == 0  # a footprint over lost rows is not judged by them


def test_touching_footprints_split_shared_cells() -> None:
    ring = _ring()
    ring.in_phase[:, :] = 1.0
    ext = np.array([[100.0, 200.0, 0.0, 50.0], [150.0, 260.0, 20.0, 80.0]])
    out = integrate(ring, P, ext, np.array([True, True]), 20_000)
    alone = integrate(ring, P, ext[:1], np.array([True]), 20_000)
    assert 0 < out[0, F_SHARED] < 1 and 0 < out[1, F_SHARED] < 1
    assert out[0, F_SUM_I] < alone[0, F_SUM_I]
    total = out[0, F_SUM_I] + out[1, F_SUM_I]
    union = out[0, F_CELLS] + out[1, F_CELLS] - out[0, F_SHARED] * out[0, F_CELLS]
    assert total == pytest.approx(union)  # every covered cell counted once in all


@pytest.mark.parametrize("seed", range(6))
def test_kernel_equals_its_slow_twin(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ring = _ring(n_rows=int(rng.integers(0, 400)))
    k = ring.count
    ring.in_phase[:k] = rng.normal(0, 10, (k, C))
    ring.quadrature[:k] = rng.normal(0, 10, (k, C))
    n = int(rng.integers(0, 12))
    x0, y0 = rng.uniform(-50, 1000, n), rng.uniform(-200, 200, n)
    ext = np.stack([x0, x0 + rng.uniform(0, 150, n), y0, y0 + rng.uniform(0, 150, n)], axis=1)
    active = rng.random(n) < 0.7
    p = P._replace(margin_x_mm=float(rng.uniform(0, 15)), margin_y_mm=float(rng.uniform(0, 15)))
    got = integrate(ring, p, ext, active, 20_000)
    want = _naive(ring, p, ext, active, 20_000)
    cols = [F_SUM_I, F_SUM_Q, F_CELLS, F_SHARED]
    assert np.allclose(got[:, cols], want[:, cols], atol=1e-6)


def _steel_model() -> InductionModel:
    """A hand-set model: strong positive in-phase says steel, else aluminium."""
    k, d = len(DEFAULT_CLASSES), len(FEATURE_NAMES)
    w1, w2, w3 = np.zeros((4, d)), np.zeros((4, 4)), np.zeros((k, 4))
    w1[0, 0], w1[1, 0] = 1.0, -1.0  # asinh of summed in-phase, rectified either side
    w2[0, 0], w2[1, 1] = 1.0, 1.0
    w3[DEFAULT_CLASSES.index("steel"), 0] = 10.0
    w3[DEFAULT_CLASSES.index("aluminium"), 1] = 10.0
    layers = ((w1, np.zeros(4)), (w2, np.zeros(4)), (w3, np.zeros(k)))
    return InductionModel("test", DEFAULT_CLASSES, np.zeros(d), np.ones(d), layers)


def _dets(frame: int, tick: int, y_mm: float, cls: str) -> Detections:
    prob = np.full((1, len(DEFAULT_CLASSES)), 0.02, np.float32)
    prob[0, DEFAULT_CLASSES.index(cls)] = 0.82
    return Detections(
        frame_id=frame, tick=tick, bbox_px=np.zeros((1, 4)),
        centroid_mm=np.array([[300.0, y_mm]]),
        extent_mm=np.array([[280, 320, y_mm - 20, y_mm + 20]]),
        area_mm2=np.array([1600.0]), class_id=np.array([DEFAULT_CLASSES.index(cls)]),
        confidence=np.array([0.82]), class_prob=prob,
    )  # fmt: skip


@pytest.mark.parametrize(("signal", "want"), [(500.0, "steel"), (0.0, "aluminium")])
def test_hook_in_the_controller(signal: float, want: str) -> None:
    """The camera says aluminium; rows under its footprint say steel (or nothing):
    the track's outlook follows the sum of both."""
    geometry = LineGeometry()
    ctl = Controller(geometry, RECIPE, DEFAULT_CLASSES)
    ring = RowRing(C, capacity=4096, guard=8, gate=1e9, alpha=0.0)
    ticks = (50 * np.arange(1, 1000)).astype(np.uint32)
    ring.append(ticks, np.zeros((ticks.size, C)), np.zeros((ticks.size, C)))
    ring.in_phase[:] = 0.0
    # the fragment lies on the belt at y = -450 + 0.1 T: on the bar line (-300) at tick 1,500
    hit = (ring.tick >= 1_300) & (ring.tick <= 1_700)
    ring.in_phase[hit, 9] = signal  # coil 9: x 281-312
    fusion = SensorFusion(
        ring, P._replace(margin_x_mm=5, margin_y_mm=5), _steel_model(), DEFAULT_CLASSES
    )
    ctl.set_evidence_hook(fusion)
    tracks = None
    for f in range(8):
        tick = 3_000 + 250 * f
        tracks, _ = ctl.update(_dets(f, tick, -450 + 0.1 * tick, "aluminium"))
    assert tracks is not None and len(tracks) == 1
    assert DEFAULT_CLASSES[int(tracks.class_id[0])] == want
    assert fusion.fused_rows > 0


def _random_v3(size: bool = False) -> InductionModel:
    """A two-frequency model (24 features; ``size``: 26, the camera's size too) with
    random weights."""
    from models.induction import FEATURE_NAMES_V3, FEATURE_NAMES_V4

    names = FEATURE_NAMES_V4 if size else FEATURE_NAMES_V3
    rng = np.random.default_rng(5)
    k, d, h = len(DEFAULT_CLASSES), len(names), 16
    layers = (
        (rng.normal(0, 0.5, (h, d)), rng.normal(0, 0.1, h)),
        (rng.normal(0, 0.5, (h, h)), rng.normal(0, 0.1, h)),
        (rng.normal(0, 0.5, (k, h)), rng.normal(0, 0.1, k)),
    )
    return InductionModel(
        "v3-test", DEFAULT_CLASSES, rng.normal(0, 1, d), rng.uniform(0.5, 2, d), layers,
        feature_names=names, frequencies_hz=(5000.0, 50000.0),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("which", "damping"),
    [("shipped", 0.0), ("shipped-scalar", 0.0), ("two-frequency", 0.0), ("two-frequency", 1.5),
     ("per-class", 0.0), ("per-class", 1.5), ("camera-size", 0.0), ("camera-size", 1.5)],
)  # fmt: skip
def test_fused_logits_equal_the_slow_path(which: str, damping: float) -> None:
    """The kernel's features, model and sum against ``models.induction``,
    ``camera_term`` and ``sensor_term`` (the shipped model as it is and with a
    scalar combination, a two-frequency one with scalar or per-class terms,
    random integrals, a class it lacks; one that reads the camera's size, some of
    them not measured)."""
    from control.kernels_fusion import (
        F_AMP_I2,
        F_AMP_Q2,
        F_MAJOR,
        F_MINOR,
        F_SUM_I2,
        _fused_logits,
        dense_layers,
    )
    from models.induction import BUILTIN, NOISE_UNITS, resolve
    from sortline.sensor.fusion import LOG_FLOOR, camera_term, flatten_shared, sensor_term

    terms = np.random.default_rng(9).uniform([0.5, 0.2, -1.0], [2.0, 3.0, 1.0], (10, 3))
    if which == "shipped":
        model = InductionModel.load(resolve(BUILTIN))
    elif which == "shipped-scalar":
        model = InductionModel.load(resolve(BUILTIN)).with_combination(0.8, 0.6)
    else:
        model = _random_v3(which == "camera-size")
        model = model.with_combination(0.8, 0.6, terms if which == "per-class" else None)
    rng = np.random.default_rng(3)
    n, names = 40, (*DEFAULT_CLASSES, "unknown")
    integ = np.zeros((n, N_INTEGRALS))
    integ[:, :3] = rng.normal(0, 2000, (n, 3))
    integ[:, 2] = np.abs(integ[:, 2])
    integ[:, 3] = rng.integers(0, 60, n)
    integ[:, 4:6] = rng.random((n, 2))
    integ[:, F_AMP_I : F_AMP_Q + 1] = rng.normal(0, 300, (n, 2))
    integ[:, F_COVER] = rng.exponential(1.0, n) * (rng.random(n) < 0.9)
    integ[:, F_WIDTH : F_LENGTH + 1] = rng.uniform(0, 120, (n, 2))
    integ[:, F_SUM_I2:F_AMP_I2] = rng.normal(0, 2000, (n, 2))
    integ[:, F_AMP_I2 : F_AMP_Q2 + 1] = rng.normal(0, 300, (n, 2)) * (rng.random((n, 1)) < 0.8)
    size = np.sort(rng.uniform(3, 150, (n, 2)), axis=1)
    size[rng.random(n) < 0.3] = np.nan  # not measured: the extents stand in
    integ[:, [F_MINOR, F_MAJOR]] = size
    ev = rng.normal(-3, 2, (n, len(names)))
    nev = rng.integers(1, 9, n).astype(np.int64)
    rows = np.flatnonzero(rng.random(n) < 0.8).astype(np.int64)
    cmap = np.array([model.class_names.index(c) if c in model.class_names else -1 for c in names])
    layers = dense_layers(model.layers)
    cam, sens, bias = model.combination(names)
    comb = (cam, 0.7 * sens, 0.7 * bias, LOG_FLOOR, damping)
    got = _fused_logits(
        integ, rows, ev, nev, model.mean, model.scale, layers,
        cmap.astype(np.int64), comb, NOISE_UNITS, np.zeros((n, len(names))),
    )  # fmt: skip
    want = camera_term(model, names, ev[rows] / nev[rows, None])
    want += sensor_term(model, names, integ[rows], 0.7)
    want = flatten_shared(want - want.max(axis=1, keepdims=True), integ[rows, F_SHARED], damping)
    assert np.allclose(got, want, atol=1e-9)
    if which == "per-class":  # the terms are not the scalar combination's
        scalar = model.with_combination(0.8, 0.6)
        plain_want = camera_term(scalar, names, ev[rows] / nev[rows, None])
        plain_want += sensor_term(scalar, names, integ[rows], 0.7)
        assert not np.allclose(want, plain_want - plain_want.max(axis=1, keepdims=True), atol=0.1)
    if damping > 0:  # flattened: the class each row points to is the same, less sure
        plain = _fused_logits(
            integ, rows, ev, nev, model.mean, model.scale, layers,
            cmap.astype(np.int64), (*comb[:4], 0.0), NOISE_UNITS, np.zeros((n, len(names))),
        ).copy()  # fmt: skip
        assert np.array_equal(got.argmax(axis=1), plain.argmax(axis=1))
        shared = integ[rows, F_SHARED] > 0.05
        assert np.all(got[shared].min(axis=1) > plain[shared].min(axis=1))


class _Stalled:
    def stalled(self, now_s: float | None = None) -> bool:
        return True


@pytest.mark.parametrize(("needs", "target"), [((), "aluminium"), (("aluminium",), None)])
def test_stalled_sensor_camera_alone(needs: tuple[str, ...], target: str | None) -> None:
    """A stalled bar leaves the camera's outlook; classes that need the sensor
    are not targeted meanwhile."""
    ctl = Controller(LineGeometry(), RECIPE, DEFAULT_CLASSES)
    ring = _ring()
    fusion = SensorFusion(
        ring, P, _steel_model(), DEFAULT_CLASSES, health=_Stalled(), needs_sensor=needs
    )
    ctl.set_evidence_hook(fusion)
    tracks = None
    for f in range(8):
        tick = 3_000 + 250 * f
        tracks, _ = ctl.update(_dets(f, tick, -450 + 0.1 * tick, "aluminium"))
    assert tracks is not None and DEFAULT_CLASSES[int(tracks.class_id[0])] == "aluminium"
    assert (int(tracks.fraction[0]) >= 0) == (target is not None)
    assert fusion.skipped_stalled == 8 and fusion.fused_rows == 0


def test_unknown_needs_sensor_refused() -> None:
    with pytest.raises(ValueError, match="needs_sensor"):
        SensorFusion(_ring(), P, _steel_model(), DEFAULT_CLASSES, needs_sensor=("alu",))


def test_a_two_frequency_model_needs_two_frequencies() -> None:
    """Refused in one line on a single-frequency bar; a single-frequency model
    runs on a two-frequency bar whose first frequency is its own."""
    v3 = _random_v3()
    with pytest.raises(ValueError, match="reads 2 frequencies"):
        SensorFusion(_ring(), P, v3, DEFAULT_CLASSES)
    two = RowRing(2 * C, capacity=1024, guard=8)
    SensorFusion(two, P._replace(n_freq=2), v3, DEFAULT_CLASSES)
    SensorFusion(two, P._replace(n_freq=2), _steel_model(), DEFAULT_CLASSES)
    assert v3.check_bar((5000.0,)) and "reads [5000.0, 50000.0] Hz" in v3.check_bar((5000.0,))
    assert not v3.check_bar((5000.0, 50000.0)) and v3.check_bar((5000.0, 40000.0))
    assert not _steel_model().check_bar((5000.0, 50000.0))
    assert _steel_model().check_bar((10000.0,))


def test_size_features_read_the_camera_and_fall_back_to_the_extents() -> None:
    """v4's two last features: log(1 + the camera's minor / major length), the
    footprint's smaller / larger extent where the camera gave none."""
    from control.kernels_fusion import F_MAJOR, F_MINOR
    from models.induction import FEATURE_NAMES_V4, features

    integ = np.zeros((3, N_INTEGRALS))
    integ[:, F_WIDTH], integ[:, F_LENGTH] = [40.0, 40.0, 90.0], [90.0, 90.0, 40.0]
    integ[:, F_MINOR] = [20.0, np.nan, 25.0]
    integ[:, F_MAJOR] = [60.0, np.nan, np.nan]
    f = features(integ, len(FEATURE_NAMES_V4))
    np.testing.assert_allclose(f[:, -2], np.log1p([20.0, 40.0, 40.0]))
    np.testing.assert_allclose(f[:, -1], np.log1p([60.0, 90.0, 90.0]))
    np.testing.assert_array_equal(f[:, :-2], features(integ, len(FEATURE_NAMES_V4) - 2))
