"""Segmentation on a synthetic belt (independent of sim): counts, centroids,
splitting of touching fragments, belt-model adaptation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import synth

from vision.segment import Segmenter, SegmentParams


def _match(centroids: np.ndarray, blobs: list[synth.Blob]) -> np.ndarray:
    truth = np.array([[b.cx, b.cy] for b in blobs])
    d = np.linalg.norm(centroids[:, None, :] - truth[None], axis=2)
    return d.min(axis=1)


@pytest.mark.parametrize("n_blobs", [0, 1, 25, 60])
@pytest.mark.parametrize("seed", [1, 2])
def test_separate_fragments_found_once_with_subpixel_centroids(n_blobs: int, seed: int) -> None:
    blobs = synth.scatter(n_blobs, seed)
    seg = Segmenter().segment(synth.render(blobs, seed))
    assert len(seg) == len(blobs)
    if blobs:
        assert _match(seg.centroid_px, blobs).max() < 1.5  # px, full resolution
        areas = np.array([np.pi * b.ax * b.ay for b in blobs])
        assert abs(seg.area_px.sum() / areas.sum() - 1.0) < 0.2  # a ring of low-res px


def test_mono_image_and_bbox_contains_centroid() -> None:
    blobs = synth.scatter(10, 3)
    img = synth.render(blobs, 3)
    mono = img[:, :, 1].copy()
    seg = Segmenter().segment(mono)
    assert len(seg) >= 8  # rubber / pcb can be close to the belt in one channel
    b = seg.bbox_px
    c = seg.centroid_px
    assert np.all((b[:, 0] <= c[:, 0]) & (c[:, 0] <= b[:, 2]))
    assert np.all((b[:, 1] <= c[:, 1]) & (c[:, 1] <= b[:, 3]))


@pytest.mark.parametrize(
    ("overlap_px", "second", "split", "expected"),
    [
        (6.0, "copper", True, 2),  # two disks pressed together: split at the neck
        (12.0, "aluminium", True, 2),  # a wider neck, two materials: cut between the notches
        (12.0, "copper", True, 1),  # ... one material: a peanut-shaped fragment is kept whole
        (6.0, "copper", False, 1),  # splitting off: one merged segment
        (-10.0, "copper", True, 2),  # apart anyway
    ],
)
def test_touching_pair_split(overlap_px: float, second: str, split: bool, expected: int) -> None:
    r = 30.0
    blobs = [
        synth.Blob("copper", 400.0, 250.0, r, r, 0.0),
        synth.Blob(second, 400.0 + 2 * r - overlap_px, 250.0, r, r, 0.0),
    ]
    seg = Segmenter(SegmentParams(split=split)).segment(synth.render(blobs, 0))
    assert len(seg) == expected
    if expected == 2:
        assert _match(seg.centroid_px, blobs).max() < 4.0


def test_elongated_fragment_not_split() -> None:
    blobs = [synth.Blob("aluminium", 600.0, 250.0, 120.0, 9.0, 30.0)]
    seg = Segmenter().segment(synth.render(blobs, 0))
    assert len(seg) == 1


def test_belt_model_follows_lighting_drift_without_false_fragments() -> None:
    segmenter = Segmenter()
    blobs = synth.scatter(15, 5)
    base = synth.render(blobs, 5).astype(np.float32)
    counts = []
    for i in range(60):  # brightness drifts by 25 % over 60 frames
        gain = 1.0 + 0.25 * i / 59
        counts.append(len(segmenter.segment(np.clip(base * gain, 0, 255).astype(np.uint8))))
    assert max(counts) == len(blobs) and min(counts) == len(blobs)


def test_empty_belt_after_fragments_leave_has_no_ghosts() -> None:
    segmenter = Segmenter()
    blobs = synth.scatter(30, 7)
    for _ in range(5):
        segmenter.segment(synth.render(blobs, 7))
    assert len(segmenter.segment(synth.belt(seed=8))) == 0


def _bar(img: np.ndarray, cx: float, cy: float, size: tuple[float, float], angle: float,
         bgr: tuple[int, int, int]) -> None:  # fmt: skip
    box = cv2.boxPoints(((cx, cy), size, angle))
    cv2.fillConvexPoly(img, np.round(box).astype(np.int32), bgr, lineType=cv2.LINE_AA)


GREY, BLUE, RED, WHITE = (200, 200, 205), (60, 110, 200), (200, 70, 40), (230, 230, 230)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("bar across plate", 2),  # notches where the outlines cross, two colours: cut
        ("bar across plate, one material", 1),  # same colour: a notched sheet, not cut
        ("striped battery", 1),  # colour bands across one convex fragment: not cut
        ("notched sheet", 1),
    ],
)
def test_overlap_cut_at_notches_only_between_materials(case: str, expected: int) -> None:
    img = synth.belt(seed=1)
    if case.startswith("bar across plate"):
        _bar(img, 400, 250, (160, 90), 0, GREY if case == "bar across plate" else BLUE)
        _bar(img, 470, 250, (140, 50), 60, BLUE)
    elif case == "striped battery":
        _bar(img, 600, 250, (180, 60), 30, RED)
        _bar(img, 600, 250, (60, 60), 30, WHITE)
    else:
        pts = [[500, 200], [560, 230], [620, 190], [640, 260], [610, 320], [540, 300], [480, 330]]
        cv2.fillPoly(img, [np.array(pts, np.int32)], BLUE, lineType=cv2.LINE_AA)
    seg = Segmenter().segment(img)
    assert len(seg) == expected
    if case == "bar across plate":  # the bar (on top) keeps its own centroid
        assert np.min(np.hypot(*(seg.centroid_px - [470.0, 250.0]).T)) < 6.0
