"""The camera preview drawn and encoded in a child process, so people
watching cost the controller's process no Python time.

Why a process: drawing is Python that grows with what is on the belt (a
box per fragment, a projected polygon per planned air window): 24 ms of CPU
per image with 35 fragments and 1,024 planned windows, 39 ms with 300
fragments (measured with ``draw_preview_arrays`` on a 1280 x 512 frame), up to ten
images a second. In the controller's process that CPU and its hold on the
GIL would be the frame loop's competition; here it runs under its own GIL,
on whichever core is free. On ``default`` the child used under 1 % of a core
(``bench api_load``'s ``children_cpu_s``). It did not by itself remove the
loop's p99 rise while dashboards are served: most of that was the loop
waiting for a core (``[control] rt_priority``, ``core.rt``).

What stays in the controller's process, per new preview (at most
``max_fps`` a second whatever the number of viewers, ``PreviewEncoder``):
one ``cv2.resize`` of the newest frame to the preview's width (OpenCV
releases the GIL), one concatenation of the pulses still to come, and one
message on a pipe (the image as raw bytes, written with the GIL released).
No child runs until someone asks for a preview; it is started then, kept
while the API lives, restarted on the next request if it died, and stopped
with the API (or when the controller's process exits: its end of the pipe
closes and the child leaves its loop). The child is spawned, not forked (the
controller has threads), so the parent's main module must be safe to import
(an ``if __name__ == "__main__":`` guard), as with any ``multiprocessing``
use; the ``sortline`` command's is.

Protocol on the ``multiprocessing`` pipe, parent to child: ``("geometry",
PreviewGeometry)`` when the line's parameters changed, then ``("draw",
PreviewJob)`` followed by the image bytes; child to parent: ``("ok", jpeg,
windows)`` or ``("error", one line)``.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing as mp
import threading
import time
import weakref
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from sortline.preview import (
    PreviewGeometry,
    PreviewJob,
    PreviewTap,
    draw_preview_arrays,
    encode_jpeg,
    pulses_to_come,
)

__all__ = [
    "InlineRenderer",
    "PreviewEncoder",
    "PreviewImage",
    "PreviewJob",
    "PreviewProcess",
    "PreviewUnavailableError",
    "pulses_to_come",
]

log = logging.getLogger(__name__)


class PreviewUnavailableError(RuntimeError):
    """The preview renderer could not answer (one line: why)."""


def _serve(conn: Connection, quality: int) -> None:
    """The child's loop: draw and encode until the parent's end closes."""
    geo: PreviewGeometry | None = None
    while True:
        try:
            kind, body = conn.recv()
            if kind == "geometry":
                geo = body
                continue
            raw = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            if geo is None:
                raise ValueError("no line geometry received before the first frame")
            job: PreviewJob = body
            image = np.frombuffer(raw, dtype=np.dtype(job.dtype)).reshape(job.shape)
            img, windows = draw_preview_arrays(
                image, job.scale, job.tick, job.bbox_px, job.class_id, job.confidence,
                [job.pulses], geo,
            )  # fmt: skip
            reply: tuple[Any, ...] = ("ok", encode_jpeg(img, quality), len(windows))
        except Exception as exc:  # a bad job is answered, never the end of the renderer
            reply = ("error", f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return


def _stop(proc: Any, conn: Connection | None) -> None:
    if conn is not None:
        conn.close()  # the child sees EOF and leaves
    if proc is not None:
        proc.join(timeout=2.0)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=2.0)


class PreviewProcess:
    """Draws and encodes previews in a child process (module doc). Thread
    safe: one job at a time; ``render`` raises ``PreviewUnavailableError`` if the
    child does not answer within ``timeout_s`` (a watchdog kills it, and it is
    started again on the next call)."""

    def __init__(
        self, quality: int = 75, timeout_s: float = 5.0, start_timeout_s: float = 60.0
    ) -> None:
        self.quality = quality
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s  # the first answer: the child imports OpenCV
        self.starts = 0
        self._ctx = mp.get_context("spawn")  # never fork a process with threads
        self._proc: Any = None
        self._conn: Connection | None = None
        self._geo_key: tuple[Any, ...] | None = None
        self._geo_ref: PreviewGeometry | None = None  # keeps id(camera) meaningful
        self._lock = threading.Lock()
        self._finalizer: weakref.finalize[Any, Any] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else int(self._proc.pid)

    def _start(self) -> Connection:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=_serve, args=(child, self.quality), name="sortline-preview", daemon=True
        )
        proc.start()
        child.close()
        self._proc, self._conn, self._geo_key = proc, parent, None
        self.starts += 1
        if self._finalizer is not None:
            self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _stop, proc, parent)
        log.info("preview renderer started (pid %d)", proc.pid)
        return parent

    def _drop(self) -> None:
        _stop(self._proc, self._conn)
        self._proc = self._conn = None
        self._geo_key = None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None

    def render(self, job: PreviewJob, image: np.ndarray, geo: PreviewGeometry) -> tuple[bytes, int]:
        """The JPEG of ``job`` (``image``: the scaled frame) and the number
        of air-jet windows drawn. A child found dead on the way (its pipe
        broken) is replaced and the job sent once more; a child that does not
        answer in time is not tried again in this call."""
        with self._lock:
            for attempt in (1, 2):
                fresh = False
                conn, timeout_s = self._conn, self.timeout_s
                if conn is None or self._proc is None or not self._proc.is_alive():
                    if self._proc is not None:
                        log.warning("preview renderer had stopped (exit %s); starting it again",
                                    self._proc.exitcode)  # fmt: skip
                        self._drop()
                    conn, timeout_s = self._start(), max(self.timeout_s, self.start_timeout_s)
                    fresh = True
                try:
                    reply = self._exchange(conn, job, image, geo, timeout_s)
                    break
                except TimeoutError:
                    self._drop()
                    raise PreviewUnavailableError(
                        f"preview renderer failed (no answer in {timeout_s:g} s); "
                        "it starts again on the next request"
                    ) from None
                except (OSError, EOFError) as exc:
                    self._drop()  # died since it was last seen alive (or was reaped by another)
                    if fresh or attempt == 2:
                        raise PreviewUnavailableError(
                            f"preview renderer failed ({exc!r}); it starts again on the next "
                            "request"
                        ) from None
        if reply[0] != "ok":
            raise PreviewUnavailableError(f"preview renderer refused the frame: {reply[1]}")
        return bytes(reply[1]), int(reply[2])

    def _exchange(
        self,
        conn: Connection,
        job: PreviewJob,
        image: np.ndarray,
        geo: PreviewGeometry,
        timeout_s: float,
    ) -> tuple[Any, ...]:
        """One job out, one reply back, under a watchdog (``TimeoutError``
        when it fired): a child that stops reading would otherwise block the
        image's write once the pipe is full."""
        fired = threading.Event()
        proc = self._proc

        def kill() -> None:
            fired.set()
            proc.kill()

        watchdog = threading.Timer(timeout_s, kill)
        watchdog.daemon = True
        watchdog.start()
        try:
            key = (id(geo.camera), geo.valves, geo.mm_per_tick, geo.class_names)
            if key != self._geo_key:
                conn.send(("geometry", geo))
                self._geo_key, self._geo_ref = key, geo
            conn.send(("draw", job))
            conn.send_bytes(np.ascontiguousarray(image).data.cast("B"))
            reply: tuple[Any, ...] = conn.recv()
        except (OSError, EOFError):
            if fired.is_set():
                raise TimeoutError from None
            raise
        finally:
            watchdog.cancel()
        return reply

    def close(self) -> None:
        with self._lock:
            self._drop()


