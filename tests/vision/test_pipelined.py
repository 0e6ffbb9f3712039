"""``PipelinedVision`` gives the same detections as ``VisionPipeline.process``,
one frame later, and keeps a frame in flight through a bad frame."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import synth

from calibration.geometry import LineGeometry
from core.frame import Frame, FrameError
from vision.classifier import OnnxClassifier
from vision.pipeline import VisionPipeline
from vision.pipelined import PipelinedVision
from vision.track_crops import CropPolicy

GEOMETRY = LineGeometry()


def _frames(n: int) -> list[Frame]:
    return [
        Frame(synth.render(synth.scatter(6 + 4 * i, 40 + i), 40 + i), i, 1000 + i, i / 100)
        for i in range(n)
    ]


@pytest.mark.parametrize("n_frames", [1, 5])
def test_same_detections_as_sync_one_frame_later(
    make_model: Callable[..., Path], n_frames: int
) -> None:
    clf = OnnxClassifier.load(make_model())
    frames = _frames(n_frames)
    sync = VisionPipeline(GEOMETRY, clf)
    want = [sync.process(f) for f in frames]
    got = []
    before = sys.getswitchinterval()
    with PipelinedVision(VisionPipeline(GEOMETRY, clf)) as pv:
        assert sys.getswitchinterval() == min(before, 0.0005)
        assert pv.push(frames[0]) is None
        for f in frames[1:]:
            got.append(pv.push(f))
        got.append(pv.flush())
        assert pv.flush() is None
        assert len(pv.latency_s) == n_frames and pv.latency_ms(99) >= pv.latency_ms(50) > 0
    assert sys.getswitchinterval() == before
    for a, b in zip(want, got, strict=True):
        assert b is not None and b.frame_id == a.frame_id and len(b) == len(a) > 0
        np.testing.assert_array_equal(a.class_id, b.class_id)
        np.testing.assert_allclose(a.class_prob, b.class_prob, atol=1e-6)
        np.testing.assert_allclose(a.centroid_mm, b.centroid_mm)


def test_bad_frame_raises_and_frame_in_flight_survives(make_model: Callable[..., Path]) -> None:
    clf = OnnxClassifier.load(make_model())
    good = _frames(2)
    with PipelinedVision(VisionPipeline(GEOMETRY, clf)) as pv:
        pv.push(good[0])
        with pytest.raises(FrameError, match="1000x512 px"):
            pv.push(Frame(np.zeros((512, 1000, 3), np.uint8), 9, 0, 0.0))
        dets = pv.push(good[1])
        assert dets is not None and dets.frame_id == 0
        last = pv.flush()
        assert last is not None and last.frame_id == 1


@pytest.mark.parametrize("crops_in_prepare", [True, False])
def test_crops_cut_in_either_stage_give_the_same_detections(
    make_model: Callable[..., Path], crops_in_prepare: bool
) -> None:
    clf = OnnxClassifier.load(make_model())
    frame = _frames(1)[0]
    every = CropPolicy(mode="every")  # crops are cut in prepare only for every view
    want = VisionPipeline(GEOMETRY, clf, crop_policy=every).process(frame)
    pipe = VisionPipeline(GEOMETRY, clf, crop_policy=every)
    pipe.crops_in_prepare = crops_in_prepare
    prep = pipe.prepare(frame, buffer=1)
    assert (prep.crops is not None) == crops_in_prepare
    got = pipe.finish(prep)
    np.testing.assert_array_equal(got.class_id, want.class_id)
    np.testing.assert_allclose(got.class_prob, want.class_prob, atol=1e-6)
    assert min(pipe.last_split_cpu_s) >= 0.0
