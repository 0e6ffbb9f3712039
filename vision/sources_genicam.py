"""``GenICamCamera``: a GenICam (GenTL) camera through ``harvesters`` (extra ``genicam``).

Chosen by ``[camera] source = "genicam:PRODUCER.cti[#DEVICE]"``, with the
features of ``[camera.genicam]`` written when it opens.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from vision.camera import (
    FrameError,
    RawFrame,
    SourceError,
    SourceOpenError,
    SourceStalledError,
    check_image,
)

__all__ = ["GenICamCamera", "GenICamFeatures", "genicam_to_bgr"]


class GenICamFeatures(Protocol):
    """What ``GenICamCamera`` writes when it opens ("" or 0 = leave the
    camera's own setting); ``sortline.config.GenICamSettings`` is one."""

    @property
    def serial(self) -> str: ...  # device serial number; "" = by index

    @property
    def pixel_format(self) -> str: ...  # PFNC name, e.g. "Mono8", "BayerRG8"

    @property
    def exposure_us(self) -> float: ...

    @property
    def trigger_mode(self) -> str: ...  # "On" | "Off"

    @property
    def trigger_source(self) -> str: ...  # e.g. "Line1"


# PFNC pixel format -> (channels in the buffer, conversion to BGR or None)
_FORMATS: dict[str, tuple[int, int | None]] = {
    "Mono8": (1, None),
    "RGB8": (3, cv2.COLOR_RGB2BGR),
    "BGR8": (3, None),
    "RGBa8": (4, cv2.COLOR_RGBA2BGR),
    "BGRa8": (4, cv2.COLOR_BGRA2BGR),
    "BayerRG8": (1, cv2.COLOR_BayerRGGB2BGR),
    "BayerGR8": (1, cv2.COLOR_BayerGRBG2BGR),
    "BayerBG8": (1, cv2.COLOR_BayerBGGR2BGR),
    "BayerGB8": (1, cv2.COLOR_BayerGBRG2BGR),
}


def genicam_to_bgr(data: np.ndarray, width: int, height: int, pixel_format: str) -> np.ndarray:
    """A flat uint8 buffer as a new (H, W) mono or (H, W, 3) BGR image (never a
    view of ``data``, which goes back to the driver). ``FrameError`` if its
    size does not match."""
    channels, code = _FORMATS[pixel_format]
    flat = np.asarray(data, dtype=np.uint8).reshape(-1)
    if flat.size != width * height * channels:
        raise FrameError(f"buffer of {flat.size} bytes for {width}x{height} {pixel_format}")
    img = flat.reshape((height, width, channels) if channels > 1 else (height, width))
    return img.copy() if code is None else cv2.cvtColor(img, code)


class GenICamCamera:
    """One camera of a GenTL producer (``cti``): by ``settings.serial`` when
    set, else by ``device`` index.

    ``open`` writes ``settings`` (PixelFormat; ExposureTime, or ExposureTimeAbs
    on cameras that name it so; TriggerSelector=FrameStart, TriggerSource,
    TriggerMode) and asks the stream for ``NewestOnly`` buffer handling; a
    setting that fails raises ``SourceOpenError`` naming the feature and value.
    Without ``NewestOnly`` ``read`` drains the stream itself: either way it
    returns the newest frame, frames lost show as counter gaps.

    ``counter`` = the buffer's GenTL frame id (the camera's frame number: a
    gap is a frame lost between sensor and host; it restarts when the camera
    is opened again), or a local count when the producer reports none. ``t_s``
    = arrival on ``time.monotonic`` minus ``latency_s`` (camera timestamps
    run on the camera's clock, not this host's). Pixel formats: Mono8, RGB8,
    BGR8, RGBa8, BGRa8 and Bayer??8, delivered as mono or BGR. No frame within
    ``read``'s timeout raises ``SourceStalledError``; a failed fetch,
    ``SourceError``.
    """

    _NEWEST_ONLY = "NewestOnly"

    def __init__(
        self,
        cti: str | Path,
        *,
        device: int = 0,
        size: tuple[int, int] | None,
        settings: GenICamFeatures | None = None,
        latency_s: float = 0.0,
    ) -> None:
        self.cti = Path(cti)
        self.device = int(device)
        self.size = size
        self.settings = settings
        self.latency_s = float(latency_s)
        self.pixel_format = ""
        self._h: Any = None  # harvesters.core.Harvester
        self._ia: Any = None  # harvesters.core.ImageAcquirer
        self._timeout_exc: type[Exception] = TimeoutError
        self._drain = False
        self._frame_ids = True
        self._count = 0

    @property
    def name(self) -> str:
        serial = self.settings.serial if self.settings is not None else ""
        return f"genicam:{self.cti.name}#" + (f"serial={serial}" if serial else str(self.device))

    def open(self) -> None:
        self.close()
        try:
            from genicam.gentl import TimeoutException
            from harvesters.core import Harvester
        except ImportError:
            raise SourceOpenError(
                self.name, "harvesters is not installed (extra 'genicam')"
            ) from None
        if not self.cti.is_file():
            raise SourceOpenError(self.name, f"GenTL producer {self.cti} not found")
        self._timeout_exc = TimeoutException
        try:
            self._h = Harvester()
            self._h.add_file(str(self.cti))
            self._h.update()
            self._ia = self._h.create(self._device_info(self._h.device_info_list))
            self._configure(self._ia)
            self._ia.start()
        except SourceOpenError:
            self.close()
            raise
        except Exception as exc:  # GenTL / GenApi errors: device busy, gone, ...
            self.close()
            raise SourceOpenError(self.name, f"cannot open: {_first_line(exc)}") from None
        self._frame_ids, self._count = True, 0

    def _device_info(self, infos: list[Any]) -> Any:
        serial = self.settings.serial if self.settings is not None else ""
        if not serial:
            if self.device >= len(infos):
                raise SourceOpenError(
                    self.name, f"device {self.device} not found ({len(infos)} devices)"
                )
            return infos[self.device]
        serials = [_info(d, "serial_number") for d in infos]
        if serial not in serials:
            found = ", ".join(s for s in serials if s) or "none"
            raise SourceOpenError(self.name, f"no device with serial {serial!r} (found: {found})")
        return infos[serials.index(serial)]

    def _configure(self, ia: Any) -> None:
        nodes = ia.remote_device.node_map
        s = self.settings
        if s is not None:
            if s.pixel_format:
                self._write(nodes, "PixelFormat", s.pixel_format)
            if s.exposure_us > 0:
                exposure = "ExposureTimeAbs" if _has(nodes, "ExposureTimeAbs") else "ExposureTime"
                self._write(nodes, exposure, float(s.exposure_us))
            if (s.trigger_mode or s.trigger_source) and _has(nodes, "TriggerSelector"):
                self._write(nodes, "TriggerSelector", "FrameStart")
            if s.trigger_source:
                self._write(nodes, "TriggerSource", s.trigger_source)
            if s.trigger_mode:
                self._write(nodes, "TriggerMode", s.trigger_mode)
        self.pixel_format = str(nodes.PixelFormat.value)
        if self.pixel_format not in _FORMATS:
            supported = ", ".join(_FORMATS)
            raise SourceOpenError(
                self.name, f"pixel format {self.pixel_format} not supported (use {supported})"
            )
        self._drain = not self._ask_newest_only(ia)

    def _write(self, nodes: Any, feature: str, value: object) -> None:
        what = f"cannot set {feature} = {value!r}"
        if not _has(nodes, feature):
            raise SourceOpenError(self.name, f"{what}: the camera has no such feature")
        node = getattr(nodes, feature)
        offered = _symbolics(node)
        if offered and value not in offered:
            raise SourceOpenError(self.name, f"{what}: the camera offers {', '.join(offered)}")
        try:
            node.value = value
        except Exception as exc:  # GenApi: OutOfRange, Access, InvalidArgument ...
            raise SourceOpenError(self.name, f"{what}: {_first_line(exc)}") from None

    def _ask_newest_only(self, ia: Any) -> bool:
        """Set the stream's buffer handling to NewestOnly where offered."""
        try:
            mode = ia.data_streams[0].node_map.StreamBufferHandlingMode
            if self._NEWEST_ONLY not in _symbolics(mode):
                return False
            mode.value = self._NEWEST_ONLY
        except Exception:  # no such stream feature: read() drains instead
            return False
        return True

    def read(self, timeout_s: float) -> RawFrame:
        ia = self._ia
        if ia is None:
            raise SourceError(f"{self.name}: not open")
        try:
            buf = ia.fetch(timeout=max(timeout_s, 1e-3))  # 0 would wait for ever
            if self._drain:
                buf = self._newest(ia, buf)
        except self._timeout_exc:
            raise SourceStalledError(f"{self.name}: no frame for {timeout_s:.2f} s") from None
        except Exception as exc:
            raise SourceError(f"{self.name}: acquisition failed: {_first_line(exc)}") from None
        t_s = time.monotonic() - self.latency_s
        try:
            counter = self._counter(buf)
            img = self._image(buf, counter)
        finally:
            buf.queue()
        return RawFrame(check_image(self.name, img, counter, self.size), counter, t_s)

    @staticmethod
    def _newest(ia: Any, buf: Any) -> Any:
        while (newer := ia.try_fetch(timeout=5e-4)) is not None:
            buf.queue()
            buf = newer
        return buf

    def _counter(self, buf: Any) -> int:
        if self._frame_ids:
            try:
                return int(buf.module.frame_id)
            except Exception:  # the producer reports no frame id: count locally
                self._frame_ids = False
        self._count += 1
        return self._count - 1

    def _image(self, buf: Any, counter: int) -> np.ndarray:
        components = buf.payload.components
        if not components:
            raise FrameError(f"{self.name}: frame {counter}: buffer without image data")
        comp = components[0]
        try:
            return genicam_to_bgr(comp.data, int(comp.width), int(comp.height), self.pixel_format)
        except FrameError as exc:
            raise FrameError(f"{self.name}: frame {counter}: {exc}") from None

    def close(self) -> None:
        ia, self._ia = self._ia, None
        if ia is not None:
            for step in (ia.stop, ia.destroy):
                with contextlib.suppress(Exception):  # a camera that is gone cannot stop
                    step()
        h, self._h = self._h, None
        if h is not None:
            with contextlib.suppress(Exception):
                h.reset()


def _has(nodes: Any, feature: str) -> bool:
    try:
        return bool(nodes.has_node(feature))
    except Exception:
        return hasattr(nodes, feature)


def _symbolics(node: Any) -> tuple[str, ...]:
    """The values an enumeration feature offers; () for other features."""
    try:
        return tuple(str(s) for s in node.symbolics)
    except Exception:
        return ()


def _info(info: Any, attribute: str) -> str:
    try:
        return str(getattr(info, attribute))
    except Exception:  # GenTL NotAvailable for what a producer does not report
        return ""


def _first_line(exc: BaseException) -> str:
    """GenApi messages: the reason, without the file/line trailer."""
    parts = [p.strip() for p in str(exc).replace("\n", " ").split(" : ")]
    keep = [p for p in parts if p and "thrown in node" not in p and not p.startswith("Feature '")]
    return ("; ".join(keep) or type(exc).__name__)[:160]
