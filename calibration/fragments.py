"""Test fragments for the valve timing sweep: detection and one batch of shots.

A *shot* is one test fragment fed in a valve's lane, seen by the camera, and
that valve commanded on while the fragment is at belt ``a_mm`` (the fragment
centre's belt y when the command to open is due) for ``pulse_ticks``; the rig
says whether the command ejected it. ``a_mm`` is what the sweep varies.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np

from calibration.camera_model import CameraModel
from calibration.results import CalibrationError
from core.frame import Frame
from core.ticks import tick_diff, wrap_tick

__all__ = ["ShotPlan", "ShotResults", "TestFragmentRig", "detect_fragments", "run_shots"]


class TestFragmentRig(Protocol):
    """What the valve procedure needs from a rig (virtual or a real adapter)."""

    def feed_test_fragments(self, x_mm: np.ndarray, y_mm: np.ndarray, speed_mm_s: float) -> Frame:
        """Drop fragments near belt (x, y) mm at exposure, run at ``speed_mm_s``;
        return the frame that sees them."""
        ...

    def fire(self, valve: np.ndarray, on_tick: np.ndarray, off_tick: np.ndarray) -> np.ndarray:
        """Execute the commands; (N,) bool, True where command i ejected a fragment."""
        ...


def detect_fragments(
    image: np.ndarray, model: CameraModel, min_area_px: int = 12
) -> tuple[np.ndarray, np.ndarray]:
    """Bright test fragments on a dark belt -> (x_mm, y_mm), each (N,) float64.

    Centres are brightness-weighted means of the blob pixels mapped to belt mm;
    blobs cut by the image border are left out.
    """
    import cv2

    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    cum = np.cumsum(np.bincount(gray.ravel(), minlength=256))
    background = float(np.searchsorted(cum, 0.5 * cum[-1]))
    bright = float(np.searchsorted(cum, cum[-1] - 20))  # the 20th brightest pixel
    level = background + 0.5 * (bright - background)
    if level - background < 20:
        return np.zeros(0), np.zeros(0)
    mask = cv2.dilate((gray > level).astype(np.uint8), np.ones((3, 3), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    rows, cols = np.nonzero(labels)
    lab = labels[rows, cols]
    weight = np.clip(gray[rows, cols].astype(np.float64) - background, 0.0, None)
    x, y = model.px_to_mm(cols.astype(np.float64), rows.astype(np.float64))
    w_sum = np.bincount(lab, weight, minlength=n)
    left, top = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    right = left + stats[:, cv2.CC_STAT_WIDTH]
    bottom = top + stats[:, cv2.CC_STAT_HEIGHT]
    h, w = gray.shape
    inside = (left > 0) & (top > 0) & (right < w) & (bottom < h)  # cut blobs lie
    good = (stats[:, cv2.CC_STAT_AREA] >= min_area_px) & (w_sum > 0) & inside
    good[0] = False
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = np.bincount(lab, weight * x, minlength=n) / w_sum
        cy = np.bincount(lab, weight * y, minlength=n) / w_sum
    return cx[good], cy[good]


@dataclasses.dataclass(frozen=True)
class ShotPlan:
    """valve, a_mm: (N,) shots to make; lane_x_mm: (N,) lane centres; row_y_mm: belt y
    at which the operator drops each row; rows hold shots of non-adjacent valves."""

    valve: np.ndarray
    a_mm: np.ndarray
    lane_x_mm: np.ndarray
    speed_mm_s: float
    pulse_ticks: int
    match_radius_mm: float
    row_y_mm: tuple[float, ...] = (-120.0, 0.0, 120.0)
    row_stride: int = 2


@dataclasses.dataclass(frozen=True)
class ShotResults:
    """Made shots (lost ones, whose fragment was not seen, are left out).
    a_mm / b_mm: (N,) fragment centre's belt y when the command to open / close was due.
    x_mm: (N,) fragment centre's belt x as the camera saw it."""

    valve: np.ndarray
    a_mm: np.ndarray
    b_mm: np.ndarray
    hit: np.ndarray
    x_mm: np.ndarray
    speed_mm_s: float
    planned: int

    @staticmethod
    def concat(parts: list[ShotResults]) -> ShotResults:
        return ShotResults(
            np.concatenate([p.valve for p in parts]),
            np.concatenate([p.a_mm for p in parts]),
            np.concatenate([p.b_mm for p in parts]),
            np.concatenate([p.hit for p in parts]),
            np.concatenate([p.x_mm for p in parts]),
            parts[0].speed_mm_s,
            sum(p.planned for p in parts),
        )


