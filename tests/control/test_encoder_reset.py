"""A reset encoder count (PLC restart) starts a fresh time base; a belt jogged
backwards does not."""

from __future__ import annotations

import numpy as np
import pytest

from control.controller import Controller
from control.synthetic import SyntheticCamera, random_objects
from core.classes import DEFAULT_CLASSES
from core.ticks import TICK_MODULUS
from core.types import Pulses

from .test_controller import N_FRAMES, TARGET_IDS, _covered

N_BEFORE = 60  # frames of the first run, then the count jumps back


def _camera(geometry, seed: int, start_tick: int) -> tuple[object, SyntheticCamera]:
    obj = random_objects(geometry, 60, (-1500.0, -250.0), len(DEFAULT_CLASSES), seed=seed)
    cam = SyntheticCamera(
        geometry, obj, len(DEFAULT_CLASSES), noise_mm=0.3, seed=seed, start_tick=start_tick
    )
    return obj, cam


def _feed(ctl: Controller, cam: SyntheticCamera, n_frames: int) -> tuple[Pulses, set[int]]:
    """Pulses of the run and the track ids seen live in it."""
    out, ids = [], set()
    for f in range(n_frames):
        dets, _ = cam.frame(f)
        tracks, pulses = ctl.update(dets)
        ids |= set(tracks.track_id.tolist())
        if len(pulses):
            out.append(pulses)
    return Pulses.concat(out), ids


def _frame_at_tick(cam: SyntheticCamera, frame_id: int, tick: int):
    """Detections numbered ``frame_id`` of the belt as it is at count ``tick``."""
    cam.tick_of = lambda _f, t=tick: t  # type: ignore[method-assign]
    try:
        return cam.frame(frame_id)[0]
    finally:
        del cam.tick_of


@pytest.mark.parametrize(
    ("start_a", "start_b", "same_belt"),
    [
        (200_000, 200_000, True),  # restart to the same count: the same belt replayed
        (5_000_000, 0, False),  # counter reset to 0
        (40_000, 10_000, False),  # a short way back: old tracks would come into view again
        (TICK_MODULUS - 3_000, 0, True),  # across the wrap, and back
    ],
)
def test_reset_count_starts_afresh(geometry, recipe, start_a, start_b, same_belt):
    ctl = Controller(geometry, recipe, DEFAULT_CLASSES)
    _, cam_a = _camera(geometry, seed=3, start_tick=start_a)
    _, ids_a = _feed(ctl, cam_a, N_BEFORE)
    before = ctl.stats()
    obj_b, cam_b = _camera(geometry, seed=3 if same_belt else 4, start_tick=start_b)
    pulses_b, ids_b = _feed(ctl, cam_b, N_FRAMES)
    st = ctl.stats()
    assert st["encoder_resets"] == 1
    assert not ids_b & ids_a, "a track of the old count space lived on"
    # every target of the second run is covered, nothing else: committed intervals
    # of the old count would have read as air already commanded
    target = np.isin(obj_b.cls, TARGET_IDS)
    covered = _covered(obj_b, cam_b, pulses_b, geometry)
    assert covered[target].all(), np.nonzero(target & ~covered)
    assert covered[~target].sum() == 0
    assert st["objects_targeted"] - before["objects_targeted"] == target.sum()
    assert st["deadline_misses"] == 0
    # the confirmed tracks not yet decided at the reset count as lost
    assert st["tracks_lost"] > before["tracks_lost"]


@pytest.mark.parametrize("back_frames", [0.5, 1.0, 1.9])
def test_belt_jogged_back_is_followed(geometry, recipe, back_frames):
    """A backward step the belt can make (up to twice a nominal frame's travel
    per frame) keeps every track: fragments keep their belt position, and the
    run sorts as if nothing happened."""
    ctl = Controller(geometry, recipe, DEFAULT_CLASSES)
    obj, cam = _camera(geometry, seed=3, start_tick=100_000)
    out = []
    for f in range(N_FRAMES):
        if f == 30:  # frame 30 sees the belt back by ``back_frames`` frames from 29
            jog_tick = cam.tick_of(29) - round(back_frames * cam.frame_ticks)
            live_before = ctl.stats()["tracks_live"]
            _, pulses = ctl.update(_frame_at_tick(cam, 30, jog_tick))
            assert ctl.stats()["tracks_live"] >= live_before - 2  # only tracks leaving end
        else:
            _, pulses = ctl.update(cam.frame(f)[0])
        if len(pulses):
            out.append(pulses)
    st = ctl.stats()
    assert st["encoder_resets"] == 0
    target = np.isin(obj.cls, TARGET_IDS)
    covered = _covered(obj, cam, Pulses.concat(out), geometry)
    assert covered[target].all(), np.nonzero(target & ~covered)
    assert st["tracks_confirmed"] == len(obj)


@pytest.mark.parametrize("start_b", [2_000_000, 210_000])
def test_announced_count_space_starts_afresh_even_when_the_count_runs_on(geometry, recipe, start_b):
    """A restarted PLC whose new count is already ahead of the old one (it ran
    longer before frames flowed again) is no backward jump; the line knows of
    the restart from the PLC's boot id and says so, and tracking starts afresh
    exactly once."""
    ctl = Controller(geometry, recipe, DEFAULT_CLASSES)
    _, cam_a = _camera(geometry, seed=3, start_tick=200_000 - N_BEFORE * 1000)
    _, ids_a = _feed(ctl, cam_a, N_BEFORE)
    ctl.new_count_space()
    obj_b, cam_b = _camera(geometry, seed=4, start_tick=start_b)
    pulses_b, ids_b = _feed(ctl, cam_b, N_FRAMES)
    st = ctl.stats()
    assert st["encoder_resets"] == 1
    assert not ids_b & ids_a, "a track of the old count space lived on"
    target = np.isin(obj_b.cls, TARGET_IDS)
    covered = _covered(obj_b, cam_b, pulses_b, geometry)
    assert covered[target].all(), np.nonzero(target & ~covered)
    assert covered[~target].sum() == 0
    assert st["deadline_misses"] == 0
