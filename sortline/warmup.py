"""Compile (or load from Numba's cache) every hot kernel before the line runs.

Numba compiles a kernel on its first call. On a fresh install that is tens of
seconds spread over the first frames of a run: the real-time loop stalls,
frames are dropped and pulses miss their deadlines while it compiles, and a
kernel reached only later (the first scheduled pulse, the first touching
fragments) stalls it again then. ``warm_up`` pushes synthetic frames through
a throw-away ``VisionPipeline`` and a synthetic detection stream through a
throw-away ``Controller`` of the same geometry, classifier and recipe, so
the line's own belt model, tracks and counters are untouched. With the
caches on disk it takes about a second.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from calibration.geometry import LineGeometry
from control.controller import Controller
from control.params import ControlParams
from control.recipe import Recipe
from control.synthetic import SyntheticCamera, random_objects
from core.frame import Frame
from vision.classifier import Classifier
from vision.learned import InstanceCue
from vision.merge import solidities
from vision.pipeline import PixelToBelt, VisionPipeline
from vision.segment import Segmenter

__all__ = ["WarmUp", "warm_up"]

_BELT_BGR = (58, 60, 62)
_PLAIN_FRAMES = 4  # belt only: the belt model settles
_SCENE_FRAMES = 6
_CONTROL_FRAMES = 40  # fragments placed in view reach their decision within this


@dataclass(frozen=True)
class WarmUp:
    """What ``warm_up`` did: seconds spent, and the pulses and detections the
    throw-away parts produced (both > 0 when every stage was reached)."""

    seconds: float
    detections: int
    pulses: int


def _scene(width_px: int, height_px: int, k: int) -> np.ndarray:
    """A belt frame with isolated pieces, two touching pieces of different
    colours and two overlapping ones of one colour (the split paths)."""
    img = np.full((height_px, width_px, 3), _BELT_BGR, np.uint8)
    sx, sy = width_px / 1280.0, height_px / 512.0
    shift = int(6 * k * sy)

    def pt(x: float, y: float) -> tuple[int, int]:
        return int(x * sx), int(y * sy) + shift

    def ax(a: float, b: float) -> tuple[int, int]:
        return max(int(a * sx), 2), max(int(b * sy), 2)

    cv2.rectangle(img, pt(150, 140), pt(210, 190), (40, 110, 190), -1)  # copper-ish
    cv2.rectangle(img, pt(400, 300), pt(470, 330), (200, 200, 205), -1)
    cv2.ellipse(img, pt(700, 220), ax(45, 25), 0, 0, 360, (60, 160, 200), -1)
    cv2.ellipse(img, pt(775, 220), ax(40, 25), 0, 0, 360, (150, 150, 150), -1)  # touching
    cv2.circle(img, pt(1000, 260), max(int(30 * sx), 3), (30, 30, 150), -1)
    cv2.circle(img, pt(1045, 260), max(int(30 * sx), 3), (30, 30, 150), -1)  # overlapping
    cv2.line(img, pt(520, 120), pt(620, 170), (50, 120, 200), max(int(4 * sx), 2))  # a wire
    return img


def _warm_vision(
    geometry: LineGeometry, classifier: Classifier | None, camera_model: PixelToBelt | None
) -> int:
    cam = geometry.camera
    pipe = VisionPipeline(geometry, classifier, camera_model=camera_model)
    plain = np.full((cam.height_px, cam.width_px, 3), _BELT_BGR, np.uint8)
    n_dets = 0
    for i in range(_PLAIN_FRAMES + _SCENE_FRAMES):
        k = i - _PLAIN_FRAMES
        image = plain if k < 0 else _scene(cam.width_px, cam.height_px, k)
        n_dets += len(pipe.process(Frame(image=image, frame_id=i, tick=250 * i, t_s=0.01 * i)))
    # the merge flag's hull, which a scene this sparse may not reach (it reads
    # only segments far larger than the feed's median)
    seg = pipe.segmenter.segment(_scene(cam.width_px, cam.height_px, 0))
    solidities(seg, np.arange(len(seg)))
    return n_dets


def _warm_control(
    geometry: LineGeometry,
    recipe: Recipe,
    class_names: tuple[str, ...],
    margin_ms: float,
    params: ControlParams | None,
) -> int:
    ctl = Controller(geometry, recipe, class_names, margin_ms, params)
    targets = [class_names.index(c) for c in recipe.targets() if c in class_names]
    top, _ = geometry.camera.view_y_range_mm
    obj = random_objects(geometry, 40, (top - 200.0, top + 150.0), len(class_names), seed=0)
    if targets:  # every other piece a target: pulses are scheduled and merged
        obj.cls[::2] = np.resize(np.array(targets), obj.cls[::2].shape)
    synth = SyntheticCamera(geometry, obj, len(class_names), noise_mm=0.3, seed=0)
    n_pulses = 0
    for f in range(_CONTROL_FRAMES):
        dets, _ = synth.frame(f)
        _, pulses = ctl.update(dets)
        n_pulses += len(pulses)
    return n_pulses


def _warm_cue(cue: InstanceCue, segmenter_scale: int, geometry: LineGeometry) -> None:
    """The line's own instance-cue session, once on a whole empty low-resolution
    frame: its first run (~15 ms), and an input about as large as the largest
    atlas of boxes it reads on a full belt, so ONNX Runtime's arena mostly does
    not grow on the loop. The cue's kept cores are not touched (``predict_core``
    keeps none)."""
    cam = geometry.camera
    h, w = cam.height_px // segmenter_scale, cam.width_px // segmenter_scale
    small = np.full((h, w, 3), _BELT_BGR, np.uint8)
    cue.predict_core(small, small, np.zeros((h, w), np.uint8))


def warm_up(
    geometry: LineGeometry,
    classifier: Classifier | None,
    recipe: Recipe,
    class_names: tuple[str, ...],
    deadline_margin_ms: float = 5.0,
    camera_model: PixelToBelt | None = None,
    control_params: ControlParams | None = None,
    segmenter: Segmenter | None = None,
) -> WarmUp:
    """Run the hot kernels once on throw-away parts (see the module docstring);
    ``control_params``: the line's (its aiming rule's kernels are the ones warmed);
    ``segmenter``: the line's, whose instance cue (if it has one) is run once."""
    t0 = time.perf_counter()
    if segmenter is not None and segmenter.cue is not None:
        _warm_cue(segmenter.cue, segmenter.params.scale, geometry)
    n_dets = _warm_vision(geometry, classifier, camera_model)
    n_pulses = _warm_control(geometry, recipe, class_names, deadline_margin_ms, control_params)
    return WarmUp(seconds=time.perf_counter() - t0, detections=n_dets, pulses=n_pulses)
