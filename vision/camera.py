"""The camera contract of the frame loop: what every frame source delivers.

A ``Camera`` delivers ``RawFrame``s: the image, the camera's own frame
counter, the exposure time on this host's ``time.monotonic`` clock and, when
the camera reports one itself (GenICam chunk data, the virtual plant), the
encoder count at exposure. It does not know the line's time base: the frame
loop gives each frame its encoder count (hardware-trigger latches from the
PLC, or interpolation of the PLC's timestamped encoder samples) and only
uses ``exposure_tick`` to measure that time base's error.

Implementations (chosen by ``[camera] source``, see ``open_camera``):
``vision.sources.VideoCamera`` (video file, plays at its recorded rate),
``vision.sources.OpenCvCamera`` (``v4l2:N``, ``rtsp://...``),
``vision.sources_genicam.GenICamCamera`` (``genicam:...``), and
``vision.sources_shm.ShmRingCamera`` (``shm:NAME``: the virtual plant, in
this process or its own).

Errors are raised, never passed on as frames:
- ``SourceOpenError``: cannot open (missing file, no device, bad settings);
- ``SourceStalledError``: no frame within the timeout (or the video ended);
- ``SourceError``: the source was lost (disconnected, decoding failed);
- ``core.frame.FrameError``: a frame of the wrong size or type (the next
  frame may be fine).
Every message starts with the camera's ``name`` so an alarm names it.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np

from core.errors import InputFileError
from core.frame import FrameError

__all__ = [
    "Camera",
    "FrameError",
    "RawFrame",
    "SourceError",
    "SourceOpenError",
    "SourceStalledError",
    "check_image",
]


class SourceError(RuntimeError):
    """A camera or video source failed."""


class SourceOpenError(InputFileError, SourceError):
    """The source cannot be opened (missing file, not a video, no device, bad setting)."""


class SourceStalledError(SourceError):
    """No frame arrived within the stall timeout (or a video ended)."""


@dataclasses.dataclass(frozen=True, slots=True)
class RawFrame:
    """image:         (H, W, 3) uint8 BGR or (H, W) uint8 mono, owned by the frame
                   (copied out of any driver buffer).
    counter:       the camera's frame counter: +1 per exposure it made; a gap
                   means frames were lost between sensor and host.
    t_s:           exposure time on this host's ``time.monotonic`` clock (s);
                   arrival time minus the configured latency when the camera
                   has no timestamp of its own.
    exposure_tick: encoder count (uint32) the camera itself reports for the
                   exposure, or None. Measures the time base; never places
                   the frame.
    """

    image: np.ndarray
    counter: int
    t_s: float
    exposure_tick: int | None = None


class Camera(Protocol):
    """One camera. ``open`` may be called again after ``close`` (reconnect)."""

    @property
    def name(self) -> str:
        """How alarms and the status name this camera, e.g. ``genicam:...#SN123``."""
        ...

    def open(self) -> None:
        """Connect and start acquisition; ``SourceOpenError`` if it cannot."""
        ...

    def read(self, timeout_s: float) -> RawFrame:
        """The next frame (the oldest not yet read, or the newest if the source
        drops under load: say which in the class doc). Raises as the module
        doc says; ``SourceStalledError`` after ``timeout_s`` without a frame."""
        ...

    def close(self) -> None:
        """Stop acquisition and release the device; safe to call twice."""
        ...


def check_image(name: str, img: object, counter: int, size: tuple[int, int] | None) -> np.ndarray:
    """``img`` as (H, W) or (H, W, 3) uint8, or ``FrameError`` naming the camera,
    the frame and what is wrong. ``size`` = (width, height) in px when fixed."""
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        what = getattr(img, "dtype", type(img).__name__)
        raise FrameError(f"{name}: frame {counter}: not an 8-bit image ({what})")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise FrameError(f"{name}: frame {counter}: image shape {img.shape}, expected HxW or HxWx3")
    if size is not None and (img.shape[1], img.shape[0]) != tuple(size):
        raise FrameError(
            f"{name}: frame {counter}: {img.shape[1]}x{img.shape[0]} px, "
            f"the camera is configured for {size[0]}x{size[1]}"
        )
    return img
