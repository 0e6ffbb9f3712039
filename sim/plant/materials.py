"""Material appearance: a BGR texture for a fragment in its local frame.

Textures are float32 (h, w, 3) BGR in 0..255 under neutral light; the frame
renderer applies lighting, blur and noise. Copper and brass, aluminium and
stainless are deliberately close: hue jitter, oxidation and dirt overlap them.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from sim.plant.shapes import Shape

__all__ = [
    "ELECTRICAL",
    "G_MM_S2",
    "Electrical",
    "rolling_resistance",
    "sliding_friction",
    "texture",
]

Rng = np.random.Generator

G_MM_S2 = 9810.0  # gravity

# kinetic friction coefficient of a flat piece sliding on a rubber conveyor belt
_SLIDE_MU = {
    "steel": 0.35,
    "stainless": 0.3,
    "aluminium": 0.3,
    "copper": 0.35,
    "brass": 0.35,
    "pcb": 0.3,
    "battery": 0.35,
    "plastic": 0.3,
    "rubber": 0.8,
    "residue": 0.45,
}
# rolling resistance coefficient of a round piece on a rubber belt: the belt's
# cover deforms under it (several times steel on steel's 0.001-0.002); a
# soft cable jacket deforms too; an irregular stone bumps along
_ROLL_CRR = {"cylinder": 0.008, "pebble": 0.04}
_ROLL_CRR_WIRE = {"copper": 0.015, "rubber": 0.03, "plastic": 0.025}


class Electrical(NamedTuple):
    """What an eddy-current coil sees of a class (``sim/plant/induction.py``):
    ranges (lo, hi) drawn once per fragment. sigma_s_m: electrical
    conductivity, S/m; mu_r: relative permeability at low field; thick_mm:
    conducting thickness of a shredded piece, mm; fill: share of the footprint
    that conducts (a PCB's copper is traces and pads, patchy)."""

    sigma_s_m: tuple[float, float]
    mu_r: tuple[float, float]
    thick_mm: tuple[float, float]
    fill: tuple[float, float] = (1.0, 1.0)


# Conductivity and permeability at room temperature (IACS: 100 % = 5.80e7 S/m):
# copper 5.96e7 (annealed), aluminium alloys 2.0-3.7e7 (5052 35 % IACS ... 1100
# 59 % IACS, pure 3.77e7), brass 1.4-1.7e7 (C36000 26 %, C26000 28 % IACS),
# austenitic stainless 304/316 1.33-1.45e6 (72-75 uOhm cm) with mu_r 1.0-1.1
# (1.0 annealed, a little more cold-worked), low-carbon steel 5-7e6 (14-20 uOhm
# cm) with an effective mu_r of 80-250 at the low fields of a sensor coil.
# Sources: NDT Resource Center (Iowa State CNDE) "Conductivity and resistivity
# values for ferrous and non-ferrous alloys"; Kaye & Laby, Tables of Physical
# and Chemical Constants, 2.6.1; ASM Handbook vol. 2 (IACS ratings).
# Battery: a cylindrical cell's can is nickel-plated low-carbon steel, 0.2-0.3 mm;
# a pouch cell conducts through its aluminium laminate and current-collector
# foils (Al ~15 um, Cu ~8 um, tens of layers), taken as 0.1-0.3 mm of aluminium.
# PCB: 1-oz copper (35 um) on 2-4 layers, cut into traces that break the eddy
# loops: an effective 10-40 um of copper over 20-70 % of the board.
# Plastic, rubber, residue (glass, stone, wood, dust): below 1e-2 S/m, mu_r 1:
# nothing at a coil's frequency.
ELECTRICAL: dict[str, Electrical] = {
    "steel": Electrical((5.0e6, 7.0e6), (80.0, 250.0), (0.5, 2.0)),
    "stainless": Electrical((1.33e6, 1.45e6), (1.0, 1.1), (0.5, 2.5)),
    "aluminium": Electrical((2.0e7, 3.7e7), (1.0, 1.0), (0.3, 3.0)),
    "copper": Electrical((5.5e7, 5.96e7), (1.0, 1.0), (0.5, 2.0)),
    "brass": Electrical((1.4e7, 1.7e7), (1.0, 1.0), (0.5, 3.0)),
    "pcb": Electrical((5.8e7, 5.8e7), (1.0, 1.0), (0.01, 0.04), (0.2, 0.7)),
    "battery": Electrical((6.0e6, 8.0e6), (100.0, 200.0), (0.2, 0.3)),
    "battery_pouch": Electrical((3.0e7, 3.5e7), (1.0, 1.0), (0.1, 0.3)),
    "plastic": Electrical((0.0, 0.0), (1.0, 1.0), (1.0, 1.0)),
    "rubber": Electrical((0.0, 0.0), (1.0, 1.0), (1.0, 1.0)),
    "residue": Electrical((0.0, 0.0), (1.0, 1.0), (1.0, 1.0)),
}


def sliding_friction(class_name: str) -> float:
    """Kinetic friction coefficient of ``class_name`` sliding on the belt."""
    return _SLIDE_MU.get(class_name, 0.4)


def rolling_resistance(class_name: str, kind: str) -> float:
    """Rolling resistance coefficient of a round ``kind`` of ``class_name``
    (deceleration = coefficient x g); 0 for shapes that do not roll."""
    if kind == "wire":
        return _ROLL_CRR_WIRE.get(class_name, 0.06)
    return _ROLL_CRR.get(kind, 0.0)


# base BGR colours and specular strength per metal
_METALS: dict[str, tuple[tuple[float, float, float], float]] = {
    "steel": ((96.0, 98.0, 95.0), 0.25),
    "stainless": ((178.0, 176.0, 171.0), 0.45),
    "aluminium": ((170.0, 172.0, 171.0), 0.3),
    "copper": ((66.0, 100.0, 172.0), 0.4),
    "brass": ((76.0, 142.0, 188.0), 0.4),
}
_OXIDE = {
    "steel": (38.0, 66.0, 128.0),  # rust
    "stainless": (120.0, 130.0, 140.0),
    "aluminium": (212.0, 214.0, 214.0),  # white oxide
    "copper": (42.0, 58.0, 96.0),  # dark tarnish
    "brass": (62.0, 104.0, 132.0),  # dull brown
}
_NEUTRAL_PLASTICS = (
    (40.0, 40.0, 42.0),
    (62.0, 62.0, 64.0),
    (110.0, 110.0, 112.0),
    (160.0, 160.0, 158.0),
    (205.0, 208.0, 208.0),
    (165.0, 190.0, 205.0),  # beige
)
_WRAPS = (
    (160.0, 70.0, 30.0),
    (60.0, 140.0, 40.0),
    (40.0, 40.0, 170.0),
    (140.0, 40.0, 120.0),
    (170.0, 120.0, 230.0),
    (40.0, 180.0, 210.0),
    (90.0, 60.0, 40.0),
)


def _field(rng: Rng, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth random field in -1..1, (h, w) float32."""
    g = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    return cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC).clip(-1, 1)


def _blotches(rng: Rng, h: int, w: int, amount: float) -> np.ndarray:
    """Soft patches covering roughly ``amount`` of the area, (h, w) 0..1."""
    if amount <= 0:
        return np.zeros((h, w), np.float32)
    f = _field(rng, h, w, int(rng.integers(4, 9)))
    thr = 1.0 - 2.0 * amount
    return np.clip((f - thr) * 3.0, 0, 1)


def _mix(tex: np.ndarray, colour: tuple[float, float, float], weight: np.ndarray) -> None:
    tex += (np.asarray(colour, np.float32) - tex) * weight[..., None]


def _specular(rng: Rng, h: int, w: int, strength: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, np.pi)
    proj = (xx - w / 2) * np.cos(a) + (yy - h / 2) * np.sin(a)
    width = max(h, w) * rng.uniform(0.08, 0.25)
    band = np.exp(-(((proj - rng.normal(0, max(h, w) / 5)) / width) ** 2))
    return 1.0 + strength * (1.6 * band - 0.3 + 0.25 * _field(rng, h, w, 3))


def _metal(rng: Rng, name: str, h: int, w: int, oxidation: float, dirt: float) -> np.ndarray:
    base, spec = _METALS[name]
    tint = 3.0 if name in ("steel", "stainless", "aluminium") else 8.0
    jitter = rng.normal(0, tint, 3) + rng.normal(0, 10.0)  # hue and brightness
    tex = np.empty((h, w, 3), np.float32)
    tex[:] = np.asarray(base, np.float32) + jitter.astype(np.float32)
    tex *= (1.0 + 0.08 * _field(rng, h, w, 5))[..., None]
    if name in ("stainless", "aluminium"):
        streak = cv2.resize(rng.normal(0, 1, (h, 1)).astype(np.float32), (w, h))
        tex *= (1.0 + (0.06 if name == "stainless" else 0.03) * streak)[..., None]
    _mix(tex, _OXIDE[name], _blotches(rng, h, w, oxidation * rng.uniform(0.2, 1.0)) * 0.8)
    if name == "copper" and rng.random() < oxidation * 0.4:
        _mix(tex, (110.0, 140.0, 80.0), _blotches(rng, h, w, 0.15) * 0.7)  # patina
    tex *= _specular(rng, h, w, spec)[..., None]
    if rng.random() < 0.4:
        _fold(rng, tex)
    _glints(rng, tex, spec)
    return _dirt(rng, tex, dirt)


def _glints(rng: Rng, tex: np.ndarray, spec: float) -> None:
    """Small blown-out specular spots where a facet mirrors the lamp."""
    h, w = tex.shape[:2]
    for _ in range(int(rng.poisson(spec * 4 * max(h * w / 2500, 0.3)))):
        c = (int(rng.integers(w)), int(rng.integers(h)))
        r = int(rng.integers(1, 4))
        spot = np.zeros((h, w), np.float32)
        cv2.circle(spot, c, r, 1.0, -1)
        tex += (cv2.GaussianBlur(spot, (0, 0), 1.0) * 160.0)[..., None]


def _fold(rng: Rng, tex: np.ndarray) -> None:
    """A bend across the part: one side tilts away from the light."""
    h, w = tex.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, np.pi)
    d = (xx - w * rng.uniform(0.3, 0.7)) * np.cos(a) + (yy - h / 2) * np.sin(a)
    side = np.clip(d / 2.0, 0, 1)
    tex *= (1.0 - rng.uniform(0.15, 0.35) * side)[..., None]
    edge = np.exp(-((d / 1.5) ** 2))
    tex += (35.0 * edge)[..., None]


def _dirt(rng: Rng, tex: np.ndarray, dirt: float) -> np.ndarray:
    h, w = tex.shape[:2]
    _mix(tex, (62.0, 70.0, 78.0), _blotches(rng, h, w, dirt * rng.uniform(0.1, 0.7)) * 0.7)
    tex += rng.normal(0, 4.0, (h, w, 1)).astype(np.float32)
    return tex


def _pcb(rng: Rng, h: int, w: int, dirt: float) -> np.ndarray:
    base = [(48.0, 105.0, 34.0), (30.0, 80.0, 25.0), (120.0, 62.0, 22.0), (40.0, 70.0, 60.0)]
    colour = base[int(rng.choice(4, p=[0.5, 0.2, 0.2, 0.1]))]
    tex = np.empty((h, w, 3), np.float32)
    tex[:] = np.asarray(colour, np.float32) + rng.normal(0, 6, 3).astype(np.float32)
    trace = tuple(float(c) * 1.4 + 10 for c in colour)
    for _ in range(int(h * w / 300) + 3):
        p0 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        if rng.random() < 0.5:
            p1 = (int(rng.integers(0, w)), p0[1])
        else:
            p1 = (p0[0], int(rng.integers(0, h)))
        cv2.line(tex, p0, p1, trace, 1)
    for _ in range(int(h * w / 500) + 1):
        cw, ch = int(rng.integers(2, 12)), int(rng.integers(2, 8))
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        kind = rng.random()
        c = (
            (20.0, 20.0, 22.0)
            if kind < 0.5
            else (170.0, 180.0, 185.0)
            if kind < 0.75
            else (120.0, 170.0, 200.0)
        )
        cv2.rectangle(tex, (x0, y0), (x0 + cw, y0 + ch), c, -1)
    return _dirt(rng, tex, dirt)


def _battery(rng: Rng, shape: Shape, h: int, w: int, cy: float, dirt: float) -> np.ndarray:
    tex = np.empty((h, w, 3), np.float32)
    if shape.kind == "pouch":
        tex[:] = (150.0, 150.0, 155.0)
        tex *= (1.0 + 0.12 * _field(rng, h, w, 9))[..., None]  # crinkled foil
        x0, y0 = int(w * rng.uniform(0.15, 0.4)), int(h * rng.uniform(0.2, 0.4))
        cv2.rectangle(tex, (x0, y0), (w - x0, h - y0), (230.0, 232.0, 235.0), -1)
        for k in range(3):
            yk = y0 + 4 + 4 * k
            cv2.line(tex, (x0 + 3, yk), (x0 + 3 + int(rng.integers(5, 20)), yk), (40.0,) * 3, 1)
        return _dirt(rng, tex, dirt)
    tex[:] = _WRAPS[int(rng.integers(len(_WRAPS)))]
    x0 = int(w * rng.uniform(0.2, 0.4))
    band = _WRAPS[int(rng.integers(len(_WRAPS)))] if rng.random() < 0.5 else (225.0,) * 3
    cv2.rectangle(tex, (x0, 0), (x0 + int(w * 0.3), h), band, -1)
    for k in range(int(rng.integers(2, 5))):  # printed text
        xx = x0 + 2 + 5 * k
        cv2.line(tex, (xx, int(cy) - 2), (xx + 3, int(cy) - 2), (30.0,) * 3, 1)
    cap = int(rng.integers(2, 4))
    tex[:, :cap] = (190.0, 192.0, 195.0)
    return _dirt(rng, tex, dirt * 0.5)


def _plastic(rng: Rng, h: int, w: int, dirt: float) -> np.ndarray:
    if rng.random() < 0.55:  # most e-waste housings: black, greys, white, beige
        colour = np.array(_NEUTRAL_PLASTICS[int(rng.integers(len(_NEUTRAL_PLASTICS)))], np.float32)
        colour += np.float32(rng.normal(0, 6.0))
    else:
        hsv = np.array(
            [[[rng.integers(0, 180), rng.integers(110, 255), rng.integers(90, 240)]]], np.uint8
        )
        colour = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)
    tex = np.empty((h, w, 3), np.float32)
    tex[:] = colour
    tex *= (1.0 + 0.06 * _field(rng, h, w, 4))[..., None]
    tex *= _specular(rng, h, w, 0.12)[..., None]
    return _dirt(rng, tex, dirt)


def _rubber(rng: Rng, h: int, w: int, dirt: float) -> np.ndarray:
    tex = np.empty((h, w, 3), np.float32)
    tex[:] = rng.uniform(20.0, 34.0) + rng.normal(0, 1.5, 3).astype(np.float32)
    tex += 4.0 * _field(rng, h, w, 6)[..., None]
    tex += rng.normal(0, 2.5, (h, w, 1)).astype(np.float32)
    _mix(tex, (70.0, 72.0, 75.0), _blotches(rng, h, w, dirt * 0.5) * 0.6)
    return tex


def _residue(rng: Rng, h: int, w: int, dirt: float, stone: bool = False) -> np.ndarray:
    kind = 0.0 if stone else rng.random()
    tex = np.empty((h, w, 3), np.float32)
    if kind < 0.35:  # stone / concrete
        tex[:] = rng.uniform(95, 150)
        tex += rng.normal(0, 14.0, (h, w, 1)).astype(np.float32)
    elif kind < 0.6:  # wood
        tex[:] = (55.0, 95.0, 140.0)
        grain = cv2.resize(rng.normal(0, 1, (h, 1)).astype(np.float32), (w, h))
        tex *= (1.0 + 0.12 * grain)[..., None]
    elif kind < 0.8:  # glass shard
        tex[:] = (150.0, 172.0, 150.0)
        tex *= _specular(rng, h, w, 0.5)[..., None]
    else:  # dust clump, fines
        tex[:] = (80.0, 88.0, 96.0)
        tex += 12.0 * _field(rng, h, w, 8)[..., None]
    return _dirt(rng, tex, dirt)


def texture(
    rng: Rng,
    class_name: str,
    shape: Shape,
    h: int,
    w: int,
    centre_px: tuple[float, float],
    oxidation: float,
    dirt: float,
) -> np.ndarray:
    """(h, w, 3) float32 BGR texture of a ``class_name`` fragment in its local frame."""
    if class_name in _METALS:
        tex = _metal(rng, class_name, h, w, oxidation, dirt)
    elif class_name == "pcb":
        tex = _pcb(rng, h, w, dirt)
    elif class_name == "battery":
        tex = _battery(rng, shape, h, w, centre_px[1], dirt)
    elif class_name == "plastic":
        tex = _plastic(rng, h, w, dirt)
    elif class_name == "rubber":
        tex = _rubber(rng, h, w, dirt)
    elif class_name == "residue":
        tex = _residue(rng, h, w, dirt, stone=shape.kind == "pebble")
    else:
        raise ValueError(f"no appearance for class {class_name!r}")
    return np.clip(tex, 0, 255)
