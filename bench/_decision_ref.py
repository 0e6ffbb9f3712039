"""The two comparison rows of ``bench/decision.py``.

``ScipyReference``: the same per-frame pipeline as ``control.Controller``
(constant-velocity Kalman filter, squared-Mahalanobis gate, crossing
prediction, valve selection at the deadline) written the obvious way:
vectorised NumPy and one global ``scipy.optimize.linear_sum_assignment`` on
the dense gated track x detection matrix, no spatial hashing, no per-valve
merging. ``ByteTrackPeer``: supervision 0.30.9's ByteTrack on the same
boxes (association only; it has no belt model, crossing or valves).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from calibration.geometry import LineGeometry
from core.ticks import TickUnwrapper
from core.types import Detections

GATE = 13.8
R_MM2 = 4.0
Q = 2e-10
V0 = 0.004**2


class ScipyReference:
    """Dense global assignment; same model and decision rule as the core."""

    def __init__(self, geometry: LineGeometry, n_classes: int) -> None:
        self.g = geometry
        self.k = n_classes
        self.unwrap = TickUnwrapper()
        self.t0: int | None = None
        self.t_last: int | None = None
        self.X = np.zeros((0, 4))
        self.P = np.zeros((0, 6))
        self.H = np.zeros((0, 2))
        self.ev = np.zeros((0, n_classes))
        self.nview = np.zeros(0, np.int64)
        self.decided = np.zeros(0, bool)
        tpms = geometry.belt.ticks_per_s() * 1e-3
        self.lead = (geometry.valves.open_delay_ms + 5.0) * tpms
        self.open_ticks = geometry.valves.open_delay_ms * tpms
        self.guard = 2.0 * geometry.belt.ticks_per_s() / geometry.camera.fps
        self.n_pulses = 0

    def _predict(self, dt: float) -> None:
        X, P = self.X, self.P
        X[:, :2] += X[:, 2:] * dt
        for a in range(2):
            pp, pv, vv = P[:, 3 * a].copy(), P[:, 3 * a + 1].copy(), P[:, 3 * a + 2].copy()
            P[:, 3 * a] = pp + 2 * dt * pv + dt * dt * vv + Q * dt**3 / 3
            P[:, 3 * a + 1] = pv + dt * vv + Q * dt * dt / 2
            P[:, 3 * a + 2] = vv + Q * dt

    def _update(self, rows: np.ndarray, z: np.ndarray) -> None:
        X, P = self.X, self.P
        for a in range(2):
            pp, pv, vv = P[rows, 3 * a], P[rows, 3 * a + 1], P[rows, 3 * a + 2]
            s = pp + R_MM2
            kp, kv = pp / s, pv / s
            innov = z[:, a] - X[rows, a]
            X[rows, a] += kp * innov
            X[rows, a + 2] += kv * innov
            P[rows, 3 * a], P[rows, 3 * a + 1], P[rows, 3 * a + 2] = (
                pp - kp * pp,
                pv - kp * pv,
                vv - kv * pv,
            )

    def update(self, dets: Detections) -> int:
        t = self.unwrap(int(dets.tick))
        if self.t0 is None:
            self.t0 = t
        dt = 0.0 if self.t_last is None else float(t - self.t_last)
        self.t_last = t
        travel = (t - self.t0) * self.g.belt.mm_per_tick
        self._predict(dt)
        box = dets.extent_mm
        z = np.column_stack([box[:, :2].mean(1), box[:, 2:].mean(1) - travel])
        n, m = len(self.X), len(z)
        matched_t = np.zeros(0, np.int64)
        matched_d = np.zeros(0, np.int64)
        if n and m:
            d2 = (z[None, :, 0] - self.X[:, None, 0]) ** 2 / (self.P[:, None, 0] + R_MM2)
            d2 += (z[None, :, 1] - self.X[:, None, 1]) ** 2 / (self.P[:, None, 3] + R_MM2)
            cost = np.minimum(d2, GATE)
            r, c = linear_sum_assignment(cost)
            ok = cost[r, c] < GATE
            matched_t, matched_d = r[ok], c[ok]
        self._update(matched_t, z[matched_d])
        self.H[matched_t] += 0.5 * (
            0.5 * (box[matched_d][:, [1, 3]] - box[matched_d][:, [0, 2]]) - self.H[matched_t]
        )
        logp = np.log(np.maximum(dets.class_prob, 1e-4))
        self.ev[matched_t] += logp[matched_d]
        self.nview[matched_t] += 1
        new = np.ones(m, bool)
        new[matched_d] = False
        nb = int(new.sum())
        self.X = np.vstack([self.X, np.column_stack([z[new], np.zeros((nb, 2))])])
        p0 = np.tile([R_MM2, 0.0, V0, R_MM2, 0.0, V0], (nb, 1))
        self.P = np.vstack([self.P, p0])
        self.H = np.vstack([self.H, 0.5 * (box[new][:, [1, 3]] - box[new][:, [0, 2]])])
        self.ev = np.vstack([self.ev, logp[new]])
        self.nview = np.concatenate([self.nview, np.ones(nb, np.int64)])
        self.decided = np.concatenate([self.decided, np.zeros(nb, bool)])
        # crossing and decisions at the deadline
        mpt = self.g.belt.mm_per_tick
        vel = np.maximum(mpt + self.X[:, 3], 0.25 * mpt)
        lead_edge = self.X[:, 1] + self.H[:, 1] + travel
        on = t + (self.g.valves.y_valve_mm - lead_edge) / vel - self.open_ticks
        due = ~self.decided & (self.nview >= 2) & (on - self.lead - t < self.guard)
        if due.any():
            mean = self.ev[due] / self.nview[due, None]
            cls = mean.argmax(1)
            target = np.isin(cls, [3, 4, 6])
            v = self.g.valves
            first = np.floor((self.X[due, 0] - self.H[due, 0] - v.x_first_mm) / v.pitch_mm)
            last = np.floor((self.X[due, 0] + self.H[due, 0] - v.x_first_mm) / v.pitch_mm)
            self.n_pulses += int(target.sum()) + 0 * int((last - first).sum())
            self.decided[due] = True
        trail = self.X[:, 1] - self.H[:, 1] + travel
        keep = trail < self.g.valves.y_valve_mm + 30.0
        keep &= (self.nview >= 2) | (trail < self.g.camera.view_y_range_mm[1])
        for name in ("X", "P", "H", "ev", "nview", "decided"):
            setattr(self, name, getattr(self, name)[keep])
        return len(self.X)


class ByteTrackPeer:
    """supervision 0.30.9 ``ByteTrack`` fed the same boxes (pixels)."""

    def __init__(self, fps: float) -> None:
        import warnings

        import supervision as sv

        self.sv = sv
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # deprecated in 0.28, removed in 0.31
            self.tracker = sv.ByteTrack(frame_rate=int(fps))

    def update(self, dets: Detections) -> int:
        d = self.sv.Detections(
            xyxy=dets.bbox_px.astype(np.float32),
            confidence=dets.confidence.astype(np.float32),
            class_id=dets.class_id.astype(int),
        )
        return len(self.tracker.update_with_detections(d))
