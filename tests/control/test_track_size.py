"""The track's size (``TrackTable.AX``): the median of its last ``SIZE_VIEWS``
sizes (``Detections.axes_mm``) seen wholly in view, against a NumPy twin, on
the kernel alone (random associations, births, clipped and unmeasured views)
and through the tracker on a synthetic stream."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from calibration.geometry import LineGeometry
from control import params as prm_idx
from control.kernels import _size_update
from control.synthetic import SyntheticCamera, random_objects
from control.tracker import SIZE_VIEWS, Tracker

History = dict[int, list[tuple[float, float]]]


def _twin(history: History, key: int, a: np.ndarray, clip: int) -> None:
    if clip == 0 and np.isfinite(a).all():
        history.setdefault(key, []).append((float(a[0]), float(a[1])))


def _median_last(views: list[tuple[float, float]]) -> np.ndarray:
    if not views:
        return np.full(2, np.nan)
    return np.median(np.asarray(views[-SIZE_VIEWS:]), axis=0)


@pytest.mark.parametrize("seed", range(6))
def test_size_update_matches_its_twin(seed: int) -> None:
    rng = np.random.default_rng(seed)
    cap = 64
    ax = np.zeros((cap, 2))
    axh = np.zeros((cap, 2 * SIZE_VIEWS))
    axn = np.zeros(cap, np.int64)
    n = 0
    owner: list[int] = []  # row -> twin key
    history: History = {}
    for _ in range(30):
        nd = int(rng.integers(0, 6)) if n < cap - 6 else 0
        rows = rng.permutation(n)[: int(rng.integers(0, n + 1))] if n else np.zeros(0, np.int64)
        d2t = np.full(nd + rows.size, -1, np.int64)
        d2t[: rows.size] = rows
        d2t = rng.permutation(d2t)
        daxes = rng.uniform(5.0, 80.0, (d2t.size, 2))
        daxes[rng.random(d2t.size) < 0.15] = np.nan
        clip = (rng.random(d2t.size) < 0.2).astype(np.int64) * rng.integers(1, 4, d2t.size)
        _size_update(ax, axh, axn, n, d2t, daxes, clip)
        for j in range(d2t.size):
            if d2t[j] < 0:
                owner.append(len(owner))
                row = len(owner) - 1
            else:
                row = int(d2t[j])
            _twin(history, owner[row], daxes[j], int(clip[j]))
        n = len(owner)
        for row in range(n):
            want = _median_last(history.get(owner[row], []))
            np.testing.assert_allclose(ax[row], want, equal_nan=True)
            assert axn[row] == len(history.get(owner[row], []))


def test_tracks_carry_the_median_size_of_their_whole_views(geometry: LineGeometry) -> None:
    """Well separated boxes riding the belt, each view's size its own plus noise;
    after every frame each track's size is its object's median over its last
    views not cut by the view's edges (a view cut by them tells nothing)."""
    ob = random_objects(geometry, 12, (-600.0, -50.0), 10, seed=5, size_mm=(20.0, 50.0),
                        min_gap_mm=40.0)  # fmt: skip
    cam = SyntheticCamera(geometry, ob, 10, noise_mm=0.5, seed=2, start_tick=1000)
    trk = Tracker(geometry, 10)
    rng = np.random.default_rng(9)
    size = np.stack([np.minimum(ob.hx_mm, ob.hu_mm), np.maximum(ob.hx_mm, ob.hu_mm)], 1) * 2.0
    tol = trk.prm[prm_idx.T_CLIP_TOL_MM]
    top, bottom = geometry.camera.view_y_range_mm
    history: History = {}
    z = np.zeros(10)
    order = np.arange(10, dtype=np.int64)
    checked = sized = 0
    for f in range(160):
        dets, vis = cam.frame(f)
        axes = size[vis] + rng.normal(0.0, 1.0, (vis.size, 2))
        axes[rng.random(vis.size) < 0.1] = np.nan  # a view without moments
        dets = dataclasses.replace(dets, axes_mm=axes.astype(np.float32))
        trk.step(dets, cam.tick_of(f), np.full(10, -1, np.int64), z, order)
        e = dets.extent_mm
        clip = (e[:, 2] <= top + tol) | (e[:, 3] >= bottom - tol)
        for j, obj in enumerate(vis.tolist()):
            _twin(history, obj, dets.axes_mm[j].astype(np.float64), int(clip[j]))
        tab = trk.table
        rel = cam.tick_of(f) - cam.start_tick
        x, u = ob.at(rel)
        for row in range(tab.n):
            obj = int(np.argmin(np.hypot(x - tab.X[row, 0], u - tab.X[row, 1])))
            if tab.NVIEW[row] < 3 or not tab.CONF[row]:
                continue
            want = _median_last(history.get(obj, []))
            np.testing.assert_allclose(tab.AX[row], want, rtol=1e-6, equal_nan=True)
            checked += 1
            sized += bool(np.isfinite(want).all())
    assert checked > 200 and sized > 150


def test_the_controller_keeps_sizes_only_while_a_fusion_hook_reads_them(
    geometry: LineGeometry,
) -> None:
    """Without a second sensor nothing reads the tracks' sizes: the controller
    keeps none (NaN); hooked, its tracks carry them; unhooked, none again."""
    from control.controller import Controller
    from control.recipe import load_recipe
    from core.classes import DEFAULT_CLASSES

    k = len(DEFAULT_CLASSES)
    ob = random_objects(geometry, 24, (-1500.0, -50.0), k, seed=3, size_mm=(20.0, 50.0),
                        min_gap_mm=40.0)  # fmt: skip
    cam = SyntheticCamera(geometry, ob, k, noise_mm=0.3, seed=1)
    ctl = Controller(geometry, load_recipe("builtin:default", DEFAULT_CLASSES), DEFAULT_CLASSES)

    class Hook:
        def apply(self, *args: object, **kwargs: object) -> None:
            return None

    def sized_rows(frames: range) -> int:
        for f in frames:
            dets, _ = cam.frame(f)
            ctl.update(dets, int(dets.tick))
        tab = ctl._tracker.table
        return int(np.isfinite(tab.AX[: tab.n]).all(axis=1).sum())

    assert sized_rows(range(0, 20)) == 0 and ctl._tracker.table.n > 0
    ctl.set_evidence_hook(Hook())  # type: ignore[arg-type]
    assert sized_rows(range(20, 40)) > 0
    ctl.set_evidence_hook(None)
    tab = ctl._tracker.table
    most = int(tab.AXN[: tab.n].max())
    sized_rows(range(40, 43))  # no more views counted; rows born meanwhile start empty
    assert int(tab.AXN[: tab.n].max()) <= most
