"""The virtual plant's bar streams to the controller's reader: ``PlantRunner`` with
an induction sensor, real UDP on 127.0.0.1, a muted sensor is a stall."""

from __future__ import annotations

import os
import uuid

import numpy as np
import pytest

from calibration.geometry import LineGeometry
from core.frame_ring import ring_path
from sim.plant.runner import PlantRunner
from sim.plant.scenario import load_scenario
from sortline.config import load_config
from sortline.sensor.reader import SensorReader
from sortline.sensor.ring import RowRing
from sortline.sensor.wiring import plant_sensor
from tests.sortline.conftest import until

pytestmark = pytest.mark.timeout(60)


def test_plant_bar_to_reader() -> None:
    cfg = load_config()
    geometry = LineGeometry()
    hz = tuple(cfg.sensor.frequencies_hz)
    ring = RowRing(cfg.sensor.channels * len(hz))
    name = f"sortline-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    with SensorReader(
        ring, every_ticks=cfg.sensor.every_ticks, stall_ms=150.0, frequencies_hz=hz
    ) as reader:
        runner = PlantRunner(
            geometry, load_scenario("default"), seed=3, n_valves=geometry.valves.n_valves,
            watchdog_ms=300, ring_name=name, timebase="free", fps=geometry.camera.fps,
            sensor=plant_sensor(cfg, seed=3), sensor_to=("127.0.0.1", reader.port),
        )  # fmt: skip
        try:
            runner.start()
            assert until(lambda: ring.count >= 200, 5.0)
            rows = ring.rows()
            assert np.all(np.diff(rows.tick) == cfg.sensor.every_ticks)
            assert sum(reader.refused.values()) == 0 and not reader.stalled()
            runner.sensor_mute = True  # the bar goes silent: a stall, said by the reader
            assert until(lambda: reader.stalled(), 3.0)
            assert "no valid packet" in reader.problem()
            runner.sensor_mute = False
            assert until(lambda: not reader.stalled(), 3.0)
            assert reader.rows_missing > 0  # the rows sampled while muted never came
        finally:
            runner.stop()
            ring_path(name).unlink(missing_ok=True)
