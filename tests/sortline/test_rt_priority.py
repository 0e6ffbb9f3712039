"""``[control] rt_priority``: the frame loop's thread and its vision worker
run SCHED_FIFO at the configured priority on a wall-clock line, or, where the
machine does not allow it, the line refuses to start in one line naming the
setting; out-of-range values are refused by the config."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from core.rt import check_fifo
from sortline.config import load_config
from sortline.runtime import SortingLine


def _allowed(priority: int) -> bool:
    try:
        check_fifo(priority, "probe")
    except OSError:
        return False
    return True


def _config(tmp_path: Path, priority: int) -> Path:
    path = tmp_path / "line.toml"
    path.write_text(
        f"[control]\nrt_priority = {priority}\n[vision]\npipelined = true\n"
        "[records]\nenabled = false\n"
        f'[recipes]\ndir = "{tmp_path / "recipes"}"\n'
    )
    return path


def test_out_of_range_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"rt_priority"):
        load_config(_config(tmp_path, 100))


def test_the_frame_loop_runs_fifo_or_the_line_refuses(tmp_path: Path) -> None:
    cfg = load_config(_config(tmp_path, 7))
    line = SortingLine(cfg, plc_port=0, records=False)
    if not _allowed(7):
        with pytest.raises(PermissionError, match=r"control.rt_priority = 7: SCHED_FIFO refused"):
            line.start()
        line.stop()
        return
    main_policy = os.sched_getscheduler(0)
    line.start()
    try:
        deadline = time.monotonic() + 30.0
        names: dict[str, int] = {}
        while time.monotonic() < deadline and len(names) < 2:
            names = {
                t.name.split("_")[0]: t.native_id
                for t in threading.enumerate()
                if t.native_id and t.name.startswith(("rt-loop", "vision-classify"))
            }
            time.sleep(0.05)
        assert set(names) == {"rt-loop", "vision-classify"}
        for tid in names.values():
            assert os.sched_getscheduler(tid) == os.SCHED_FIFO
            assert os.sched_getparam(tid).sched_priority == 7
        assert os.sched_getscheduler(0) == main_policy  # the probe put the caller back
        assert line.frames > 0
    finally:
        line.stop()
