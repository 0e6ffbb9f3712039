"""``LineConfig``: the one typed object built at start-up from TOML.

The embedded default (``default_line.toml``) runs the virtual plant. A user
file is read as an overlay on that default, so a plant config names only
what differs. Validation errors become one line naming file and field.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from calibration.geometry import BeltGeometry, CameraGeometry, LineGeometry, ValveBar
from core.classes import DEFAULT_CLASSES
from core.errors import InputFileError, model_from_data, parse_toml, read_toml

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)
DEFAULT_CONFIG_NAME = "<embedded default line config>"


class GenICamSettings(BaseModel):
    """``[camera.genicam]``: features written to a GenICam camera when it opens
    ("" or 0 = leave the camera's own setting)."""

    model_config = _STRICT
    serial: str = Field("", description='device serial number; "" = the device index in source')
    pixel_format: str = Field("", description='e.g. "Mono8", "BayerRG8", "RGB8"')
    exposure_us: float = Field(0.0, ge=0, le=1e6)
    trigger_mode: Literal["", "On", "Off"] = Field("", description='"On": hardware trigger')
    trigger_source: str = Field("", description='e.g. "Line1" (the PLC\'s trigger output)')


class CameraSection(CameraGeometry):
    """``[camera]``: the camera's geometry (``CameraGeometry``) and where its
    frames come from."""

    source: str = Field(
        "plant",
        min_length=1,
        description='"plant" (the embedded virtual plant), a video file, "v4l2:N", '
        '"rtsp://...", "genicam:PRODUCER.cti[#DEVICE]" or "shm:NAME" (a frame ring '
        "served by `sortline sim plant`)",
    )
    timebase: Literal["trigger", "free"] = Field(
        "trigger",
        description='"trigger": the PLC triggers the camera every trigger_every_ticks and '
        'latches each trigger\'s count; "free": a free-running camera, the count is '
        "interpolated from the PLC's timestamped encoder samples",
    )
    trigger_every_ticks: int = Field(250, ge=1, le=65535)
    stall_ms: float = Field(200.0, gt=0, le=60000, description="no frame this long: stalled")
    latency_ms: float = Field(
        0.0, ge=0, le=1000, description="exposure to arrival, for cameras without timestamps"
    )
    genicam: GenICamSettings = GenICamSettings()

    @property
    def geometry(self) -> CameraGeometry:
        fields = CameraGeometry.model_fields
        return CameraGeometry(**{k: getattr(self, k) for k in fields})


class LineSection(BaseModel):
    model_config = _STRICT
    name: str = Field("virtual-plant", min_length=1, max_length=64)
    classes: tuple[str, ...] = Field(DEFAULT_CLASSES, min_length=1, strict=False)


class PlcSection(BaseModel):
    model_config = _STRICT
    transport: Literal["tcp", "rtu"] = "tcp"
    host: str = "127.0.0.1"
    port: int = Field(5020, ge=1, le=65535)
    device_id: int = Field(1, ge=1, le=247)
    serial_port: str = Field("", description="RTU: the serial device, e.g. /dev/ttyUSB0")
    baudrate: int = Field(115200, gt=0)
    timeout_ms: float = Field(40.0, gt=0, le=10000)
    retries: int = Field(1, ge=0, le=10)
    heartbeat_ms: float = Field(50.0, gt=0, le=10000)
    watchdog_ms: float = Field(300.0, gt=0, le=60000)
    reconnect_max_ms: float = Field(2000.0, gt=0, le=600000)
    rt_priority: int = Field(
        0, ge=0, le=99, description="SCHED_FIFO priority of the bridge thread; 0 = normal"
    )

    @model_validator(mode="after")
    def _rtu_needs_a_port(self) -> PlcSection:
        if self.transport == "rtu" and not self.serial_port:
            raise ValueError('transport "rtu" needs serial_port (e.g. "/dev/ttyUSB0")')
        return self


class VisionSection(BaseModel):
    model_config = _STRICT
    model: str = "builtin:sortline-cnn"
    intra_op_threads: int = Field(1, ge=1, le=64)
    pipelined: bool = Field(
        False,
        description="wall-clock runs: segment frame n+1 while classifying frame n "
        "on a second thread (one frame more latency; stepped runs never pipeline). "
        "Off in the embedded default: the virtual plant renders on the second core",
    )
    uncertain_dir: str = Field(
        "", description='labelling folder for fragments the classifier was unsure of; "" = off'
    )
    uncertain_below: float = Field(0.6, gt=0, le=1)


class ControlSection(BaseModel):
    model_config = _STRICT
    recipe: str = "builtin:default"
    deadline_margin_ms: float = Field(5.0, ge=0, le=1000)


class ApiKeyEntry(BaseModel):
    """One ``[[api.keys]]`` entry: the key's owner, role and scrypt hash
    (``sortline keys new`` makes one; ``sortline.auth`` checks them)."""

    model_config = _STRICT
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    role: Literal["maintenance", "operator", "engineer"]
    hash: str = Field(max_length=200)

    @field_validator("hash")
    @classmethod
    def _well_formed(cls, value: str) -> str:
        from sortline.auth import check_hash  # fastapi only when keys are configured

        return check_hash(value)


class ApiSection(BaseModel):
    model_config = _STRICT
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    open_metrics: bool = Field(
        True, description="GET /metrics answers without an API key; false: 404"
    )
    keys: tuple[ApiKeyEntry, ...] = Field(
        (), strict=False, description="API keys ([[api.keys]] name, role, hash)"
    )

    @model_validator(mode="after")
    def _names_unique(self) -> ApiSection:
        names = [k.name for k in self.keys]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"api.keys: name {dup[0]!r} used twice")
        return self

    @property
    def loopback_only(self) -> bool:
        """The API listens on this machine only."""
        return self.host in ("127.0.0.1", "::1", "localhost") or self.host.startswith("127.")


