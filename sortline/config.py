"""``LineConfig``: the one typed object built at start-up from TOML.

The embedded default (``default_line.toml``) runs the virtual plant. A user
file is read as an overlay on that default, so a plant config names only
what differs. Validation errors become one line naming file and field.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from calibration.geometry import BeltGeometry, CameraGeometry, LineGeometry, ValveBar
from core.classes import DEFAULT_CLASSES
from core.errors import InputFileError, model_from_data, parse_toml, read_toml

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)
DEFAULT_CONFIG_NAME = "<embedded default line config>"


if TYPE_CHECKING:
    from collections.abc import Callable

    from control.params import ControlParams
    from vision.merge import MergeParams
    from vision.segment import SegmentParams
    from vision.track_crops import CropPolicy


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


class PlcTls(BaseModel):
    """``[plc] tls = {ca, cert, key}``: Modbus/TCP Security (TLS, mutual
    certificates): the CA that signed the PLC's certificate, and this
    controller's certificate and private key (PEM files, absolute paths);
    all three "" (the default): plain Modbus TCP."""

    model_config = _STRICT
    ca: str = ""
    cert: str = ""
    key: str = ""

    @model_validator(mode="after")
    def _absolute(self) -> PlcTls:
        if not self.on:
            return self
        for name in ("ca", "cert", "key"):
            value = getattr(self, name)
            if not value or not Path(value).expanduser().is_absolute():
                raise ValueError(f"plc.tls.{name} must be an absolute path (got {value!r})")
        return self

    @property
    def on(self) -> bool:
        return bool(self.ca or self.cert or self.key)


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
    tls: PlcTls = Field(PlcTls(), description="Modbus/TCP Security: {ca, cert, key}")

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
    classify: Literal["tracks", "every"] = Field(
        "tracks",
        description="tracks: crop a fragment's first, fully visible and uncertain views "
        "(classification follows fragments/s); every: every view of every frame",
    )
    crop_budget: int = Field(32, ge=1, le=10000, description="crops per frame at most (tracks)")
    merge_flag: bool = Field(
        True, description="flag probable merges of touching fragments ([control] recipe's prefer)"
    )
    merge_material: bool = Field(
        True,
        description="a probable merge that is all red metal (copper, brass) is one material: "
        "not flagged (vision/merge.py); false: the flag of session 13",
    )
    split_chroma: bool = Field(
        True,
        description="classic split: a red metal on or against a grey one is cut between "
        "them (vision/split.py, cue 4); false: the split of session 13",
    )
    split_warm: bool = Field(
        False,
        description="classic split: a red metal is cut from whatever else it touches "
        "(PCB, rubber, coloured plastic; vision/split_warm.py, cue 5; session 15)",
    )
    segmenter: Literal["classic", "learned"] = Field(
        "classic",
        description="touching fragments: classic (shape, notch and colour split) or learned "
        "(pieces seeded by the instance-cue model, vision/learned.py)",
    )
    segmenter_model: str = Field(
        "builtin:seg-v1", description='instance-cue ONNX file (segmenter = "learned")'
    )

    def crop_policy(self) -> CropPolicy:
        from vision.track_crops import CropPolicy

        return CropPolicy(mode=self.classify, budget=self.crop_budget)

    def merge_params(self) -> MergeParams | None:
        from vision.merge import WARM_SHARE, MergeParams

        if not self.merge_flag:
            return None
        return MergeParams(warm_share=WARM_SHARE if self.merge_material else 0.0)

    def segment_params(self, resolve: Callable[[str], Path | str] = str) -> SegmentParams:
        """The segmentation's parameters; ``resolve`` maps a file named in the config
        to its path (``LineConfig.resolve_path``)."""
        from models.seg_models import resolve_seg_model
        from vision.segment import SegmentParams

        if self.segmenter == "classic":
            return SegmentParams(split_chroma=self.split_chroma, split_warm=self.split_warm)
        path = resolve_seg_model(resolve(self.segmenter_model))
        threads = self.intra_op_threads
        return SegmentParams(segmenter="learned", learned_model=str(path), learned_threads=threads)


class ControlSection(BaseModel):
    model_config = _STRICT
    recipe: str = "builtin:default"
    deadline_margin_ms: float = Field(5.0, ge=0, le=1000)
    rt_priority: int = Field(
        0, ge=0, le=99,
        description="SCHED_FIFO priority of the frame loop and its vision worker; 0 = normal",
    )  # fmt: skip
    aim_rule: Literal["cut", "search"] = Field(
        "search",
        description='aiming around neighbours of another fraction: "search" (per target, the '
        'valve run and air window that lift it and no neighbour) or "cut" (the earlier rule)',
    )
    lift_share: float = Field(
        0.5, gt=0, lt=1,
        description="the air lifts a piece with this share of its length and width under it "
        "(the nozzles' and air pressure's property, measured on the bench rig)",
    )  # fmt: skip
    aim_margin: float = Field(
        0.1, ge=0, lt=0.5, description="kept above lift_share for a target, below for a neighbour"
    )
    jet_length_mm: float = Field(
        8.0, ge=0, le=100, description="a jet's footprint along the belt (the nozzles' property)"
    )
    aim_fallback_margin: float = Field(
        0.0, ge=0, lt=0.5,
        description="when no window spares every neighbour at aim_margin and the air goes out "
        "anyway (prefer = balanced, a battery), the thinnest margin tried before lifting one; "
        "= aim_margin: never",
    )  # fmt: skip

    aim_last_resort: Literal["least", "cover"] = Field(
        "least",
        description="when no window spares every neighbour even at aim_fallback_margin and the "
        'air goes out anyway: "cover" (the most of the target, often the full window) or '
        '"least" (the window putting the least air over the neighbours it lifts; issue 15)',
    )

    aim_last_k_sigma: float = Field(
        1.0, ge=0, le=2.0,
        description='the "least" last resort keeps the target under air for a crossing error '
        "within this many sigmas (the search: 2)",
    )  # fmt: skip

    @model_validator(mode="after")
    def _margin_fits(self) -> ControlSection:
        if not self.aim_margin < self.lift_share <= 1 - self.aim_margin:
            raise ValueError(
                f"lift_share {self.lift_share:g} must lie in (aim_margin, 1 - aim_margin] = "
                f"({self.aim_margin:g}, {1 - self.aim_margin:g}]"
            )
        if self.aim_fallback_margin > self.aim_margin:
            raise ValueError(
                f"aim_fallback_margin {self.aim_fallback_margin:g} must not exceed aim_margin "
                f"{self.aim_margin:g}"
            )
        return self

    def control_params(self) -> ControlParams:
        """The decision core's parameters this section sets (the rest: defaults)."""
        from control.params import ControlParams

        return ControlParams(
            aim_rule=self.aim_rule, lift_share=self.lift_share, aim_margin=self.aim_margin,
            jet_length_mm=self.jet_length_mm, aim_fallback_margin=self.aim_fallback_margin,
            aim_last_resort=self.aim_last_resort, aim_last_k_sigma=self.aim_last_k_sigma,
        )  # fmt: skip


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
    max_body_bytes: int = Field(
        65536, ge=1024, le=1 << 26, description="larger request bodies get 413"
    )
    nice: int = Field(
        10, ge=0, le=19, description="the API's process runs this much nicer than the loop's"
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


class ShiftEntry(BaseModel):
    """One shift of ``[records] shifts``: it runs from ``start`` until the next one starts."""

    model_config = _STRICT
    name: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_. -]+$")
    start: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="HH:MM local time")


