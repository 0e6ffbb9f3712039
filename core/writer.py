"""``BoundedWriter``: a thread that does slow work (disk, network) for a
producer that must never wait, through a bounded queue.

``offer`` never blocks: when the queue is full the item is dropped and
counted (``dropped``). ``flush`` waits until everything offered so far is
handled; ``close`` flushes and joins. An exception in ``handle`` is logged and
counted (``failed``) and the thread goes on.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["BoundedWriter"]

T = TypeVar("T")
log = logging.getLogger("core.writer")


class _Stop:
    pass


class BoundedWriter(Generic[T]):
    def __init__(self, name: str, handle: Callable[[T], None], max_pending: int = 1024) -> None:
        if max_pending < 1:
            raise ValueError(f"{name}: max_pending must be >= 1")
        self.name = name
        self._handle = handle
        self._q: queue.Queue[T | _Stop] = queue.Queue(max_pending)
        self.dropped = 0
        self.handled = 0
        self.failed = 0
        self.last_error = ""
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def offer(self, item: T) -> bool:
        """Queue ``item``; False (and counted in ``dropped``) when full or closed."""
        if self._closed:
            self.dropped += 1
            return False
        try:
            self._q.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def pending(self) -> int:
        return self._q.unfinished_tasks

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every item offered so far was handled; False on timeout."""
        if timeout_s is None:
            self._q.join()
            return True
        done = threading.Event()

        def waiter() -> None:
            self._q.join()
            done.set()

        threading.Thread(target=waiter, daemon=True, name=f"{self.name}-flush").start()
        return done.wait(timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        if self._closed:
            return
        self._closed = True
        self._q.put(_Stop())
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            item = self._q.get()
            try:
                if isinstance(item, _Stop):
                    return
                self._handle(item)
                self.handled += 1
            except Exception as exc:  # the writer outlives one bad item
                self.failed += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("%s: writing failed", self.name)
            finally:
                self._q.task_done()
