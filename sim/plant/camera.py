"""The camera renderer: a worn belt scrolled by travel, fragments blended on
top, lighting across the belt and over time, sensor noise.

Everything per-frame is a slice, a blend of small patches or one saturating
OpenCV op over the image; textures, light maps and noise are made once.
"""

from __future__ import annotations

import cv2
import numpy as np

from calibration.geometry import CameraGeometry
from sim.plant.scenario import AppearanceSection

__all__ = ["CameraRenderer"]

_BELT_LOOP_ROWS = 2048  # rows of belt texture before it repeats (~1.6 m at 0.78 mm/px)
_NOISE_BANK = 3
_SEAM_ROWS = 96  # cross-fade that closes the belt loop without a visible step
_LIGHT_MAPS = 16  # lighting states over one drift period


def _normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal(shape, dtype=np.float32)


def _seamless(tex: np.ndarray, loop_rows: int) -> np.ndarray:
    """The first ``loop_rows`` rows, cross-faded so that row ``loop_rows - 1``
    runs on into row 0 (``tex`` has ``_SEAM_ROWS`` rows more)."""
    out = tex[:loop_rows].copy()
    ramp = np.linspace(0.0, 1.0, _SEAM_ROWS, dtype=np.float32)[:, None, None]
    out[:_SEAM_ROWS] = tex[loop_rows:] * (1.0 - ramp) + tex[:_SEAM_ROWS] * ramp
    return out


def _lens_dirt(rng: np.random.Generator, h: int, w: int, amount: float) -> np.ndarray | None:
    """(H, W) float32 gain <= 1: blurred smudges on the lens or its window,
    fixed in the image while the belt moves under them; None when clean."""
    if amount <= 0:
        return None
    dark = np.zeros((h, w), np.float32)
    for _ in range(round(12 * amount)):
        c = (int(rng.integers(w)), int(rng.integers(h)))
        cv2.circle(dark, c, int(rng.integers(10, 60)), float(rng.uniform(0.1, 0.35)), -1)
    return 1.0 - np.asarray(cv2.GaussianBlur(dark, (0, 0), 18.0), np.float32) * amount