class RecordsSection(BaseModel):
    """``[records]``: the production records store (``sortline.records``)."""

    model_config = _STRICT
    dir: str = ""
    enabled: bool = True
    url: str = Field(
        "",
        pattern=r"^$|^sqlite:///.+|^postgres(ql)?://.+",
        description='"" = sqlite:///<dir>/<line>.sqlite; or sqlite:///PATH, postgresql://...',
    )
    shifts: list[ShiftEntry] = Field(default_factory=list)
    timezone: str = Field(
        "UTC", min_length=1, max_length=64, description="IANA zone of the shift times"
    )
    retention_days: float = Field(365.0, gt=0, le=36500, description="older decisions pruned")
    batch_ms: float = Field(200.0, ge=10, le=1000, description="a commit at least this often")
    batch_rows: int = Field(500, ge=1, le=100_000, description="... or once this many rows wait")
    queue_cycles: int = Field(4096, ge=16, le=1_000_000, description="cycles waiting, then drop")
    memory_rows: int = Field(
        200_000, ge=100, le=10_000_000, description="rows kept while the store fails"
    )
    spool_rows: int = Field(
        1_000_000, ge=100, le=100_000_000, description="server outage: rows spooled on disk"
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name the
            raise ValueError(f"unknown time zone {v!r}") from None  # file system refuses
        return v

    @model_validator(mode="after")
    def _distinct_shifts(self) -> RecordsSection:
        starts = [s.start for s in self.shifts]
        names = [s.name for s in self.shifts]
        if len(set(starts)) != len(starts) or len(set(names)) != len(names):
            raise ValueError("records.shifts: each shift needs its own name and start")
        return self


class RecipesSection(BaseModel):
    """``[recipes]``: the recipe library of the status API (``sortline.recipe_library``)."""

    model_config = _STRICT
    dir: str = Field(
        "", description='uploaded recipes and their activation history; "" = <records dir>/recipes'
    )


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


class SensorSection(BaseModel):
    """``[sensor]``: a second sensor beside the camera, the induction bar
    (``sortline/sensor/README.md``: its UDP stream and geometry)."""

    model_config = _STRICT
    enabled: bool = False
    host: str = Field("127.0.0.1", description="where the controller listens for the bar's rows")
    port: int = Field(5030, ge=0, le=65535, description="UDP port; 0 = a free one")
    channels: int = Field(32, ge=1, le=256, description="coils across the belt")
    pitch_mm: float = Field(31.25, gt=0, le=500, strict=False)
    coil_radius_mm: float = Field(
        15.0, gt=0, le=250, strict=False,
        description="the coils' sensitivity radius (a Gaussian's sigma); the model must have "
        "been fitted on a bar of this pitch, coil radius and row spacing",
    )  # fmt: skip
    x_first_mm: float = Field(0.0, ge=-500, le=5000, strict=False, description="coil 0's edge")
    y_bar_mm: float = Field(
        -300.0, ge=-5000, le=5000, strict=False,
        description="the bar line in the camera's belt y (negative: upstream); a calibration "
        "of the bar offset replaces it",
    )  # fmt: skip
    every_ticks: int = Field(50, ge=1, le=100000, description="encoder counts between rows")
    frequencies_hz: list[float] = Field(
        default_factory=lambda: [5000.0, 50000.0], min_length=1, max_length=2,
        description="the coils' drive frequencies, Hz (two: a multi-frequency bar, "
        "sortline/sensor/README.md); the model must read them",
    )  # fmt: skip
    stall_ms: float = Field(200.0, gt=0, le=60000, strict=False)
    model: str = Field(
        "builtin:induction-v3",
        description="the induction model (JSON); it must read the bar's frequencies_hz",
    )
    weight: float = Field(
        1.0, ge=0, le=10, strict=False,
        description="times the model's fitted weight of its evidence (1: as fitted)",
    )  # fmt: skip
    needs_sensor: list[str] = Field(
        default_factory=list,
        description="classes not ejected on the camera alone while the sensor is stalled",
    )
    shared_damping: float = Field(
        1.5, ge=0, le=10, strict=False,
        description="a track's fused outlook divided by 1 + this x the share of its sensor "
        "footprint other footprints cover (0: off): touching pieces held back",
    )  # fmt: skip
    anchor_views: int = Field(
        4, ge=0, le=50,
        description="a track's bar position is taken at its first confirmed frame with this "
        "many views (2 wholly in the image), projected back by its velocity then, and used "
        "once it has moved 5 mm on the belt (0: projected back from every frame; a slider "
        "that has stopped is then read where it would be had it never slid)",
    )  # fmt: skip

    @field_validator("frequencies_hz")
    @classmethod
    def _distinct_positive(cls, v: list[float]) -> list[float]:
        if any(not f > 0 for f in v) or len(set(v)) != len(v):
            raise ValueError(f"frequencies must be distinct and > 0, got {v}")
        return v


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
    load_window_frames: int = Field(
        300, ge=1, le=1_000_000, description="belt load (sortline.belt_load) per this many frames"
    )
    load_min_segments: int = Field(
        200, ge=1, description="per window, to judge the belt load (fewer: too empty to say)"
    )
    overfed_covered_share: float = Field(
        0.20,
        gt=0,
        le=1,
        description="share of the camera's view covered by fragments at or above which the belt "
        "is overfed: warning, cleared below 0.8 of it (1: never)",
    )
    valve_window_s: float = Field(120.0, gt=0, le=86400)
    valve_min_cycles: int = Field(
        5, ge=1, description="a valve is judged when both neighbours ran this often in the window"
    )
    valve_weak_share: float = Field(
        0.2, ge=0, lt=1, description="fewer cycles than this share of the lesser neighbour's: weak"
    )


class MqttDeadbands(BaseModel):
    """``[mqtt.deadband]``: report by exception; a value goes out when it moved
    more than this since it was last reported (states and text: any change)."""

    model_config = _STRICT
    count: float = Field(0.0, ge=0, description="counters (frames, objects, pulses)")
    ratio: float = Field(0.001, ge=0, le=1, description="purity, recovery (0..1)")
    rate: float = Field(0.5, ge=0, description="fragments per second")
    seconds: float = Field(0.0005, ge=0, description="latencies, s")
    speed: float = Field(0.005, ge=0, description="belt speed, m/s")


class MqttSection(BaseModel):
    """``[mqtt]``: the line as a Sparkplug B edge node (``sortline.sparkplug``)."""

    model_config = _STRICT
    url: str = Field(
        "",
        pattern=r"^$|^mqtts?://[A-Za-z0-9.\-\[\]:]+(:[0-9]{1,5})?/?$",
        description='"" = off; "mqtt://host:1883" or "mqtts://host:8883" (TLS: ca, cert, key)',
    )
    group: str = Field("sortline", min_length=1, max_length=64, pattern=r"^[^/#+]+$")
    node: str = Field("", max_length=64, pattern=r"^[^/#+]*$", description='"" = [line] name')
    client_id: str = Field("", max_length=128, description='"" = sortline-<group>-<node>')
    username: str = ""
    password: str = Field("", description="broker password (plain text: MQTT sends it)")
    ca: str = Field("", description="mqtts: CA certificate file (PEM)")
    cert: str = Field("", description="mqtts: client certificate (PEM), for brokers that ask")
    key: str = Field("", description="mqtts: the client certificate's private key (PEM)")
    keepalive_s: int = Field(10, ge=2, le=3600)
    reconnect_max_s: float = Field(5.0, ge=1, le=600)
    publish_s: float = Field(0.5, ge=0.005, le=3600, description="snapshot read this often")
    backlog: int = Field(1000, ge=10, le=1_000_000, description="messages waiting, then dropped")
    command_role: Literal["", "operator", "engineer"] = Field(
        "",
        description='NCMD commands allowed: "" none; operator: start, stop, reset; '
        "engineer: also the recipe",
    )
    command_name: str = Field(
        "mqtt", min_length=1, max_length=64, description="who NCMD commands are audited as"
    )
    deadband: MqttDeadbands = MqttDeadbands()

    @model_validator(mode="after")
    def _tls_files(self) -> MqttSection:
        if (self.ca or self.cert or self.key) and not self.url.startswith("mqtts://"):
            raise ValueError("ca, cert and key need an mqtts:// url")
        if bool(self.cert) != bool(self.key):
            raise ValueError("cert and key go together")
        return self


class OpcuaUser(BaseModel):
    """One ``[[opcua.users]]`` entry: an OPC UA user name, its role and the
    scrypt hash of its password (``sortline.auth.hash_key(password)``)."""

    model_config = _STRICT
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    role: Literal["operator", "engineer"]
    hash: str = Field(max_length=200)

    @field_validator("hash")
    @classmethod
    def _well_formed(cls, value: str) -> str:
        from sortline.auth import check_hash

        return check_hash(value)


class OpcuaSection(BaseModel):
    """``[opcua]``: an OPC UA server exposing the line as PackML (``sortline.opcua_server``)."""

    model_config = _STRICT
    endpoint: str = Field(
        "",
        pattern=r"^$|^opc\.tcp://[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}(/.*)?$",
        description='"" = off; e.g. "opc.tcp://0.0.0.0:4840/sortline"',
    )
    publish_s: float = Field(0.5, ge=0.05, le=3600, description="nodes updated this often")
    writable: bool = Field(
        False, description="Start/Stop/Reset methods; needs certificate, private_key and users"
    )
    certificate: str = Field("", description="server certificate (DER or PEM)")
    private_key: str = Field("", description="its private key (PEM)")
    trusted_clients: str = Field(
        "", description="folder of client certificates allowed to log in with the certificate"
    )
    users: tuple[OpcuaUser, ...] = Field((), strict=False)
    max_sessions: int = Field(10, ge=1, le=1000)
    max_subscriptions_per_session: int = Field(8, ge=1, le=1000)

    @model_validator(mode="after")
    def _secure_when_writable(self) -> OpcuaSection:
        if self.writable and not (self.certificate and self.private_key):
            raise ValueError(
                "writable = true needs certificate and private_key (Basic256Sha256 SignAndEncrypt)"
            )
        if self.writable and not (self.users or self.trusted_clients):
            raise ValueError("writable = true needs [[opcua.users]] or trusted_clients")
        names = [u.name for u in self.users]
        if len(set(names)) != len(names):
            raise ValueError("opcua.users: a name used twice")
        return self


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
    recipes: RecipesSection = RecipesSection()
    sim: SimSection = SimSection()
    sensor: SensorSection = SensorSection()
    alarms: AlarmsSection = AlarmsSection()
    mqtt: MqttSection = MqttSection()
    opcua: OpcuaSection = OpcuaSection()
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
