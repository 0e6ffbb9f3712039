"""The cameras behind ``vision.camera.Camera``, chosen by ``[camera] source``.

``open_camera(source, ...)`` maps a source string to an unopened camera:

| source                              | camera                                        |
|-------------------------------------|-----------------------------------------------|
| a video file path                   | ``VideoCamera`` (plays at its recorded rate)  |
| ``v4l2:N``, ``/dev/videoN``         | ``OpenCvCamera`` (OpenCV V4L2 backend)        |
| ``rtsp://...``, ``rtsps://...``     | ``OpenCvCamera`` (OpenCV FFmpeg backend)      |
| ``genicam:PRODUCER.cti[#DEVICE]``   | ``vision.sources_genicam.GenICamCamera``      |
| ``shm:NAME``                        | ``vision.sources_shm.ShmRingCamera``          |

Errors are those of ``vision.camera``; every message starts with the camera's
``name`` (``video:/path/belt.mp4``, ``v4l2:0``, ``rtsp://host/x``, ...).
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from vision.camera import (
    Camera,
    RawFrame,
    SourceError,
    SourceOpenError,
    SourceStalledError,
    check_image,
)

if TYPE_CHECKING:
    from vision.sources_genicam import GenICamFeatures

__all__ = [
    "SOURCE_FORMS",
    "OpenCvCamera",
    "VideoCamera",
    "VideoEndedError",
    "open_camera",
]

SOURCE_FORMS = (
    "a video file, v4l2:N, /dev/videoN, rtsp://..., genicam:PRODUCER.cti[#DEVICE] or shm:NAME"
)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


class VideoEndedError(SourceStalledError):
    """A video file has no more frames (a camera that stopped delivering)."""


def open_camera(
    source: str,
    *,
    size: tuple[int, int] | None,
    fps: float,
    latency_s: float = 0.0,
    genicam: GenICamFeatures | None = None,
    stepped: bool = False,
) -> Camera:
    """The camera ``source`` names, not yet opened (the caller opens it, and
    opens it again to reconnect after a failure).

    size:      (width, height) px every frame must have, or None.
    fps:       the line's frame rate: plays a video that states none, and is
               requested from a V4L2 camera.
    latency_s: exposure to arrival (s), subtracted from the arrival time of
               cameras without timestamps of their own (V4L2, RTSP, GenICam).
    genicam:   features written to a GenICam camera (``[camera.genicam]``).
    stepped:   every frame in order, as fast as read (a video is not paced on
               the clock; a shared-memory ring waits for its writer).
    Raises ``SourceOpenError`` (one line, listing the accepted forms) for a
    source of none of these forms.
    """
    if source.startswith("shm:"):
        from vision.sources_shm import ShmRingCamera

        return ShmRingCamera(source.removeprefix("shm:"), size=size, stepped=stepped)
    if source.startswith("genicam:"):
        from vision.sources_genicam import GenICamCamera

        cti, _, device = source.removeprefix("genicam:").partition("#")
        return GenICamCamera(
            cti,
            device=_index(source, device or "0"),
            size=size,
            settings=genicam,
            latency_s=latency_s,
        )
    if source.startswith("v4l2:"):
        index = _index(source, source.removeprefix("v4l2:"))
        return OpenCvCamera(index, size=size, latency_s=latency_s, fps=fps)
    if source.startswith("/dev/"):
        return OpenCvCamera(source, size=size, latency_s=latency_s, fps=fps)
    if source.lower().startswith(("rtsp://", "rtsps://")):
        return OpenCvCamera(source, size=size, latency_s=latency_s)
    if _SCHEME.match(source):
        raise SourceOpenError(source, f"unknown camera source; expected {SOURCE_FORMS}")
    return VideoCamera(Path(source), size=size, fps=fps, paced=not stepped)


def _index(source: str, text: str) -> int:
    if not text.isdigit():
        raise SourceOpenError(source, f"{text!r} is not a device index; expected {SOURCE_FORMS}")
    return int(text)


class VideoCamera:
    """A recorded video played as a camera would deliver it.

    Paced (the default): frame ``i`` is due at ``t_open + i / fps`` on
    ``time.monotonic`` (``fps`` = the file's rate, else the ``fps`` given) and
    is delivered no earlier; ``t_s`` = its due time; ``counter`` = its index.
    ``read`` returns the newest frame already due: frames a slow reader let
    pass are skipped (gaps in ``counter``), as a camera's driver overwrites
    its buffers. Unpaced (``paced=False``, for ``sortline replay``): every
    frame in order, as fast as read, ``t_s`` still ``t_open + i / fps``.

    The end of the file raises ``VideoEndedError`` (a ``SourceStalledError``);
    decoding that stops before the frame count the file states raises
    ``SourceError``. ``open`` again plays the video from its start.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        size: tuple[int, int] | None,
        fps: float | None = None,
        paced: bool = True,
    ) -> None:
        self.path = Path(path)
        self.size = size
        self.paced = paced
        self._fps_fallback = fps
        self._cap: cv2.VideoCapture | None = None
        self._fps = 0.0
        self._frame_count = 0  # as the file states it; 0 = unknown
        self._t0 = 0.0
        self._next = 0  # index of the next frame the decoder returns
        self._pending: tuple[int, np.ndarray] | None = None
        self._ended: SourceError | None = None

    @property
    def name(self) -> str:
        return f"video:{self.path}"

    @property
    def fps(self) -> float:
        """Frames per second played (known once open)."""
        return self._fps

    def open(self) -> None:
        self.close()
        if not self.path.is_file():
            hint = "" if self.path.suffix else f" (a camera source is {SOURCE_FORMS})"
            raise SourceOpenError(self.name, "video file not found" + hint)
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise SourceOpenError(self.name, "cannot open as a video")
        rate = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        fps = rate if 0.0 < rate < 1e5 else float(self._fps_fallback or 0.0)
        ok, img = cap.read()
        if fps <= 0.0 or not ok:
            cap.release()
            why = "no frame could be decoded" if not ok else "the video states no frame rate"
            raise SourceOpenError(self.name, why)
        self._cap, self._fps = cap, fps
        self._frame_count = max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0)
        self._pending, self._next, self._ended = (0, img), 1, None
        self._t0 = time.monotonic()

    def read(self, timeout_s: float) -> RawFrame:
        if self._cap is None:
            raise SourceError(f"{self.name}: not open")
        if self.paced:
            self._wait_for_frame(timeout_s)
        elif self._pending is None:
            self._decode(self._next)
        assert self._pending is not None
        index, img = self._pending
        self._pending = None
        img = check_image(self.name, img, index, self.size)
        return RawFrame(img, index, self._due_s(index))

    def _due_s(self, index: int) -> float:
        return self._t0 + index / self._fps

    def _wait_for_frame(self, timeout_s: float) -> None:
        """Decode the newest frame already due (or the next one), then wait
        until it is due: at most ``timeout_s``."""
        newest_due = int((time.monotonic() - self._t0) * self._fps)
        if self._pending is None or self._pending[0] < newest_due:
            self._decode(max(newest_due, self._next))
        assert self._pending is not None
        wait_s = self._due_s(self._pending[0]) - time.monotonic()
        if wait_s > timeout_s:
            time.sleep(max(timeout_s, 0.0))
            raise SourceStalledError(f"{self.name}: no frame for {timeout_s:.2f} s")
        if wait_s > 0.0:
            time.sleep(wait_s)

    def _decode(self, index: int) -> None:
        """Make frame ``index`` (>= the decoder's position) the pending one,
        skipping the frames before it."""
        assert self._cap is not None
        self._pending = None
        if self._ended is not None:
            raise self._ended
        while self._next < index:
            if not self._cap.grab():
                raise self._end()
            self._next += 1
        ok, img = self._cap.read()
        if not ok:
            raise self._end()
        self._pending = (index, img)
        self._next = index + 1

    def _end(self) -> SourceError:
        n, stated = self._next, self._frame_count
        if stated and n < stated - 1:  # containers may count one frame more
            self._ended = SourceError(f"{self.name}: decoding stopped after {n} of {stated} frames")
        else:
            self._ended = VideoEndedError(f"{self.name}: video ended after {n} frames")
        return self._ended

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self._pending = None


