"""Child processes of the plant: they get SIGTERM when the plant process dies
(Linux ``PR_SET_PDEATHSIG``, so a killed supervisor leaks no lines), write
into a log file, and are stopped with SIGTERM, then SIGKILL after a bound."""

from __future__ import annotations

import ctypes
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["describe_exit", "spawn", "stop_all"]

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def spawn(cmd: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    """``cmd`` with stdout and stderr appended to ``log``, in its own session
    (a Ctrl-C in the terminal reaches the plant, which stops its children in
    order), terminated when the plant process dies."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            list(cmd), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=_die_with_parent,
        )  # fmt: skip


def stop_all(procs: Sequence[subprocess.Popen[bytes]], timeout_s: float) -> list[int]:
    """SIGTERM to every running one, wait up to ``timeout_s`` in all, SIGKILL
    what is left -> the pids that had to be killed."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + timeout_s
    killed = []
    for p in procs:
        try:
            p.wait(max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10.0)
            killed.append(p.pid)
    return killed


def describe_exit(code: int) -> str:
    """``Popen.returncode`` in words: ``exit 1``, ``signal 9 (SIGKILL)``."""
    if code >= 0:
        return f"exit {code}"
    try:
        return f"signal {-code} ({signal.Signals(-code).name})"
    except ValueError:
        return f"signal {-code}"
