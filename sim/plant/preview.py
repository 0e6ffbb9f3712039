"""Preview images of the virtual plant: frames of each preset and a gallery
of fragments per class (``python -m sim.plant.preview OUT_DIR``).

Frames are saved at half size (640x256) to keep the committed PNGs small;
the gallery shows fragments at full camera resolution.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from calibration.geometry import LineGeometry
from core.classes import DEFAULT_CLASSES
from sim.plant.camera import blend
from sim.plant.plant import IdlePlc, VirtualPlant
from sim.plant.scenario import load_scenario, preset_names
from sim.plant.shapes import make_shape
from sim.plant.sprites import make_art, render_sprite

__all__ = ["class_gallery", "preset_frames"]


def preset_frames(name: str, seed: int, at_frames: tuple[int, ...]) -> list[np.ndarray]:
    """Full-size frames of preset ``name`` at the given frame numbers."""
    plant = VirtualPlant(LineGeometry(), load_scenario(name), IdlePlc(), seed=seed)
    out = []
    for i in range(max(at_frames) + 1):
        frame = plant.step()
        if i in at_frames:
            out.append(np.array(frame.image))
    return out


def class_gallery(per_class: int = 6, seed: int = 3, cell_px: int = 150) -> np.ndarray:
    """(10 * cell, per_class * cell, 3) uint8: rows of fragments per class on belt grey."""
    rng = np.random.default_rng(seed)
    geom = LineGeometry()
    mm_per_px = geom.camera.mm_per_px_x
    look = load_scenario("default").appearance
    rows, cols = len(DEFAULT_CLASSES), per_class
    img = np.full((rows * cell_px, cols * cell_px + 90, 3), 48, np.uint8)
    for r, name in enumerate(DEFAULT_CLASSES):
        cv2.putText(img, name, (4, r * cell_px + cell_px // 2), 0, 0.45, (220, 220, 220), 1)
        for c in range(cols):
            size = float(np.clip(40 * np.exp(rng.normal(0, 0.5)), 12, 110))
            art = make_art(rng, name, make_shape(rng, name, size), 1 / mm_per_px,
                           look.oxidation, look.dirt)  # fmt: skip
            sp = render_sprite(art, rng.uniform(0, 2 * np.pi), 0, 2, look.shadow, mm_per_px, 2.0)
            h, w = sp.size_px
            y0 = r * cell_px + max((cell_px - h) // 2, 0)
            x0 = 90 + c * cell_px + max((cell_px - w) // 2, 0)
            blend(img, sp.premult, sp.inv_alpha, x0, y0)
    return img


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else "sim/plant/previews")
    out.mkdir(parents=True, exist_ok=True)
    for name in preset_names():
        (img,) = preset_frames(name, seed=7, at_frames=(120,))
        small = cv2.resize(
            img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA
        )
        cv2.imwrite(str(out / f"{name}.png"), small, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    cv2.imwrite(str(out / "classes.png"), class_gallery(), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
