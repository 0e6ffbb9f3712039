"""Pipelined vision in the real-time loop (segmentation of frame n+1 beside
classification of frame n): the same fragments are seen and sorted as with
the synchronous pipeline, one frame later."""

from __future__ import annotations

from typing import Any

import pytest

from sortline.config import load_config
from sortline.runtime import SortingLine

N_FRAMES = 240


def _sorted(pipelined: bool) -> tuple[SortingLine, dict[str, int], dict[str, Any]]:
    line = SortingLine(
        load_config(), stepped=True, plc_port=0, seed=3, records=False, pipelined=pipelined
    )
    line.start()
    try:
        line.run_frames(N_FRAMES)
        return line, line.parts.controller_stats(), line.report()
    finally:
        line.stop()


@pytest.mark.slow
def test_pipelined_sorts_like_synchronous() -> None:
    sync_line, sync, sync_report = _sorted(pipelined=False)
    pipe_line, pipe, pipe_report = _sorted(pipelined=True)
    assert sync_line.frames == N_FRAMES
    assert pipe_line.frames == N_FRAMES - 1  # the last frame is still in flight
    assert sync["objects_seen"] > 30
    assert abs(pipe["objects_seen"] - sync["objects_seen"]) <= 2
    assert abs(pipe["objects_targeted"] - sync["objects_targeted"]) <= 2
    assert pipe["deadline_misses"] == 0
    assert pipe_report["recovery"] >= sync_report["recovery"] - 0.05
    assert pipe_report["purity"] >= sync_report["purity"] - 0.05
