"""``CameraLink``: the frame loop's hold on its camera. Opens it, reads it,
counts what goes wrong, and reopens it by itself; never raises into the loop.

While something is wrong, ``problem`` names the camera and the cause ("" when
frames flow): the loop holds the line on it, and the line recovers when
frames come back. What counts:
- ``frames_lost``: gaps in the camera's frame counter (lost between sensor and
  loop, or replaced while the loop was busy);
- ``frames_bad``: frames of the wrong size or type, or of one uniform value
  (all black: a covered lens, a lamp off; all saturated: a sensor fault),
  sampled every 8th pixel (dropped; three in a row hold the line);
- ``frames_out_of_order``: frames whose counter is not newer than the last
  one used (a frame delivered late or twice): dropped, never processed after
  a newer one; a counter more than ``_RESTART_GAP`` back is a camera that
  restarted its counter, taken as the new sequence;
- ``reconnects``: times frames flowed again after the camera was reopened;
- a stall: no frame for ``stall_s``; after ``reopen_after_stalls`` stalls in a
  row the camera is closed and reopened (a camera that went away), except
  a video that ended (it is not replayed: the line stays Held);
- a lost source (``SourceError``) or one that cannot open: reopened with a
  backoff of 0.1 s doubling to 2 s.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from core.frame import FrameError
from sortline.status import CameraView
from vision.camera import Camera, RawFrame, SourceError, SourceOpenError, SourceStalledError
from vision.sources import VideoEndedError

__all__ = ["CameraLink"]

log = logging.getLogger("sortline.camera")

_BAD_IN_A_ROW = 3
_RESTART_GAP = 8  # frames: a counter further back than this restarted (not a late frame)
_BACKOFF_MIN_S, _BACKOFF_MAX_S = 0.1, 2.0


class CameraLink:
    def __init__(
        self, camera: Camera, source: str, stall_s: float, reopen_after_stalls: int = 5
    ) -> None:
        self.camera = camera
        self.source = source
        self.stall_s = stall_s
        self.reopen_after_stalls = reopen_after_stalls
        self.is_open = False
        self.problem = "camera not opened yet"
        self.frames_read = 0
        self.frames_lost = 0
        self.frames_bad = 0
        self.frames_out_of_order = 0
        self.reconnects = 0
        self.last_error = ""
        self._opened_once = False
        self._reopened = False
        self._logged = False
        self._bad_in_row = 0
        self._bad_since_good = 0
        self._stalls_in_row = 0
        self._last_counter: int | None = None
        self._gap = (0, -1)  # counters last counted lost (a late one is not lost)
        self._last_frame_mono: float | None = None
        self._next_open_s = 0.0
        self._backoff_s = _BACKOFF_MIN_S

    @property
    def name(self) -> str:
        try:
            return str(self.camera.name)
        except Exception:  # a camera's name must never break the loop
            return self.source

    def _fail(self, why: str) -> None:
        if why != self.problem:
            log.warning("%s", why)
            self._logged = True
        self.problem = why
        self.last_error = why

    def _open(self) -> bool:
        now = time.monotonic()
        if now < self._next_open_s:
            return False
        try:
            self.camera.open()
        except (SourceError, OSError) as exc:
            msg = str(exc) if isinstance(exc, SourceOpenError) else f"{self.name}: {exc}"
            self._fail(f"camera cannot open: {msg}")
            self._next_open_s = now + self._backoff_s
            self._backoff_s = min(self._backoff_s * 2, _BACKOFF_MAX_S)
            return False
        self.is_open = True
        self._reopened = self._opened_once  # counted once frames flow again
        self._opened_once = True
        self._backoff_s = _BACKOFF_MIN_S
        self._last_counter = None
        self._stalls_in_row = 0
        log.info("camera %s open", self.name)
        return True

    def close(self) -> None:
        if self.is_open:
            try:
                self.camera.close()
            except Exception as exc:  # closing a broken camera may fail too
                log.warning("closing %s: %s", self.name, exc)
        self.is_open = False

    def read(self, timeout_s: float) -> RawFrame | None:
        """The next frame, or None (the problem, if any, is in ``problem``).
        Waits at most about ``timeout_s`` (or the reopen backoff)."""
        if not self.is_open and not self._open():
            time.sleep(min(timeout_s, max(self._next_open_s - time.monotonic(), 0.0)))
            return None
        try:
            raw = self.camera.read(timeout_s)
        except FrameError as exc:
            self._bad(str(exc))
            return None
        except SourceStalledError as exc:
            self._stalled(exc)
            return None
        except (SourceError, OSError) as exc:
            self._fail(f"camera lost: {exc}")
            self.close()
            return None
        uniform = _uniform_value(raw.image)
        if uniform is not None:
            self._bad(f"{self.name}: frame {raw.counter}: every pixel {uniform} (blank)")
            return None
        last = self._last_counter
        if last is not None and last - _RESTART_GAP <= raw.counter <= last:
            self.frames_out_of_order += 1
            if self._gap[0] <= raw.counter <= self._gap[1] and self.frames_lost > 0:
                self.frames_lost -= 1  # counted lost when the newer one came: it is late
            if self.frames_out_of_order in (1, 10, 100) or self.frames_out_of_order % 1000 == 0:
                log.warning(
                    "%s: frame %d after frame %d, out of order: dropped (%d so far)",
                    self.name, raw.counter, last, self.frames_out_of_order,
                )  # fmt: skip
            return None
        self._good(raw)
        return raw

    def _bad(self, why: str) -> None:
        self.frames_bad += 1
        self._bad_since_good += 1  # its counter shows up as a gap: not lost twice
        self._bad_in_row += 1
        if self._bad_in_row >= _BAD_IN_A_ROW:
            self._fail(f"camera delivers unusable frames: {why}")

    def _stalled(self, exc: Exception) -> None:
        last = self._last_frame_mono
        if last is None or time.monotonic() - last >= self.stall_s:
            self._fail(f"camera stalled: {exc}")
        self._stalls_in_row += 1
        ended = isinstance(exc, VideoEndedError)  # a recording is over: not replayed
        if self._stalls_in_row >= self.reopen_after_stalls and not ended:
            self.close()  # reopened on the next read

    def _good(self, raw: RawFrame) -> None:
        if self._last_counter is not None and raw.counter > self._last_counter + 1:
            gap = raw.counter - self._last_counter - 1
            self.frames_lost += max(gap - self._bad_since_good, 0)
            self._gap = (self._last_counter + 1, raw.counter - 1)
        self._bad_since_good = 0
        self._last_counter = raw.counter
        self._last_frame_mono = time.monotonic()
        self.frames_read += 1
        self.reconnects += int(self._reopened)
        self._reopened = False
        self._bad_in_row = 0
        self._stalls_in_row = 0
        if self.problem and self._logged:
            log.warning("camera %s: frames flow again", self.name)
        self._logged = False
        self.problem = ""

    def view(self) -> CameraView:
        last = self._last_frame_mono
        return CameraView.model_construct(
            source=self.source,
            name=self.name,
            connected=self.is_open,
            frames_read=self.frames_read,
            frames_lost=self.frames_lost,
            frames_bad=self.frames_bad,
            reconnects=self.reconnects,
            last_error=self.last_error,
            seconds_since_frame=None if last is None else round(time.monotonic() - last, 3),
        )


def _uniform_value(image: object) -> int | None:
    """The one value of a frame whose every 8th pixel is the same, else None."""
    if not isinstance(image, np.ndarray) or image.size == 0:
        return None
    sub = image[::8, ::8]
    lo = int(sub.min())
    return lo if lo == int(sub.max()) else None
