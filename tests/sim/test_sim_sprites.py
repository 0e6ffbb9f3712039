"""Sprites of every class: colour never exceeds its alpha (no 16-bit wrap),
outline, footprint and mask agree."""

from __future__ import annotations

import numpy as np
import pytest

from core.classes import DEFAULT_CLASSES
from sim.plant.shapes import make_shape
from sim.plant.sprites import make_art, render_sprite

MM_PX = 0.78125


@pytest.mark.parametrize("name", DEFAULT_CLASSES)
def test_sprites_are_consistent(name):
    rng = np.random.default_rng(11)
    for k in range(12):
        size = float(rng.uniform(10, 150))
        art = make_art(rng, name, make_shape(rng, name, size), 1 / MM_PX, 0.8, 0.8)
        sp = render_sprite(art, float(rng.uniform(0, 6.3)), int(k), k % 4, 0.5, MM_PX, 2.0)
        alpha256 = 256 - sp.inv_alpha.astype(np.int64)
        assert np.all(sp.premult.astype(np.int64) <= 255 * alpha256 + 256)
        h, w = sp.size_px
        assert sp.premult.shape == (h, w, 3) and sp.inv_alpha.shape == (h, w, 1)
        # the outline lies inside the patch and around the mask
        poly = sp.polygon_px + np.array(sp.anchor_px, np.float32)
        assert poly.min() >= -1 and poly[:, 0].max() <= w and poly[:, 1].max() <= h
        # the footprint (2 mm grid) covers about the mask's area
        mask_mm2 = sp.mask.sum() * MM_PX**2
        foot_mm2 = sp.foot_x_mm.size * (round(2.0 / MM_PX) * MM_PX) ** 2
        assert 0.5 * mask_mm2 - 10 <= foot_mm2 <= 1.6 * mask_mm2 + 10
        assert sp.lead_mm >= sp.trail_mm and sp.half_width_mm >= 1.0
