"""The camera preview drawn from a hand-built cycle: class outlines, the
planned air-jet windows projected into the image (and on the valve-line
strip when still downstream of the view), wrap-safe tick arithmetic, the
tap keeping references only (the child process that draws for the API:
``test_preview_proc.py``)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from calibration.geometry import LineGeometry
from core.frame import Frame
from core.types import Detections, Pulses, Tracks
from plc.regmap import PackMLState
from sortline.listeners import Cycle
from sortline.preview import (
    CLASS_COLOURS_BGR,
    UNCLASSIFIED_BGR,
    WINDOW_BGR,
    PreviewGeometry,
    PreviewTap,
    draw_preview,
    encode_jpeg,
    legend,
    pulse_windows,
)

NAMES = ("steel", "stainless", "aluminium", "copper", "brass", "pcb", "battery", "plastic",
         "rubber", "residue")  # fmt: skip
BELT = 40
GEO = LineGeometry()  # 1280 x 512 px over 1000 x 400 mm, valve line 300 mm, pitch 12.5 mm


def _geo() -> PreviewGeometry:
    return PreviewGeometry(GEO.camera, GEO.valves, GEO.belt.mm_per_tick, NAMES)


def _dets(tick: int) -> Detections:
    n = 2
    return Detections(
        frame_id=5, tick=tick,
        bbox_px=np.array([[100, 100, 200, 180], [600, 300, 640, 340]], np.float32),
        centroid_mm=np.zeros((n, 2)), extent_mm=np.zeros((n, 4)),
        area_mm2=np.ones(n, np.float32), class_id=np.array([3, -1], np.int16),
        confidence=np.array([0.93, 0.0], np.float32), class_prob=np.zeros((n, 0), np.float32),
    )  # fmt: skip


def _pulses(rows: list[tuple[int, int, int, int, int]]) -> Pulses:
    """rows: (actuator, first valve, last valve, on tick, off tick)."""
    a = np.array(rows, np.int64).reshape(-1, 5)
    return Pulses(
        actuator=a[:, 0].astype(np.int16), first_valve=a[:, 1].astype(np.int16),
        last_valve=a[:, 2].astype(np.int16), on_tick=(a[:, 3] % 2**32).astype(np.uint32),
        off_tick=(a[:, 4] % 2**32).astype(np.uint32), track_id=np.arange(len(a), dtype=np.int64),
        fraction=np.zeros(len(a), np.int16),
    )  # fmt: skip


def _cycle(tick: int, frame_id: int = 5, pulses: Pulses | None = None) -> Cycle:
    img = np.full((512, 1280, 3), BELT, np.uint8)
    return Cycle(
        Frame(img, frame_id, tick, 0.0), _dets(tick), Tracks.empty(tick=tick),
        pulses if pulses is not None else Pulses.empty(), PackMLState.EXECUTE, 0.0, 1.0,
    )  # fmt: skip


T = 1000
PLANNED = _pulses(
    [
        (0, 10, 13, T + 3000, T + 3500),  # in view: y -50..0 mm
        (0, 40, 41, T + 100, T + 500),  # downstream of the view: y 250..290 mm
        (0, 60, 60, T - 900, T - 100),  # over already
        (1, 0, 0, T + 3000, T + 3500),  # a diverter flap: not on the valve bar
    ]
)


def test_windows_in_belt_mm() -> None:
    wins = pulse_windows([PLANNED], T, GEO.valves, 0.1)
    got = [(w.first_valve, w.last_valve, w.x0_mm, w.x1_mm, w.y0_mm, w.y1_mm) for w in wins]
    assert got == pytest.approx(
        [(10, 13, 125.0, 175.0, -50.0, 0.0), (40, 41, 500.0, 525.0, 250.0, 290.0)]
    )


@pytest.mark.parametrize("now", [T, 2**32 - 1000, 2**32 - 3200])
def test_windows_are_wrap_safe(now: int) -> None:
    p = _pulses([(0, 10, 13, now + 3000, now + 3500)])  # wraps past 2**32 for the last two
    (w,) = pulse_windows([p], now, GEO.valves, 0.1)
    assert (w.y0_mm, w.y1_mm) == pytest.approx((-50.0, 0.0))


def test_drawing_outlines_classes_and_windows() -> None:
    img, wins = draw_preview(_cycle(T), [PLANNED], _geo(), width_px=640)
    assert img.shape == (256, 640, 3) and img.dtype == np.uint8 and len(wins) == 2
    # the copper fragment's outline (box 100..200 x 100..180 px, at half scale)
    assert tuple(img[70, 50]) == CLASS_COLOURS_BGR["copper"]
    assert tuple(img[70, 100]) == CLASS_COLOURS_BGR["copper"]
    assert tuple(img[70, 75]) == (BELT,) * 3  # inside: the belt, untouched
    assert tuple(img[160, 300]) == UNCLASSIFIED_BGR
    # the in-view window: valves 10..13 = x 125..175 mm = columns 160..224 px (80..112 at
    # half scale); y -50..0 mm = rows 192..256 (96..128): tinted with the air colour
    b, g, r = (int(c) for c in img[112, 96])
    assert b > BELT + 40 and g > BELT + 40 and r < BELT
    assert tuple(img[112, 140]) == (BELT,) * 3  # beside it: belt
    # the downstream window: valves 40..41 (x 500..525 mm, columns 320..336) lit on the strip
    assert tuple(img[255, 328]) == WINDOW_BGR
    assert tuple(img[255, 300]) == (BELT,) * 3
    # the finished pulse (valve 60: x 750..762.5 mm, columns 480..488) is not drawn
    assert tuple(img[255, 484]) == (BELT,) * 3
    assert np.count_nonzero(np.all(img[255] == WINDOW_BGR, axis=1)) == 16  # valves 40..41 only


def test_no_detections_no_pulses_is_just_the_frame() -> None:
    c = _cycle(T)
    empty = Cycle(c.frame, Detections.empty(frame_id=5, tick=T), c.tracks, c.pulses, c.state,
                  0.0, 1.0)  # fmt: skip
    img, wins = draw_preview(empty, [], _geo(), width_px=640)
    assert wins == [] and np.all(img == BELT)


def test_mono_frames_and_jpeg() -> None:
    c = _cycle(T)
    mono = Cycle(Frame(np.full((512, 1280), BELT, np.uint8), 5, T, 0.0), c.detections,
                 c.tracks, c.pulses, c.state, 0.0, 1.0)  # fmt: skip
    img, _ = draw_preview(mono, [PLANNED], _geo(), width_px=320)
    assert img.shape == (128, 320, 3)
    back = cv2.imdecode(np.frombuffer(encode_jpeg(img), np.uint8), cv2.IMREAD_COLOR)
    assert back is not None and back.shape == (128, 320, 3)


def test_tap_keeps_references_only() -> None:
    tap = PreviewTap(keep_batches=2)
    cycles = [_cycle(T + i, i, PLANNED if i % 2 else None) for i in range(6)]
    for c in cycles:
        tap.on_cycle(c)
    assert tap.latest is cycles[-1] and tap.latest.frame.image is cycles[-1].frame.image
    assert [p is PLANNED for p in tap.pulses()] == [True, True]  # bounded, references


def test_legend_matches_the_outline_colours() -> None:
    colours = legend(NAMES)
    assert colours["copper"] == "#c87333" and colours["battery"] == "#ff0000"
    assert list(colours) == list(NAMES)


@pytest.mark.parametrize("t0", [T, 2**32 - 1500])  # across the counter's wrap too
def test_take_scales_the_newest_frame_and_forgets_spent_pulses(t0: int) -> None:
    tap = PreviewTap()
    spent = _pulses([(0, 1, 2, t0 - 900, t0 - 100)])
    live = _pulses([(0, 10, 13, t0 + 3000, t0 + 3500), (0, 5, 5, t0 - 900, t0 - 100)])
    later = _pulses([(0, 20, 21, t0 + 100, t0 + 500), (1, 0, 0, t0 + 100, t0 + 500)])
    for i, p in enumerate((spent, live, later)):
        tap.on_cycle(_cycle(t0 - 2 + i, i, p))
    tap.on_cycle(_cycle(t0, 7))
    shot = tap.take(640)
    assert shot is not None and shot.frame_id == 7 and shot.image.shape == (256, 640, 3)
    assert shot.job.scale == 0.5 and shot.job.tick == t0 and shot.detections == 2
    assert [p is q for p, q in zip(tap.pulses(), (live, later), strict=True)] == [True, True]
    assert sorted(shot.job.pulses.first_valve.tolist()) == [10, 20]  # to come, on the bar
    assert tap.take(640, after_frame_id=7) is None  # nothing newer
