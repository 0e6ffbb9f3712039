"""``FrameTruth`` of a rendered frame from the sprites the renderer placed."""

from __future__ import annotations

from typing import Any

import numpy as np

from calibration.geometry import CameraGeometry
from sim.truth import FrameTruth

__all__ = ["frame_truth"]


def frame_truth(
    placed: list[tuple[Any, int, int]],
    camera: CameraGeometry,
    frame_id: int,
    tick: int,
    travel_mm: float,
) -> FrameTruth:
    """``placed``: (live fragment, col0, row0) in drawing order, where the
    sprite's top-left corner went. Fragments with no pixel inside the image
    are left out."""
    w, h = camera.width_px, camera.height_px
    labels = np.full((h, w), -1, np.int32)
    own = np.zeros(len(placed), np.int64)
    for i, (f, c0, r0) in enumerate(placed):
        m = f.sprite.mask
        mh, mw = m.shape
        a0, b0 = max(c0, 0), max(r0, 0)
        a1, b1 = min(c0 + mw, w), min(r0 + mh, h)
        if a0 >= a1 or b0 >= b1:
            continue
        sub = m[b0 - r0 : b1 - r0, a0 - c0 : a1 - c0]
        own[i] = int(sub.sum())
        labels[b0:b1, a0:a1][sub] = i
    seen = np.bincount(labels[labels >= 0].ravel(), minlength=len(placed))
    keep = [i for i in range(len(placed)) if own[i] > 0]
    ids, cids, names, boxes, trunc, cmm, cpx, sizes, vis, polys = ([] for _ in range(10))
    for i in keep:
        f, c0, r0 = placed[i]
        sp = f.sprite
        ax, ay = c0 + sp.anchor_px[0], r0 + sp.anchor_px[1]
        poly = sp.polygon_px + np.array([ax, ay], np.float32)
        lo, hi = poly.min(axis=0), poly.max(axis=0) + 1.0
        box = np.array([max(lo[0], 0), max(lo[1], 0), min(hi[0], w), min(hi[1], h)], np.float32)
        trunc.append(bool(lo[0] < 0 or lo[1] < 0 or hi[0] > w or hi[1] > h))
        cen = np.array([ax, ay]) + sp.centroid_px
        x_mm, y_mm = camera.px_to_mm(cen[0:1], cen[1:2])
        ids.append(f.rec.fragment_id)
        cids.append(f.rec.class_id)
        names.append(f.rec.class_name)
        boxes.append(box)
        cmm.append((float(x_mm[0]), float(y_mm[0])))
        cpx.append(cen)
        sizes.append(f.rec.size_mm)
        vis.append(seen[i] / own[i])
        polys.append(poly.astype(np.float32))
    n = len(keep)
    ids_of_index = np.array([f.rec.fragment_id for f, _, _ in placed] + [-1], np.int64)
    return FrameTruth(
        frame_id=frame_id,
        tick=tick,
        travel_mm=travel_mm,
        fragment_id=np.asarray(ids, np.int64).reshape(n),
        class_id=np.asarray(cids, np.int16).reshape(n),
        class_name=tuple(names),
        bbox_px=np.asarray(boxes, np.float32).reshape(n, 4),
        truncated=np.asarray(trunc, bool).reshape(n),
        centroid_mm=np.asarray(cmm, np.float64).reshape(n, 2),
        centroid_px=np.asarray(cpx, np.float64).reshape(n, 2),
        size_mm=np.asarray(sizes, np.float32).reshape(n),
        visible_frac=np.asarray(vis, np.float32).reshape(n),
        polygons_px=tuple(polys),
        label_px=ids_of_index[labels],  # index -1 picks the trailing -1
    )
