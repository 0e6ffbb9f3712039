"""Fixtures for the decision-core tests: the default geometry, recipe and a
helper that runs a controller over a synthetic stream."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from calibration.geometry import LineGeometry
from control.controller import Controller
from control.recipe import Recipe, load_recipe
from control.synthetic import SyntheticCamera
from core.classes import DEFAULT_CLASSES
from core.types import Pulses
from sortline.config import load_config


@pytest.fixture(scope="session")
def geometry() -> LineGeometry:
    return load_config().geometry


@pytest.fixture(scope="session")
def recipe() -> Recipe:
    return load_recipe("builtin:default", DEFAULT_CLASSES)


RunFn = Callable[..., tuple[Controller, Pulses]]


@pytest.fixture
def run_stream() -> RunFn:
    """run(controller, camera, n_frames, now_lead_ticks=0) -> (controller, all pulses)."""

    def run(
        ctl: Controller, cam: SyntheticCamera, n_frames: int, now_lead_ticks: int = 0
    ) -> tuple[Controller, Pulses]:
        out = []
        for f in range(n_frames):
            dets, _ = cam.frame(f)
            now = (int(dets.tick) + now_lead_ticks) % (1 << 32)
            _, pulses = ctl.update(dets, now)
            if len(pulses):
                out.append(pulses)
        return ctl, Pulses.concat(out)

    return run


def unwrap_near(ticks_u32: np.ndarray, ref: int) -> np.ndarray:
    """uint32 ticks -> unwrapped int64 nearest ``ref``."""
    from core.ticks import tick_diff_array

    return ref + tick_diff_array(ticks_u32, ref % (1 << 32))
