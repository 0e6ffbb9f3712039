"""A track's bar position fixed once (``sortline.sensor.anchor``): the book, and a
hand-built slider through a real ``Controller`` that the per-frame
back-projection loses and the anchor keeps."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.geometry import LineGeometry
from control.controller import Controller
from core.classes import DEFAULT_CLASSES
from core.types import Detections
from sortline.sensor.anchor import BarAnchors
from sortline.sensor.fusion import SensorFusion
from sortline.sensor.ring import RowRing
from tests.sensor.test_fusion import RECIPE, C, P, _steel_model


class _Twin:
    """The placement in plain NumPy: a dict of id -> (anchor x, u, origin x, u)."""

    def __init__(self, min_moved_mm: float) -> None:
        self.min_moved_mm = min_moved_mm
        self.book: dict[int, tuple[float, float, float, float]] = {}

    def place(self, ext: np.ndarray, travel: float, ids: np.ndarray, now: np.ndarray,
              ready: np.ndarray) -> np.ndarray:  # fmt: skip
        out = ext.copy()
        book = {}
        for i, tid in enumerate(ids.tolist()):
            cx = 0.5 * (ext[i, 0] + ext[i, 1])
            cu = 0.5 * (ext[i, 2] + ext[i, 3]) - travel
            row = self.book.get(tid)
            if row is None and ready[i] and tid >= 0:
                row = (cx, cu, now[i, 0], now[i, 1])
            if row is None:
                continue
            book[tid] = row
            if np.hypot(now[i, 0] - row[2], now[i, 1] - row[3]) >= self.min_moved_mm:
                out[i, :2] += row[0] - cx
                out[i, 2:] += row[1] - cu
        self.book = book
        return out


def _place(book: BarAnchors, ext: np.ndarray, travel: float, ids: np.ndarray, now: np.ndarray,
           ready: np.ndarray) -> np.ndarray:  # fmt: skip
    x0, x1, y0, y1 = (np.array(ext[:, k]) for k in range(4))
    book.place_extents(x0, x1, y0, y1, travel, ids, now[:, 0], now[:, 1], ready)
    return np.stack([x0, x1, y0, y1], axis=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_kernel_equals_its_numpy_twin(seed: int) -> None:
    """Tracks are born (ascending ids), move or stay, turn ready, and die; now and
    then ids come out of order or negative: the compiled placement and the book
    it keeps equal the plain twin's frame by frame."""
    rng = np.random.default_rng(seed)
    book, twin = BarAnchors(min_moved_mm=5.0), _Twin(5.0)
    live = np.arange(0, 30)
    pos = {int(t): rng.uniform(0, 500, 2) for t in live}
    vel = {int(t): rng.normal(0, 1.5, 2) * (rng.random() < 0.3) for t in live}
    next_id = 30
    for frame in range(60):
        travel = 25.0 * frame
        ids = live.copy()
        if frame % 17 == 5:  # out of order, and an id no track has
            ids = np.concatenate([ids[::-1], [-1]])
        for t in ids.tolist():
            if t >= 0:
                pos[t] = pos[t] + vel[t]
        now = np.array([pos[t] if t >= 0 else (0.0, 0.0) for t in ids.tolist()])
        half = rng.uniform(5, 30, (ids.size, 2))
        c = now + rng.normal(0, 20, now.shape)  # back-projected centres, belt-fixed
        x0, x1 = c[:, 0] - half[:, 0], c[:, 0] + half[:, 0]
        ext = np.stack([x0, x1, c[:, 1] - half[:, 1] + travel, c[:, 1] + half[:, 1] + travel], 1)
        ready = rng.random(ids.size) < 0.3
        got = _place(book, ext, travel, ids, now, ready)
        want = twin.place(ext, travel, ids, now, ready)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
        b_ids, b_rows = book.rows()
        assert b_ids.tolist() == sorted(twin.book)
        np.testing.assert_allclose(b_rows, [twin.book[t] for t in b_ids.tolist()])
        dead = rng.random(live.size) < 0.1
        born = int(rng.integers(0, 4))
        live = np.concatenate([live[~dead], np.arange(next_id, next_id + born)])
        for t in range(next_id, next_id + born):
            pos[t] = rng.uniform(0, 500, 2)
            vel[t] = rng.normal(0, 1.5, 2) * (rng.random() < 0.3)
        next_id += born


