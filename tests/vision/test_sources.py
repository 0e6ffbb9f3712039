"""Cameras from ``vision.sources``: videos played as cameras, OpenCV live
streams, ``open_camera``'s source strings and their one-line errors."""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.errors import InputFileError
from vision.camera import (
    FrameError,
    RawFrame,
    SourceError,
    SourceOpenError,
    SourceStalledError,
)
from vision.sources import (
    OpenCvCamera,
    VideoCamera,
    VideoEndedError,
    _CaptureThread,
    open_camera,
)

W, H, FPS = 160, 120, 50.0
PERIOD_S = 1.0 / FPS


def write_video(
    path: Path, n: int, fps: float = FPS, fourcc: str = "mp4v", size: tuple[int, int] = (W, H)
) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert writer.isOpened()
    for i in range(n):
        img = np.full((size[1], size[0], 3), (i * 9) % 256, np.uint8)
        cv2.putText(img, str(i), (8, size[1] // 2), cv2.FONT_HERSHEY_SIMPLEX, 1, (0, 0, 255), 2)
        writer.write(img)
    writer.release()
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """25 frames at 50 fps, 160x120."""
    return write_video(tmp_path_factory.mktemp("video") / "belt.mp4", 25)


def read_all(
    cam: VideoCamera | OpenCvCamera, pause_s: float = 0.0
) -> tuple[list[RawFrame], Exception]:
    """Frames until the camera raises; the frames and what it raised."""
    frames: list[RawFrame] = []
    while True:
        try:
            frames.append(cam.read(1.0))
        except SourceError as exc:
            return frames, exc
        time.sleep(pause_s)


@pytest.fixture
def opened() -> Iterator[list[VideoCamera | OpenCvCamera]]:
    """Cameras a test opened; closed at its end."""
    cams: list[VideoCamera | OpenCvCamera] = []
    yield cams
    for cam in cams:
        cam.close()


def test_video_plays_at_its_recorded_rate(video: Path, opened: list) -> None:
    cam = open_camera(str(video), size=(W, H), fps=100.0)  # the file's 50 fps wins
    assert isinstance(cam, VideoCamera) and cam.name == f"video:{video}"
    opened.append(cam)
    cam.open()
    t0 = time.monotonic()
    frames, end = read_all(cam)
    took_s = time.monotonic() - t0
    assert cam.fps == FPS and took_s >= 24 * PERIOD_S - 0.005
    assert [f.counter for f in frames] == list(range(25))
    assert np.diff([f.t_s for f in frames]) == pytest.approx(np.full(24, PERIOD_S))
    assert frames[0].image.shape == (H, W, 3) and frames[0].exposure_tick is None
    assert isinstance(end, VideoEndedError) and isinstance(end, SourceStalledError)
    assert str(end) == f"video:{video}: video ended after 25 frames"


def test_slow_reader_sees_gaps_not_a_backlog(video: Path, opened: list) -> None:
    cam = VideoCamera(video, size=(W, H))
    opened.append(cam)
    cam.open()
    ages_s: list[float] = []
    frames: list[RawFrame] = []
    with pytest.raises(VideoEndedError):
        while True:
            frames.append(cam.read(1.0))
            ages_s.append(time.monotonic() - frames[-1].t_s)
            time.sleep(2.5 * PERIOD_S)  # vision takes 2.5 frame periods
    counters = [f.counter for f in frames]
    assert counters == sorted(set(counters)) and len(counters) < 15
    assert max(np.diff(counters)) >= 2 and counters[-1] >= 22
    assert statistics.median(ages_s) < PERIOD_S  # the newest due frame, not an old one


def test_unpaced_video_gives_every_frame_at_once(video: Path, opened: list) -> None:
    cam = open_camera(str(video), size=(W, H), fps=100.0, stepped=True)
    opened.append(cam)
    cam.open()
    t0 = time.monotonic()
    frames, end = read_all(cam)
    assert time.monotonic() - t0 < 12 * PERIOD_S
    assert [f.counter for f in frames] == list(range(25)) and isinstance(end, VideoEndedError)
    assert np.diff([f.t_s for f in frames]) == pytest.approx(np.full(24, PERIOD_S))


def test_open_again_plays_from_the_start(video: Path, opened: list) -> None:
    cam = VideoCamera(video, size=None, paced=False)
    opened.append(cam)
    cam.open()
    assert [cam.read(1.0).counter for _ in range(3)] == [0, 1, 2]
    cam.close()
    cam.close()
    with pytest.raises(SourceError, match="not open"):
        cam.read(1.0)
    cam.open()
    assert cam.read(1.0).counter == 0


def test_read_timeout_shorter_than_a_frame_period_stalls(tmp_path: Path, opened: list) -> None:
    cam = VideoCamera(write_video(tmp_path / "slow.mp4", 3, fps=5.0), size=(W, H))
    opened.append(cam)
    cam.open()
    assert cam.read(1.0).counter == 0
    with pytest.raises(SourceStalledError, match=r"^video:.*slow\.mp4: no frame for 0\.05 s$"):
        cam.read(0.05)
    assert cam.read(1.0).counter == 1  # the frame comes when due


def test_wrong_frame_size_names_camera_and_both_sizes(video: Path, opened: list) -> None:
    cam = VideoCamera(video, size=(640, 480), paced=False)
    opened.append(cam)
    cam.open()
    with pytest.raises(FrameError) as err:
        cam.read(1.0)
    assert str(err.value) == (
        f"video:{video}: frame 0: 160x120 px, the camera is configured for 640x480"
    )
    with pytest.raises(FrameError, match="frame 1: "):  # the next frame is read, not stuck
        cam.read(1.0)


@pytest.mark.parametrize(
    ("fourcc", "keep", "error", "words"),
    [
        # an AVI cut short still opens: decoding stops before the stated count
        ("MJPG", 0.9, SourceError, r"decoding stopped after 2\d of 30 frames"),
        ("MJPG", 0.5, SourceError, r"decoding stopped after 1\d of 30 frames"),
        # an MP4 cut short loses its index: it does not open at all
        ("mp4v", 0.9, SourceOpenError, "cannot open as a video"),
    ],
)
def test_truncated_video(
    tmp_path: Path, opened: list, fourcc: str, keep: float, error: type[Exception], words: str
) -> None:
    path = write_video(tmp_path / ("cut.avi" if fourcc == "MJPG" else "cut.mp4"), 30, 500.0, fourcc)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    cam = VideoCamera(path, size=None, paced=False)
    opened.append(cam)
    with pytest.raises(error, match=words) as err:
        cam.open()
        raise read_all(cam)[1]
    assert not isinstance(err.value, SourceStalledError) and str(err.value).startswith("video:")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("{tmp}/missing.mp4", r"^video:\S+missing\.mp4: video file not found$"),
        ("{tmp}/junk.mp4", r"^video:\S+junk\.mp4: cannot open as a video$"),
        ("{tmp}/empty.mp4", r"^video:\S+empty\.mp4: cannot open as a video$"),
        ("plant", r"^video:plant: video file not found \(a camera source is .*shm:NAME\)$"),
        ("v4l2:99", r"^v4l2:99: no such device /dev/video99$"),
        ("/dev/video99", r"^v4l2:/dev/video99: no such device /dev/video99$"),
        ("v4l2:first", r"^v4l2:first: 'first' is not a device index; expected .*v4l2:N"),
        ("usb3:cam0", r"^usb3:cam0: unknown camera source; expected a video file, v4l2:N, "),
        ("http://127.0.0.1:1/x", r"^http://127.0.0.1:1/x: unknown camera source; expected "),
        ("genicam:viky.cti#red", r"^genicam:viky.cti#red: 'red' is not a device index"),
        ("rtsp://127.0.0.1:{port}/cam", r"^rtsp://127.0.0.1:\d+/cam: cannot open"),
    ],
)
def test_sources_that_cannot_open_say_so_in_one_line(
    tmp_path: Path, source: str, words: str
) -> None:
    (tmp_path / "junk.mp4").write_bytes(b"this is not a video\n" * 100)
    (tmp_path / "empty.mp4").write_bytes(b"")
    source = source.format(tmp=tmp_path, port=_closed_port())
    t0 = time.monotonic()
    with pytest.raises(SourceOpenError, match=words) as err:
        open_camera(source, size=(W, H), fps=FPS).open()
    assert time.monotonic() - t0 < 10.0
    assert isinstance(err.value, InputFileError) and "\n" not in str(err.value)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback TCP port that accepts connections and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    conns: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conns.append(srv.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield int(srv.getsockname()[1])
    srv.close()
    for c in conns:
        c.close()


def test_rtsp_open_is_bounded_in_time(silent_server: int) -> None:
    url = f"rtsp://operator:s3cret@127.0.0.1:{silent_server}/cam"
    cam = OpenCvCamera(url, size=(W, H), open_timeout_s=1.0)
    assert cam.name == f"rtsp://operator@127.0.0.1:{silent_server}/cam"  # no password in alarms
    t0 = time.monotonic()
    with pytest.raises(SourceOpenError, match=r"^rtsp://operator@127\.0\.0\.1:\d+/cam: "):
        cam.open()
    assert time.monotonic() - t0 < 4.0


def test_live_stream_gives_the_newest_frame_and_reports_its_loss(
    tmp_path: Path, opened: list
) -> None:
    """A file read through FFmpeg as a live stream: the reader thread outruns
    a slow consumer, which sees gaps; the end of the stream is a lost stream."""
    path = write_video(tmp_path / "stream.avi", 200, fourcc="MJPG")
    cam = OpenCvCamera(str(path), size=(W, H), latency_s=0.005)
    opened.append(cam)
    cam.open()
    frames, end = read_all(cam, pause_s=0.01)
    counters = [f.counter for f in frames]
    assert counters == sorted(set(counters)) and len(counters) < 200
    assert counters[-1] == 199  # the newest frame is never lost
    assert np.all(np.diff([f.t_s for f in frames]) > 0)
    assert type(end) is SourceError and str(end) == f"{path}: stream lost after 200 frames"
    cam.close()
    cam.open()  # reconnect
    assert cam.read(1.0).counter >= 0


def test_live_stream_without_frames_stalls() -> None:
    reader = _CaptureThread("v4l2:0", 0, (cv2.CAP_V4L2, [], []))  # never started
    t0 = time.monotonic()
    with pytest.raises(SourceStalledError, match=r"^v4l2:0: no frame for 0\.20 s$"):
        reader.newest_after(-1, 0.2)
    assert time.monotonic() - t0 >= 0.19
