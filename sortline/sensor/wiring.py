"""The line's ``[sensor]`` section -> the reader, the fusion hook and the plant's bar.

``attach`` is what ``build_parts`` does when ``sensor.enabled``: a
``RowRing``, a ``SensorReader`` bound to ``host:port`` (its thread started
with the line), and a ``SensorFusion`` hooked into the controller; with the
embedded virtual plant, the plant's bar (``plant_bar``: the same geometry)
streams its rows to the reader's port. The returned ``SensorLink`` is one
of the line's links: started and stopped with it, its ``conditions`` the
``sensor.link`` alarm while the bar is stalled or reports a fault.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from control.controller import Controller
from models.induction import InductionModel, resolve
from sim.plant.induction import InductionBar, InductionSensor
from sortline.alarm_rules import Raised
from sortline.config import LineConfig, SensorSection
from sortline.sensor.fusion import SensorFusion
from sortline.sensor.reader import SensorReader
from sortline.sensor.ring import RowRing
from sortline.sensor.scene import fusion_params

__all__ = ["SensorLink", "add_plant_bar", "attach", "bar_geometry_mm", "plant_bar", "plant_sensor"]

GRACE_S = 5.0  # no alarm for a bar that has not sent yet within this of the start


def plant_bar(s: SensorSection, **physics: float) -> InductionBar:
    """The virtual plant's bar where ``[sensor]`` says the line's is (``physics``:
    the bar's other fields, e.g. ``noise``, ``stuck_x_mm``)."""
    return InductionBar(
        channels=s.channels, pitch_mm=s.pitch_mm, coil_radius_mm=s.coil_radius_mm,
        x_first_mm=s.x_first_mm, y_bar_mm=s.y_bar_mm, every_ticks=s.every_ticks,
        frequencies_hz=tuple(s.frequencies_hz), **physics,
    )  # fmt: skip


def bar_geometry_mm(cfg: LineConfig) -> tuple[float, float, float]:
    """The configured bar's coil pitch, coil radius and rows' spacing along the belt
    (``every_ticks`` x the belt's mm per tick), mm: what a model must be fitted on."""
    s = cfg.sensor
    return (s.pitch_mm, s.coil_radius_mm, s.every_ticks * cfg.belt.mm_per_tick)


def plant_sensor(
    cfg: LineConfig, seed: int, foot_area_mm2: float = 4.0, encoder_start: int | None = None
) -> InductionSensor:
    """The embedded plant's bar sampler (``sim.plant.induction.InductionSensor``);
    ``encoder_start``: the plant's first count (default: ``[sim] scenario``'s)."""
    from sim.plant.scenario import load_scenario

    start = encoder_start
    if start is None:
        start = load_scenario(cfg.sim.scenario).motion.encoder_start
    return InductionSensor(
        plant_bar(cfg.sensor), cfg.belt.mm_per_tick, start, foot_area_mm2, seed
    )  # fmt: skip


def add_plant_bar(cfg: LineConfig, runner: Any, to: tuple[str, int]) -> None:
    """Put ``[sensor]``'s bar on a ``PlantRunner``'s belt (before it starts),
    streaming its rows to ``to`` (host, port): the embedded plant, or
    ``sortline sim plant --sensor-to`` in its own process."""
    p = runner.plant
    grid = max(1, round(p.scenario.ejection.grid_mm / p.mm_per_px)) * p.mm_per_px
    # the plant's own seed and first count: the bar draws its noise from the seed
    sensor = plant_sensor(cfg, int(p.seed), grid * grid, p.scenario.motion.encoder_start)
    runner.add_sensor(sensor, to)


class SensorLink:
    """The bar's reader and fusion as one of the line's links."""

    def __init__(self, reader: SensorReader, fusion: SensorFusion) -> None:
        self.reader, self.fusion = reader, fusion
        self._started_s: float | None = None

    def start(self) -> None:
        self._started_s = time.monotonic()
        self.reader.start()

    def stop(self) -> None:
        self.reader.stop()

    def conditions(self) -> dict[str, Raised]:
        """``sensor.link`` while the bar is stalled or faulty (after a grace at start)."""
        if self._started_s is None or time.monotonic() - self._started_s < GRACE_S:
            return {}
        problem = self.reader.problem()
        if not problem:
            return {}
        held = self.fusion.needs_sensor_names()
        tail = f"; held back: {', '.join(held)}" if held else ""
        return {"sensor.link": Raised("warning", f"{problem}: sorting on the camera alone{tail}")}

    def status(self) -> dict[str, Any]:
        return self.reader.status()


def attach(
    cfg: LineConfig,
    controller: Controller,
    class_names: Sequence[str],
    plant: Any | None = None,
    y_bar_mm: float | None = None,
) -> SensorLink:
    """Bind the reader, hook fusion into ``controller`` and, with the embedded
    ``plant`` (a ``PlantRunner``), put the bar on its belt, streaming to the
    reader; ``y_bar_mm``: a calibrated bar line (default: the config's)."""
    s = cfg.sensor
    model = InductionModel.load(resolve(cfg.resolve_path(s.model)))
    hz = tuple(s.frequencies_hz)
    mismatch = model.check_bar(hz, bar_geometry_mm(cfg))
    if mismatch:
        raise ValueError(
            f"sensor.model / sensor.frequencies_hz, pitch_mm, coil_radius_mm, every_ticks: "
            f"{mismatch}"
        )
    ring = RowRing(s.channels * len(hz))
    reader = SensorReader(
        ring, host=s.host, port=s.port, every_ticks=s.every_ticks, stall_ms=s.stall_ms,
        frequencies_hz=hz,
    )  # fmt: skip
    reader.bind()
    params = fusion_params(plant_bar(s), cfg.belt.mm_per_tick, y_bar_mm)
    fusion = SensorFusion(
        ring, params, model, class_names, s.weight, health=reader, needs_sensor=s.needs_sensor,
        shared_damping=s.shared_damping, anchor_views=s.anchor_views,
    )  # fmt: skip
    controller.set_evidence_hook(fusion)
    if plant is not None:
        host = "127.0.0.1" if s.host in ("", "0.0.0.0") else s.host
        add_plant_bar(cfg, plant, (host, reader.port))
    return SensorLink(reader, fusion)
