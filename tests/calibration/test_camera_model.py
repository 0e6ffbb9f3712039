"""CameraModel: nominal scale, distortion round trips, serialisation, bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibration.camera_model import CameraModel, CameraModelError
from calibration.geometry import CameraGeometry

CAMERAS = [
    CameraGeometry(),
    CameraGeometry(
        width_px=640,
        height_px=480,
        view_width_mm=800,
        view_length_mm=600,
        x_offset_mm=100.0,
        reference_row_px=40.0,
    ),
]


def _distorted_model() -> CameraModel:
    k = np.array([[1290.0, 0.0, 645.0], [0.0, 1285.0, 250.0], [0.0, 0.0, 1.0]])
    dist = np.array([-0.12, 0.05, 0.0008, -0.0005, -0.01])
    h = np.array([[0.78, 0.01, -5.0], [-0.008, 0.79, -200.0], [1e-6, -2e-6, 1.0]])
    return CameraModel(1280, 512, k, dist, h)


@pytest.mark.parametrize("camera", CAMERAS)
def test_nominal_matches_camera_geometry(camera: CameraGeometry) -> None:
    model = CameraModel.nominal(camera)
    rng = np.random.default_rng(1)
    col = rng.uniform(-1, camera.width_px, 500)
    row = rng.uniform(-1, camera.height_px, 500)
    want = camera.px_to_mm(col, row)
    got = model.px_to_mm(col, row)
    np.testing.assert_allclose(got[0], want[0], rtol=0, atol=1e-9)
    np.testing.assert_allclose(got[1], want[1], rtol=0, atol=1e-9)
    back = model.mm_to_px(*got)
    np.testing.assert_allclose(back[0], col, atol=1e-9)
    np.testing.assert_allclose(back[1], row, atol=1e-9)
    sx, sy = model.centre_scale_mm_per_px()
    assert sx == pytest.approx(camera.mm_per_px_x, rel=1e-12)
    assert sy == pytest.approx(camera.mm_per_px_y, rel=1e-12)


def test_distortion_matches_opencv_and_round_trips() -> None:
    model = _distorted_model()
    rng = np.random.default_rng(2)
    col = rng.uniform(0, 1279, 2000)
    row = rng.uniform(0, 511, 2000)
    # our distortion equals cv2.projectPoints of the undistorted ray
    u, v = model.undistort_px(col, row)
    k = model.camera_matrix
    rays = np.stack([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], np.ones_like(u)], axis=1)
    proj, _ = cv2.projectPoints(rays, np.zeros(3), np.zeros(3), k, model.dist_coeffs)
    np.testing.assert_allclose(proj.reshape(-1, 2), np.stack([col, row], axis=1), atol=1e-6)
    # and undistortion equals OpenCV's iterative undistortion
    pts = np.stack([col, row], axis=1).reshape(-1, 1, 2)
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-12)
    ocv = cv2.undistortPoints(pts, k, model.dist_coeffs, None, None, k, crit).reshape(-1, 2)
    np.testing.assert_allclose(np.stack([u, v], axis=1), ocv, atol=1e-4)
    x, y = model.px_to_mm(col, row)
    c2, r2 = model.mm_to_px(x, y)
    np.testing.assert_allclose(c2, col, atol=1e-6)
    np.testing.assert_allclose(r2, row, atol=1e-6)


@pytest.mark.parametrize("shape", [(0,), (7,), (3, 4)])
def test_vectorised_shapes(shape: tuple[int, ...]) -> None:
    model = _distorted_model()
    col = np.full(shape, 100.0)
    row = np.full(shape, 200.0)
    x, y = model.px_to_mm(col, row)
    assert x.shape == shape and y.shape == shape and x.dtype == np.float64


def test_dict_round_trip_and_undistort_image() -> None:
    model = _distorted_model()
    again = CameraModel.from_dict(model.to_dict())
    np.testing.assert_array_equal(again.homography, model.homography)
    np.testing.assert_array_equal(again.dist_coeffs, model.dist_coeffs)
    img = np.zeros((512, 1280), np.uint8)
    img[200:300, 600:700] = 255
    out = model.undistort_image(img)
    assert out.shape == img.shape and out.dtype == np.uint8
    mx, _my = model.undistort_maps()
    assert mx.shape == (512, 1280) and mx.dtype == np.float32
    with pytest.raises(CameraModelError, match="image is"):
        model.undistort_image(np.zeros((10, 10), np.uint8))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"camera_matrix": np.eye(2)}, "shape"),
        ({"camera_matrix": np.diag([0.0, 1.0, 1.0])}, "fx, fy"),
        ({"dist_coeffs": np.zeros(3)}, "4 or 5"),
        ({"homography": np.zeros((3, 3))}, "singular"),
        ({"homography": np.full((3, 3), np.nan)}, "NaN"),
        ({"width_px": 0}, "image size"),
    ],
)
def test_bad_parameters(kwargs: dict, match: str) -> None:
    base = {
        "width_px": 1280,
        "height_px": 512,
        "camera_matrix": np.eye(3),
        "dist_coeffs": np.zeros(5),
        "homography": np.eye(3),
    }
    base.update(kwargs)
    with pytest.raises(CameraModelError, match=match):
        CameraModel(**base)


@settings(max_examples=40, deadline=None)
@given(
    k1=st.floats(-0.3, 0.1),
    k2=st.floats(-0.05, 0.1),
    p1=st.floats(-2e-3, 2e-3),
    p2=st.floats(-2e-3, 2e-3),
    tilt=st.floats(-2e-5, 2e-5),
)
def test_round_trip_for_any_sane_lens(
    k1: float, k2: float, p1: float, p2: float, tilt: float
) -> None:
    k = np.array([[1280.0, 0.0, 640.0], [0.0, 1280.0, 256.0], [0.0, 0.0, 1.0]])
    h = np.array([[0.78, 0.0, 0.0], [0.0, 0.78, -200.0], [tilt, -tilt, 1.0]])
    model = CameraModel(1280, 512, k, np.array([k1, k2, p1, p2, 0.0]), h)
    col, row = np.meshgrid(np.linspace(0, 1279, 17), np.linspace(0, 511, 7))
    x, y = model.px_to_mm(col, row)
    c2, r2 = model.mm_to_px(x, y)
    assert np.max(np.abs(c2 - col)) < 1e-6 and np.max(np.abs(r2 - row)) < 1e-6


@pytest.mark.parametrize("shape", [(), (0,), (9,), (40, 30)])
def test_lookup_table_matches_iteration(shape: tuple[int, ...]) -> None:
    model = _distorted_model()
    rng = np.random.default_rng(3)
    col = rng.uniform(-20, 1300, shape)  # some outside the image: iterated there
    row = rng.uniform(-20, 530, shape)
    want = model.px_to_mm(col, row)
    model.prepare_lookup()
    got = model.px_to_mm(col, row)
    assert got[0].shape == shape and got[1].shape == shape
    np.testing.assert_allclose(got[0], want[0], atol=1e-4)
    np.testing.assert_allclose(got[1], want[1], atol=1e-4)
    edge = model.px_to_mm(np.array([0.0, 1279.0]), np.array([0.0, 511.0]))  # table corners
    exact = CameraModel.from_dict(model.to_dict()).px_to_mm([0.0, 1279.0], [0.0, 511.0])
    np.testing.assert_allclose(np.stack(edge), np.stack(exact), atol=1e-9)


def test_lookup_is_a_no_op_without_distortion() -> None:
    model = CameraModel.nominal(CameraGeometry())
    model.prepare_lookup()
    assert "_lookup" not in model.__dict__
