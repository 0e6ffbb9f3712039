"""``GenICamCamera`` on the GenTL producer the ``genicam`` wheel ships
(``viky.cti``: 3 simulated devices, 400x400, RGBa8 or Mono8, ~20 fps), and its
pixel conversions."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core.errors import InputFileError
from sortline.config import GenICamSettings
from vision.camera import FrameError, SourceOpenError, SourceStalledError
from vision.sources import open_camera
from vision.sources_genicam import GenICamCamera, genicam_to_bgr

HAVE_GENICAM = all(importlib.util.find_spec(m) is not None for m in ("harvesters", "genicam"))
needs_genicam = pytest.mark.skipif(not HAVE_GENICAM, reason="extra 'genicam' not installed")
SIZE = (400, 400)


@pytest.fixture(scope="module")
def cti() -> Path:
    if not HAVE_GENICAM:
        pytest.skip("extra 'genicam' not installed")
    import genicam

    return Path(genicam.__file__).parent / "viky.cti"


@pytest.fixture
def opened() -> Iterator[list[GenICamCamera]]:
    cams: list[GenICamCamera] = []
    yield cams
    for cam in cams:
        cam.close()


@needs_genicam
@pytest.mark.parametrize(
    ("source", "settings", "name", "shape"),
    [
        ("genicam:{cti}", GenICamSettings(), "genicam:viky.cti#0", (400, 400, 3)),  # RGBa8
        ("genicam:{cti}#1", GenICamSettings(pixel_format="Mono8"), "genicam:viky.cti#1", SIZE),
        (
            "genicam:{cti}#0",  # the serial wins over the index
            GenICamSettings(serial="2", pixel_format="RGBa8"),
            "genicam:viky.cti#serial=2",
            (400, 400, 3),
        ),
    ],
)
def test_frames_arrive_with_increasing_counters(
    cti: Path,
    opened: list,
    source: str,
    settings: GenICamSettings,
    name: str,
    shape: tuple[int, ...],
) -> None:
    cam = open_camera(source.format(cti=cti), size=SIZE, fps=20.0, genicam=settings)
    assert isinstance(cam, GenICamCamera) and cam.name == name
    opened.append(cam)
    cam.open()
    frames = [cam.read(2.0) for _ in range(4)]
    counters = [f.counter for f in frames]
    assert counters == sorted(set(counters))
    assert all(f.image.shape == shape and f.image.dtype == np.uint8 for f in frames)
    assert frames[-1].t_s > frames[0].t_s


@needs_genicam
def test_close_and_open_again(cti: Path, opened: list) -> None:
    cam = GenICamCamera(cti, device=1, size=SIZE, settings=GenICamSettings(pixel_format="Mono8"))
    opened.append(cam)
    for _ in range(2):
        cam.open()
        first = cam.read(2.0)
        assert cam.read(2.0).counter > first.counter
        cam.close()
        cam.close()
    cam.open()  # open on an open camera reconnects too
    cam.open()
    assert cam.read(2.0).image.shape == SIZE


@needs_genicam
def test_latency_is_subtracted_and_a_short_timeout_stalls(cti: Path, opened: list) -> None:
    cam = GenICamCamera(cti, size=SIZE, latency_s=0.25)
    opened.append(cam)
    cam.open()
    frame = cam.read(2.0)
    assert 0.24 < time.monotonic() - frame.t_s < 0.5
    # ~20 fps: a 1 ms timeout right after a frame finds no new one (almost always)
    stalls = 0
    for _ in range(5):
        try:
            cam.read(0.001)
        except SourceStalledError as exc:
            assert str(exc) == "genicam:viky.cti#0: no frame for 0.00 s"
            stalls += 1
    assert stalls >= 1


@needs_genicam
def test_wrong_size_names_camera_and_both_sizes(cti: Path, opened: list) -> None:
    cam = GenICamCamera(cti, size=(1280, 512))
    opened.append(cam)
    cam.open()
    with pytest.raises(
        FrameError,
        match=r"^genicam:viky\.cti#0: frame \d+: 400x400 px, "
        r"the camera is configured for 1280x512$",
    ):
        cam.read(2.0)


@needs_genicam
@pytest.mark.parametrize(
    ("source", "settings", "words"),
    [
        (
            "genicam:{cti}",
            GenICamSettings(pixel_format="BayerRG8"),
            "cannot set PixelFormat = 'BayerRG8': the camera offers RGBa8, Mono8",
        ),
        # the simulated camera has no exposure or trigger features
        (
            "genicam:{cti}",
            GenICamSettings(exposure_us=500.0),
            "cannot set ExposureTime = 500.0: the camera has no such feature",
        ),
        (
            "genicam:{cti}",
            GenICamSettings(trigger_mode="On", trigger_source="Line1"),
            "cannot set TriggerSource = 'Line1': the camera has no such feature",
        ),
        (
            "genicam:{cti}",
            GenICamSettings(serial="SN404"),
            r"no device with serial 'SN404' \(found: 0, 1, 2\)",
        ),
        ("genicam:{cti}#7", GenICamSettings(), r"device 7 not found \(3 devices\)"),
        ("genicam:/nonexistent/x.cti", None, "GenTL producer /nonexistent/x.cti not found"),
    ],
)
def test_refused_settings_and_devices(
    cti: Path, source: str, settings: GenICamSettings | None, words: str
) -> None:
    cam = open_camera(source.format(cti=cti), size=SIZE, fps=20.0, genicam=settings)
    with pytest.raises(SourceOpenError, match=f"^{cam.name}: {words}$") as err:
        cam.open()
    assert isinstance(err.value, InputFileError) and "\n" not in str(err.value)
    cam.close()


def _mosaic(pattern: str) -> np.ndarray:
    """An 8x8 Bayer mosaic of a pure red scene: 200 where the pattern has R."""
    red_at = {"RG": (0, 0), "GR": (0, 1), "GB": (1, 0), "BG": (1, 1)}[pattern]
    m = np.zeros((8, 8), np.uint8)
    m[red_at[0] :: 2, red_at[1] :: 2] = 200
    return m


@pytest.mark.parametrize(
    ("pixel_format", "data", "expected_bgr"),
    [
        ("Mono8", np.full(12, 7, np.uint8), 7),
        ("RGB8", np.tile(np.array([200, 10, 20], np.uint8), 12), (20, 10, 200)),
        ("BGR8", np.tile(np.array([200, 10, 20], np.uint8), 12), (200, 10, 20)),
        ("RGBa8", np.tile(np.array([200, 10, 20, 255], np.uint8), 12), (20, 10, 200)),
        ("BGRa8", np.tile(np.array([200, 10, 20, 255], np.uint8), 12), (200, 10, 20)),
    ],
)
def test_pixel_formats_to_bgr(pixel_format: str, data: np.ndarray, expected_bgr: object) -> None:
    img = genicam_to_bgr(data, 4, 3, pixel_format)
    assert img.shape == ((3, 4) if pixel_format == "Mono8" else (3, 4, 3))
    assert np.all(img == np.array(expected_bgr, np.uint8))
    assert not np.shares_memory(img, data)  # the driver's buffer is requeued after this


@pytest.mark.parametrize("pattern", ["RG", "GR", "GB", "BG"])
def test_bayer_patterns_demosaic_to_the_right_colour(pattern: str) -> None:
    img = genicam_to_bgr(_mosaic(pattern).reshape(-1), 8, 8, f"Bayer{pattern}8")
    b, g, r = (int(v) for v in img[3:5, 3:5].reshape(-1, 3).mean(0))
    assert r > 150 and g < 50 and b < 50, (b, g, r)


def test_buffer_of_the_wrong_length_is_a_frame_error() -> None:
    with pytest.raises(FrameError, match="buffer of 30 bytes for 4x3 RGB8"):
        genicam_to_bgr(np.zeros(30, np.uint8), 4, 3, "RGB8")


@needs_genicam
def test_a_slow_reader_gets_the_newest_frame(cti: Path, opened: list) -> None:
    cam = GenICamCamera(cti, device=2, size=SIZE)
    opened.append(cam)
    cam.open()
    before = cam.read(2.0)
    time.sleep(0.4)  # ~8 frames at 20 fps
    after = cam.read(2.0)
    assert after.counter - before.counter >= 5  # a gap, not the buffered backlog
