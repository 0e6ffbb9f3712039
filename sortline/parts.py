"""Building a line's parts from its config, in the order that fails fastest:
model, then recipe (it names the model's classes), then calibration, then
the plant (when the line is the embedded virtual plant), camera and PLC
bridge. Each bad file stops start-up with one clear line.

The embedded virtual plant is decided here, once, and only here: it is
started as a ``PlantRunner`` in this process, and the line then reads its
frame ring as a camera (``shm:...``) and talks Modbus to its PLC like any
other. Nothing downstream knows it is a simulation.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import uuid
from pathlib import Path
from typing import Any

from calibration.live import LiveCalibration
from calibration.store import CalibrationStore
from control.controller import Controller
from control.recipe import Recipe, load_recipe
from core.errors import InputFileError
from core.frame_ring import remove_dead_rings
from core.net import free_port
from plc.bridge import BridgeConfig, PlcBridge
from sortline.config import LineConfig
from sortline.lineparams import LineParams, derive
from sortline.listeners import HttpScore, ScoreSource
from sortline.timebase import FreeTimeBase, TimeBase, TriggerTimeBase
from vision.camera import Camera
from vision.classifier import OnnxClassifier
from vision.pipeline import VisionPipeline
from vision.sources import open_camera

log = logging.getLogger("sortline.parts")


def resolve_model_path(cfg: LineConfig) -> Path:
    value = cfg.resolve_path(cfg.vision.model)
    if isinstance(value, str):  # builtin:NAME
        from models.registry import builtin_model_path

        return builtin_model_path(value.removeprefix("builtin:"))
    return value


@dataclasses.dataclass
class LineParts:
    cfg: LineConfig
    classifier: OnnxClassifier
    class_names: tuple[str, ...]
    recipe: Recipe
    vision: VisionPipeline
    controller: Controller
    bridge: PlcBridge
    camera: Camera
    camera_source: str
    timebase: TimeBase
    params: LineParams
    calibration: LiveCalibration | None = None
    plant: Any | None = None  # sim.plant.runner.PlantRunner: the embedded virtual plant
    score_source: ScoreSource | None = None
    sensor: Any | None = None  # sortline.sensor.wiring.SensorLink: the second sensor ([sensor])

    @property
    def geometry(self) -> Any:
        return self.params.geometry

    def start_plant(self) -> None:
        if self.plant is not None:
            self.plant.start()

    def close(self) -> None:
        if self.sensor is not None:
            self.sensor.stop()
        self.bridge.stop()
        if self.plant is not None:
            self.plant.stop()

    def set_recipe(self, recipe: Recipe) -> None:
        """Switch recipes while running (the controller applies it at its next update)."""
        self.controller.set_recipe(recipe)
        self.recipe = recipe

    def controller_stats(self) -> dict[str, int]:
        """Decision-core counters since start (kept across calibration swaps)."""
        return self.controller.stats()

    def calibration_status(self) -> dict[str, Any]:
        if self.calibration is None:
            return {"version": None, "source": "nominal geometry of the line config"}
        return self.calibration.status()


def _calibration(cfg: LineConfig) -> tuple[LiveCalibration | None, LineParams]:
    if not cfg.calibration.store:
        return None, derive(cfg.geometry, None, cfg.control.deadline_margin_ms)
    store = CalibrationStore(Path(cfg.resolve_path(cfg.calibration.store)), cfg.line.name)
    live = LiveCalibration(store, cfg.geometry)
    if live.error:  # the active calibration is damaged or does not fit: say so, stop
        raise InputFileError(store.folder, live.error)
    version = live.status().get("version")
    params = derive(live.geometry, live.camera_model, cfg.control.deadline_margin_ms, version)
    return live, params


def _embedded_plant(
    cfg: LineConfig, plc_port: int | None, scenario: str | None, seed: int | None, stepped: bool
) -> Any:
    from sim.plant.runner import PlantRunner
    from sim.plant.scenario import load_scenario

    port = free_port() if plc_port == 0 else (plc_port or cfg.plc.port)
    prefix = f"sortline-{cfg.line.name}-"
    for path in remove_dead_rings(prefix):  # left by a run of this line that was killed
        log.info("removed the frame ring of a dead run: %s", path)
    ring = f"{prefix}{os.getpid()}-{uuid.uuid4().hex[:6]}"
    return PlantRunner(  # the plant runs on the config's geometry: its truth
        cfg.geometry,
        load_scenario(scenario or cfg.sim.scenario),
        seed=cfg.sim.seed if seed is None else seed,
        n_valves=cfg.valves.n_valves,
        watchdog_ms=cfg.plc.watchdog_ms,
        ring_name=ring,
        timebase=cfg.camera.timebase,
        fps=cfg.camera.fps,
        plc_host="127.0.0.1",
        plc_port=port,
        device_id=cfg.plc.device_id,
        stepped=stepped,
    )


def bridge_config(
    cfg: LineConfig, params: LineParams, host: str, port: int, stepped: bool
) -> BridgeConfig:
    p = cfg.plc
    trigger = cfg.camera.trigger_every_ticks if cfg.camera.timebase == "trigger" else 0
    return BridgeConfig(
        transport=p.transport,
        host=host,
        port=port,
        device_id=p.device_id,
        serial_port=p.serial_port,
        baudrate=p.baudrate,
        timeout_s=p.timeout_ms / 1e3,
        retries=p.retries,
        heartbeat_s=p.heartbeat_ms / 1e3,
        reconnect_max_s=p.reconnect_max_ms / 1e3,
        deadline_lead_ms=params.deadline_lead_ms,
        mm_per_tick=params.mm_per_tick,
        watchdog_ms=p.watchdog_ms,
        rt_priority=p.rt_priority or None,
        extrapolate_encoder=not stepped,  # a stepped plant's encoder ignores the wall clock
        trigger_every_ticks=trigger,
    )


def _timebase(cfg: LineConfig, bridge: PlcBridge, stepped: bool) -> TimeBase:
    if cfg.camera.timebase == "free":
        return FreeTimeBase(bridge.encoder_samples)
    return TriggerTimeBase(
        bridge.trigger_latches,
        bridge.encoder_samples,
        cfg.camera.trigger_every_ticks,
        check_timing=not stepped,
        refresh=(lambda: bridge.poll_now(2.0)) if stepped else None,
        hurry=None if stepped else bridge.request_poll,
    )


def camera_source(cfg: LineConfig) -> str:
    """``[camera] source`` with a relative video path taken from the config's folder."""
    src = cfg.camera.source
    if ":" in src.split("/")[0] or src.startswith("/dev/"):
        return src  # v4l2:N, rtsp://, genicam:, shm:, a device
    return str(cfg.resolve_path(src))