def _belt_texture(
    rng: np.random.Generator, rows: int, cols: int, wear: float, blur_px: int
) -> np.ndarray:
    """(rows, cols, 3) uint8 BGR worn black rubber, seamless along the rows."""
    rows, loop_rows = rows + _SEAM_ROWS, rows
    grey = np.full((rows, cols), rng.uniform(44.0, 54.0), np.float32)
    lengthwise = cv2.resize(_normal(rng, (1, cols // 12)), (cols, rows))
    grey += (1.0 + 3.0 * wear) * lengthwise  # wear tracks along the belt
    grey += 4.0 * cv2.resize(_normal(rng, (rows // 64, cols // 64)), (cols, rows))
    scuffs = np.zeros((rows, cols), np.float32)
    for _ in range(int(60 * wear * rows / 1024)):  # scuffs: lighter or darker patches
        cx, cy = int(rng.integers(cols)), int(rng.integers(rows))
        ax, ay = int(rng.integers(5, 60)), int(rng.integers(5, 90))
        shade = float(rng.normal(0, 3.0 + 6.0 * wear))
        cv2.ellipse(scuffs, (cx, cy), (ax, ay), float(rng.uniform(0, 180)), 0, 360, shade, -1)
    grey += cv2.GaussianBlur(scuffs, (0, 0), 3.0)
    grey += 3.0 * _normal(rng, (rows, cols))
    stains = np.zeros((rows, cols), np.float32)
    for _ in range(int(25 * wear * rows / 1024)):
        cx, cy = int(rng.integers(cols)), int(rng.integers(rows))
        cv2.circle(stains, (cx, cy), int(rng.integers(8, 50)), float(rng.uniform(0.2, 1.0)), -1)
    stains = np.asarray(cv2.GaussianBlur(stains, (0, 0), 6.0), np.float32)
    grey *= 1.0 - 0.35 * stains
    chans = [grey + (18.0 + 4.0 * k) * stains + (2.0 if k == 2 else 0.0) for k in range(3)]
    tex = np.asarray(cv2.merge(chans), np.float32)
    for _ in range(int(400 * wear * rows / 1024)):  # fines stuck to the belt
        cx, cy = int(rng.integers(cols)), int(rng.integers(rows))
        g = float(rng.uniform(20, 120))
        cv2.circle(tex, (cx, cy), int(rng.integers(1, 3)), (g, g, g * 1.05), -1)
    seam = int(rng.integers(_SEAM_ROWS, loop_rows - 3))
    tex[seam : seam + 3] *= 0.7  # the belt's splice
    out: np.ndarray = np.clip(_seamless(tex, loop_rows), 0, 255).astype(np.uint8)
    if blur_px >= 2:
        out = np.asarray(cv2.blur(out, (1, blur_px)), np.uint8)
    return out


class CameraRenderer:
    """Renders (H, W, 3) uint8 BGR frames of the belt for one camera."""

    def __init__(
        self,
        camera: CameraGeometry,
        look: AppearanceSection,
        blur_px: int,
        rng: np.random.Generator,
    ) -> None:
        self.camera = camera
        self.look = look
        h, w = camera.height_px, camera.width_px
        self._belt = _belt_texture(rng, _BELT_LOOP_ROWS, w, look.belt_wear, blur_px)
        self._belt = np.concatenate([self._belt, self._belt[:h]])  # wrap without a copy per frame
        smudge = _lens_dirt(rng, h, w, look.lens_dirt)
        self._lights = [
            self._light_map(h, w, look.light_across_frac, look.light_drift_frac, k / _LIGHT_MAPS)
            for k in range(_LIGHT_MAPS)
        ]
        if smudge is not None:
            self._lights = [
                np.clip(m * smudge[..., None], 0, 255).astype(np.uint8) for m in self._lights
            ]
        sig = look.noise_sigma
        bank = sig * _normal(rng, (_NOISE_BANK, h + 64, w, 3)) if sig > 0 else None
        self._noise_pos = None if bank is None else np.clip(bank, 0, 255).astype(np.uint8)
        self._noise_neg = None if bank is None else np.clip(-bank, 0, 255).astype(np.uint8)
        self._rng = rng
        self._light_phase = float(rng.uniform(0, 1))

    @staticmethod
    def _light_map(h: int, w: int, across: float, drift: float, phase: float) -> np.ndarray:
        """(H, W, 3) uint8 gain, 128 = 1.0: fall-off towards the belt edges, a
        tilt across the belt and a colour cast that drift with ``phase`` (0..1)."""
        xs = (np.arange(w, dtype=np.float32) - w / 2) / (w / 2)
        ys = (np.arange(h, dtype=np.float32) - h / 2) / (h / 2)
        tilt = 0.03 + drift * np.sin(2 * np.pi * phase)
        gain = 1.0 - across * xs[None, :] ** 2 - 0.04 * ys[:, None] ** 2 + tilt * xs[None, :]
        cast = 0.5 * drift * np.cos(2 * np.pi * phase)  # warmer / cooler lamps
        chans = [gain * (1.0 + cast), gain, gain * (1.0 - cast)]  # B, G, R
        return np.clip(np.stack(chans, axis=2) * 128.0, 0, 255).astype(np.uint8)

    def belt(self, travel_px: float) -> np.ndarray:
        """The belt under the camera after ``travel_px`` rows of travel, a fresh copy."""
        h = self.camera.height_px
        start = round(-travel_px) % _BELT_LOOP_ROWS
        return self._belt[start : start + h].copy()

    def finish(self, frame: np.ndarray, t_s: float) -> np.ndarray:
        """Apply lighting (with its slow drift) and sensor noise in place."""
        look = self.look
        cycle = t_s / look.light_drift_period_s + self._light_phase
        drift = 1.0 + look.light_drift_frac * np.sin(2 * np.pi * cycle * 0.61)
        drift *= 1.0 + look.flicker_frac * float(self._rng.standard_normal())
        light = self._lights[int(cycle * _LIGHT_MAPS) % _LIGHT_MAPS]
        cv2.multiply(frame, light, dst=frame, scale=drift / 128.0)
        if self._noise_pos is not None and self._noise_neg is not None:
            k = int(self._rng.integers(_NOISE_BANK))
            o = int(self._rng.integers(64))
            h = self.camera.height_px
            cv2.add(frame, self._noise_pos[k, o : o + h], dst=frame)
            k2, o2 = int(self._rng.integers(_NOISE_BANK)), int(self._rng.integers(64))
            cv2.subtract(frame, self._noise_neg[k2, o2 : o2 + h], dst=frame)
        return frame


def blend(
    frame: np.ndarray, premult: np.ndarray, inv_alpha: np.ndarray, col0: int, row0: int
) -> None:
    """Blend a premultiplied patch into ``frame`` at (col0, row0), clipped, in place.

    premult: (h, w, 3) uint16 colour x alpha x 256; inv_alpha: (h, w, 1) uint16
    (1 - alpha) x 256. Integer arithmetic: out = (frame x inv + premult) / 256.
    """
    fh, fw = frame.shape[:2]
    ph, pw = inv_alpha.shape[:2]
    c0, r0 = max(col0, 0), max(row0, 0)
    c1, r1 = min(col0 + pw, fw), min(row0 + ph, fh)
    if c0 >= c1 or r0 >= r1:
        return
    pc0, pr0 = c0 - col0, r0 - row0
    inv = inv_alpha[pr0 : pr0 + r1 - r0, pc0 : pc0 + c1 - c0]
    p = premult[pr0 : pr0 + r1 - r0, pc0 : pc0 + c1 - c0]
    region = frame[r0:r1, c0:c1]
    out = region.astype(np.uint16)
    out *= inv
    out += p
    out >>= 8
    region[:] = out
