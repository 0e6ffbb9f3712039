"""A capped labelling folder for fragments the classifier was unsure of.

Each saved fragment is three files sharing a stem
``f<frame_id>_t<tick>_<row>``: the classifier crop (``.crop.png``), a wider
context cut from the frame (``.ctx.png``) and the prediction (``.json``: class
probabilities, bbox, belt position). A plant labels them (moves the crop into
``<class>/`` folders, the format ``sortline model train --data`` reads) and
retrains on its own stream.

Writing happens on a background thread behind a bounded queue, so the frame
loop never waits on the disk: when the queue is full, offers are dropped and
counted. The folder holds at most ``max_items`` fragments; the oldest are
deleted first.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core.files import atomic_write_text
from core.frame import Frame
from core.types import Detections
from core.writer import BoundedWriter

__all__ = ["UncertainFolder"]

_SUFFIXES = (".crop.png", ".ctx.png", ".json")


class UncertainFolder:
    """Receives uncertain fragments from ``VisionPipeline`` (its ``uncertain`` sink)."""

    def __init__(
        self,
        folder: str | Path,
        max_items: int = 2000,
        max_per_frame: int = 4,
        context_px: int = 192,
        queue_size: int = 64,
    ) -> None:
        if max_items < 1 or max_per_frame < 1:
            raise ValueError("max_items and max_per_frame must be >= 1")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_items = max_items
        self.max_per_frame = max_per_frame
        self.context_px = context_px
        self.saved = 0
        self.dropped = 0
        self._stems: collections.deque[str] = collections.deque(
            sorted(p.name[: -len(".json")] for p in self.folder.glob("*.json"))
        )
        self._writer: BoundedWriter[dict[str, Any]] = BoundedWriter(
            "uncertain-writer", self._write, queue_size
        )

    def offer(
        self,
        frame: Frame,
        dets: Detections,
        crops: np.ndarray | None,
        class_names: tuple[str, ...],
    ) -> None:
        """Queue up to ``max_per_frame`` of the least confident rows (never blocks).
        ``crops``: the classifier's crops of ``dets``, or None to keep the
        bounding box cut from the frame instead."""
        order = np.argsort(dets.confidence)[: self.max_per_frame]
        for row in order:
            item = self._item(frame, dets, crops, class_names, int(row))
            if not self._writer.offer(item):
                self.dropped += 1

    def _item(
        self,
        frame: Frame,
        dets: Detections,
        crops: np.ndarray | None,
        names: tuple[str, ...],
        row: int,
    ) -> dict[str, Any]:
        x0, y0, x1, y1 = (float(v) for v in dets.bbox_px[row])
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        half = max(self.context_px / 2, (x1 - x0), (y1 - y0))
        h, w = frame.image.shape[:2]
        c0, c1 = max(int(cx - half), 0), min(int(cx + half), w)
        r0, r1 = max(int(cy - half), 0), min(int(cy + half), h)
        prob = dets.class_prob[row]
        meta = {
            "frame_id": frame.frame_id,
            "tick": frame.tick,
            "bbox_px": [x0, y0, x1, y1],
            "context_origin_px": [c0, r0],
            "centroid_mm": [float(v) for v in dets.centroid_mm[row]],
            "predicted": names[int(dets.class_id[row])] if int(dets.class_id[row]) >= 0 else None,
            "confidence": float(dets.confidence[row]),
            "class_prob": {n: round(float(p), 5) for n, p in zip(names, prob, strict=False)},
        }
        return {
            "stem": f"f{frame.frame_id:09d}_t{frame.tick:010d}_{row:03d}",
            "crop": crops[row].copy()
            if crops is not None
            else frame.image[int(y0) : int(y1) + 1, int(x0) : int(x1) + 1].copy(),
            "context": frame.image[r0:r1, c0:c1].copy(),
            "meta": meta,
        }

    def _write(self, item: dict[str, Any]) -> None:
        stem = item["stem"]
        cv2.imwrite(str(self.folder / f"{stem}.crop.png"), item["crop"])
        cv2.imwrite(str(self.folder / f"{stem}.ctx.png"), item["context"])
        atomic_write_text(self.folder / f"{stem}.json", json.dumps(item["meta"], indent=1))
        self._stems.append(stem)
        self.saved += 1
        while len(self._stems) > self.max_items:
            old = self._stems.popleft()
            for suffix in _SUFFIXES:
                (self.folder / f"{old}{suffix}").unlink(missing_ok=True)

    def flush(self) -> None:
        """Wait until every queued fragment is on disk."""
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()

    @property
    def count(self) -> int:
        return len(self._stems)
