"""``ShmRingCamera``: a camera whose frames arrive in a shared-memory frame ring
(``core.frame_ring``), e.g. the virtual plant of ``sortline sim plant``.

Oldest first, within a bound: ``read`` returns the oldest frame not yet
read unless the writer is more than ``max_lag`` frames ahead, as a camera
driver's small buffer would (a loop held up by one slow cycle catches up and
loses nothing; one that stays behind gets recent frames, not a backlog).
Frames skipped show up as gaps in ``counter``.
``exposure_tick`` is the encoder count the writer stamped on the frame.
``stepped=True`` makes each ``read`` a software trigger: it asks the writer
for the frame after the last one read, then waits for it.
"""

from __future__ import annotations

import time

from core.frame_ring import FrameRingError, FrameRingReader
from vision.camera import RawFrame, SourceOpenError, SourceStalledError, check_image

__all__ = ["ShmRingCamera"]

_WAIT_SLICE_S = 0.1  # how often a waiting read looks whether the writer still lives
_WRITER_STALE_S = 2.0


class ShmRingCamera:
    """name: the ring (``/dev/shm/NAME``, or a path); size: (width, height) px
    the line expects, None to take the ring's; stepped, max_lag: see the
    module doc."""

    def __init__(
        self,
        name: str,
        *,
        size: tuple[int, int] | None,
        stepped: bool = False,
        max_lag: int = 2,
    ) -> None:
        self.ring = name
        self.size = size
        self.stepped = stepped
        self.max_lag = max_lag
        self._reader: FrameRingReader | None = None
        self._last_counter: int | None = None

    @property
    def name(self) -> str:
        return f"shm:{self.ring}"

    def open(self) -> None:
        """Attach to the ring; ``SourceOpenError`` while it is not there (the
        line retries) or when its frames do not fit the camera's size."""
        self.close()
        try:
            reader = FrameRingReader.attach(self.ring)
        except FrameRingError as exc:
            raise SourceOpenError(self.name, str(exc)) from None
        if not reader.writer_alive(_WRITER_STALE_S):  # a crashed writer's ring
            reader.close()
            raise SourceOpenError(self.name, "the ring's writer is gone")
        w, h = reader.width, reader.height
        if self.size is not None and (w, h) != tuple(self.size):
            reader.close()
            raise SourceOpenError(
                self.name,
                f"the ring holds {w}x{h} px frames, the camera is configured for "
                f"{self.size[0]}x{self.size[1]}",
            )
        self._reader = reader
        self._last_counter = None

    def read(self, timeout_s: float) -> RawFrame:
        """The next frame (see the module doc; stepped: requested first)."""
        reader = self._reader
        if reader is None:
            raise SourceStalledError(f"{self.name}: read before open")
        want = self._request(reader) if self.stepped else None
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            try:
                got = reader.read(max(min(left, _WAIT_SLICE_S), 0.0), self.max_lag)
            except TimeoutError:
                if not reader.writer_alive(_WRITER_STALE_S):
                    raise SourceStalledError(f"{self.name}: the ring's writer is gone") from None
                if time.monotonic() >= deadline:
                    raise SourceStalledError(
                        f"{self.name}: no frame within {timeout_s:g} s"
                    ) from None
                continue
            if want is not None and got.counter < want:
                continue  # an older frame still in the ring: wait for the one asked for
            image = check_image(self.name, got.image, got.counter, self.size)
            self._last_counter = got.counter
            return RawFrame(image, got.counter, got.t_s, got.exposure_tick)

    def _request(self, reader: FrameRingReader) -> int:
        last = self._last_counter
        if last is None:
            last = reader.latest_counter()
        want = 0 if last is None else last + 1
        reader.request(want)
        return want

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
