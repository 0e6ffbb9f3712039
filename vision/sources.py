"""Frame sources: OpenCV ``VideoCapture`` (files, V4L2, RTSP via FFmpeg) and
GenICam cameras through ``harvesters`` (optional extra ``genicam``).

Every source yields ``core.frame.Frame`` with the encoder count at exposure,
either read from the encoder when the frame arrives (``EncoderTicks``) or
estimated from belt speed and the frame's timestamp (``SpeedTicks``, frames
flagged ``tick_estimated=True``). What a source cannot deliver is raised, never
passed on: ``SourceOpenError`` (cannot open / not a video), ``CorruptSourceError``
(decoding stops early), ``SourceStalledError`` (no frame within ``stall_timeout_s``),
``core.frame.FrameError`` (wrong size or type).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Protocol

import cv2
import numpy as np

from core.errors import InputFileError
from core.frame import Frame, FrameError

__all__ = [
    "CorruptSourceError",
    "EncoderTicks",
    "FrameSource",
    "GenICamSource",
    "OpenCvSource",
    "SourceError",
    "SourceOpenError",
    "SourceStalledError",
    "SpeedTicks",
    "TickSource",
    "open_source",
]


class SourceError(RuntimeError):
    """A camera or video source failed."""


class SourceOpenError(InputFileError, SourceError):
    """The source cannot be opened (missing file, not a video, no device)."""


class CorruptSourceError(SourceError):
    """A video stops decoding before its announced end."""


class SourceStalledError(SourceError):
    """No frame arrived within the stall timeout."""


class TickSource(Protocol):
    """Encoder count (uint32) for a frame exposed at ``t_s`` (source clock, s)."""

    estimated: bool

    def __call__(self, t_s: float) -> int: ...


class EncoderTicks:
    """Reads the encoder (e.g. the PLC bridge's latest count) when a frame arrives."""

    estimated = False

    def __init__(self, read_tick: Callable[[], int]) -> None:
        self._read = read_tick

    def __call__(self, t_s: float) -> int:
        return int(self._read()) % (1 << 32)


class SpeedTicks:
    """No encoder wired: tick = start + (t - t0) * speed / mm_per_tick (flagged estimated)."""

    estimated = True

    def __init__(self, speed_mm_s: float, mm_per_tick: float, start_tick: int = 0) -> None:
        if speed_mm_s < 0 or mm_per_tick <= 0:
            raise ValueError("need speed_mm_s >= 0 and mm_per_tick > 0")
        self.ticks_per_s = speed_mm_s / mm_per_tick
        self.start_tick = int(start_tick)
        self._t0: float | None = None

    def __call__(self, t_s: float) -> int:
        if self._t0 is None:
            self._t0 = t_s
        return (self.start_tick + round((t_s - self._t0) * self.ticks_per_s)) % (1 << 32)


class FrameSource(Protocol):
    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


def _check_image(img: Any, frame_id: int, size: tuple[int, int] | None) -> np.ndarray:
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        raise FrameError(f"frame {frame_id}: not an 8-bit image ({getattr(img, 'dtype', img)})")
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (1, 3))):
        raise FrameError(f"frame {frame_id}: image shape {img.shape}, expected HxW or HxWx3")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if size is not None and (img.shape[1], img.shape[0]) != size:
        raise FrameError(
            f"frame {frame_id}: {img.shape[1]}x{img.shape[0]} px, expected {size[0]}x{size[1]}"
        )
    return img


class _Reader(threading.Thread):
    """Grabs from a blocking ``grab()`` into a 2-slot queue; newest wins."""

    def __init__(self, grab: Callable[[], tuple[np.ndarray, float] | None]) -> None:
        super().__init__(daemon=True, name="frame-reader")
        self._grab = grab
        self.q: queue.Queue[tuple[np.ndarray, float] | BaseException | None] = queue.Queue(2)
        self.stop_event = threading.Event()
        self.dropped = 0

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                item: tuple[np.ndarray, float] | BaseException | None = self._grab()
            except BaseException as exc:  # handed to the consumer, which raises it
                item = exc
            self._put(item)
            if item is None or isinstance(item, BaseException):
                return

    def _put(self, item: tuple[np.ndarray, float] | BaseException | None) -> None:
        while not self.stop_event.is_set():
            try:
                self.q.put_nowait(item)
                return
            except queue.Full:
                try:
                    self.q.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def next(self, timeout_s: float) -> tuple[np.ndarray, float] | BaseException | None:
        try:
            return self.q.get(timeout=timeout_s)
        except queue.Empty:
            raise SourceStalledError(f"no frame for {timeout_s:.2f} s") from None


