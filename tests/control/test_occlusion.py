"""Occlusion on a crowded belt: a thin target hidden under a bigger non-target
piece is tracked, confirmed and fired at when it shows for a few frames only
(bench/air.py, crowded: a 30 x 1.8 mm wire and a battery seen in 2 frames)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from control.controller import Controller
from control.params import ControlParams
from control.synthetic import BeltObjects, SyntheticCamera
from core.classes import DEFAULT_CLASSES
from core.types import Pulses

from .test_controller import _covered

COPPER = DEFAULT_CLASSES.index("copper")
PLASTIC = DEFAULT_CLASSES.index("plastic")


def _scene(geometry) -> tuple[BeltObjects, SyntheticCamera]:
    """A plastic slab (60 x 50 mm) riding over a thin copper wire (24 x 4 mm)."""
    obj = BeltObjects(
        x_mm=np.array([500.0, 505.0]),
        u_mm=np.array([-600.0, -585.0]),
        hx_mm=np.array([30.0, 12.0]),
        hu_mm=np.array([25.0, 2.0]),
        vx_mm_tick=np.zeros(2),
        vu_mm_tick=np.zeros(2),
        cls=np.array([PLASTIC, COPPER]),
    )
    return obj, SyntheticCamera(geometry, obj, len(DEFAULT_CLASSES), p_true=0.9)


def _run(geometry, recipe, params, seen) -> tuple[Pulses, int]:
    """Run 40 frames; the wire is detected only in the frames where ``seen(k)``
    holds, k counting the frames in which it lies wholly in view."""
    _, cam = _scene(geometry)
    ctl = Controller(geometry, recipe, DEFAULT_CLASSES, params=params)
    top, bottom = geometry.camera.view_y_range_mm
    out, k, shown = [], 0, 0
    for f in range(40):
        dets, idx = cam.frame(f)
        box = dets.extent_mm
        wire = idx == 1
        whole = wire & (box[:, 2] > top + 1.0) & (box[:, 3] < bottom - 1.0)
        if whole.any():
            k += 1
        keep = ~wire | (whole & seen(k))
        shown += int((keep & wire).sum())
        _, pulses = ctl.update(dets[keep], int(dets.tick))
        if len(pulses):
            out.append(pulses)
    assert k == 16  # the wire crossed the whole view
    return Pulses.concat(out), shown


CASES = {
    # out from under the slab two frames before it leaves the view
    "last_two": lambda k: k >= 15,
    # seen once, hidden three frames, seen twice more
    "gap": lambda k: k in (10, 14, 15),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("occluded_share", [0.0, ControlParams().occluded_share])
def test_hidden_wire_is_fired_at(geometry, recipe, case, occluded_share):
    params = dataclasses.replace(ControlParams(), occluded_share=occluded_share)
    pulses, shown = _run(geometry, recipe, params, CASES[case])
    assert shown == (2 if case == "last_two" else 3)
    obj, cam = _scene(geometry)
    covered = _covered(obj, cam, pulses, geometry)
    assert not covered[0]  # never the slab's own air: it is not a target
    if occluded_share == 0.0:  # without the occlusion rule the wire is never confirmed
        assert len(pulses) == 0
    else:
        assert covered[1]


@pytest.mark.parametrize(
    ("length_mm", "phase_mm"),  # 120/17.5 and 200/12.5 grew twins before the leading-edge rule
    [(30.0, 0.0), (82.0, 9.0), (120.0, 17.5), (200.0, 12.5), (200.0, 22.5)],
)
def test_long_piece_entering_keeps_one_track(geometry, recipe, length_mm, phase_mm):
    """While the view's top edge cuts a piece its track knows only a lower bound
    of its length; the frame its whole box shows, the box centre lies up to half
    a frame's travel upstream of the track's: still the same track (no twin)."""
    obj = BeltObjects(
        x_mm=np.array([300.0]), u_mm=np.array([-260.0 - phase_mm - length_mm / 2]),
        hx_mm=np.array([2.0]), hu_mm=np.array([length_mm / 2]), vx_mm_tick=np.zeros(1),
        vu_mm_tick=np.zeros(1), cls=np.array([COPPER]),
    )  # fmt: skip
    cam = SyntheticCamera(geometry, obj, len(DEFAULT_CLASSES), noise_mm=0.3, seed=2)
    ctl = Controller(geometry, recipe, DEFAULT_CLASSES)
    for f in range(40):
        dets, _ = cam.frame(f)
        ctl.update(dets, int(dets.tick))
    st = ctl.stats()
    assert (st["tracks_born"], st["tracks_lost"], st["objects_targeted"]) == (1, 0, 1)