class OpenCvCamera:
    """A live camera through OpenCV: a V4L2 device (index, or a path such as
    ``/dev/videoN`` or ``/dev/v4l/by-id/...``) or a stream URL (FFmpeg backend).

    A reader thread owns the capture: it opens it, reads frames as they come
    and keeps only the newest; ``read`` returns the newest frame not yet read.
    ``counter`` counts the frames the thread received (0, 1, ...), so frames
    overwritten before ``read`` show as gaps; frames lost before the host
    (driver, network) do not. ``t_s`` = arrival on ``time.monotonic`` minus
    ``latency_s``.

    ``open`` gives up after ``open_timeout_s`` (FFmpeg open and read timeouts
    are set to it too); no frame within ``read``'s timeout raises
    ``SourceStalledError``; a stream that ends or fails raises ``SourceError``.
    For V4L2, ``size`` and ``fps`` are requested from the device.
    """

    def __init__(
        self,
        uri: str | int,
        *,
        size: tuple[int, int] | None,
        latency_s: float = 0.0,
        fps: float | None = None,
        open_timeout_s: float = 5.0,
    ) -> None:
        self.uri = uri
        self.size = size
        self.latency_s = float(latency_s)
        self.fps = fps
        self.open_timeout_s = float(open_timeout_s)
        self.v4l2 = isinstance(uri, int) or uri.startswith("/dev/")
        self._reader: _CaptureThread | None = None
        self._last = -1

    @property
    def name(self) -> str:
        if self.v4l2:
            return f"v4l2:{self.uri}"
        return _without_password(str(self.uri))

    def open(self) -> None:
        self.close()
        device = f"/dev/video{self.uri}" if isinstance(self.uri, int) else str(self.uri)
        if self.v4l2 and not Path(device).exists():
            raise SourceOpenError(self.name, f"no such device {device}")
        reader = _CaptureThread(self.name, self.uri, self._params())
        reader.start()
        if not reader.opened.wait(self.open_timeout_s + 1.0):
            reader.stop()
            raise SourceOpenError(self.name, f"no answer within {self.open_timeout_s:.1f} s")
        if reader.open_error is not None:
            reader.stop()
            raise SourceOpenError(self.name, reader.open_error)
        self._reader, self._last = reader, -1

    def _params(self) -> tuple[int, list[int], list[tuple[int, float]]]:
        """(backend, open parameters, properties set once open)."""
        if not self.v4l2:
            ms = round(self.open_timeout_s * 1000)
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
            return cv2.CAP_FFMPEG, params, []
        props: list[tuple[int, float]] = []
        if self.size is not None:
            props += [(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])]
            props += [(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])]
        if self.fps:
            props.append((cv2.CAP_PROP_FPS, self.fps))
        return cv2.CAP_V4L2, [], props

    def read(self, timeout_s: float) -> RawFrame:
        if self._reader is None:
            raise SourceError(f"{self.name}: not open")
        img, counter, t_arrival = self._reader.newest_after(self._last, timeout_s)
        self._last = counter
        img = check_image(self.name, img, counter, self.size)
        return RawFrame(img, counter, t_arrival - self.latency_s)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.stop()
            self._reader = None


