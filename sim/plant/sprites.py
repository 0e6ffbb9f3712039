"""Fragment sprites: a fragment drawn once in its local frame, then rotated,
shadowed and motion-blurred into a small premultiplied BGRA patch that the
frame renderer blends onto the belt.

Pixel conventions: image column ~ belt x, image row ~ belt y (downstream).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from sim.plant.materials import texture
from sim.plant.shapes import Shape, rasterise

__all__ = ["LocalArt", "Sprite", "make_art", "render_sprite"]


@dataclasses.dataclass(frozen=True, slots=True)
class LocalArt:
    """A fragment in its local frame, drawn once at spawn.

    mask:      (h, w) uint8 0..255 anti-aliased footprint.
    tex:       (h, w, 3) float32 BGR.
    origin_px: (cx, cy) px of the local origin in ``mask``.
    round_:    True for cylinders and wires (rolling shifts ``tex`` rows, shading stays).
    """

    mask: np.ndarray
    tex: np.ndarray
    origin_px: tuple[float, float]
    round_: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Sprite:
    """premult:    (h, w, 3) uint16 colour x alpha x 256.
    inv_alpha:  (h, w, 1) uint16 (1 - alpha) x 256, alpha = fragment and shadow.
    anchor_px:  (ax, ay) position of the fragment's reference point in the patch.
    polygon_px: (M, 2) float32 outline (col, row) relative to the anchor.
    centroid_px:(2,) float64 mask centroid (col, row) relative to the anchor.
    foot_x_mm, foot_y_mm: (P,) float64 footprint samples relative to the
                reference point, belt mm (x across, y downstream).
    angle_rad:  orientation it was drawn at; roll_px: texture roll it was drawn at.
    mask:       (h, w) bool the fragment's own pixels (no shadow, no blur).
    half_width_mm, lead_mm, trail_mm: footprint extents from the reference
                point: max |x|, max y (downstream), min y.
    """

    premult: np.ndarray
    inv_alpha: np.ndarray
    anchor_px: tuple[float, float]
    polygon_px: np.ndarray
    centroid_px: np.ndarray
    foot_x_mm: np.ndarray
    foot_y_mm: np.ndarray
    angle_rad: float
    roll_px: int
    mask: np.ndarray
    half_width_mm: float
    lead_mm: float
    trail_mm: float

    @property
    def size_px(self) -> tuple[int, int]:
        """(h, w) of the patch."""
        return int(self.mask.shape[0]), int(self.mask.shape[1])


def make_art(
    rng: np.random.Generator,
    class_name: str,
    shape: Shape,
    px_per_mm: float,
    oxidation: float,
    dirt: float,
) -> LocalArt:
    mask, origin = rasterise(shape, px_per_mm, pad_px=2)
    h, w = mask.shape
    tex = texture(rng, class_name, shape, h, w, origin, oxidation, dirt)
    return LocalArt(mask, tex, origin, shape.rolls)


def _round_shading(mask: np.ndarray) -> np.ndarray:
    """Cylindrical shading across a round part's local y, (h, w) float32."""
    dist = cv2.distanceTransform((mask > 127).astype(np.uint8), cv2.DIST_L2, 3)
    peak = max(float(dist.max()), 1.0)
    r = np.clip(dist / peak, 0, 1)
    return (0.45 + 0.75 * np.sqrt(r) + 0.25 * r**6).astype(np.float32)


def render_sprite(
    art: LocalArt,
    angle_rad: float,
    roll_px: int,
    blur_px: int,
    shadow: float,
    mm_per_px: float,
    grid_mm: float,
) -> Sprite:
    """Rotate ``art`` by ``angle_rad`` (local x towards belt x, counter-clockwise
    on screen = towards -y), roll a round part's texture by ``roll_px`` rows,
    add a shadow and ``blur_px`` of vertical motion blur."""
    tex = art.tex
    if art.round_:
        tex = np.minimum(np.roll(tex, roll_px, axis=0) * _round_shading(art.mask)[..., None], 255)
    h, w = art.mask.shape
    c, s = float(np.cos(angle_rad)), float(np.sin(angle_rad))
    pad = 4 + blur_px
    out_w = int(np.ceil(abs(w * c) + abs(h * s))) + 2 * pad
    out_h = int(np.ceil(abs(w * s) + abs(h * c))) + 2 * pad
    ox, oy = art.origin_px
    ax, ay = out_w / 2.0, out_h / 2.0
    mat = np.array([[c, -s, ax - c * ox + s * oy], [s, c, ay - s * ox - c * oy]], np.float64)
    size = (out_w, out_h)
    mask = cv2.warpAffine(art.mask, mat, size, flags=cv2.INTER_LINEAR)
    col = cv2.warpAffine(tex.astype(np.float32), mat, size, flags=cv2.INTER_LINEAR)
    a = mask.astype(np.float32) * (1.0 / 255.0)
    shadow_a = np.zeros_like(a)
    if shadow > 0:
        shifted = np.zeros_like(a)
        shifted[3:, 2:] = a[:-3, :-2]
        shadow_a = cv2.GaussianBlur(shifted, (0, 0), 1.5) * shadow
    premult = col * a[..., None]
    alpha = a + (1.0 - a) * shadow_a
    if blur_px >= 2:
        premult = cv2.blur(premult, (1, blur_px))
        alpha = cv2.blur(alpha, (1, blur_px))
    poly, centroid = _outline(mask, ax, ay)
    fx, fy = _footprint(mask, ax, ay, mm_per_px, grid_mm)
    return Sprite(
        premult=np.clip(np.round(premult * 256.0), 0, 65280).astype(np.uint16),
        inv_alpha=np.round((1.0 - alpha) * 256.0).astype(np.uint16)[..., None],
        anchor_px=(ax, ay),
        polygon_px=poly,
        centroid_px=centroid,
        foot_x_mm=fx,
        foot_y_mm=fy,
        angle_rad=angle_rad,
        roll_px=roll_px,
        mask=mask > 127,
        half_width_mm=max(float(np.abs(fx).max()), 1.0),
        lead_mm=float(fy.max()),
        trail_mm=float(fy.min()),
    )


def _outline(mask: np.ndarray, ax: float, ay: float) -> tuple[np.ndarray, np.ndarray]:
    binary = (mask > 127).astype(np.uint8)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:  # sub-pixel fragment: a single point
        return np.array([[0.0, 0.0]], np.float32), np.zeros(2)
    big = max(contours, key=cv2.contourArea).reshape(-1, 2).astype(np.float32)
    m = cv2.moments(binary, binaryImage=True)
    if m["m00"] > 0:
        cen = np.array([m["m10"] / m["m00"] - ax, m["m01"] / m["m00"] - ay])
    else:
        cen = np.zeros(2)
    big[:, 0] -= ax
    big[:, 1] -= ay
    return big, cen


def _footprint(
    mask: np.ndarray, ax: float, ay: float, mm_per_px: float, grid_mm: float
) -> tuple[np.ndarray, np.ndarray]:
    step = max(1, round(grid_mm / mm_per_px))
    sub = mask[::step, ::step] > 127
    rows, cols = np.nonzero(sub)
    if rows.size == 0:  # tiny: keep the densest pixel
        r, cidx = np.unravel_index(int(np.argmax(mask)), mask.shape)
        rows, cols, step = np.array([r]), np.array([cidx]), 1
    x = (cols * step + 0.5 - ax) * mm_per_px
    y = (rows * step + 0.5 - ay) * mm_per_px
    return x.astype(np.float64), y.astype(np.float64)
