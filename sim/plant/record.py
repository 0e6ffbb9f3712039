"""Record the virtual plant to a video with a JSON ground truth beside it.

The JSON (``<video stem>.json``) holds the scene, the geometry, one entry per
frame (frame id, encoder tick, sim time) and one per fragment: id, class,
kind, size, its final bin, and per frame it was visible its outline polygon
(px), bounding box (px), centroid (belt mm) and the encoder tick.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sim.plant.plant import VirtualPlant

__all__ = ["RecordError", "record"]


class RecordError(RuntimeError):
    """The video could not be written."""


def _r(a: np.ndarray, nd: int = 1) -> list[Any]:
    out: list[Any] = np.round(np.asarray(a, np.float64), nd).tolist()
    return out


def record(plant: VirtualPlant, video: Path, n_frames: int) -> dict[str, Any]:
    """Step ``plant`` ``n_frames`` times, writing mp4v ``video`` and its JSON truth.

    Returns the truth document (also written to ``video.with_suffix('.json')``).
    """
    cam = plant.geometry.camera
    try:
        video.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RecordError(f"{video}: cannot create its folder: {exc.strerror}") from None
    writer = cv2.VideoWriter(
        str(video), cv2.VideoWriter.fourcc(*"mp4v"), cam.fps, (cam.width_px, cam.height_px)
    )
    if not writer.isOpened():
        raise RecordError(f"{video}: OpenCV cannot open an mp4v video writer there")
    frames: list[dict[str, Any]] = []
    seen: dict[int, list[dict[str, Any]]] = {}
    try:
        for _ in range(n_frames):
            frame = plant.step()
            writer.write(np.ascontiguousarray(frame.image))
            frames.append({"frame_id": frame.frame_id, "tick": frame.tick, "t_s": frame.t_s})
            truth = plant.visible_truth()
            for i in range(len(truth)):
                seen.setdefault(int(truth.fragment_id[i]), []).append(
                    {
                        "frame_id": frame.frame_id,
                        "tick": frame.tick,
                        "polygon_px": _r(truth.polygons_px[i]),
                        "bbox_px": _r(truth.bbox_px[i]),
                        "centroid_mm": _r(truth.centroid_mm[i], 2),
                        "visible_frac": round(float(truth.visible_frac[i]), 3),
                    }
                )
    finally:
        writer.release()
    doc = _document(plant, video, frames, seen)
    video.with_suffix(".json").write_text(json.dumps(doc) + "\n", encoding="utf-8")
    return doc


def _document(
    plant: VirtualPlant,
    video: Path,
    frames: list[dict[str, Any]],
    seen: dict[int, list[dict[str, Any]]],
) -> dict[str, Any]:
    fragments = []
    for rec in plant.fragments:
        if rec.fragment_id not in seen:
            continue
        fragments.append(
            {
                "id": rec.fragment_id,
                "class": rec.class_name,
                "class_id": rec.class_id,
                "kind": rec.kind,
                "size_mm": round(rec.size_mm, 2),
                "bin": rec.bin,
                "frames": seen[rec.fragment_id],
            }
        )
    return {
        "video": video.name,
        "fourcc": "mp4v",
        "fps": plant.geometry.camera.fps,
        "width_px": plant.geometry.camera.width_px,
        "height_px": plant.geometry.camera.height_px,
        "scenario": plant.scenario.model_dump(),
        "seed": plant.seed,
        "geometry": plant.geometry.model_dump(),
        "classes": list(dict.fromkeys(r.class_name for r in plant.fragments)),
        "frames": frames,
        "fragments": fragments,
    }