class OpenCvSource:
    """Video file, V4L2 device (int index or ``/dev/videoN``) or ``rtsp://`` URL.

    Files are read in order, every frame, with ``t_s`` from the video's frame
    index and ``fps`` (given, or the file's); a file that stops decoding before
    its frame count raises ``CorruptSourceError``. Live sources are read by a
    thread (newest frame wins, drops counted) with ``t_s`` = monotonic clock; no
    frame within ``stall_timeout_s`` raises ``SourceStalledError``.
    """

    def __init__(
        self,
        uri: str | int | Path,
        ticks: TickSource,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        stall_timeout_s: float = 1.0,
    ) -> None:
        self.uri = uri
        self.ticks = ticks
        self.size = size
        self.stall_timeout_s = stall_timeout_s
        self.is_file = isinstance(uri, Path) or (
            isinstance(uri, str) and "://" not in uri and not uri.startswith("/dev/")
        )
        if self.is_file and not Path(str(uri)).is_file():
            raise SourceOpenError(str(uri), "video file not found")
        self._cap = cv2.VideoCapture(uri if isinstance(uri, int) else str(uri), cv2.CAP_ANY)
        if not self._cap.isOpened():
            self._cap.release()
            raise SourceOpenError(str(uri), "cannot open as a video source")
        file_fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = float(fps) if fps else (file_fps if file_fps > 0 else 0.0)
        self.frame_count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frames_read = 0
        self._reader: _Reader | None = None

    @property
    def dropped(self) -> int:
        return self._reader.dropped if self._reader is not None else 0

    def __iter__(self) -> Iterator[Frame]:
        return self._iter_file() if self.is_file else self._iter_live()

    def _iter_file(self) -> Iterator[Frame]:
        if self.fps <= 0:
            raise SourceOpenError(str(self.uri), "video has no frame rate; pass fps")
        while True:
            ok, img = self._cap.read()
            if not ok:
                break
            yield self._frame(img, self.frames_read / self.fps)
        if self.frames_read == 0:
            raise SourceOpenError(str(self.uri), "no frame could be decoded")
        if self.frame_count > 0 and self.frames_read < self.frame_count - 1:
            raise CorruptSourceError(
                f"{self.uri}: decoding stopped after {self.frames_read} of "
                f"{self.frame_count} frames"
            )

    def _grab(self) -> tuple[np.ndarray, float] | None:
        ok, img = self._cap.read()
        return (img, time.monotonic()) if ok else None

    def _iter_live(self) -> Iterator[Frame]:
        self._reader = _Reader(self._grab)
        self._reader.start()
        while True:
            item = self._reader.next(self.stall_timeout_s)
            if item is None:
                raise SourceStalledError(f"{self.uri}: stream ended")
            if isinstance(item, BaseException):
                raise SourceError(f"{self.uri}: {item}") from item
            yield self._frame(*item)

    def _frame(self, img: np.ndarray, t_s: float) -> Frame:
        frame_id = self.frames_read
        img = _check_image(img, frame_id, self.size)
        self.frames_read += 1
        return Frame(img, frame_id, self.ticks(t_s), t_s, tick_estimated=self.ticks.estimated)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.stop_event.set()
        self._cap.release()

    def __enter__(self) -> OpenCvSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class GenICamSource:
    """A GenICam (GenTL) camera through ``harvesters``: Mono8 or RGB/BGR(a)8 pixels.

    ``cti``: the GenTL producer file; ``device``: index in the device list.
    ``pixel_format`` and ``settings`` (feature name -> value) are written to the
    camera when given. ``fetch`` times out after ``stall_timeout_s`` ->
    ``SourceStalledError``.
    """

    _CHANNELS: ClassVar[dict[str, int]] = {"Mono8": 1, "RGB8": 3, "BGR8": 3, "RGBa8": 4, "BGRa8": 4}

    def __init__(
        self,
        cti: str | Path,
        ticks: TickSource,
        device: int = 0,
        size: tuple[int, int] | None = None,
        pixel_format: str | None = None,
        stall_timeout_s: float = 1.0,
        settings: dict[str, Any] | None = None,
    ) -> None:
        try:
            from harvesters.core import Harvester
        except ImportError:
            raise SourceOpenError(
                str(cti), "harvesters is not installed (extra 'genicam')"
            ) from None
        if not Path(cti).is_file():
            raise SourceOpenError(str(cti), "GenTL producer (.cti) not found")
        self.ticks, self.size, self.stall_timeout_s = ticks, size, stall_timeout_s
        self._h = Harvester()
        self._h.add_file(str(cti))
        self._h.update()
        if device >= len(self._h.device_info_list):
            n = len(self._h.device_info_list)
            self._h.reset()
            raise SourceOpenError(str(cti), f"device {device} not found ({n} devices)")
        self._ia = self._h.create(device)
        nodes = self._ia.remote_device.node_map
        if pixel_format is not None:
            nodes.PixelFormat.value = pixel_format
        for name, value in (settings or {}).items():
            self._set_node(nodes, name, value, cti)
        self.pixel_format = str(nodes.PixelFormat.value)
        if self.pixel_format not in self._CHANNELS:
            self.close()
            raise SourceOpenError(str(cti), f"pixel format {self.pixel_format} not supported")
        self.frames_read = 0
        self._t0 = time.monotonic()

    def _set_node(self, nodes: Any, name: str, value: Any, cti: str | Path) -> None:
        """Write one GenICam feature (e.g. Width, AcquisitionFrameRate, ExposureTime)."""
        try:
            getattr(nodes, name).value = value
        except Exception as exc:  # genapi raises its own types (AccessException, ...)
            self.close()
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SourceOpenError(
                str(cti), f"cannot set {name} = {value!r}: {first[:120]}"
            ) from None

    def __iter__(self) -> Iterator[Frame]:
        from genicam.gentl import TimeoutException

        self._ia.start()
        while True:
            try:
                with self._ia.fetch(timeout=self.stall_timeout_s) as buf:
                    comp = buf.payload.components[0]
                    img = self._to_bgr(comp.data, int(comp.height), int(comp.width))
            except TimeoutException:
                raise SourceStalledError(
                    f"GenICam: no frame for {self.stall_timeout_s:.2f} s"
                ) from None
            t_s = time.monotonic()
            frame_id = self.frames_read
            img = _check_image(img, frame_id, self.size)
            self.frames_read += 1
            yield Frame(img, frame_id, self.ticks(t_s), t_s, tick_estimated=self.ticks.estimated)

    def _to_bgr(self, data: np.ndarray, h: int, w: int) -> np.ndarray:
        """Copy a flat buffer out before it is requeued, as (H, W) or (H, W, 3) BGR."""
        c = self._CHANNELS[self.pixel_format]
        if data.size != h * w * c:
            raise FrameError(
                f"frame {self.frames_read}: buffer of {data.size} bytes for {w}x{h}x{c}"
            )
        arr = np.asarray(data, dtype=np.uint8).reshape(h, w, c) if c > 1 else data.reshape(h, w)
        if c == 1:
            return arr.copy()
        if self.pixel_format.startswith("RGB"):
            return cv2.cvtColor(arr[:, :, :3], cv2.COLOR_RGB2BGR)
        return np.ascontiguousarray(arr[:, :, :3])

    def close(self) -> None:
        ia = getattr(self, "_ia", None)
        if ia is not None:
            ia.stop()
            ia.destroy()
            self._ia = None
        self._h.reset()

    def __enter__(self) -> GenICamSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_source(
    uri: str | int | Path, ticks: TickSource, size: tuple[int, int] | None = None, **kw: Any
) -> OpenCvSource | GenICamSource:
    """``genicam:PATH.cti[#DEVICE]`` opens a GenICam camera, anything else OpenCV."""
    s = str(uri)
    if s.startswith("genicam:"):
        path, _, dev = s.removeprefix("genicam:").partition("#")
        return GenICamSource(path, ticks, device=int(dev or 0), size=size, **kw)
    return OpenCvSource(uri, ticks, size=size, **kw)
