"""Frame accounting of the frame loop: frames lost before the loop (camera
counter gaps), malformed frames and a camera that stops are counted and
reported, never passed on; the line holds on a camera problem and recovers
by itself when frames flow again."""

from __future__ import annotations

import time

from core.frame import FrameError
from sortline.config import load_config
from sortline.runtime import SortingLine
from vision.camera import Camera, RawFrame, SourceStalledError

from .conftest import until


class Tamper:
    """Wraps the plant's camera: on chosen reads it skips frames (the loop
    never sees them), delivers a malformed frame, or stalls."""

    def __init__(self, cam: Camera, skip: dict[int, int], bad: set[int], stall: set[int]) -> None:
        self.cam, self.skip, self.bad, self.stall = cam, skip, bad, stall
        self.reads = 0

    @property
    def name(self) -> str:
        return "tamper:" + self.cam.name

    def open(self) -> None:
        self.cam.open()

    def close(self) -> None:
        self.cam.close()

    def read(self, timeout_s: float) -> RawFrame:
        self.reads += 1
        if self.reads in self.stall:
            time.sleep(0.25)  # longer than [camera] stall_ms: the camera is stalled
            raise SourceStalledError(f"{self.name}: no frame for {timeout_s:.2f} s")
        for _ in range(self.skip.get(self.reads, 0)):
            self.cam.read(timeout_s)
        raw = self.cam.read(timeout_s)
        if self.reads in self.bad:
            raise FrameError(f"{self.name}: frame {raw.counter}: 200x100 px, configured 1280x512")
        return raw


def test_gaps_bad_frames_and_stalls_are_counted_and_held_on() -> None:
    line = SortingLine(load_config(), stepped=True, plc_port=0, records=False)
    tamper = Tamper(line.camera.camera, skip={3: 2}, bad={5}, stall={8, 9, 10})
    line.camera.camera = tamper
    line.start()
    try:
        line.run_frames(7)  # reads 1..7: a gap of two frames, one malformed frame
        assert (line.frames, line.camera.frames_lost, line.camera.frames_bad) == (6, 2, 1)
        assert line.state.state.name == "EXECUTE"
        line.run_frames(3)  # reads 8..10: the camera stalls
        assert line.state.state.name == "HELD"
        assert any("camera stalled: tamper:" in c for c in line.state.causes), line.state.causes
        line.run_frames(2)  # frames flow again: the line recovers by itself
        assert line.state.state.name == "EXECUTE"
        assert line.frames == 8 and line.frames_dropped == 3
        snap = line.snapshot()
        assert snap.frames_dropped == 3 and snap.camera.frames_lost == 2
        assert "stalled" in snap.camera.last_error
        report = line.report()
        assert report["frames_dropped"] == 3 and report["camera"]["frames_bad"] == 1
    finally:
        line.stop()


def test_a_failing_cycle_holds_the_line_until_cycles_succeed_again() -> None:
    """Wall clock: the real-time thread outlives cycles that raise (here the
    vision stage), holds the line after three in a row, says why, and goes
    back to Execute when cycles succeed again."""
    line = SortingLine(load_config(), plc_port=0, records=False)
    vision = line.parts.vision
    real = vision.process
    broken = {"on": False}

    def process(frame):  # type: ignore[no-untyped-def]
        if broken["on"]:
            raise RuntimeError("model output has the wrong shape")
        return real(frame)

    vision.process = process  # type: ignore[method-assign]
    line.start()
    try:
        assert until(lambda: line.frames > 20 and line.state.state.name == "EXECUTE", 20)
        broken["on"] = True
        assert until(lambda: line.state.state.name == "HELD", 5)
        assert any("frame loop failing: RuntimeError" in c for c in line.state.causes)
        assert line.loop.cycle_errors >= 3
        broken["on"] = False
        assert until(lambda: line.state.state.name == "EXECUTE", 5), line.state.causes
    finally:
        line.stop()


def test_labelling_folder_is_a_listener(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "line.toml"
    cfg.write_text('[vision]\nuncertain_dir = "unsure"\nuncertain_below = 0.999\n')
    line = SortingLine(load_config(cfg), stepped=True, plc_port=0, records=False)
    line.start()
    try:
        line.run_frames(60)
    finally:
        line.stop()  # closing the listener writes what it queued
    saved = sorted((tmp_path / "unsure").glob("*.json"))
    assert saved, "no uncertain fragment kept"
    stem = saved[0].name.removesuffix(".json")
    assert (tmp_path / "unsure" / f"{stem}.crop.png").is_file()
    assert (tmp_path / "unsure" / f"{stem}.ctx.png").is_file()
