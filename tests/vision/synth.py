"""A tiny synthetic belt for vision tests (independent of ``sim``): a noisy,
unevenly lit grey belt with filled ellipses of known colour, position and size."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

COLOURS_BGR = {  # distinct, saturated enough to sit well off a grey belt
    "copper": (60, 110, 200),
    "aluminium": (200, 200, 205),
    "pcb": (60, 150, 40),
    "battery": (200, 70, 40),
    "rubber": (25, 25, 25),
}


@dataclasses.dataclass
class Blob:
    name: str
    cx: float
    cy: float
    ax: float
    ay: float
    angle: float


def belt(h: int = 512, w: int = 1280, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    light = np.linspace(0.85, 1.1, w)[None, :, None]
    base = np.full((h, w, 3), 105.0) * light
    base += rng.normal(0, 4.0, (h, w, 3))
    return np.clip(base, 0, 255).astype(np.uint8)


def scatter(n: int, seed: int, h: int = 512, w: int = 1280, min_gap_px: float = 8.0) -> list[Blob]:
    """n non-touching ellipses inside the image (rejection sampling)."""
    rng = np.random.default_rng(seed)
    names = list(COLOURS_BGR)
    blobs: list[Blob] = []
    tries = 0
    while len(blobs) < n and tries < 20000:
        tries += 1
        ax, ay = rng.uniform(10, 40), rng.uniform(8, 30)
        r = max(ax, ay)
        cx, cy = rng.uniform(r + 4, w - r - 4), rng.uniform(r + 4, h - r - 4)
        if any(np.hypot(cx - b.cx, cy - b.cy) < r + max(b.ax, b.ay) + min_gap_px for b in blobs):
            continue
        blobs.append(Blob(names[len(blobs) % len(names)], cx, cy, ax, ay, rng.uniform(0, 180)))
    return blobs


def render(blobs: list[Blob], seed: int = 0, h: int = 512, w: int = 1280) -> np.ndarray:
    img = belt(h, w, seed)
    for b in blobs:
        cv2.ellipse(
            img,
            ((b.cx, b.cy), (2 * b.ax, 2 * b.ay), b.angle),
            COLOURS_BGR[b.name],
            -1,
            lineType=cv2.LINE_AA,
        )
    return img
