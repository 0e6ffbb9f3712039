"""The line's status snapshot: typed, frozen, published by the real-time thread.

``/status`` declares ``StatusSnapshot`` as its response model; ``--report``
(``report_from``) and the dashboard are projections of it. The real-time
thread builds it with ``model_construct`` (no validation on the hot path: its
fields come from our own counters); the API serialises it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from plc.bridge import PlcStatus

__all__ = [
    "CameraView",
    "Event",
    "LatencyMs",
    "Quality",
    "SensorView",
    "StatusSnapshot",
    "TimeBaseView",
    "report_from",
]

_FROZEN = ConfigDict(frozen=True)


class LatencyMs(BaseModel):
    """Frame latency (arrival to pulses handed to the bridge), ms, last 4096 frames."""

    model_config = _FROZEN
    p50: float | None = None
    p99: float | None = None
    max: float | None = None


class Quality(BaseModel):
    """From the virtual plant's ground truth (None on a real line)."""

    model_config = _FROZEN
    purity: float | None = None
    recovery: float | None = None
    co_ejection_rate: float | None = None
    objects_ejected: int | None = None
    source: str = "none"
    error: str = ""


class CameraView(BaseModel):
    model_config = _FROZEN
    source: str
    name: str
    connected: bool
    frames_read: int
    frames_lost: int  # gaps in the camera's frame counter
    frames_bad: int  # wrong size or type
    reconnects: int
    last_error: str
    seconds_since_frame: float | None


class TimeBaseView(BaseModel):
    model_config = _FROZEN
    mode: Literal["trigger", "free"]
    trigger_every_ticks: int | None
    frames_stamped: int
    frames_unstamped: int
    mismatches: int  # trigger mode: camera and triggers re-matched (lost or extra frame)
    timing_outliers: int  # trigger mode: a frame off its trigger once (a late encoder sample)
    frames_unchecked: int  # trigger mode: encoder reads too slow to date to check a frame
    error_source: str  # "camera": against its own count; "encoder": against interpolation
    error_ticks_p50: float | None
    error_ticks_p99: float | None
    error_ticks_max: float | None
    error_mm_p99: float | None
    last_problem: str


class BeltLoadView(BaseModel):
    """How full the belt is (``sortline.belt_load``): segments and flagged
    merges since start; over the last window of frames, the share of segments
    that look like touching pieces (None: too few segments to judge, or no
    window yet) and the share of the view covered by fragments."""

    model_config = _FROZEN
    segments: int
    segments_merged: int
    merged_share: float | None
    covered_share: float | None
    window_frames: int


class SensorView(BaseModel):
    """The second sensor (the induction bar, ``[sensor]``): what its reader
    received (``sortline.sensor.reader``)."""

    model_config = _FROZEN
    receiving: bool  # a valid packet within the stall limit and no fault reported
    stalled: bool  # no valid packet for the stall limit (or none yet)
    fault: bool  # the sensor reports a fault in its packets
    packets_ok: int
    packets_lost: int  # gaps in the packets' sequence numbers
    packets_refused: dict[str, int]  # reason -> count (short, magic, version, ...)
    last_refusal: str
    rows_missing: int  # sample rows missing against their encoder counts
    rows_kept: int  # rows in the reader's ring


class Event(BaseModel):
    model_config = _FROZEN
    t_unix_s: float
    from_state: str
    to_state: str
    cause: str


class StatusSnapshot(BaseModel):
    """What the line is doing. Counters run since start; ``frames_dropped`` =
    frames the loop never processed: lost between camera and loop (counter
    gaps), malformed, or without an encoder count."""

    model_config = _FROZEN
    line: str
    state: str
    state_code: int
    causes: list[str]
    events: list[Event]
    recipe: str
    calibration: dict[str, Any]
    line_params: dict[str, float | int | None]
    uptime_s: float
    frames: int
    frames_dropped: int
    frames_untimed: int
    live_tracks: int
    controller: dict[str, int]
    throughput_per_min: float | None
    deadline_misses: int
    quality: Quality
    composition: dict[str, int]
    latency_ms: LatencyMs
    camera: CameraView
    timebase: TimeBaseView
    plc: PlcStatus
    virtual_plant: bool
    warm_up_s: float | None
    valves_disabled: list[int] = []  # by an operator (POST /valves/{n}/disable)
    sensor: SensorView | None = None  # the induction bar, when [sensor] is enabled
    belt_load: BeltLoadView | None = None  # None only before the line's first publish


def report_from(
    snap: StatusSnapshot, score: dict[str, Any] | None, extra: dict[str, Any]
) -> dict[str, Any]:
    """The JSON summary of DESIGN.md (``sortline run --report``): a projection
    of the snapshot, with the plant's full score when there is one."""
    c = snap.controller
    q = snap.quality
    return {
        "line": snap.line,
        **extra,
        "virtual_plant": snap.virtual_plant,
        "duration_s": snap.uptime_s,
        "frames": snap.frames,
        "frames_dropped": snap.frames_dropped,
        "objects_seen": int(c.get("objects_seen", 0)),
        "objects_targeted": int(c.get("objects_targeted", 0)),
        "objects_ejected": q.objects_ejected,
        "purity": q.purity,
        "recovery": q.recovery,
        "co_ejection_rate": q.co_ejection_rate,
        "deadline_misses": snap.deadline_misses,
        "latency_ms": {"p50": snap.latency_ms.p50, "p99": snap.latency_ms.p99},
        "state": snap.state,
        "causes": list(snap.causes),
        "controller": dict(c),
        "camera": snap.camera.model_dump(mode="json"),
        "timebase": snap.timebase.model_dump(mode="json"),
        "calibration": snap.calibration,
        "line_params": snap.line_params,
        "plc": snap.model_dump(mode="json")["plc"],
        "score": score,
    }