def build_parts(
    cfg: LineConfig,
    *,
    plc_port: int | None = None,
    scenario: str | None = None,
    seed: int | None = None,
    stepped: bool = False,
) -> LineParts:
    classifier = OnnxClassifier.load(
        resolve_model_path(cfg),
        expected_classes=list(cfg.line.classes),
        intra_op_threads=cfg.vision.intra_op_threads,
    )
    class_names = tuple(classifier.class_names)
    recipe = load_recipe(cfg.resolve_path(cfg.control.recipe), class_names)
    live, params = _calibration(cfg)
    vision = VisionPipeline(
        params.geometry, classifier, camera_model=params.camera_model,
        crop_policy=cfg.vision.crop_policy(), merge_params=cfg.vision.merge_params(),
        segment_params=cfg.vision.segment_params(cfg.resolve_path),
    )  # fmt: skip
    controller = Controller(
        params.geometry, recipe, class_names, cfg.control.deadline_margin_ms,
        cfg.control.control_params(),
    )  # fmt: skip

    plant = None
    score: ScoreSource | None = None
    host, port = cfg.plc.host, cfg.plc.port if plc_port is None else plc_port
    source = camera_source(cfg)
    if cfg.sim.enabled:  # the embedded virtual plant: a camera and a PLC like any other
        plant = _embedded_plant(cfg, plc_port, scenario, seed, stepped)
        host, port, source, score = "127.0.0.1", plant.plc_port, f"shm:{plant.ring_name}", plant
    elif cfg.sim.score_url:
        score = HttpScore(cfg.sim.score_url)
    cam = cfg.camera
    camera = open_camera(
        source,
        size=(cam.width_px, cam.height_px),
        fps=cam.fps,
        latency_s=cam.latency_ms / 1e3,
        genicam=cam.genicam,
        stepped=stepped,
    )
    sensor = None
    if cfg.sensor.enabled:  # the induction bar: its reader, fusion (and the plant's bar)
        from sortline.sensor.wiring import attach

        try:
            sensor = attach(cfg, controller, class_names, plant)
        except (OSError, ValueError) as exc:
            if plant is not None:
                plant.stop()
            raise InputFileError(Path(cfg.source), str(exc), field="sensor") from None
    bridge = PlcBridge(bridge_config(cfg, params, host, port, stepped))
    return LineParts(
        cfg=cfg,
        classifier=classifier,
        class_names=class_names,
        recipe=recipe,
        vision=vision,
        controller=controller,
        bridge=bridge,
        camera=camera,
        camera_source=cfg.camera.source if plant is None else f"plant ({source})",
        timebase=_timebase(cfg, bridge, stepped),
        params=params,
        calibration=live,
        plant=plant,
        score_source=score,
        sensor=sensor,
    )
