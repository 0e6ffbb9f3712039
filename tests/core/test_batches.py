"""Detections / Tracks / Pulses: validated struct-of-arrays batches."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from core.batch import BatchError
from core.types import Detections, Pulses, Tracks


def _dets(n: int, k: int = 10) -> Detections:
    rng = np.random.default_rng(n)
    return Detections(
        frame_id=7,
        tick=123,
        bbox_px=rng.uniform(0, 100, (n, 4)).astype(np.float32),
        centroid_mm=rng.uniform(0, 100, (n, 2)),
        extent_mm=rng.uniform(0, 100, (n, 4)),
        area_mm2=rng.uniform(1, 9, n).astype(np.float32),
        class_id=rng.integers(0, k, n).astype(np.int16),
        confidence=rng.uniform(0, 1, n).astype(np.float32),
        class_prob=rng.uniform(0, 1, (n, k)).astype(np.float32),
    )


def _pulses(n: int) -> Pulses:
    return Pulses(
        actuator=np.zeros(n, np.int16),
        first_valve=np.arange(n, dtype=np.int16),
        last_valve=np.arange(n, dtype=np.int16) + 1,
        on_tick=np.arange(n, dtype=np.uint32) * 10,
        off_tick=np.arange(n, dtype=np.uint32) * 10 + 5,
        track_id=np.arange(n, dtype=np.int64),
        fraction=np.zeros(n, np.int16),
    )


@pytest.mark.parametrize("n", [0, 1, 5])
def test_detections_len_and_mask(n: int) -> None:
    d = _dets(n)
    assert len(d) == n
    keep = d.confidence > 0.5
    sub = d[keep]
    assert isinstance(sub, Detections)
    assert len(sub) == int(keep.sum())
    np.testing.assert_array_equal(sub.centroid_mm, d.centroid_mm[keep])
    assert sub.frame_id == 7 and sub.tick == 123


def test_arrays_are_read_only() -> None:
    d = _dets(3)
    with pytest.raises(ValueError):
        d.centroid_mm[0, 0] = 1.0
    p = _pulses(2)
    with pytest.raises(ValueError):
        p.on_tick[0] = 1


def test_read_only_even_when_built_from_a_view() -> None:
    base = np.zeros((4, 4), np.float32)
    d = Detections(
        frame_id=0,
        tick=0,
        bbox_px=base[:2],
        centroid_mm=np.zeros((2, 2)),
        extent_mm=np.zeros((2, 4)),
        area_mm2=np.zeros(2, np.float32),
        class_id=np.zeros(2, np.int16),
        confidence=np.zeros(2, np.float32),
        class_prob=np.zeros((2, 0), np.float32),
    )
    base[0, 0] = 5.0  # the caller's array stays theirs
    assert d.bbox_px[0, 0] == 0.0
    assert not d.bbox_px.flags.writeable


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("centroid_mm", np.zeros((3, 3)), "axis 1 must be 2"),
        ("area_mm2", np.zeros(2, np.float32), "has 2 rows, expected 3"),
        ("class_id", np.array([0.5, 1.0, 2.0]), "cannot be used as int16"),
        ("class_id", np.array([0, 1, 40000]), "outside the range of int16"),
        ("bbox_px", np.zeros(3, np.float32), "expected 2 dimensions"),
    ],
)
def test_detections_reject_bad_fields(field: str, value: np.ndarray, message: str) -> None:
    good = _dets(3)
    kwargs = {f.name: getattr(good, f.name) for f in dataclasses.fields(good)}
    kwargs[field] = value
    with pytest.raises(BatchError, match=message):
        Detections(**kwargs)


def test_detections_reject_nan_and_bad_tick() -> None:
    good = _dets(2)
    kwargs = {f.name: getattr(good, f.name) for f in dataclasses.fields(good)}
    with pytest.raises(ValueError, match="NaN"):
        Detections(**{**kwargs, "centroid_mm": np.full((2, 2), np.nan)})
    with pytest.raises(ValueError, match="unsigned 32-bit"):
        Detections(**{**kwargs, "tick": 1 << 32})


def test_empty_and_concat() -> None:
    e = Detections.empty(frame_id=1, tick=2, class_prob_width=10)
    assert len(e) == 0 and e.class_prob.shape == (0, 10)
    both = Pulses.concat([_pulses(2), _pulses(3)])
    assert len(both) == 5
    np.testing.assert_array_equal(both.first_valve, [0, 1, 0, 1, 2])
    assert len(Tracks.empty(tick=0, class_evidence_width=10)) == 0


@pytest.mark.parametrize(
    ("first", "last", "on", "off", "ok"),
    [
        (3, 5, 100, 200, True),
        (3, 3, 100, 101, True),
        (5, 3, 100, 200, False),  # last before first
        (-1, 3, 100, 200, False),  # negative valve
        (3, 5, 200, 200, False),  # zero length
        (3, 5, 200, 100, False),  # off before on
        (3, 5, 0xFFFF_FFF0, 0x10, True),  # across the 32-bit wrap
    ],
)
def test_pulses_validate_runs(first: int, last: int, on: int, off: int, ok: bool) -> None:
    kwargs = dict(
        actuator=[0],
        first_valve=[first],
        last_valve=[last],
        on_tick=np.array([on], np.uint32),
        off_tick=np.array([off], np.uint32),
        track_id=[1],
        fraction=[0],
    )
    if ok:
        assert len(Pulses(**kwargs)) == 1
    else:
        with pytest.raises(ValueError):
            Pulses(**kwargs)


def test_bad_mask_shape_is_refused() -> None:
    with pytest.raises(BatchError, match="boolean mask"):
        _ = _pulses(3)[np.array([True, False])]


@pytest.mark.parametrize("n", [0, 1, 5])
def test_detections_axes_default_to_nan_and_follow_masks(n: int) -> None:
    """``axes_mm`` (minor, major) defaults to NaN (not measured); given, it is
    float32 (N, 2), sliced and concatenated with the other fields."""
    d = _dets(n)
    assert d.axes_mm.shape == (n, 2) and d.axes_mm.dtype == np.float32
    assert np.isnan(d.axes_mm).all()
    axes = np.column_stack([np.arange(n), 2.0 * np.arange(n)]).astype(np.float32)
    g = dataclasses.replace(d, axes_mm=axes)
    keep = np.arange(n) % 2 == 0
    np.testing.assert_array_equal(g[keep].axes_mm, axes[keep])
    both = Detections.concat([g, g], frame_id=7, tick=123)
    np.testing.assert_array_equal(both.axes_mm, np.vstack([axes, axes]))
    with pytest.raises(BatchError, match="axes_mm"):
        dataclasses.replace(d, axes_mm=np.zeros((n, 3), np.float32))