@dataclasses.dataclass(frozen=True)
class PreviewImage:
    jpeg: bytes
    frame_id: int
    tick: int
    t_unix_s: float
    detections: int
    windows: int


class InlineRenderer:
    """Draws and encodes in the calling thread: for a status API that
    already runs in its own process (``sortline.api_proc``), where a further
    child would only add a hop (and a daemonic process may not have one)."""

    def __init__(self, quality: int = 75) -> None:
        self.quality = quality

    def render(self, job: PreviewJob, image: np.ndarray, geo: PreviewGeometry) -> tuple[bytes, int]:
        img, windows = draw_preview_arrays(
            image, job.scale, job.tick, job.bbox_px, job.class_id, job.confidence,
            [job.pulses], geo,
        )  # fmt: skip
        return encode_jpeg(img, self.quality), len(windows)

    def close(self) -> None:
        pass


class PreviewEncoder:
    """The newest cycle of ``tap``, drawn and encoded at most ``max_fps``
    times a second, by a ``PreviewProcess`` (or, ``inline``, in the calling
    thread: ``InlineRenderer``); callers within one period (or while no new
    frame came) get the same image. 5 a second by default: the dashboard
    asks 4, and each new image costs the controller's process one scaled
    copy of the frame (``PreviewTap.take``; ``bench api_load``)."""

    def __init__(
        self,
        tap: PreviewTap,
        geometry: Callable[[], PreviewGeometry],
        max_fps: float = 5.0,
        width_px: int = 640,
        quality: int = 75,
        inline: bool = False,
    ) -> None:
        self.tap = tap
        self.geometry = geometry  # the line's current parameters
        self.period_s = 1.0 / max_fps
        self.width_px = width_px
        self.renderer: PreviewProcess | InlineRenderer = (
            InlineRenderer(quality) if inline else PreviewProcess(quality)
        )
        self._lock = threading.Lock()
        self._cached: PreviewImage | None = None
        self._made_at = -1e9
        self.encoded = 0

    def image(self) -> PreviewImage | None:
        """The newest preview, or None before the first frame; raises
        ``PreviewUnavailableError`` if the renderer failed."""
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._made_at < self.period_s:
                return self._cached
            last = None if self._cached is None else self._cached.frame_id
            shot = self.tap.take(self.width_px, last)
            if shot is None:
                return self._cached  # no frame yet (None), or still the same frame
            jpeg, windows = self.renderer.render(shot.job, shot.image, self.geometry())
            self._cached = PreviewImage(
                jpeg, shot.frame_id, shot.job.tick, shot.t_unix_s, shot.detections, windows
            )
            self._made_at = now
            self.encoded += 1
            return self._cached

    def close(self) -> None:
        self.renderer.close()
