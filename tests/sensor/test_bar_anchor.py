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
from sortline.sensor.anchor import BarAnchors, anchor_extents
from sortline.sensor.fusion import SensorFusion
from sortline.sensor.ring import RowRing
from tests.sensor.test_fusion import RECIPE, C, P, _steel_model


def test_the_book_keeps_the_first_ready_centre_and_forgets_the_gone() -> None:
    book = BarAnchors(min_moved_mm=5.0)
    ids = np.array([7, 3, -1])
    centre = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    now = np.array([[10.0, 20.0], [30.0, 40.0], [50.0, 60.0]])
    got = book.place(ids, centre, now, np.array([1, 0, 1], bool))
    np.testing.assert_array_equal(got, centre)  # stored now, not moved yet
    assert len(book) == 1  # 7 only: 3 not ready, -1 never stored
    # 7 moved 3 mm since its origin: still the present back-projection
    got = book.place(np.array([3, 7]), np.array([[9.0, 9.0], [8.0, 8.0]]),
                     np.array([[30.0, 40.0], [10.0, 23.0]]), np.array([1, 1], bool))  # fmt: skip
    np.testing.assert_array_equal(got, [[9, 9], [8, 8]])
    # 7 moved 6 mm since its origin: its anchor; 3 did not move
    got = book.place(np.array([3, 7]), np.array([[0.0, 0.0], [8.0, 8.0]]),
                     np.array([[30.0, 41.0], [10.0, 26.0]]), np.array([1, 1], bool))  # fmt: skip
    np.testing.assert_array_equal(got, [[0, 0], [1, 2]])
    got = book.place(np.array([3]), np.array([[0.0, 0.0]]), np.array([[37.0, 40.0]]),
                     np.array([1], bool))  # fmt: skip
    np.testing.assert_array_equal(got, [[9, 9]])  # 3's anchor, from its first ready frame
    assert len(book) == 1  # 7 was not passed: forgotten
    got = book.place(np.array([7]), np.array([[5.0, 5.0]]), np.array([[99.0, 99.0]]),
                     np.array([0], bool))  # fmt: skip
    np.testing.assert_array_equal(got, [[5, 5]])  # a new 7 is a new track
    book.clear()
    assert len(book) == 0
    with pytest.raises(ValueError, match="min_moved_mm"):
        BarAnchors(min_moved_mm=-1.0)


def test_extents_keep_their_size_around_the_anchor() -> None:
    book = BarAnchors()
    book.place(np.array([4]), np.array([[100.0, -50.0]]), np.array([[0.0, 0.0]]), np.array([True]))
    x0, x1 = np.array([80.0]), np.array([130.0])
    y0, y1 = np.array([190.0]), np.array([210.0])
    now = np.array([[0.0, 30.0]])  # moved 30 mm on the belt since its anchor was taken
    anchor_extents(x0, x1, y0, y1, 300.0, np.array([4]), now, np.array([True]), book)
    np.testing.assert_allclose([x0[0], x1[0], y0[0], y1[0]], [75.0, 125.0, 240.0, 260.0])


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
