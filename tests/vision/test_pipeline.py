"""VisionPipeline on the synthetic belt: detections in belt mm, classes, frame
checks, camera models, the uncertain-fragment folder."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import synth

from calibration.geometry import CameraGeometry, LineGeometry
from core.frame import Frame, FrameError
from vision.classifier import OnnxClassifier
from vision.labelling import UncertainFolder
from vision.pipeline import VisionPipeline
from vision.track_crops import CropPolicy

NAMES = tuple(synth.COLOURS_BGR)
GEOMETRY = LineGeometry()


def _frame(blobs: list[synth.Blob], seed: int = 0, frame_id: int = 0) -> Frame:
    return Frame(synth.render(blobs, seed), frame_id, 123_456 + frame_id, frame_id / 100)


@pytest.mark.parametrize("n_blobs", [0, 12, 40])
def test_detections_in_belt_mm_with_classes(make_model: Callable[..., Path], n_blobs: int) -> None:
    clf = OnnxClassifier.load(make_model(), expected_classes=NAMES)
    pipe = VisionPipeline(GEOMETRY, clf)
    blobs = synth.scatter(n_blobs, 11)
    dets = pipe.process(_frame(blobs, 11, frame_id=7))
    assert len(dets) == n_blobs and dets.frame_id == 7 and dets.tick == 123_463
    assert dets.class_prob.shape == (n_blobs, len(NAMES))
    if not n_blobs:
        return
    cam = GEOMETRY.camera
    tx, ty = cam.px_to_mm(np.array([b.cx for b in blobs]), np.array([b.cy for b in blobs]))
    truth = np.column_stack([tx - 0.5 * cam.mm_per_px_x, ty - 0.5 * cam.mm_per_px_y])
    d = np.linalg.norm(dets.centroid_mm[:, None] - truth[None], axis=2)
    nearest = d.argmin(axis=1)
    assert d.min(axis=1).max() < 1.5  # mm
    # a frame of new fragments: the first CropPolicy().budget of them get a crop
    # (unclassified ones carry no evidence, never a guess)
    classified = dets.class_id >= 0
    assert int(classified.sum()) == min(n_blobs, CropPolicy().budget)
    assert np.all(np.isnan(dets.class_prob[~classified]))
    got = [NAMES[i] for i in dets.class_id[classified]]
    assert got == [blobs[j].name for j in nearest[classified]]
    ext = dets.extent_mm
    assert np.all(ext[:, 0] < dets.centroid_mm[:, 0]) and np.all(dets.centroid_mm[:, 0] < ext[:, 1])
    assert np.all(ext[:, 2] < dets.centroid_mm[:, 1]) and np.all(dets.centroid_mm[:, 1] < ext[:, 3])
    areas = np.array([np.pi * blobs[j].ax * blobs[j].ay for j in nearest]) * cam.mm_per_px_x**2
    assert np.all(np.abs(dets.area_mm2 / areas - 1) < 0.35)


def test_without_classifier_rows_are_unclassified() -> None:
    dets = VisionPipeline(GEOMETRY, None).process(_frame(synth.scatter(5, 1), 1))
    assert len(dets) == 5 and np.all(dets.class_id == -1) and dets.class_prob.shape == (5, 0)


class ShiftedCamera:
    """A calibrated camera model stand-in: nominal map shifted by (+10, -20) mm."""

    def __init__(self, cam: CameraGeometry) -> None:
        self.cam = cam

    def px_to_mm(self, col: np.ndarray, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.cam.px_to_mm(col, row)
        return x + 10.0, y - 20.0


def test_camera_model_is_used() -> None:
    blobs = synth.scatter(6, 2)
    nominal = VisionPipeline(GEOMETRY, None).process(_frame(blobs, 2))
    shifted = VisionPipeline(GEOMETRY, None, camera_model=ShiftedCamera(GEOMETRY.camera))
    dets = shifted.process(_frame(blobs, 2))
    np.testing.assert_allclose(dets.centroid_mm - nominal.centroid_mm, [[10.0, -20.0]] * 6)
    np.testing.assert_allclose(dets.area_mm2, nominal.area_mm2, rtol=1e-5)


def test_calibration_camera_model_nominal_matches() -> None:
    camera_model = pytest.importorskip("calibration.camera_model")
    model = camera_model.CameraModel.nominal(GEOMETRY.camera)
    blobs = synth.scatter(6, 4)
    a = VisionPipeline(GEOMETRY, None).process(_frame(blobs, 4))
    b = VisionPipeline(GEOMETRY, None, camera_model=model).process(_frame(blobs, 4))
    np.testing.assert_allclose(a.centroid_mm, b.centroid_mm, atol=1e-6)
    np.testing.assert_allclose(a.extent_mm, b.extent_mm, atol=1e-6)


@pytest.mark.parametrize(
    ("image", "words"),
    [
        (np.zeros((512, 1000, 3), np.uint8), "1000x512 px"),
        (np.zeros((256, 1280, 3), np.uint8), "1280x256 px"),
        (np.zeros((512, 1280), np.uint8), None),  # mono of the right size is fine
    ],
)
def test_frame_size_checked(image: np.ndarray, words: str | None) -> None:
    pipe = VisionPipeline(GEOMETRY, None)
    frame = Frame(image, 0, 0, 0.0)
    if words is None:
        assert len(pipe.process(frame)) == 0
    else:
        with pytest.raises(FrameError, match=words):
            pipe.process(frame)


@pytest.mark.parametrize("bad", [np.zeros((512, 1280, 3), np.uint8), "frame", None])
def test_not_a_frame_refused(bad: object) -> None:
    with pytest.raises(FrameError, match=r"expected a core\.frame\.Frame"):
        VisionPipeline(GEOMETRY, None).process(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("image", "words"),
    [
        (np.zeros((512, 1280, 3), np.float32), "dtype float32"),
        (np.zeros((512, 1280, 4), np.uint8), "shape"),
    ],
)
def test_wrong_image_type_refused_by_frame(image: np.ndarray, words: str) -> None:
    with pytest.raises(FrameError, match=words):
        Frame(image, 0, 0, 0.0)


def test_uncertain_fragments_saved_and_capped(
    make_model: Callable[..., Path], tmp_path: Path
) -> None:
    folder = UncertainFolder(tmp_path / "unsure", max_items=5, max_per_frame=3)
    clf = OnnxClassifier.load(make_model())
    # every fragment is "uncertain" below 1.01
    pipe = VisionPipeline(GEOMETRY, clf, uncertain=folder, uncertain_below=1.01)
    for i in range(4):
        pipe.process(_frame(synth.scatter(8, 20 + i), 20 + i, frame_id=i))
    folder.close()
    metas = sorted((tmp_path / "unsure").glob("*.json"))
    assert folder.saved == 12 and folder.count == 5 and len(metas) == 5
    assert len(list((tmp_path / "unsure").glob("*.crop.png"))) == 5
    assert len(list((tmp_path / "unsure").glob("*.ctx.png"))) == 5
    meta = json.loads(metas[-1].read_text())
    assert meta["frame_id"] == 3 and meta["predicted"] in NAMES
    assert abs(sum(meta["class_prob"].values()) - 1.0) < 1e-3


def test_tracks_mode_classifies_a_fragment_a_few_times_and_leaves_other_views_empty(
    make_model: Callable[..., Path],
) -> None:
    """The same scene held still for six frames: each fragment is classified in its
    first ``views_per_track`` frames, then its views carry no evidence (NaN, -1)."""
    from vision.track_crops import CropPolicy

    clf = OnnxClassifier.load(make_model(), expected_classes=NAMES)
    policy = CropPolicy(views_per_track=2, max_views=2)
    pipe = VisionPipeline(GEOMETRY, clf, crop_policy=policy)
    every = VisionPipeline(GEOMETRY, clf, crop_policy=CropPolicy(mode="every"))
    blobs = synth.scatter(12, 5)
    seen = []
    for i in range(6):  # tick stands still: the belt did not move, nor did the blobs
        f = Frame(synth.render(blobs, 5), i, 1000, i / 100)
        dets, ref = pipe.process(f), every.process(f)
        assert len(dets) == len(ref) == 12
        classified = dets.class_id >= 0
        seen.append(int(classified.sum()))
        assert np.isnan(dets.class_prob[~classified]).all()
        assert np.isnan(dets.confidence[~classified]).all()
        got, want = dets.class_prob[classified], ref.class_prob[classified]
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert seen == [12, 12, 0, 0, 0, 0]
    assert pipe.times.crops == 24 and every.times.crops == 72
