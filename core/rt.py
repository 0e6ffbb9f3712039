"""Real-time scheduling for the threads that must not wait: Linux
``SCHED_FIFO`` at a configured priority (``[control] rt_priority`` for the
frame loop and its vision worker, ``[plc] rt_priority`` for the bridge).

A ``SCHED_FIFO`` thread runs as soon as it is runnable, ahead of every
normal thread of the machine: the status API's threads, a browser, a
virtual plant. Measured with ``sortline bench api_load`` (three dashboards
and a scrape): at normal priority the frame p99 rose by about 4.7 ms while
they were served, most of it the frame loop waiting for a core; see
``bench/README.md``. It needs root, ``CAP_SYS_NICE`` or an ``rtprio`` limit
(``ulimit -r``); without them the line refuses to start in one line rather
than run without the priority it was configured with.
"""

from __future__ import annotations

import os

__all__ = ["check_fifo", "set_fifo"]


def set_fifo(priority: int, what: str, tid: int = 0) -> None:
    """Thread ``tid`` (0: the calling one) to ``SCHED_FIFO`` at ``priority``;
    ``PermissionError``/``OSError`` in one line naming ``what`` if refused."""
    try:
        os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as exc:
        raise type(exc)(
            f"{what} = {priority}: SCHED_FIFO refused ({exc.strerror}); run as root, with "
            "CAP_SYS_NICE or an rtprio limit (ulimit -r), or set it to 0"
        ) from None


def check_fifo(priority: int, what: str) -> None:
    """Refuse (as ``set_fifo``) now, before anything starts, if ``priority``
    cannot be had: tried on the calling thread, which is then put back."""
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    set_fifo(priority, what)
    os.sched_setscheduler(0, policy, param)
