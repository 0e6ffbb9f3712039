"""Ground truth in place of the line's vision, for ``sortline bench line
--decompose`` (issue 15: where purity goes, stage by stage).

The embedded plant's ``render`` is tapped so each frame's ``FrameTruth`` is
kept by frame id (the camera ring carries the plant's frame id as the
camera counter, so the frame loop's frame has the same id). ``TruthVision``
then replaces the frame loop's vision stage, and nothing else:

- ``"classes"``: the line's own segmentation and measurement, each segment's
  class the truth's class of the fragment owning most of its box's pixels
  (segmentation and actuation are the line's; classification is perfect);
- ``"segments"``: one detection per visible fragment straight from the truth
  (``bench.air.truth_detections``: outline extents in belt mm, true class);
  only tracking, prediction and actuation are the line's.

The encoder count and frame id stay the frame's (the line's time base).
A bench instrument: the line never runs with it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Literal

import numpy as np

from bench.air import P_TRUE, truth_detections
from core.frame import Frame
from core.types import Detections

Mode = Literal["classes", "segments"]
_KEEP = 32  # frames of truth kept (the ring holds at most a few in flight)


class TruthTap:
    """Keeps the truth of the plant's last frames by frame id."""

    def __init__(self, plant: Any) -> None:
        self._truths: OrderedDict[int, Any] = OrderedDict()
        render = plant.render

        def tapped() -> Frame:
            frame = render()
            self._truths[int(frame.frame_id)] = plant.visible_truth()
            while len(self._truths) > _KEEP:
                self._truths.popitem(last=False)
            return frame

        plant.render = tapped

    def truth(self, frame_id: int) -> Any:
        try:
            return self._truths[int(frame_id)]
        except KeyError:
            raise RuntimeError(f"no plant truth for frame {frame_id}") from None


def _one_hot(cls: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(cls)
    prob = np.full((n, n_classes), (1.0 - P_TRUE) / (n_classes - 1), np.float32)
    prob[np.arange(n), cls] = P_TRUE
    return prob, np.full(n, P_TRUE, np.float32)


class TruthVision:
    """The frame loop's vision stage with ground truth in place of a stage."""

    def __init__(self, inner: Any, tap: TruthTap, geometry: Any, n_classes: int, mode: Mode):
        self.inner = inner
        self.tap = tap
        self.geometry = geometry
        self.n_classes = n_classes
        self.mode = mode

    def process(self, frame: Frame) -> Detections:
        truth = self.tap.truth(frame.frame_id)
        if self.mode == "segments":
            dets, _ = truth_detections(truth, self.geometry, self.n_classes)
            return Detections(
                frame_id=int(frame.frame_id), tick=int(frame.tick), bbox_px=dets.bbox_px,
                centroid_mm=dets.centroid_mm, extent_mm=dets.extent_mm, area_mm2=dets.area_mm2,
                class_id=dets.class_id, confidence=dets.confidence, class_prob=dets.class_prob,
            )  # fmt: skip
        dets = self.inner.process(frame)
        cls = owner_classes(dets.bbox_px, truth)
        known = cls >= 0
        prob, conf = _one_hot(np.maximum(cls, 0), self.n_classes)
        prob[~known] = 1.0 / self.n_classes  # a segment of belt only: no class
        conf[~known] = 0.0
        return Detections(
            frame_id=dets.frame_id, tick=dets.tick, bbox_px=dets.bbox_px,
            centroid_mm=dets.centroid_mm, extent_mm=dets.extent_mm, area_mm2=dets.area_mm2,
            class_id=np.where(known, cls, -1).astype(np.int16), confidence=conf,
            class_prob=prob,
        )  # fmt: skip


def owner_classes(bbox_px: np.ndarray, truth: Any) -> np.ndarray:
    """(N,) int64 the true class of the fragment owning most pixels of each box
    (the topmost fragment at each pixel), -1 where the box holds only belt."""
    lab = truth.label_image()
    cls_of = dict(zip(truth.fragment_id.tolist(), truth.class_id.tolist(), strict=True))
    h, w = lab.shape
    out = np.full(len(bbox_px), -1, np.int64)
    for k, (x0, y0, x1, y1) in enumerate(np.asarray(bbox_px, np.float64)):
        c0, r0 = max(int(x0), 0), max(int(y0), 0)
        c1, r1 = min(int(np.ceil(x1)) + 1, w), min(int(np.ceil(y1)) + 1, h)
        ids = lab[r0:r1, c0:c1].ravel()
        ids = ids[ids >= 0]
        if len(ids):
            vals, counts = np.unique(ids, return_counts=True)
            out[k] = cls_of.get(int(vals[np.argmax(counts)]), -1)
    return out
