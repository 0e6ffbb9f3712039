"""Frame accounting of the real-time loop: gaps and malformed frames are
dropped and counted, never passed on."""

from __future__ import annotations

import numpy as np

from core.frame import Frame
from sortline.config import load_config
from sortline.runtime import SortingLine


def test_gaps_and_bad_frames_are_counted_once() -> None:
    line = SortingLine(load_config(), stepped=True, plc_port=0, records=False)
    plant = line.parts.plant
    assert plant is not None
    line.start()
    try:
        line.process(plant.step())
        plant.step()  # the loop never sees this one: a gap of one
        plant.step()  # nor this one
        good = plant.step()
        line.process(good)
        small = Frame(np.zeros((100, 200, 3), np.uint8), good.frame_id + 1, good.tick, good.t_s)
        line.process(small)  # wrong size: rejected, not passed to vision
        assert (line.frames, line.frame_gaps, line.frames_bad) == (2, 2, 1)
        assert line.frames_dropped == 3
        assert line.status()["frames_dropped"] == 3
        assert line.report()["frames_dropped"] == 3
    finally:
        line.stop()
