"""The metrics a line publishes over Sparkplug B: names, types, units,
report-by-exception kinds, and how each is read from a ``LineReading``.

Names follow ``sortline.metrics_prom`` (the Prometheus set, without its
``sortline_`` prefix and ``_total`` suffix), in Sparkplug folders; units
are the Prometheus base units (seconds, metres per second, ratios) and travel
in each metric's birth as the property ``engUnit``. Aliases number the node's
metrics, then its devices', from 1, unique across the edge node (spec 3.0).

Kinds name the deadband that applies (``[mqtt.deadband]``): a value is
reported when it differs from the last one reported by more than its kind's
deadband; ``exact`` (states, flags, text) on any change.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Literal

from plc.bridge import PlcStatus
from sortline.sparkplug.schema import DataType
from sortline.status import StatusSnapshot

__all__ = [
    "DEVICES",
    "NODE_CONTROL",
    "Kind",
    "LineReading",
    "MetricDef",
    "Value",
    "changed",
    "device_metrics",
    "node_metrics",
]

Kind = Literal["exact", "count", "ratio", "rate", "seconds", "speed"]
Value = int | float | bool | str | None
DEVICES = ("camera", "plc", "valves")
REBIRTH = "Node Control/Rebirth"
NODE_CONTROL = (REBIRTH, "Line Control/Start", "Line Control/Stop", "Line Control/Reset")
RECIPE = "Line Control/Recipe"


@dataclasses.dataclass(frozen=True, slots=True)
class LineReading:
    """What one publishing round reads: the line's snapshot and what lives
    beside it (the alarm book's active count)."""

    snap: StatusSnapshot
    alarms_active: int


@dataclasses.dataclass(frozen=True, slots=True)
class MetricDef:
    name: str
    datatype: DataType
    unit: str
    kind: Kind
    read: Callable[[LineReading], Value]
    alias: int = 0


def changed(old: Value, new: Value, kind: Kind, deadbands: Mapping[str, float]) -> bool:
    """Report ``new``? (``old`` is the value last reported.)"""
    if old is None or new is None or kind == "exact" or isinstance(new, (bool, str)):
        return old != new
    assert not isinstance(old, (bool, str))
    if isinstance(new, float) and math.isnan(new):
        return not (isinstance(old, float) and math.isnan(old))
    return abs(new - old) > deadbands.get(kind, 0.0)


def _c(key: str) -> Callable[[LineReading], Value]:
    return lambda r: int(r.snap.controller.get(key, 0))


def _fragments_per_s(r: LineReading) -> Value:
    t = r.snap.throughput_per_min
    return None if t is None else t / 60.0


def _node(f: Callable[[StatusSnapshot], Value]) -> Callable[[LineReading], Value]:
    return lambda r: f(r.snap)


_U64, _I32, _U32, _F64 = DataType.UINT64, DataType.INT32, DataType.UINT32, DataType.DOUBLE
_BOOL, _STR = DataType.BOOLEAN, DataType.STRING


def node_metrics() -> list[MetricDef]:
    """The edge node's own metrics, without ``bdSeq`` (the node adds it)."""
    return [
        MetricDef(REBIRTH, _BOOL, "", "exact", lambda r: False),
        MetricDef("Line Control/Start", _BOOL, "", "exact", lambda r: False),
        MetricDef("Line Control/Stop", _BOOL, "", "exact", lambda r: False),
        MetricDef("Line Control/Reset", _BOOL, "", "exact", lambda r: False),
        MetricDef(RECIPE, _STR, "", "exact", _node(lambda s: s.recipe)),
        MetricDef("Line/line_state_code", _I32, "PackML", "exact", _node(lambda s: s.state_code)),
        MetricDef("Line/line_state", _STR, "", "exact", _node(lambda s: s.state)),
        MetricDef("Line/causes", _STR, "", "exact", _node(lambda s: "; ".join(s.causes))),
        MetricDef("Line/recipe", _STR, "", "exact", _node(lambda s: s.recipe)),
        MetricDef("Line/frames_processed", _U64, "frames", "count", _node(lambda s: s.frames)),
        MetricDef(
            "Line/frames_dropped", _U64, "frames", "count", _node(lambda s: s.frames_dropped)
        ),
        MetricDef("Line/objects_seen", _U64, "objects", "count", _c("objects_seen")),
        MetricDef("Line/objects_targeted", _U64, "objects", "count", _c("objects_targeted")),
        MetricDef("Line/fragments_per_second", _F64, "1/s", "rate", _fragments_per_s),
        MetricDef(
            "Line/deadline_misses", _U64, "pulses", "count", _node(lambda s: s.deadline_misses)
        ),
        MetricDef("Line/live_tracks", _U32, "tracks", "count", _node(lambda s: s.live_tracks)),
        MetricDef(
            "Line/frame_latency_p99_seconds",
            _F64,
            "s",
            "seconds",
            _node(lambda s: None if s.latency_ms.p99 is None else s.latency_ms.p99 * 1e-3),
        ),
        MetricDef("Line/alarms_active", _U32, "alarms", "count", lambda r: r.alarms_active),
        MetricDef("Plant/purity_ratio", _F64, "ratio", "ratio", _node(lambda s: s.quality.purity)),
        MetricDef(
            "Plant/recovery_ratio", _F64, "ratio", "ratio", _node(lambda s: s.quality.recovery)
        ),
        MetricDef(
            "Plant/co_ejection_ratio",
            _F64,
            "ratio",
            "ratio",
            _node(lambda s: s.quality.co_ejection_rate),
        ),
    ]


def _camera() -> list[MetricDef]:
    return [
        MetricDef("camera_connected", _BOOL, "", "exact", _node(lambda s: s.camera.connected)),
        MetricDef("frames_read", _U64, "frames", "count", _node(lambda s: s.camera.frames_read)),
        MetricDef("frames_lost", _U64, "frames", "count", _node(lambda s: s.camera.frames_lost)),
        MetricDef("frames_bad", _U64, "frames", "count", _node(lambda s: s.camera.frames_bad)),
        MetricDef(
            "camera_reconnects", _U64, "reconnects", "count", _node(lambda s: s.camera.reconnects)
        ),
        MetricDef("source", _STR, "", "exact", _node(lambda s: s.camera.source)),
    ]


def _plc() -> list[MetricDef]:
    def p(f: Callable[[PlcStatus], Value]) -> Callable[[LineReading], Value]:
        return lambda r: f(r.snap.plc)

    return [
        MetricDef("plc_connected", _BOOL, "", "exact", p(lambda c: c.connected)),
        MetricDef("plc_estop", _BOOL, "", "exact", p(lambda c: c.estop)),
        MetricDef("plc_state_code", _I32, "PackML", "exact", p(lambda c: c.state)),
        MetricDef(
            "belt_speed_meters_per_second",
            _F64,
            "m/s",
            "speed",
            p(lambda c: c.speed_mm_s * 1e-3),
        ),
        MetricDef("plc_reconnects", _U64, "reconnects", "count", p(lambda c: c.reconnects)),
        MetricDef("plc_read_errors", _U64, "errors", "count", p(lambda c: c.read_errors)),
        MetricDef("pulses_submitted", _U64, "pulses", "count", p(lambda c: c.pulses_submitted)),
        MetricDef("pulses_acked", _U64, "pulses", "count", p(lambda c: c.pulses_acked)),
        MetricDef("pulses_late", _U64, "pulses", "count", p(lambda c: c.pulses_late)),
        MetricDef(
            "plc_watchdog_trips",
            _U64,
            "trips",
            "count",
            p(lambda c: c.plc_counters.get("watchdog_trips", 0)),
        ),
    ]


def _valves() -> list[MetricDef]:
    def cycles(r: LineReading) -> tuple[int, ...]:
        return r.snap.plc.valve_cycles

    return [
        MetricDef("valve_cycles", _U64, "cycles", "count", lambda r: sum(cycles(r))),
        MetricDef("valves_reporting", _U32, "valves", "count", lambda r: len(cycles(r))),
        MetricDef(
            "valves_disabled",
            _STR,
            "",
            "exact",
            _node(lambda s: ",".join(str(v) for v in s.valves_disabled)),
        ),
    ]


def device_metrics() -> dict[str, list[MetricDef]]:
    """Per device (``DEVICES``), its metrics."""
    return {"camera": _camera(), "plc": _plc(), "valves": _valves()}
