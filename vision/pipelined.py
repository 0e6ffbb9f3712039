"""``PipelinedVision``: the two stages of ``VisionPipeline`` on two cores.

The caller's thread segments frame n+1 (``prepare``) while a worker thread
classifies frame n (``finish``). OpenCV, the Numba kernels and
ONNX Runtime all release the GIL, so the stages overlap on a 2-core machine;
the price is latency: a frame's detections come back from the next ``push``
(or from ``flush``). Each frame's latency (start of ``prepare`` to the end of
``finish``) is kept for status and benchmarks. Cutting the crops goes to the
stage where the slower of the two ends up fastest (running means of thread
CPU time).

Python's GIL switch interval (5 ms by default) decides how long a thread that
returns from a GIL-free call waits while the other runs Python; with a hand-over
every frame that wait is the frame time. ``PipelinedVision`` lowers it to
``switch_interval_s`` (0.5 ms) for the process while it runs and restores it on
``close``: measured here, 84 -> 145 frames/s with 25 fragments in view.
"""

from __future__ import annotations

import collections
import functools
import logging
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

import numpy as np

from core.frame import Frame
from core.rt import set_fifo
from core.types import Detections
from vision.pipeline import Prepared, VisionPipeline

__all__ = ["PipelinedVision"]

BALANCE_ALPHA = 0.05


log = logging.getLogger(__name__)


def _worker_priority(rt_priority: int) -> None:
    """The worker thread's SCHED_FIFO; a refusal is logged, never the end of the
    pool (an initializer that raises breaks it)."""
    try:
        set_fifo(rt_priority, "control.rt_priority")
    except OSError as exc:
        log.error("%s; the vision worker runs at normal priority", exc)


class PipelinedVision:
    """``push(frame)`` returns the previous frame's ``Detections`` (None for the first).

    pipeline:          the ``VisionPipeline`` to run; do not call its ``process`` meanwhile.
    keep_latency:      how many recent per-frame latencies ``latency_s`` keeps.
    switch_interval_s: GIL switch interval while running (never raised; None: untouched).
    rt_priority:       SCHED_FIFO priority of the worker thread (0: normal; ``core.rt``).
    """

    def __init__(
        self,
        pipeline: VisionPipeline,
        keep_latency: int = 10_000,
        switch_interval_s: float | None = 0.0005,
        rt_priority: int = 0,
    ) -> None:
        self.pipeline = pipeline
        init = functools.partial(_worker_priority, rt_priority) if rt_priority else None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="vision-classify", initializer=init)
        self._pending: Future[Detections] | None = None
        self._buffer = 0
        # running thread CPU s of prepare and finish (crops excluded) and of the crops
        self._load = (0.0, 0.0, 0.0)
        pipeline.crops_in_prepare = False
        self._old_switch_s = sys.getswitchinterval()
        if switch_interval_s is not None and switch_interval_s < self._old_switch_s:
            sys.setswitchinterval(switch_interval_s)
        self.latency_s: collections.deque[float] = collections.deque(maxlen=keep_latency)

    def push(self, frame: Frame) -> Detections | None:
        """Start ``frame``; return the detections of the frame pushed before it.

        A bad frame raises ``FrameError`` here and leaves the frame in flight alone.
        """
        prep = self.pipeline.prepare(frame, self._buffer)  # overlaps the pending finish
        self._buffer ^= 1
        done = self._collect()
        self._pending = self._pool.submit(self._finish, prep)
        return done

    def flush(self) -> Detections | None:
        """Detections of the last pushed frame (None if none is in flight)."""
        return self._collect()

    def close(self) -> None:
        """Finish the frame in flight (its detections are dropped), stop the worker and
        restore the GIL switch interval."""
        try:
            self._collect()
        finally:
            self._pool.shutdown(wait=True)
            sys.setswitchinterval(self._old_switch_s)

    def latency_ms(self, q: float) -> float:
        """The ``q``-th percentile (0..100) of the kept per-frame latencies, ms (nan if none)."""
        if not self.latency_s:
            return float("nan")
        return 1000.0 * float(np.percentile(np.fromiter(self.latency_s, float), q))

    def _finish(self, prep: Prepared) -> Detections:
        dets = self.pipeline.finish(prep)
        self.latency_s.append(time.perf_counter() - prep.t0_s)
        self._balance(*self.pipeline.last_split_cpu_s)
        return dets

    def _balance(self, prepare_s: float, finish_s: float, crops_s: float) -> None:
        """Cut crops where the slower stage ends up fastest (running means of thread
        CPU time over ~20 frames): max(A + c, B) against max(A, B + c)."""
        a = BALANCE_ALPHA
        prep, fin, crops = (
            (1 - a) * old + a * new
            for old, new in zip(self._load, (prepare_s, finish_s, crops_s), strict=True)
        )
        self._load = (prep, fin, crops)
        self.pipeline.crops_in_prepare = max(prep + crops, fin) < max(prep, fin + crops)

    def _collect(self) -> Detections | None:
        pending, self._pending = self._pending, None
        return pending.result() if pending is not None else None

    def __enter__(self) -> PipelinedVision:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
