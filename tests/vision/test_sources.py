"""Frame sources: a generated video file, the GenICam simulated producer, bad inputs."""

from __future__ import annotations

import importlib.util
import itertools
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import synth

from core.errors import InputFileError
from core.frame import FrameError
from vision.sources import (
    CorruptSourceError,
    EncoderTicks,
    GenICamSource,
    OpenCvSource,
    SourceError,
    SourceOpenError,
    SourceStalledError,
    SpeedTicks,
    _Reader,
    open_source,
)

W, H, FPS = 1280, 512, 100.0


def _write_video(path: Path, n: int, fourcc: str = "mp4v", size: tuple[int, int] = (W, H)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, size)
    assert writer.isOpened()
    for i in range(n):
        img = synth.render(synth.scatter(5, i), i)
        writer.write(cv2.resize(img, size) if size != (W, H) else img)
    writer.release()


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "belt.mp4"
    _write_video(path, 12)
    return path


def test_video_file_every_frame_with_estimated_ticks(video: Path) -> None:
    ticks = SpeedTicks(speed_mm_s=2500.0, mm_per_tick=0.1, start_tick=(1 << 32) - 100)
    with OpenCvSource(video, ticks, size=(W, H)) as src:
        frames = list(src)
    assert [f.frame_id for f in frames] == list(range(12))
    assert all(f.tick_estimated for f in frames)
    assert [f.t_s for f in frames] == pytest.approx([i / FPS for i in range(12)])
    # 25,000 ticks/s at 100 fps: 250 ticks per frame, wrapping past 2**32
    assert [f.tick for f in frames] == [((1 << 32) - 100 + 250 * i) % (1 << 32) for i in range(12)]
    assert frames[0].image.shape == (H, W, 3) and not frames[0].image.flags.writeable


def test_encoder_ticks_read_per_frame(video: Path) -> None:
    counter = itertools.count(1000, 7)
    with OpenCvSource(video, EncoderTicks(lambda: next(counter))) as src:
        frames = list(itertools.islice(src, 4))
    assert [f.tick for f in frames] == [1000, 1007, 1014, 1021]
    assert not any(f.tick_estimated for f in frames)


def test_wrong_frame_size_is_reported(video: Path) -> None:
    src = OpenCvSource(video, SpeedTicks(2500, 0.1), size=(640, 512))
    with src, pytest.raises(FrameError, match="1280x512 px, expected 640x512"):
        next(iter(src))


@pytest.mark.parametrize(
    ("content", "error", "words"),
    [
        (None, SourceOpenError, "video file not found"),
        (b"this is not a video\n" * 100, SourceOpenError, "cannot open|no frame"),
        (b"", SourceOpenError, "cannot open|no frame"),
    ],
)
def test_missing_or_not_a_video(
    tmp_path: Path, content: bytes | None, error: type[Exception], words: str
) -> None:
    path = tmp_path / "x.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(error, match=words) as err:
        src = OpenCvSource(path, SpeedTicks(2500, 0.1))
        list(src)
    assert isinstance(err.value, InputFileError) and "\n" not in str(err.value)


@pytest.mark.parametrize("fourcc", ["MJPG", "mp4v"])
def test_truncated_video_detected(tmp_path: Path, fourcc: str) -> None:
    path = tmp_path / ("cut.avi" if fourcc == "MJPG" else "cut.mp4")
    _write_video(path, 30, fourcc)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError) as err:
        src = OpenCvSource(path, SpeedTicks(2500, 0.1))
        got = list(src)
        assert len(got) < 30
    assert isinstance(err.value, CorruptSourceError | SourceOpenError)


def test_live_reader_reports_a_stall() -> None:
    state = {"n": 0}

    def grab() -> tuple[np.ndarray, float] | None:
        state["n"] += 1
        if state["n"] > 2:
            time.sleep(5.0)  # the camera stops delivering
        return np.zeros((4, 4, 3), np.uint8), time.monotonic()

    reader = _Reader(grab)
    reader.start()
    assert reader.next(2.0) is not None and reader.next(2.0) is not None
    with pytest.raises(SourceStalledError, match=r"no frame for 0\.20 s"):
        reader.next(0.2)
    reader.stop_event.set()


HAVE_GENICAM = importlib.util.find_spec("harvesters") is not None and (
    importlib.util.find_spec("genicam") is not None
)


def _cti() -> Path:
    import genicam

    return Path(genicam.__file__).parent / "viky.cti"


@pytest.mark.skipif(not HAVE_GENICAM, reason="extra 'genicam' not installed")
@pytest.mark.parametrize(
    ("pixel_format", "shape"), [("Mono8", (256, 640)), ("RGBa8", (256, 640, 3))]
)
def test_genicam_simulated_camera(pixel_format: str, shape: tuple[int, ...]) -> None:
    ticks = SpeedTicks(2500, 0.1)
    settings = {"Width": 640, "Height": 256}
    with GenICamSource(
        _cti(),
        ticks,
        size=(640, 256),
        pixel_format=pixel_format,
        settings=settings,
        stall_timeout_s=3.0,
    ) as src:
        frames = list(itertools.islice(src, 3))
    assert [f.frame_id for f in frames] == [0, 1, 2]
    assert all(f.image.shape == shape and f.tick_estimated for f in frames)
    assert frames[2].t_s > frames[0].t_s and frames[2].tick > frames[0].tick


@pytest.mark.skipif(not HAVE_GENICAM, reason="extra 'genicam' not installed")
def test_genicam_wrong_size_and_stall() -> None:
    ticks = SpeedTicks(2500, 0.1)
    src = GenICamSource(_cti(), ticks, size=(1280, 512), stall_timeout_s=3.0)
    with src, pytest.raises(FrameError, match="400x400 px, expected 1280x512"):
        next(iter(src))
    # 1 frame/s against a 0.3 s timeout: the camera stalls before its first frame
    with (
        GenICamSource(
            _cti(), ticks, settings={"AcquisitionFrameRate": 1.0}, stall_timeout_s=0.3
        ) as src,
        pytest.raises(SourceStalledError, match=r"no frame for 0\.30 s"),
    ):
        next(iter(src))


@pytest.mark.skipif(not HAVE_GENICAM, reason="extra 'genicam' not installed")
@pytest.mark.parametrize(
    ("uri", "words"),
    [("genicam:/nonexistent/x.cti", "not found"), ("genicam:{cti}#7", "device 7 not found")],
)
def test_genicam_open_errors(uri: str, words: str) -> None:
    with pytest.raises(SourceOpenError, match=words):
        open_source(uri.format(cti=_cti()), SpeedTicks(2500, 0.1))
