"""``core.rt``: SCHED_FIFO is set where the process may, and refused in one
line naming the setting where it may not (an unprivileged user, run through
``setpriv`` when the tests run as root, as CI does)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from core.rt import check_fifo, set_fifo

ROOT = Path(__file__).resolve().parents[2]


def test_refused_in_one_line_for_an_unprivileged_user() -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run as an unprivileged user")
    as_nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                 sys.executable, "-c"]  # fmt: skip
    path = f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
    probe = subprocess.run([*as_nobody, path + "import core.rt\n"], capture_output=True, timeout=60)
    if probe.returncode != 0:  # e.g. a checkout under /root, mode 700
        pytest.skip("an unprivileged user cannot run this checkout's Python")
    code = path + "from core.rt import check_fifo\ncheck_fifo(5, 'control.rt_priority')\n"
    r = subprocess.run([*as_nobody, code], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("PermissionError: control.rt_priority = 5: SCHED_FIFO refused"), last


def test_set_on_a_thread_and_the_probe_puts_the_caller_back() -> None:
    try:
        check_fifo(3, "probe")
    except PermissionError:
        pytest.skip("this machine does not grant SCHED_FIFO")
    assert os.sched_getscheduler(0) == os.SCHED_OTHER
    seen: list[tuple[int, int]] = []

    def run() -> None:
        set_fifo(3, "probe")
        seen.append((os.sched_getscheduler(0), os.sched_getparam(0).sched_priority))

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert seen == [(os.SCHED_FIFO, 3)]
    assert os.sched_getscheduler(0) == os.SCHED_OTHER
