"""``FrameTruth`` of a rendered frame from the sprites the renderer placed."""

from __future__ import annotations

from typing import Any

import numpy as np

from calibration.geometry import CameraGeometry
from sim.plant.truth import FrameTruth, Placed

__all__ = ["frame_truth"]


def _clip(m: np.ndarray, c0: int, r0: int, w: int, h: int) -> Placed | None:
    """The part of mask ``m`` placed at (c0, r0) that lies inside a w x h image."""
    mh, mw = m.shape
    a0, b0, a1, b1 = max(c0, 0), max(r0, 0), min(c0 + mw, w), min(r0 + mh, h)
    if a0 >= a1 or b0 >= b1:
        return None
    sub = m[b0 - r0 : b1 - r0, a0 - c0 : a1 - c0]
    return Placed(-1, a0, b0, a1, b1, sub) if sub.any() else None


def _visible_share(placed: list[Placed]) -> np.ndarray:
    """Share of each fragment's in-image pixels not covered by later ones."""
    out = np.ones(len(placed), np.float32)
    for i, p in enumerate(placed):
        covered = np.zeros(p.mask.shape, bool)
        for q in placed[i + 1 :]:
            a0, b0 = max(p.c0, q.c0), max(p.r0, q.r0)
            a1, b1 = min(p.c1, q.c1), min(p.r1, q.r1)
            if a0 < a1 and b0 < b1:
                covered[b0 - p.r0 : b1 - p.r0, a0 - p.c0 : a1 - p.c0] |= q.mask[
                    b0 - q.r0 : b1 - q.r0, a0 - q.c0 : a1 - q.c0
                ]
        own = int(p.mask.sum())
        out[i] = (own - int((p.mask & covered).sum())) / own
    return out


def frame_truth(
    placed: list[tuple[Any, int, int, float, float]],
    camera: CameraGeometry,
    frame_id: int,
    tick: int,
    travel_mm: float,
) -> FrameTruth:
    """``placed``: (live fragment, col0, row0, x mm, y mm) in drawing order:
    where the sprite's top-left corner went and where the fragment's
    reference point physically is. Fragments with no pixel inside the image
    are left out."""
    w, h = camera.width_px, camera.height_px
    mm_px = camera.mm_per_px_x  # the virtual camera has square pixels
    keep: list[tuple[Any, int, int, float, float]] = []
    parts: list[Placed] = []
    for f, c0, r0, x, y in placed:
        part = _clip(f.sprite.mask, c0, r0, w, h)
        if part is not None:
            keep.append((f, c0, r0, x, y))
            parts.append(Placed(f.rec.fragment_id, part.c0, part.r0, part.c1, part.r1, part.mask))
    boxes, trunc, cmm, cpx, polys = [], [], [], [], []
    for f, c0, r0, x, y in keep:
        sp = f.sprite
        ax, ay = c0 + sp.anchor_px[0], r0 + sp.anchor_px[1]
        poly = sp.polygon_px + np.array([ax, ay], np.float32)
        lo, hi = poly.min(axis=0), poly.max(axis=0) + 1.0
        boxes.append([max(lo[0], 0), max(lo[1], 0), min(hi[0], w), min(hi[1], h)])
        trunc.append(bool(lo[0] < 0 or lo[1] < 0 or hi[0] > w or hi[1] > h))
        cpx.append(np.array([ax, ay]) + sp.centroid_px)
        # physical position (not rounded to the pixel the sprite was drawn at)
        cmm.append((x + sp.centroid_px[0] * mm_px, y + sp.centroid_px[1] * mm_px))
        polys.append(poly.astype(np.float32))
    n = len(keep)
    recs = [f.rec for f, *_ in keep]
    return FrameTruth(
        frame_id=frame_id,
        tick=tick,
        travel_mm=travel_mm,
        fragment_id=np.array([r.fragment_id for r in recs], np.int64).reshape(n),
        class_id=np.array([r.class_id for r in recs], np.int16).reshape(n),
        class_name=tuple(r.class_name for r in recs),
        bbox_px=np.asarray(boxes, np.float32).reshape(n, 4),
        truncated=np.asarray(trunc, bool).reshape(n),
        centroid_mm=np.asarray(cmm, np.float64).reshape(n, 2),
        centroid_px=np.asarray(cpx, np.float64).reshape(n, 2),
        size_mm=np.array([r.size_mm for r in recs], np.float32).reshape(n),
        visible_frac=_visible_share(parts).reshape(n),
        polygons_px=tuple(polys),
        image_shape=(h, w),
        placed=tuple(parts),
    )
