"""``LoopThread``: an asyncio event loop in a daemon thread (asyncua's
``ThreadLoop``), the one such helper for the PLC bridge, the virtual PLC's
Modbus server and the plant's score endpoint.

Other threads hand work to it without waiting: ``call_soon`` (a plain
callable, ``loop.call_soon_threadsafe``) or ``submit`` (a coroutine, returns a
``concurrent.futures.Future`` the caller may ignore). ``run`` blocks for a
result: for set-up and tests, never on a real-time path.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread:
    """``start()`` returns once the loop runs; ``stop()`` cancels what is left
    on it, closes it and joins the thread. ``rt_priority``: SCHED_FIFO priority
    of the thread (1..99, needs CAP_SYS_NICE); a failure is kept in
    ``priority_error``, not raised."""

    def __init__(self, name: str, rt_priority: int | None = None) -> None:
        self.name = name
        self.rt_priority = rt_priority
        self.priority_error = ""
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout_s: float = 5.0) -> None:
        if self._thread is not None:
            raise RuntimeError(f"{self.name}: loop thread already started")
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError(f"{self.name}: event loop did not start")

    def _run(self) -> None:
        if self.rt_priority is not None:
            try:
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.rt_priority))
            except (OSError, AttributeError) as exc:
                self.priority_error = f"rt_priority {self.rt_priority}: {exc}"
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self.loop = loop
        loop.call_soon(self._ready.set)
        try:
            loop.run_forever()
        finally:
            self._cancel_all(loop)
            with contextlib.suppress(RuntimeError):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    @staticmethod
    def _cancel_all(loop: asyncio.AbstractEventLoop, rounds: int = 50) -> None:
        """Cancel what is left and let it finish, cancelling again what runs on:
        on Python 3.11 ``asyncio.wait_for`` drops a cancel that lands as its
        awaitable completes (CPython gh-86296), and a single cancel + gather
        could then wait forever. A task still running after ``rounds`` x 0.1 s
        is abandoned with the loop."""
        for _ in range(rounds):
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            if not tasks:
                return
            for t in tasks:
                t.cancel()
            loop.run_until_complete(asyncio.wait(tasks, timeout=0.1))
            for t in tasks:  # retrieved, as gather(return_exceptions=True) did
                if t.done() and not t.cancelled():
                    t.exception()

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop; never blocks. RuntimeError if stopped."""
        loop = self.loop
        if loop is None or loop.is_closed():
            raise RuntimeError(f"{self.name}: loop not running")
        loop.call_soon_threadsafe(fn, *args)

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop; never blocks."""
        loop = self.loop
        if loop is None or loop.is_closed():
            coro.close()
            raise RuntimeError(f"{self.name}: loop not running")
        return asyncio.run_coroutine_threadsafe(coro, loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result (set-up, tests)."""
        return self.submit(coro).result(timeout_s)

    def stop(self, timeout_s: float = 5.0) -> None:
        loop, thread = self.loop, self._thread
        if loop is not None and thread is not None:
            with contextlib.suppress(RuntimeError):  # already closed
                loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout_s)
        self._thread = None
        self.loop = None
        self._ready.clear()