class CalibrationSection(BaseModel):
    model_config = _STRICT
    store: str = Field("", description='calibration store folder; "" = nominal geometry only')
    poll_s: float = Field(1.0, gt=0, le=3600, description="how often to look for a new activation")


class RecordsSection(BaseModel):
    model_config = _STRICT
    dir: str = ""
    enabled: bool = True


class SimSection(BaseModel):
    model_config = _STRICT
    enabled: bool = True
    scenario: str = "default"
    seed: int = Field(1, ge=0)
    score_url: str = Field(
        "",
        description="score endpoint of a virtual plant in its own process "
        '(`sortline sim plant --score-port N`: http://127.0.0.1:N); "" = none',
    )


class AlarmsSection(BaseModel):
    """``[alarms]``: when the alarm book (``sortline.alarms``) raises what."""

    model_config = _STRICT
    period_s: float = Field(0.2, gt=0, le=10, description="conditions evaluated this often")
    history: int = Field(1000, ge=10, le=1_000_000, description="journal entries kept")
    deadline_misses_max: int = Field(
        5, ge=0, description="more deadline misses than this within deadline_window_s: warning"
    )
    deadline_window_s: float = Field(60.0, gt=0, le=86400)
    counter_window_s: float = Field(
        60.0,
        gt=0,
        le=86400,
        description="PLC watchdog trips, malformed writes, time-base slips, dropped records: "
        "the alarm stays active until its counter has not moved for this long",
    )
    uncertain_below: float = Field(
        0.6, gt=0, le=1, description="a detection below this confidence counts as uncertain"
    )
    uncertainty_window_frames: int = Field(300, ge=1, le=1_000_000)
    uncertainty_min_detections: int = Field(50, ge=1, description="per window, to judge it")
    uncertainty_rise: float = Field(
        0.15, gt=0, le=1, description="share of uncertain detections above its baseline: warning"
    )
    valve_window_s: float = Field(120.0, gt=0, le=86400)
    valve_min_cycles: int = Field(
        5, ge=1, description="a valve is judged when both neighbours ran this often in the window"
    )
    valve_weak_share: float = Field(
        0.2, ge=0, lt=1, description="fewer cycles than this share of the lesser neighbour's: weak"
    )


class LineConfig(BaseModel):
    model_config = _STRICT

    line: LineSection = LineSection()
    belt: BeltGeometry = BeltGeometry()
    camera: CameraSection = CameraSection()
    valves: ValveBar = ValveBar()
    plc: PlcSection = PlcSection()
    vision: VisionSection = VisionSection()
    control: ControlSection = ControlSection()
    api: ApiSection = ApiSection()
    records: RecordsSection = RecordsSection()
    calibration: CalibrationSection = CalibrationSection()
    sim: SimSection = SimSection()
    alarms: AlarmsSection = AlarmsSection()
    source: str = Field(DEFAULT_CONFIG_NAME, exclude=True)

    @model_validator(mode="after")
    def _geometry_consistent(self) -> LineConfig:
        _ = self.geometry  # belt, camera and valve bar must fit together
        if self.camera.source == "plant" and not self.sim.enabled:
            raise ValueError(
                'camera.source is "plant" (the embedded virtual plant) but sim.enabled = false: '
                'name the line\'s camera in [camera] source (a video file, "v4l2:N", '
                '"rtsp://...", "genicam:PRODUCER.cti", "shm:NAME")'
            )
        if self.sim.enabled and self.camera.source != "plant":
            raise ValueError(
                f"sim.enabled = true runs the embedded virtual plant, but camera.source is "
                f'"{self.camera.source}": set sim.enabled = false to use that camera'
            )
        return self

    @property
    def geometry(self) -> LineGeometry:
        return LineGeometry(belt=self.belt, camera=self.camera.geometry, valves=self.valves)

    def resolve_path(self, value: str) -> Path | str:
        """A file named in the config: ``builtin:NAME`` stays as is, other paths
        are taken relative to the config file's folder."""
        if value.startswith("builtin:"):
            return value
        p = Path(value).expanduser()
        if not p.is_absolute() and self.source != DEFAULT_CONFIG_NAME:
            p = Path(self.source).parent / p
        return p


def records_dir(cfg: LineConfig) -> Path:
    """Where sort records go: ``[records].dir`` or the user's state folder."""
    if cfg.records.dir:
        p = cfg.resolve_path(cfg.records.dir)
        return Path(p)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "sortline" / "records"


def _default_data() -> dict[str, Any]:
    text = resources.files("sortline").joinpath("default_line.toml").read_text("utf-8")
    return parse_toml(text, DEFAULT_CONFIG_NAME)


def _overlay(base: dict[str, Any], top: dict[str, Any], path: Path, prefix: str = "") -> None:
    for key, value in top.items():
        where = f"{prefix}{key}"
        if key not in base:
            raise InputFileError(path, "unknown setting", field=where)
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise InputFileError(path, "must be a table", field=where)
            _overlay(base[key], value, path, prefix=where + ".")
        else:
            base[key] = value


def load_config(path: str | Path | None = None) -> LineConfig:
    """The embedded default, overlaid with ``path`` when given."""
    data = _default_data()
    source = DEFAULT_CONFIG_NAME
    if path is not None:
        p = Path(path)
        _overlay(data, read_toml(p), p)
        source = str(p)
    data["source"] = source
    return model_from_data(LineConfig, data, source)