def _without_password(url: str) -> str:
    """``url`` without the password of its user part (names end up in alarms and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class _CaptureThread(threading.Thread):
    """Opens, reads and releases one ``cv2.VideoCapture`` (all in this thread:
    a capture must not be released while another thread reads it)."""

    def __init__(
        self, name: str, uri: str | int, params: tuple[int, list[int], list[tuple[int, float]]]
    ) -> None:
        super().__init__(daemon=True, name=f"camera {name}")
        self.camera = name
        self._uri, (self._api, self._open_params, self._props) = uri, params
        self.opened = threading.Event()  # open finished, well or not
        self.open_error: str | None = None
        self.error: str | None = None  # the stream failed after opening
        self.count = 0
        self._cond = threading.Condition()
        self._newest: tuple[np.ndarray, int, float] | None = None
        self._stopping = threading.Event()

    def run(self) -> None:
        cap: cv2.VideoCapture | None = None
        try:
            cap = cv2.VideoCapture(self._uri, self._api, self._open_params)
            if not cap.isOpened():
                self.open_error = "cannot open (no such camera or stream)"
                return
            for prop, value in self._props:
                cap.set(prop, value)
            self.opened.set()
            self._read_until_stopped(cap)
        except Exception as exc:  # cv2.error and the like: open() or read() reports it
            lines = str(exc).strip().splitlines() or [type(exc).__name__]
            if self.opened.is_set():
                self._fail(lines[-1][:160])
            else:
                self.open_error = lines[-1][:160]
        finally:
            if cap is not None:
                cap.release()
            self.opened.set()

    def _read_until_stopped(self, cap: cv2.VideoCapture) -> None:
        while not self._stopping.is_set():
            ok, img = cap.read()
            if not ok:
                self._fail(f"stream lost after {self.count} frames")
                return
            with self._cond:
                self._newest = (img, self.count, time.monotonic())
                self.count += 1
                self._cond.notify_all()

    def _fail(self, message: str) -> None:
        with self._cond:
            self.error = message
            self._cond.notify_all()

    def newest_after(self, last: int, timeout_s: float) -> tuple[np.ndarray, int, float]:
        """The newest frame with a counter above ``last``, waiting up to ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._newest is None or self._newest[1] <= last:
                if self.error is not None:
                    raise SourceError(f"{self.camera}: {self.error}")
                remaining = deadline - time.monotonic()
                if remaining <= 0.0:
                    raise SourceStalledError(f"{self.camera}: no frame for {timeout_s:.2f} s")
                self._cond.wait(remaining)
            return self._newest

    def stop(self) -> None:
        """Ask the thread to end; it releases the capture once its read returns."""
        self._stopping.set()
        self.join(timeout=1.0)