def test_the_book_by_hand() -> None:
    book = BarAnchors(min_moved_mm=5.0)
    ext = np.array([[0.0, 2.0, 102.0, 106.0], [2.0, 4.0, 103.0, 105.0], [4.0, 6.0, 100.0, 112.0]])
    ids, travel = np.array([7, 3, -1]), 100.0
    now = np.array([[10.0, 20.0], [30.0, 40.0], [50.0, 60.0]])
    got = _place(book, ext, travel, ids, now, np.array([1, 0, 1], bool))
    np.testing.assert_array_equal(got, ext)  # 7 stored now, not moved yet
    assert len(book) == 1  # 7 only: 3 not ready, -1 never stored
    # 7 moved 6 mm on the belt since: centred on its anchor (x 1, u 4), its size kept
    got = _place(book, np.array([[20.0, 30.0, 150.0, 170.0]]), 110.0, np.array([7]),
                 np.array([[10.0, 26.0]]), np.array([1], bool))  # fmt: skip
    np.testing.assert_allclose(got, [[-4.0, 6.0, 104.0, 124.0]])
    got = _place(book, ext[:1], 0.0, np.array([7]), np.array([[99.0, 99.0]]),
                 np.array([0], bool))  # fmt: skip
    assert len(book) == 1
    got = _place(book, ext[:1], 0.0, np.array([8]), np.array([[99.0, 99.0]]),
                 np.array([0], bool))  # fmt: skip
    assert len(book) == 0  # 7 was not passed: forgotten
    book.clear()
    with pytest.raises(ValueError, match="min_moved_mm"):
        BarAnchors(min_moved_mm=-1.0)


def _det(frame: int, tick: int, y_mm: float) -> Detections:
    prob = np.full((1, len(DEFAULT_CLASSES)), 0.02, np.float32)
    prob[0, DEFAULT_CLASSES.index("aluminium")] = 0.82
    return Detections(
        frame_id=frame, tick=tick, bbox_px=np.zeros((1, 4)),
        centroid_mm=np.array([[300.0, y_mm]]),
        extent_mm=np.array([[280, 320, y_mm - 20, y_mm + 20]]),
        area_mm2=np.array([1600.0]), class_id=np.array([DEFAULT_CLASSES.index("aluminium")]),
        confidence=np.array([0.82]), class_prob=prob, axes_mm=np.array([[40.0, 40.0]], np.float32),
    )  # fmt: skip


@pytest.mark.parametrize(("anchor_views", "want"), [(4, "steel"), (0, "aluminium")])
def test_a_slider_that_stops_is_read_where_it_crossed(anchor_views: int, want: str) -> None:
    """A 40 mm piece lands slower than the belt: it crosses the bar line (-300 mm)
    sliding back at 0.3 of the belt's speed and keeps that speed through its
    first six frames (17.5 mm a frame instead of 25), then rests on the belt.
    The bar saw metal where it crossed. The camera says aluminium. Anchored at
    its fourth view (it then moves on 15 mm on the belt), the footprint reads
    the metal (steel); projected back from each frame, the stopped piece's
    footprint lands 93 mm downstream of where it crossed, on empty belt, and
    the camera's aluminium stands."""
    mm_per_tick, rel = 0.1, -0.3
    v = mm_per_tick * (1 + rel)  # the piece's speed, mm per tick, while it slides
    t_bar = 3_000 - (300.0 - 170.0) / v  # frame 0 (tick 3,000) sees it at y = -170
    ring = RowRing(C, capacity=4096, guard=8, gate=1e9, alpha=0.0)
    ticks = (50 * np.arange(1, 200)).astype(np.uint32)
    ring.append(ticks, np.zeros((ticks.size, C)), np.zeros((ticks.size, C)))
    ring.in_phase[:] = 0.0
    over = np.abs(ring.tick.astype(np.float64) - t_bar) <= 20.0 / v  # under the bar
    ring.in_phase[over & (ring.tick > 0), 9] = 500.0  # coil 9: x 281-312
    fusion = SensorFusion(
        ring, P._replace(margin_x_mm=5, margin_y_mm=5), _steel_model(), DEFAULT_CLASSES,
        anchor_views=anchor_views,
    )  # fmt: skip
    ctl = Controller(LineGeometry(), RECIPE, DEFAULT_CLASSES)
    ctl.set_evidence_hook(fusion)
    tracks = None
    for f in range(14):
        tick = 3_000 + 250 * f
        y = -170 + 25 * (1 + rel) * min(f, 5) + 25 * max(f - 5, 0)
        tracks, _ = ctl.update(_det(f, tick, y))
    assert tracks is not None and len(tracks) == 1
    assert DEFAULT_CLASSES[int(tracks.class_id[0])] == want
    assert fusion.fused_rows > 0
    assert len(fusion.anchors) == (1 if anchor_views else 0)
