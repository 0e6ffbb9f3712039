"""``Controller.apply_geometry``: a calibration swap keeps tracks, decisions and
committed air; what depends on geometry (valves, delays, disabled valves, view,
encoder scale) follows the new one from the next update."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from control.controller import Controller
from control.synthetic import SyntheticCamera, random_objects
from core.classes import DEFAULT_CLASSES

TARGET_IDS = [DEFAULT_CLASSES.index(c) for c in ("copper", "brass", "battery")]
N_FRAMES = 110
SWAP_FRAME = 55


def _swapped(geometry, kind: str):
    v, b, c = geometry.valves, geometry.belt, geometry.camera
    if kind == "same":
        return geometry
    if kind == "disabled":  # every even valve found dead
        return geometry.model_copy(
            update={"valves": v.model_copy(update={"disabled_valves": tuple(range(0, 80, 2))})}
        )
    if kind == "delays":
        opens = tuple(3.0 + 0.5 * (i % 3) for i in range(v.n_valves))
        closes = tuple(2.0 + 0.25 * (i % 2) for i in range(v.n_valves))
        upd = {"open_delay_per_valve_ms": opens, "close_delay_per_valve_ms": closes}
        return geometry.model_copy(update={"valves": v.model_copy(update=upd)})
    if kind == "encoder":
        return geometry.model_copy(update={"belt": b.model_copy(update={"mm_per_tick": 0.1002})})
    if kind == "camera":
        return geometry.model_copy(update={"camera": c.model_copy(update={"x_offset_mm": 0.4})})
    raise ValueError(kind)


def _run(geometry, recipe, cam, swap_to=None):
    ctl = Controller(geometry, recipe, DEFAULT_CLASSES)
    before, after, born_at_swap = [], [], 0
    for f in range(N_FRAMES):
        if f == SWAP_FRAME and swap_to is not None:
            born_at_swap = ctl.stats()["tracks_born"]
            ctl.apply_geometry(swap_to)
        _, pulses = ctl.update(cam.frame(f)[0])
        if len(pulses):
            (before if f < SWAP_FRAME else after).append(pulses)
    return ctl, before, after, born_at_swap


@pytest.mark.parametrize("kind", ["same", "disabled", "delays", "encoder", "camera"])
def test_swap_keeps_tracks_and_never_pulses_twice(geometry, recipe, kind):
    obj = random_objects(geometry, 40, (-1500.0, -250.0), len(DEFAULT_CLASSES), seed=11)
    cam = SyntheticCamera(geometry, obj, len(DEFAULT_CLASSES), seed=1)
    ref, _, _, _ = _run(geometry, recipe, cam)
    ctl, before, after, born_at_swap = _run(geometry, recipe, cam, _swapped(geometry, kind))
    assert before and after, "the swap must fall while targets are being scheduled"
    ids = np.concatenate([p.track_id for p in before + after])
    done_before = set(np.concatenate([p.track_id for p in before]).tolist())
    assert not done_before & set(np.concatenate([p.track_id for p in after]).tolist())
    # every target once, as without the swap; no fragment tracked afresh
    assert len(set(ids.tolist())) == int(np.isin(obj.cls, TARGET_IDS).sum())
    assert ctl.stats()["tracks_born"] == ref.stats()["tracks_born"]
    assert ctl.stats()["objects_seen"] == ref.stats()["objects_seen"] > 0
    assert 0 < born_at_swap <= ctl.stats()["tracks_born"]


def test_disabled_valves_are_not_used_after_the_swap(geometry, recipe):
    obj = random_objects(geometry, 40, (-1500.0, -250.0), len(DEFAULT_CLASSES), seed=11)
    cam = SyntheticCamera(geometry, obj, len(DEFAULT_CLASSES), seed=1)
    new = _swapped(geometry, "disabled")
    dead = set(new.valves.disabled_valves)
    _, before, after, _ = _run(geometry, recipe, cam, new)

    def valves(pulses_list):
        return [
            set(range(int(a), int(b) + 1))
            for p in pulses_list
            for a, b in zip(p.first_valve, p.last_valve, strict=True)
        ]

    assert any(vs & dead for vs in valves(before))  # they were in use before
    assert all(not vs & dead for vs in valves(after))


def test_per_valve_delays_shift_each_valve(geometry, recipe):
    """A valve 1 ms slower to open is commanded 1 ms (25 ticks at 2.5 m/s) earlier."""
    obj = random_objects(geometry, 40, (-1500.0, -250.0), len(DEFAULT_CLASSES), seed=11)
    cam = SyntheticCamera(geometry, obj, len(DEFAULT_CLASSES), seed=1)
    v = geometry.valves
    slow = v.model_copy(update={"open_delay_per_valve_ms": (v.open_delay_ms + 1.0,) * 80})
    _, _, plain, _ = _run(geometry, recipe, cam, geometry)
    _, _, shifted, _ = _run(geometry, recipe, cam, geometry.model_copy(update={"valves": slow}))
    on_plain = np.concatenate([p.on_tick for p in plain]).astype(np.int64)
    on_slow = np.concatenate([p.on_tick for p in shifted]).astype(np.int64)
    assert on_plain.shape == on_slow.shape
    assert np.all(np.abs(on_plain - on_slow - 25) <= 1)


def test_apply_geometry_from_another_thread(geometry, recipe):
    obj = random_objects(geometry, 40, (-1500.0, -250.0), len(DEFAULT_CLASSES), seed=3)
    cam = SyntheticCamera(geometry, obj, len(DEFAULT_CLASSES), seed=1)
    ctl = Controller(geometry, recipe, DEFAULT_CLASSES)
    kinds = ["disabled", "delays", "camera", "same"]
    stop = threading.Event()

    def swapper() -> None:
        k = 0
        while not stop.is_set() and k < 2000:
            ctl.apply_geometry(_swapped(geometry, kinds[k % len(kinds)]))
            k += 1

    th = threading.Thread(target=swapper)
    th.start()
    try:
        for f in range(N_FRAMES):
            ctl.update(cam.frame(f)[0])
    finally:
        stop.set()
        th.join(timeout=10)
    assert not th.is_alive()
    last = _swapped(geometry, "encoder")
    ctl.apply_geometry(last)
    assert ctl.geometry is not last  # applied at the next update, not at once
    ctl.update(cam.frame(N_FRAMES)[0])
    assert ctl.geometry is last


def test_apply_geometry_refuses_other_types(geometry, recipe):
    ctl = Controller(geometry, recipe, DEFAULT_CLASSES)
    with pytest.raises(TypeError, match="LineGeometry"):
        ctl.apply_geometry({"valves": {}})  # type: ignore[arg-type]
