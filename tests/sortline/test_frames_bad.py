"""Bad frames into the line's camera link and into vision: wrong size, wrong
dtype, all-black, all-saturated, partly saturated, out of order. Nothing
raises into the loop; each unusable frame is dropped and counted once; three
in a row hold the line with a cause naming the camera; a good frame clears it."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from calibration.geometry import LineGeometry
from core.frame import Frame
from sortline.camera_link import CameraLink
from vision.camera import RawFrame, SourceStalledError, check_image
from vision.pipeline import VisionPipeline

W, H = 1280, 512
RNG = np.random.default_rng(3)
GOOD = RNG.integers(40, 200, (H, W, 3), dtype=np.uint8)


def _image(kind: str) -> np.ndarray:
    images: dict[str, np.ndarray] = {
        "good": GOOD,
        "black": np.zeros((H, W, 3), np.uint8),
        "saturated": np.full((H, W, 3), 255, np.uint8),
        "half saturated": np.where(np.arange(W)[None, :, None] < W // 2, 255, GOOD).astype(
            np.uint8
        ),
        "wrong size": GOOD[: H // 2],
        "wrong dtype": GOOD.astype(np.float32),
        "mono": GOOD[:, :, 0].copy(),
    }  # fmt: skip
    return images[kind]


class ScriptedCamera:
    """A camera that checks each image as the real sources do (``check_image``)
    and plays a script of (kind, counter); then stalls."""

    def __init__(self, script: list[tuple[str, int]]) -> None:
        self._script: Iterator[tuple[str, int]] = iter(script)

    @property
    def name(self) -> str:
        return "scripted"

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def read(self, timeout_s: float) -> RawFrame:
        try:
            kind, counter = next(self._script)
        except StopIteration:
            raise SourceStalledError("scripted: end of script") from None
        image = check_image(self.name, _image(kind), counter, (W, H))
        return RawFrame(image, counter, float(counter) / 100, None)


def _play(script: list[tuple[str, int]]) -> tuple[CameraLink, list[int | None]]:
    link = CameraLink(ScriptedCamera(script), "scripted", stall_s=10.0)
    got = []
    for _ in script:
        raw = link.read(0.01)
        got.append(None if raw is None else raw.counter)
    return link, got


@pytest.mark.parametrize(
    ("kind", "usable"),
    [("good", True), ("mono", True), ("half saturated", True), ("black", False),
     ("saturated", False), ("wrong size", False), ("wrong dtype", False)],
)  # fmt: skip
def test_each_kind_is_used_or_dropped_and_counted(kind: str, usable: bool) -> None:
    link, got = _play([("good", 0), (kind, 1), ("good", 2)])
    assert got == [0, 1 if usable else None, 2]
    assert link.frames_bad == (0 if usable else 1)
    assert link.frames_lost == 0  # a dropped frame is not counted twice
    assert link.problem == ""


@pytest.mark.parametrize("kind", ["black", "saturated", "wrong size", "wrong dtype"])
def test_three_in_a_row_hold_and_a_good_frame_clears(kind: str) -> None:
    link = CameraLink(ScriptedCamera([("good", 0), (kind, 1), (kind, 2), (kind, 3), ("good", 4)]),
                      "scripted", stall_s=10.0)  # fmt: skip
    link.read(0.01)
    for _ in range(3):
        assert link.read(0.01) is None
    assert link.problem.startswith("camera delivers unusable frames: scripted: frame 3")
    assert link.read(0.01) is not None and link.problem == "" and link.frames_bad == 3


def test_out_of_order_frames_are_dropped_not_lost_and_a_restart_is_taken() -> None:
    script = [("good", 10), ("good", 12), ("good", 11), ("good", 12), ("good", 13), ("good", 0)]
    link, got = _play(script)
    assert got == [10, 12, None, None, 13, 0]  # 11 late, 12 twice; 0: the counter restarted
    assert link.frames_out_of_order == 2 and link.frames_lost == 0


@pytest.mark.parametrize("kind", ["good", "black", "saturated", "half saturated", "mono"])
def test_vision_takes_any_frame_of_the_right_size_without_crashing(kind: str) -> None:
    dets = VisionPipeline(LineGeometry(), None).process(Frame(_image(kind), 1, 1000, 0.01))
    assert len(dets) >= 0 and dets.frame_id == 1
    if kind in ("black", "saturated"):
        assert len(dets) == 0  # nothing on a blank frame