def _rows(valve: np.ndarray, stride: int) -> list[np.ndarray]:
    """Split shot indices into rows: one shot per valve, valves ``stride`` apart."""
    rows: list[np.ndarray] = []
    for parity in range(stride):
        idx = np.flatnonzero(valve % stride == parity)
        order = idx[np.argsort(valve[idx], kind="stable")]
        rank = np.zeros(len(order), np.int64)
        if len(order):
            v = valve[order]
            starts = np.r_[0, np.flatnonzero(np.diff(v)) + 1]
            rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
        for r in range(int(rank.max(initial=-1)) + 1):
            rows.append(order[rank == r])
    return rows


def run_shots(
    rig: TestFragmentRig, model: CameraModel, mm_per_tick: float, plan: ShotPlan
) -> ShotResults:
    """Make every planned shot, ``len(plan.row_y_mm)`` rows per fed batch."""
    rows = _rows(plan.valve, plan.row_stride)
    per_frame = len(plan.row_y_mm)
    parts: list[ShotResults] = []
    for start in range(0, len(rows), per_frame):
        batch = rows[start : start + per_frame]
        idx = np.concatenate(batch)
        y_drop = np.concatenate([np.full(len(r), plan.row_y_mm[k]) for k, r in enumerate(batch)])
        frame = rig.feed_test_fragments(plan.lane_x_mm[idx], y_drop, plan.speed_mm_s)
        parts.append(_shoot(rig, model, mm_per_tick, plan, idx, y_drop, frame))
    results = ShotResults.concat(parts)
    if len(results.hit) < 0.8 * results.planned:
        raise CalibrationError(
            f"valve sweep: only {len(results.hit)} of {results.planned} test fragments were "
            "seen by the camera: use bright fragments on the dark belt, check the lighting and "
            "that the camera calibration (belt plane) is active"
        )
    return results


def _shoot(
    rig: TestFragmentRig,
    model: CameraModel,
    mm_per_tick: float,
    plan: ShotPlan,
    idx: np.ndarray,
    y_drop: np.ndarray,
    frame: Frame,
) -> ShotResults:
    x_det, y_det = detect_fragments(frame.image, model)
    want = np.stack([plan.lane_x_mm[idx], y_drop], axis=1)
    if len(x_det):
        dist = np.hypot(want[:, None, 0] - x_det[None, :], want[:, None, 1] - y_det[None, :])
        nearest = np.argmin(dist, axis=1)
        seen = dist[np.arange(len(idx)), nearest] < plan.match_radius_mm
    else:
        nearest = np.zeros(len(idx), np.int64)
        seen = np.zeros(len(idx), bool)
    idx, nearest = idx[seen], nearest[seen]
    y_frag = y_det[nearest] if len(nearest) else np.zeros(0)
    x_frag = x_det[nearest] if len(nearest) else np.zeros(0)
    ahead = np.rint((plan.a_mm[idx] - y_frag) / mm_per_tick).astype(np.int64)
    on = np.array([wrap_tick(frame.tick + int(t)) for t in ahead], dtype=np.int64)
    off = np.array([wrap_tick(int(t) + plan.pulse_ticks) for t in on], dtype=np.int64)
    hit = rig.fire(plan.valve[idx], on, off) if len(idx) else np.zeros(0, bool)
    a = y_frag + np.array([tick_diff(int(t), frame.tick) for t in on]) * mm_per_tick
    return ShotResults(
        plan.valve[idx],
        a,
        a + plan.pulse_ticks * mm_per_tick,
        np.asarray(hit, bool),
        x_frag,
        plan.speed_mm_s,
        len(seen),
    )
