"""The batches that cross folders: ``Detections``, ``Tracks``, ``Pulses``.

Coordinates (DESIGN.md): ``x`` mm across the belt from its left edge looking
downstream; ``y`` mm downstream of the camera's reference line at the frame's
exposure; ``u`` mm along the belt fixed to its surface (``u = y - travel``).
Encoder counts on the wire are unsigned 32-bit (``*_tick`` as ``uint32``);
inside the controller, unwrapped counts are ``int64``.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import ClassVar

import numpy as np

from core.batch import Batch, Schema

__all__ = ["Detections", "Pulses", "TrackState", "Tracks"]

_NO_MERGE = np.zeros(0, np.bool_)  # Detections.merged not given: all False
_NO_AXES = np.zeros((0, 2), np.float32)  # Detections.axes_mm not given: all NaN (unknown)


@dataclasses.dataclass(frozen=True, slots=True)
class Detections(Batch):
    """Fragments found in one frame.

    frame_id:     frame counter of the source.
    tick:         encoder count (uint32) at exposure.
    bbox_px:      (N, 4) float32 x0, y0, x1, y1 in image pixels.
    centroid_mm:  (N, 2) float64 x, y in belt mm at exposure.
    extent_mm:    (N, 4) float64 x_min, x_max, y_min, y_max in belt mm.
    area_mm2:     (N,) float32.
    class_id:     (N,) int16 index into the model's class list, -1 unclassified.
    confidence:   (N,) float32 probability of ``class_id``.
    class_prob:   (N, K) float32 class probabilities (K = 0 when not kept); a
                  row of NaN (class_id -1) is a view that was not classified
                  and carries no class evidence.
    merged:       (N,) bool the segment probably holds more than one fragment
                  (vision's merge cues); default all False.
    axes_mm:      (N, 2) float32 minor and major full length, belt mm, of the
                  segment's moment-equivalent rectangle (its second central
                  moments: a size that does not depend on how the piece lies,
                  unlike ``extent_mm``); default all NaN (not measured).
    """

    frame_id: int
    tick: int
    bbox_px: np.ndarray
    centroid_mm: np.ndarray
    extent_mm: np.ndarray
    area_mm2: np.ndarray
    class_id: np.ndarray
    confidence: np.ndarray
    class_prob: np.ndarray
    merged: np.ndarray = dataclasses.field(default_factory=lambda: _NO_MERGE)
    axes_mm: np.ndarray = dataclasses.field(default_factory=lambda: _NO_AXES)

    _SCHEMA: ClassVar[Schema] = {
        "bbox_px": (np.float32, (4,)),
        "centroid_mm": (np.float64, (2,)),
        "extent_mm": (np.float64, (4,)),
        "area_mm2": (np.float32, ()),
        "class_id": (np.int16, ()),
        "confidence": (np.float32, ()),
        "class_prob": (np.float32, (-1,)),
        "merged": (np.bool_, ()),
        "axes_mm": (np.float32, (2,)),
    }

    def __post_init__(self) -> None:
        if self.merged is _NO_MERGE:
            object.__setattr__(self, "merged", np.zeros(np.shape(self.area_mm2)[:1], np.bool_))
        if self.axes_mm is _NO_AXES:
            n = np.shape(self.area_mm2)[:1]
            object.__setattr__(self, "axes_mm", np.full((*n, 2), np.nan, np.float32))
        Batch.__post_init__(self)
        if not 0 <= int(self.tick) < 1 << 32:
            raise ValueError(f"Detections.tick {self.tick} is not an unsigned 32-bit count")
        if int(self.frame_id) < 0:
            raise ValueError(f"Detections.frame_id {self.frame_id} is negative")
        if len(self) and not np.all(np.isfinite(self.centroid_mm)):
            raise ValueError("Detections.centroid_mm holds NaN or infinity")


class TrackState(enum.IntEnum):
    TENTATIVE = 0
    CONFIRMED = 1
    COASTING = 2  # not seen in the last frame(s), still predicted
    DECIDED = 3  # crossing scheduled (or deliberately not), kept until it passes


@dataclasses.dataclass(frozen=True, slots=True)
class Tracks(Batch):
    """Live tracks after one update, in belt coordinates.

    tick:            encoder count (uint32) of the update.
    track_id:        (N,) int64, unique for the life of the controller.
    state:           (N,) int8 ``TrackState``.
    centroid_mm:     (N, 2) float64 x, u.
    velocity_mm_tick:(N, 2) float64 drift of x, u per encoder tick.
    extent_mm:       (N, 4) float64 x_min, x_max, u_min, u_max.
    class_evidence:  (N, K) float32 summed log class probabilities over views.
    class_id:        (N,) int16 most likely class, -1 none yet.
    class_prob:      (N,) float32 combined probability of ``class_id``.
    n_views:         (N,) int16 frames that contributed evidence.
    cross_on_tick:   (N,) int64 unwrapped count when the leading edge reaches
                     the valve line.
    cross_off_tick:  (N,) int64 unwrapped count when the trailing edge leaves it.
    cross_sigma_tick:(N,) float32 one-sigma uncertainty of the crossing.
    fraction:        (N,) int16 target output fraction, -1 pass-through.
    """

    tick: int
    track_id: np.ndarray
    state: np.ndarray
    centroid_mm: np.ndarray
    velocity_mm_tick: np.ndarray
    extent_mm: np.ndarray
    class_evidence: np.ndarray
    class_id: np.ndarray
    class_prob: np.ndarray
    n_views: np.ndarray
    cross_on_tick: np.ndarray
    cross_off_tick: np.ndarray
    cross_sigma_tick: np.ndarray
    fraction: np.ndarray

    _SCHEMA: ClassVar[Schema] = {
        "track_id": (np.int64, ()),
        "state": (np.int8, ()),
        "centroid_mm": (np.float64, (2,)),
        "velocity_mm_tick": (np.float64, (2,)),
        "extent_mm": (np.float64, (4,)),
        "class_evidence": (np.float32, (-1,)),
        "class_id": (np.int16, ()),
        "class_prob": (np.float32, ()),
        "n_views": (np.int16, ()),
        "cross_on_tick": (np.int64, ()),
        "cross_off_tick": (np.int64, ()),
        "cross_sigma_tick": (np.float32, ()),
        "fraction": (np.int16, ()),
    }


@dataclasses.dataclass(frozen=True, slots=True)
class Pulses(Batch):
    """Timed actuator commands: "valves a..b of actuator k on from T1 to T2".

    actuator:    (N,) int16; 0 is the air-jet valve bar, 1.. diverter flaps.
    first_valve: (N,) int16 first valve of the run (0-based, inclusive).
    last_valve:  (N,) int16 last valve of the run (inclusive).
    on_tick:     (N,) uint32 encoder count at which the valves open.
    off_tick:    (N,) uint32 encoder count at which they close.
    track_id:    (N,) int64 the track the pulse is for.
    fraction:    (N,) int16 output fraction it sends the fragment to.
    """

    actuator: np.ndarray
    first_valve: np.ndarray
    last_valve: np.ndarray
    on_tick: np.ndarray
    off_tick: np.ndarray
    track_id: np.ndarray
    fraction: np.ndarray

    _SCHEMA: ClassVar[Schema] = {
        "actuator": (np.int16, ()),
        "first_valve": (np.int16, ()),
        "last_valve": (np.int16, ()),
        "on_tick": (np.uint32, ()),
        "off_tick": (np.uint32, ()),
        "track_id": (np.int64, ()),
        "fraction": (np.int16, ()),
    }

    def __post_init__(self) -> None:
        Batch.__post_init__(self)
        if len(self):
            if np.any(self.first_valve < 0) or np.any(self.last_valve < self.first_valve):
                raise ValueError("Pulses: valve runs need 0 <= first_valve <= last_valve")
            span = (self.off_tick.astype(np.int64) - self.on_tick.astype(np.int64)) % (1 << 32)
            if np.any(span == 0) or np.any(span >= 1 << 31):
                raise ValueError("Pulses: off_tick must follow on_tick (within 2**31 ticks)")
