"""Building a line's parts from its config, in the order that fails fastest:
model, then recipe (it names the model's classes), then the virtual plant and
PLC, then the bridge. Each bad file stops start-up with one clear line."""

from __future__ import annotations

import dataclasses
import logging
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

from calibration.camera_model import CameraModel
from calibration.geometry import LineGeometry
from calibration.live import LiveCalibration
from calibration.store import CalibrationStore
from control.controller import Controller
from control.recipe import Recipe, load_recipe
from core.errors import InputFileError
from core.types import Pulses
from plc.bridge import BridgeConfig, PlcBridge
from sortline.config import LineConfig
from vision.classifier import OnnxClassifier
from vision.pipeline import VisionPipeline

log = logging.getLogger("sortline.parts")


def resolve_model_path(cfg: LineConfig) -> Path:
    value = cfg.resolve_path(cfg.vision.model)
    if isinstance(value, str):  # builtin:NAME
        from models.registry import builtin_model_path

        return builtin_model_path(value.removeprefix("builtin:"))
    return value


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _WallClockPlc:
    """The plant calls ``advance`` with its own (possibly stepped) clock; the
    PLC's watchdog must run on real time, because the heartbeat arrives over a
    real socket from a real thread."""

    def __init__(self, core: Any) -> None:
        self.core = core

    def advance(self, tick_u32: int, speed_mm_s: float, now_s: float) -> Pulses:
        result: Pulses = self.core.advance(tick_u32, speed_mm_s, time.monotonic())
        return result

    def valves_open(self) -> np.ndarray:
        """(n_valves,) bool: the plant settles a fragment only once no run is open over it."""
        result: np.ndarray = self.core.valves_open()
        return result

    def diverters_on(self) -> np.ndarray:
        result: np.ndarray = self.core.diverters_on()
        return result


@dataclasses.dataclass
class LineParts:
    cfg: LineConfig
    classifier: OnnxClassifier
    class_names: tuple[str, ...]
    recipe: Recipe
    vision: VisionPipeline
    controller: Controller
    bridge: PlcBridge
    geometry: LineGeometry  # what vision and control believe (calibrated)
    plant: Any | None = None  # sim.plant.plant.VirtualPlant on the virtual plant
    plc_core: Any | None = None
    plc_server: Any | None = None
    calibration: LiveCalibration | None = None

    def start_plc(self) -> None:
        if self.plc_server is not None:
            self.plc_server.start()

    def close(self) -> None:
        self.bridge.stop()
        if self.plc_server is not None:
            self.plc_server.stop()

    def set_recipe(self, recipe: Recipe) -> None:
        """Switch recipes while running (the controller applies it at its next update)."""
        self.controller.set_recipe(recipe)
        self.recipe = recipe

    def controller_stats(self) -> dict[str, int]:
        """Decision-core counters since start (kept across calibration swaps)."""
        return self.controller.stats()

    def apply_geometry(self, geometry: LineGeometry, camera_model: CameraModel) -> None:
        """Use a newly calibrated geometry from the next frame on (real-time
        thread only; the camera map was tabulated beforehand, off this thread).

        The controller keeps its live tracks, their evidence and the pulses
        already sent (``Controller.apply_geometry``): a fragment in view at the
        swap is neither tracked afresh nor pulsed twice.
        """
        self.controller.apply_geometry(geometry)
        self.vision.geometry = geometry
        self.vision.camera_model = camera_model
        self.geometry = geometry

    def calibration_status(self) -> dict[str, Any]:
        if self.calibration is None:
            return {"version": None, "source": "nominal geometry of the line config"}
        return self.calibration.status()

    @staticmethod
    def plc_status_dict(plc: Any) -> dict[str, Any]:
        if dataclasses.is_dataclass(plc) and not isinstance(plc, type):
            return dataclasses.asdict(plc)
        return dict(vars(plc))


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
    geometry = cfg.geometry
    live = None
    camera_model: CameraModel | None = None
    if cfg.calibration.store:
        store = CalibrationStore(Path(cfg.resolve_path(cfg.calibration.store)), cfg.line.name)
        live = LiveCalibration(store, geometry)
        if live.error:  # the active calibration is damaged or does not fit: say so, stop
            raise InputFileError(store.folder, live.error)
        geometry, camera_model = live.geometry, live.camera_model
    vision = VisionPipeline(geometry, classifier, camera_model=camera_model)
    controller = Controller(geometry, recipe, class_names, cfg.control.deadline_margin_ms)

    plant = plc_core = plc_server = None
    host, port = cfg.plc.host, cfg.plc.port
    if cfg.sim.enabled:
        from sim.plant.plant import VirtualPlant
        from sim.plant.scenario import load_scenario
        from sim.vplc.core import PlcCore
        from sim.vplc.server import VirtualPlcServer

        plc_core = PlcCore(n_valves=cfg.valves.n_valves, watchdog_ms=cfg.plc.watchdog_ms)
        port = free_port() if plc_port == 0 else (plc_port or port)
        plc_server = VirtualPlcServer(
            plc_core, host="127.0.0.1", port=port, device_id=cfg.plc.device_id
        )
        scen = load_scenario(scenario or cfg.sim.scenario)
        plant = VirtualPlant(  # the plant runs on the config's geometry: its truth
            cfg.geometry, scen, _WallClockPlc(plc_core), seed=cfg.sim.seed if seed is None else seed
        )
        host = "127.0.0.1"

    bridge = PlcBridge(
        BridgeConfig(
            transport=cfg.plc.transport,
            host=host,
            port=port,
            device_id=cfg.plc.device_id,
            serial_port=cfg.plc.serial_port,
            baudrate=cfg.plc.baudrate,
            timeout_s=cfg.plc.timeout_ms / 1e3,
            retries=cfg.plc.retries,
            heartbeat_s=cfg.plc.heartbeat_ms / 1e3,
            reconnect_max_s=cfg.plc.reconnect_max_ms / 1e3,
            deadline_lead_ms=cfg.valves.open_delay_ms + cfg.control.deadline_margin_ms,
            mm_per_tick=cfg.belt.mm_per_tick,
            watchdog_ms=cfg.plc.watchdog_ms,
            rt_priority=cfg.plc.rt_priority or None,
            # a stepped plant's encoder does not follow the wall clock
            extrapolate_encoder=not stepped,
        )
    )
    return LineParts(
        cfg=cfg,
        classifier=classifier,
        class_names=class_names,
        recipe=recipe,
        vision=vision,
        controller=controller,
        bridge=bridge,
        geometry=geometry,
        plant=plant,
        plc_core=plc_core,
        plc_server=plc_server,
        calibration=live,
    )
