"""The virtual plant stepped: frames, encoder truth, visible truth, determinism."""

from __future__ import annotations

import hashlib
import math

import cv2
import numpy as np
import pytest

from calibration.geometry import LineGeometry
from core.classes import DEFAULT_CLASSES
from sim.plant.plant import IdlePlc, VirtualPlant
from sim.plant.scenario import load_scenario

GEOM = LineGeometry()


def run(scenario: str, seed: int, frames: int) -> VirtualPlant:
    plant = VirtualPlant(GEOM, load_scenario(scenario), IdlePlc(), seed=seed)
    for _ in range(frames):
        plant.step()
    return plant


def test_frame_and_encoder_tell_the_truth():
    plant = VirtualPlant(GEOM, load_scenario("default"), IdlePlc(), seed=3)
    last_travel = 0.0
    for i in range(20):
        frame = plant.step()
        assert frame.image.shape == (512, 1280, 3) and frame.image.dtype == np.uint8
        assert frame.frame_id == i
        assert frame.t_s == pytest.approx((i + 1) / 100.0)
        assert frame.tick == math.floor(plant.travel_mm / 0.1) % 2**32
        step_mm = plant.travel_mm - last_travel
        assert 0.9 * 25.0 < step_mm < 1.1 * 25.0  # 2.5 m/s +- fluctuation, 10 ms
        last_travel = plant.travel_mm


def test_same_seed_same_frames_other_seed_other_frames():
    def digest(seed: int) -> str:
        plant = VirtualPlant(GEOM, load_scenario("default"), IdlePlc(), seed=seed)
        h = hashlib.sha256()
        for _ in range(40):
            h.update(plant.step().image.tobytes())
        h.update(repr([(r.class_name, r.size_mm) for r in plant.fragments]).encode())
        return h.hexdigest()

    assert digest(5) == digest(5)
    assert digest(5) != digest(6)


def test_visible_truth_matches_the_pixels():
    plant = run("default", seed=2, frames=60)
    truth = plant.visible_truth()
    assert len(truth) >= 2
    for i in range(len(truth)):
        x0, y0, x1, y1 = truth.bbox_px[i]
        assert 0 <= x0 < x1 <= 1280 and 0 <= y0 < y1 <= 512
        poly = truth.polygons_px[i]
        assert poly.ndim == 2 and poly.shape[1] == 2
        assert truth.class_name[i] == DEFAULT_CLASSES[truth.class_id[i]]
        cx, _cy = truth.centroid_mm[i]
        assert 0 <= cx <= 1000


def test_fragment_pixels_stand_out_from_the_belt():
    """Inside each fully visible outline the colour differs from a ring around it."""
    plant = run("easy", seed=4, frames=80)
    frame = plant.step()
    truth = plant.visible_truth()
    img = frame.image.astype(np.float32)
    checked = 0
    for i in range(len(truth)):
        if truth.visible_frac[i] < 0.95 or truth.truncated[i] or truth.class_name[i] == "rubber":
            continue  # black rubber on a black belt is hard on purpose
        inside = np.zeros(img.shape[:2], np.uint8)
        cv2.fillPoly(inside, [truth.polygons_px[i].round().astype(np.int32)], 1)
        ring = cv2.dilate(inside, np.ones((15, 15), np.uint8)) - cv2.dilate(
            inside, np.ones((7, 7), np.uint8)
        )
        diff = np.abs(img[inside > 0].mean(axis=0) - img[ring > 0].mean(axis=0)).max()
        assert diff > 8, (truth.class_name[i], diff)
        checked += 1
    assert checked >= 2


def test_all_ten_classes_are_fed():
    plant = run("default", seed=1, frames=200)
    fed = {r.class_name for r in plant.fragments}
    assert fed == set(DEFAULT_CLASSES)
    sizes = np.array([r.size_mm for r in plant.fragments])
    assert sizes.min() >= 5 and sizes.max() <= 160


def test_idle_plc_ejects_nothing():
    plant = run("default", seed=1, frames=150)
    s = plant.score()
    assert s.crossed > 10
    assert s.ejected == 0 and s.recovery == 0.0 and s.purity is None
    assert s.missed == s.targeted > 0


def test_label_image_agrees_with_outlines_and_occlusion():
    plant = run("crowded", seed=3, frames=60)
    truth = plant.visible_truth()
    lab = truth.label_image()
    assert lab.shape == (512, 1280)
    assert set(np.unique(lab)) <= {-1, *truth.fragment_id.tolist()}
    for i in range(len(truth)):
        inside = np.zeros(lab.shape, np.uint8)
        cv2.fillPoly(inside, [truth.polygons_px[i].round().astype(np.int32)], 1)
        own = lab == truth.fragment_id[i]
        if truth.visible_frac[i] > 0.99 and own.sum() > 50:
            # its visible pixels lie inside its outline (up to the outline's pixel rounding)
            assert (inside[own] > 0).mean() > 0.9
    assert (truth.visible_frac < 0.99).any(), "crowded belt without any overlap"


@pytest.mark.parametrize(
    "camera",
    [
        {"width_px": 640, "height_px": 256, "fps": 50.0},
        {"width_px": 1024, "height_px": 512, "view_width_mm": 800.0, "view_length_mm": 400.0,
         "x_offset_mm": 100.0, "reference_row_px": 100.0},
    ],
)  # fmt: skip
def test_other_cameras(camera):
    from calibration.geometry import CameraGeometry

    geom = LineGeometry(camera=CameraGeometry(**camera))
    plant = VirtualPlant(geom, load_scenario("default"), IdlePlc(), seed=1)
    for _ in range(60):
        frame = plant.step()
    assert frame.image.shape == (geom.camera.height_px, geom.camera.width_px, 3)
    truth = plant.visible_truth()
    assert len(truth) >= 1
    col, row = geom.camera.mm_to_px(truth.centroid_mm[:, 0], truth.centroid_mm[:, 1])
    assert np.allclose(col, truth.centroid_px[:, 0], atol=1.0)
    assert np.allclose(row, truth.centroid_px[:, 1], atol=1.0)


def test_non_square_pixels_are_refused():
    from calibration.geometry import CameraGeometry

    geom = LineGeometry(camera=CameraGeometry(view_length_mm=300.0))
    with pytest.raises(ValueError, match="square pixels"):
        VirtualPlant(geom, load_scenario("default"), IdlePlc())
