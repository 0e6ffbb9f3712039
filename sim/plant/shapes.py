"""Fragment shapes per class, drawn as masks in a fragment-local frame.

A ``Shape`` is a list of primitives in local millimetres (long axis along
local x, centred near 0): filled polygons and thick polylines. ``make_shape``
draws one at random for a class; ``rasterise`` turns it into a mask.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

__all__ = ["Shape", "curvature_sigma_per_mm", "make_shape", "rasterise"]

ROUND_KINDS = ("cylinder", "wire", "pebble")


@dataclasses.dataclass(frozen=True, slots=True)
class Shape:
    """kind:     plate, wire, cylinder, pouch, board, chunk or pebble.
    polygons:  filled outlines, each (M, 2) float64 local mm.
    lines:     (polyline (K, 2) float64 local mm, thickness mm) pairs.
    length_mm: extent along local x; width_mm: extent along local y.
    """

    kind: str
    polygons: tuple[np.ndarray, ...]
    lines: tuple[tuple[np.ndarray, float], ...]
    length_mm: float
    width_mm: float

    @property
    def rolls(self) -> bool:
        """Round and straight enough to roll (a bent wire rocks to rest)."""
        if self.kind == "wire":
            return all(len(line) == 2 for line, _ in self.lines)
        return self.kind in ROUND_KINDS


def _jagged(
    rng: np.random.Generator, length: float, width: float, n: int, rough: float
) -> np.ndarray:
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = 1.0 - rough * rng.random(n) ** 2
    pts = np.stack([np.cos(ang) * rad * length / 2, np.sin(ang) * rad * width / 2], axis=1)
    # tear: a few edges get a notch or a spike halfway
    mids = (pts + np.roll(pts, -1, axis=0)) / 2
    k = rng.uniform(0.85, 1.1, n)[:, None]
    out = np.empty((2 * n, 2))
    out[0::2], out[1::2] = pts, mids * k
    return out


def _rounded_rect(length: float, width: float, r: float, n_arc: int = 6) -> np.ndarray:
    r = min(r, width / 2, length / 2)
    cx, cy = length / 2 - r, width / 2 - r
    pts = []
    for sx, sy, a0 in ((1, 1, 0.0), (-1, 1, 0.5), (-1, -1, 1.0), (1, -1, 1.5)):
        a = np.linspace(a0 * np.pi, (a0 + 0.5) * np.pi, n_arc)
        pts.append(np.stack([sx * cx + r * np.cos(a), sy * cy + r * np.sin(a)], axis=1))
    return np.concatenate(pts)


def _broken_rect(rng: np.random.Generator, length: float, width: float) -> np.ndarray:
    l2, w2 = length / 2, width / 2
    pts = [(-l2, -w2), (l2, -w2), (l2, w2), (-l2, w2)]
    out: list[tuple[float, float]] = []
    for i, (px, py) in enumerate(pts):
        if rng.random() < 0.6:  # snapped corner: replace by two points
            qx, qy = pts[(i - 1) % 4]
            rx, ry = pts[(i + 1) % 4]
            a, b = rng.uniform(0.1, 0.4, 2)
            out.append((px + (qx - px) * a, py + (qy - py) * a))
            out.append((px + (rx - px) * b, py + (ry - py) * b))
        else:
            out.append((px, py))
    return np.asarray(out, dtype=np.float64)


def _wire(rng: np.random.Generator, length: float, thick: float) -> tuple[np.ndarray, float]:
    n_seg = int(rng.integers(1, 4))
    seg = length / n_seg
    heading = 0.0
    pts = [np.zeros(2)]
    for _ in range(n_seg):
        heading += rng.normal(0, 0.5)
        pts.append(pts[-1] + seg * np.array([np.cos(heading), np.sin(heading)]))
    arr = np.asarray(pts)
    arr -= (arr.min(axis=0) + arr.max(axis=0)) / 2
    return arr, thick


def curvature_sigma_per_mm(shape: Shape) -> float:
    """Sigma of the path curvature (1/mm) of ``shape`` rolling on a flat belt.

    A body of revolution rolls on a circle whose radius is its length x
    radius / the difference of its end radii (a cone): a cell with a dented
    can or a cap rolls on metres, a straight cable piece or a pebble on about
    half a metre to a metre.
    Non-round shapes: 0.
    """
    if shape.kind == "cylinder":
        return 0.4e-3
    if shape.kind == "pebble":
        return 2.0e-3
    if shape.kind == "wire":
        return 1.5e-3
    return 0.0


def _pebble(rng: np.random.Generator, length: float, width: float) -> np.ndarray:
    """A smooth, nearly round outline (a rounded stone)."""
    ang = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    rad = 1.0 + 0.03 * rng.standard_normal(ang.size)
    return np.stack([np.cos(ang) * rad * length / 2, np.sin(ang) * rad * width / 2], axis=1)


def make_shape(rng: np.random.Generator, class_name: str, size_mm: float) -> Shape:
    """A random shape of ``class_name`` whose longest extent is about ``size_mm``."""
    s = float(size_mm)
    if class_name == "battery":
        if rng.random() < 0.7:
            length = float(rng.choice([44.0, 50.0, 65.0, 70.0])) * rng.uniform(0.97, 1.03)
            dia = {44.0: 10.5, 50.0: 14.0, 65.0: 18.0, 70.0: 21.0}.get(round(length), 18.0)
            return Shape("cylinder", (_rounded_rect(length, dia, dia * 0.2),), (), length, dia)
        length = float(np.clip(s, 35, 110))
        width = length * rng.uniform(0.45, 0.8)
        return Shape("pouch", (_rounded_rect(length, width, 4.0),), (), length, width)
    if class_name == "copper" and rng.random() < 0.45:
        length = max(s, 25.0)
        line, thick = _wire(rng, length, rng.uniform(1.5, 6.0))
        return Shape("wire", (), ((line, thick),), length, thick)
    if class_name == "pcb":
        width = s * rng.uniform(0.5, 0.9)
        return Shape("board", (_broken_rect(rng, s, width),), (), s, width)
    if class_name == "residue":
        if rng.random() < 0.25:  # rounded stones: they roll
            width = s * rng.uniform(0.8, 1.0)
            return Shape("pebble", (_pebble(rng, s, width),), (), s, width)
        width = s * rng.uniform(0.55, 1.0)
        return Shape(
            "chunk", (_jagged(rng, s, width, int(rng.integers(6, 10)), 0.25),), (), s, width
        )
    if class_name in ("rubber", "plastic") and rng.random() < 0.2:
        length = max(s, 25.0)
        line, thick = _wire(rng, length, rng.uniform(5.0, 12.0))
        return Shape("wire", (), ((line, thick),), length, thick)
    width = s * rng.uniform(0.4, 0.95)
    n = int(rng.integers(6, 12))
    return Shape("plate", (_jagged(rng, s, width, n, 0.35),), (), s, width)


def rasterise(
    shape: Shape, px_per_mm: float, pad_px: int
) -> tuple[np.ndarray, tuple[float, float]]:
    """Anti-aliased mask of ``shape`` in its local frame.

    Returns (mask (h, w) uint8 0..255, (cx, cy) px of local (0, 0) in the mask).
    """
    pts_all = [p for p in shape.polygons] + [ln for ln, _ in shape.lines]
    allp = np.concatenate(pts_all)
    grow = max([t / 2 for _, t in shape.lines], default=0.0)
    lo = allp.min(axis=0) - grow
    hi = allp.max(axis=0) + grow
    w = int(np.ceil((hi[0] - lo[0]) * px_per_mm)) + 2 * pad_px + 1
    h = int(np.ceil((hi[1] - lo[1]) * px_per_mm)) + 2 * pad_px + 1
    cx, cy = -lo[0] * px_per_mm + pad_px, -lo[1] * px_per_mm + pad_px
    mask = np.zeros((h, w), np.uint8)
    shift = 4  # sub-pixel vertices
    scale = float(1 << shift)

    def to_px(p: np.ndarray) -> np.ndarray:
        q = np.stack([p[:, 0] * px_per_mm + cx, p[:, 1] * px_per_mm + cy], axis=1)
        return np.round(q * scale).astype(np.int32)

    for poly in shape.polygons:
        cv2.fillPoly(mask, [to_px(poly)], 255, cv2.LINE_AA, shift)
    for line, thick in shape.lines:
        t_px = max(1, round(thick * px_per_mm))
        cv2.polylines(mask, [to_px(line)], False, 255, t_px, cv2.LINE_AA, shift)
    return mask, (cx, cy)
