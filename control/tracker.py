"""Multi-object tracker in belt coordinates: the public shell of ``_track_step``.

State lives in preallocated struct-of-arrays (``TrackTable``) that grow by
doubling; one ``Tracker.step`` per frame runs the whole Numba pipeline
(predict, hash-gated association, Kalman update, births, class evidence,
crossing prediction, deaths) without Python loops.
"""

from __future__ import annotations

import math

import numpy as np

from calibration.geometry import LineGeometry
from control import kernels
from control import params as prm_idx
from control.evidence import OutlookCache, refresh_outlook
from control.fastbatch import trusted_batch
from control.params import ControlParams
from core.types import Detections, Tracks

__all__ = ["SIZE_VIEWS", "TrackTable", "Tracker", "class_log_probs"]

_PROB_FLOOR = 1e-4
_CELL_PER_SPACING = 0.7  # hash cell / mean box spacing (bench/decision.py: 0.7 beat 0.5, 1, 1.4)
_TRACK_FIELDS = tuple(Tracks._SCHEMA)  # the order ``kernels._export`` returns
SIZE_VIEWS = 5  # a track's size: the median of its last 5 views wholly in view
_NO_SIZES = np.zeros((0, 2))  # sizes not kept (``Tracker.step``'s ``keep_sizes``)
_FLOAT2D = {
    "X": 4, "P": 6, "H": 2, "G": 2, "XS": 2, "PS": 2, "XA": 6, "PA": 12, "CROSS": 4, "XC": 3,
    "AX": 2, "AXH": 2 * SIZE_VIEWS,
}  # fmt: skip
_FLOAT1D = ("SCORE", "CPROB", "MU", "MA")
_INT1D = ("TID", "NVIEW", "MISS", "NEV", "CONF", "DEC", "CLS", "FRAC", "TCLS", "AXN")


class TrackTable:
    """Per-track arrays (rows 0..n-1 live), capacity grown on demand.

    X (C, 4) x, u mm and vx, vu mm/tick; P (C, 6) packed per-axis covariance;
    H (C, 2) half sizes mm; G (C, 2) NIS average per axis (sets the track's
    process noise); XS, PS (C, 2) the still model's x, u and their variances,
    MU (C,) its probability; XA (C, 6), PA (C, 12), MA (C,) the
    constant-acceleration model's state, covariances and probability
    (``kernels_motion``, ``kernels_motion_ca``); AX (C, 2) the track's size,
    minor and major mm (median of its last ``SIZE_VIEWS`` views wholly in view,
    ``Detections.axes_mm``; NaN until one), AXH (C, 2 x SIZE_VIEWS) those views,
    AXN int64 views that gave a size; EV (C, K) summed log class
    probabilities; CROSS (C, 4) crossing on/off tick, sigma of those edge
    ticks and of the centre's tick; XC (C, 3) x at crossing, its sigma with
    the edges' and without (mm); SCORE, CPROB float64; TID, NVIEW, MISS, NEV,
    CONF, DEC, CLS, FRAC, TCLS int64.
    """

    X: np.ndarray
    P: np.ndarray
    H: np.ndarray
    G: np.ndarray
    XS: np.ndarray
    PS: np.ndarray
    MU: np.ndarray
    XA: np.ndarray
    PA: np.ndarray
    MA: np.ndarray
    EV: np.ndarray
    CROSS: np.ndarray
    XC: np.ndarray
    SCORE: np.ndarray
    CPROB: np.ndarray
    TID: np.ndarray
    NVIEW: np.ndarray
    MISS: np.ndarray
    NEV: np.ndarray
    CONF: np.ndarray
    DEC: np.ndarray
    CLS: np.ndarray
    FRAC: np.ndarray
    TCLS: np.ndarray
    AX: np.ndarray
    AXH: np.ndarray
    AXN: np.ndarray

    def __init__(self, n_classes: int, capacity: int = 256) -> None:
        self.n = 0
        self.n_classes = n_classes
        self._alloc(capacity)

    def _alloc(self, cap: int) -> None:
        old = dict(self.__dict__)
        self.capacity = cap
        for name, w in _FLOAT2D.items():
            setattr(self, name, np.zeros((cap, w)))
        self.EV = np.zeros((cap, self.n_classes))
        for name in _FLOAT1D:
            setattr(self, name, np.zeros(cap))
        for name in _INT1D:
            setattr(self, name, np.zeros(cap, np.int64))
        n = old.get("n", 0)
        for name in (*_FLOAT2D, "EV", *_FLOAT1D, *_INT1D):
            if name in old:
                getattr(self, name)[:n] = old[name][:n]

    def ensure(self, need: int) -> None:
        if need > self.capacity:
            self._alloc(max(need, 2 * self.capacity))


def class_log_probs(dets: Detections, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-detection log class probabilities (D, K) float32 and has-evidence (D,) bool.

    Uses ``class_prob`` when it has K columns, else ``class_id``/``confidence``
    (the rest of the mass spread evenly); unclassified or non-finite rows
    carry no evidence.
    """
    nd = len(dets)
    width = dets.class_prob.shape[1]
    if width == n_classes and n_classes > 0:
        logp = np.maximum(dets.class_prob, np.float32(_PROB_FLOOR))
        np.log(logp, out=logp)
        if np.isfinite(logp.sum()):  # one reduction: NaN or inf anywhere shows in the sum
            return logp, np.ones(nd, np.bool_)
        finite = np.isfinite(logp)
        has = np.asarray(finite.all(axis=1))
        logp[~has] = 0.0
        return logp, has
    if width != 0:
        raise ValueError(
            f"Detections.class_prob has {width} columns, the model has {n_classes} classes"
        )
    cid = dets.class_id.astype(np.int64)
    if nd and cid.max() >= n_classes:
        raise ValueError(f"Detections.class_id {int(cid.max())} >= {n_classes} classes")
    has = cid >= 0
    conf = np.clip(np.nan_to_num(dets.confidence), _PROB_FLOOR, 1.0 - _PROB_FLOOR)
    rest = np.maximum((1.0 - conf) / max(n_classes - 1, 1), _PROB_FLOOR)
    logp = np.repeat(np.log(rest)[:, None], n_classes, axis=1).astype(np.float32)
    rows = np.nonzero(has)[0]
    logp[rows, cid[rows]] = np.log(conf[rows])
    logp[~has] = 0.0
    return logp.reshape(nd, n_classes), has


def tracker_vector(geometry: LineGeometry, params: ControlParams) -> np.ndarray:
    """The kernel parameter vector (see ``control.params`` slot names)."""
    cam = geometry.camera
    top, bottom = cam.view_y_range_mm
    v = np.zeros(prm_idx.N_TRACKER)
    v[prm_idx.T_GATE] = params.gate_chi2
    v[prm_idx.T_R_MM2] = params.meas_sigma_mm**2
    v[prm_idx.T_Q] = params.accel_q_mm2_tick3
    v[prm_idx.T_V0_VAR] = (params.init_speed_sigma_frac * geometry.belt.mm_per_tick) ** 2
    v[prm_idx.T_R_GATE_MM2] = params.gate_sigma_mm**2
    v[prm_idx.T_Q_MAN] = params.maneuver_q_mm2_tick3
    v[prm_idx.T_NIS_G0] = params.nis_g0
    v[prm_idx.T_NIS_ALPHA] = params.nis_alpha
    v[prm_idx.T_R_ADAPT] = params.meas_adapt
    v[prm_idx.T_R_MIN_MM2] = params.meas_sigma_min_mm**2
    v[prm_idx.T_R_MAX_MM2] = params.gate_sigma_mm**2
    v[prm_idx.T_Q_STILL] = params.still_q_mm2_tick
    v[prm_idx.T_P_STILL] = params.still_stay
    v[prm_idx.T_P_MOVE] = params.move_stay
    v[prm_idx.T_MU_MIN] = params.mode_floor
    v[prm_idx.T_MU0] = params.still_prior
    tick_s = geometry.belt.mm_per_tick / geometry.belt.speed_mm_s  # s per tick at nominal speed
    v[prm_idx.T_A0_VAR] = (params.accel_prior_mm_s2 * tick_s * tick_s) ** 2
    v[prm_idx.T_Q_JERK] = params.jerk_q_mm2_tick5
    v[prm_idx.T_P_ACCEL] = params.accel_stay
    v[prm_idx.T_MA0] = params.accel_prior if params.accel_model else 0.0
    v[prm_idx.T_ACCEL_ON] = 1.0 if params.accel_model else 0.0
    v[prm_idx.T_MODE_CUT] = params.mode_cut
    v[prm_idx.T_HIT] = params.hit_gain
    v[prm_idx.T_MISS] = params.miss_loss
    v[prm_idx.T_BIRTH_ENTRY] = params.birth_entry_score
    v[prm_idx.T_BIRTH_MID] = params.birth_mid_score
    v[prm_idx.T_CONFIRM] = params.confirm_score
    v[prm_idx.T_DELETE] = params.delete_score
    v[prm_idx.T_SCORE_MAX] = params.max_score
    v[prm_idx.T_MAX_COAST] = params.max_coast_frames
    v[prm_idx.T_ENTRY_BAND_MM] = params.entry_band_mm
    v[prm_idx.T_CLIP_TOL_MM] = params.clip_tol_px * cam.mm_per_px_y
    v[prm_idx.T_EXTENT_ALPHA] = params.extent_alpha
    v[prm_idx.T_EXTENT_VAR_MM2] = params.extent_sigma_mm**2
    v[prm_idx.T_PASS_MM] = params.pass_mm
    v[prm_idx.T_VIEW_TOP] = top
    v[prm_idx.T_VIEW_BOTTOM] = bottom
    v[prm_idx.T_Y_VALVE] = geometry.valves.y_valve_mm
    v[prm_idx.T_MM_PER_TICK] = geometry.belt.mm_per_tick
    v[prm_idx.T_X_MIN] = cam.x_offset_mm
    v[prm_idx.T_X_SPAN] = cam.view_width_mm
    v[prm_idx.T_CELL_MM] = 50.0
    v[prm_idx.T_OCCLUDED] = params.occluded_share
    return v


class Tracker:
    """Tracks fragments frame by frame. Ticks are unwrapped int64 counts."""

    def __init__(
        self, geometry: LineGeometry, n_classes: int, params: ControlParams | None = None
    ) -> None:
        self.geometry = geometry
        self.params = params or ControlParams()
        self.table = TrackTable(n_classes)
        self.outlook = OutlookCache(n_classes, self.table.capacity)
        # the recipe's class pools (``Recipe.pool``; the Controller sets them with
        # the recipe): all False, no pooling
        self.pool = np.zeros((n_classes, n_classes), np.bool_)
        self.prm = tracker_vector(geometry, self.params)
        self.counters = np.zeros(4, np.int64)  # next_id, born, confirmed, lost
        self.counters[0] = 1
        self._t0: int | None = None
        self._travel0_mm = 0.0  # belt travel at tick _t0
        self.t_last: int | None = None
        self._view_area_mm2 = geometry.camera.view_width_mm * geometry.camera.view_length_mm

    def rebind(self, geometry: LineGeometry) -> None:
        """Continue on a new geometry: tracks stay where they are on the belt.

        Travel is continued from the last frame's value at the new
        ``mm_per_tick``; view, valve line and hash extents come from ``geometry``.
        """
        if self.t_last is not None:
            self._travel0_mm = self.travel_mm(self.t_last)
            self._t0 = self.t_last
        self.geometry = geometry
        r_mm2 = self.prm[prm_idx.T_R_MM2]  # the measurement noise learnt so far stays
        self.prm = tracker_vector(geometry, self.params)
        self.prm[prm_idx.T_R_MM2] = r_mm2
        self._view_area_mm2 = geometry.camera.view_width_mm * geometry.camera.view_length_mm

    def reset(self) -> None:
        """Drop every track and the time base (a reset encoder count); confirmed
        tracks not yet decided count as lost. Ids and counters continue."""
        tab = self.table
        n = tab.n
        self.counters[3] += int(np.count_nonzero(tab.CONF[:n] & (tab.DEC[:n] == 0)))
        tab.n = 0
        self._t0 = None
        self._travel0_mm = 0.0
        self.t_last = None
        self.outlook.force = True

    def travel_mm(self, t_tick: float) -> float:
        """Belt travel since the first frame, mm, at unwrapped tick ``t_tick``."""
        t0 = self._t0 if self._t0 is not None else 0
        return self._travel0_mm + (t_tick - t0) * self.geometry.belt.mm_per_tick

    def step(
        self,
        dets: Detections,
        t_tick: int,
        cls_frac: np.ndarray,
        threshold: np.ndarray,
        order: np.ndarray,
        keep_sizes: bool = True,
    ) -> None:
        """Advance to unwrapped tick ``t_tick`` and take one frame's detections;
        ``keep_sizes``: keep each track's size (``AX``) from the views' ``axes_mm``
        (off, nothing is kept: the ``Controller`` keeps sizes only while a second
        sensor's fusion, their one reader, is hooked in; 0.05 ms a frame at 1,000
        tracks otherwise)."""
        if self._t0 is None:
            self._t0 = t_tick
        dt = 0.0 if self.t_last is None else float(max(t_tick - self.t_last, 0))
        tab = self.table
        nd = len(dets)
        tab.ensure(tab.n + nd)
        box = dets.extent_mm
        logp, has = class_log_probs(dets, tab.n_classes)
        # hash cells a bit finer than the mean spacing of the boxes: fewer distance
        # evaluations per gate (the edges found do not depend on the cell size)
        self.prm[prm_idx.T_CELL_MM] = min(
            max(_CELL_PER_SPACING * math.sqrt(self._view_area_mm2 / max(nd, 1)), 5.0), 200.0
        )
        n_live = kernels._track_step(
            tab.X, tab.P, tab.H, tab.G, tab.XS, tab.PS, tab.MU, tab.XA, tab.PA, tab.MA, tab.EV,
            tab.NEV, tab.TID,
            tab.CONF, tab.DEC, tab.SCORE, tab.NVIEW, tab.MISS, tab.CLS, tab.CPROB, tab.FRAC,
            tab.TCLS, tab.CROSS, tab.XC,
            tab.n, dt, float(t_tick), self.travel_mm(t_tick), box, logp, has, self.prm,
            self.counters, tab.AX, tab.AXH, tab.AXN,
            np.asarray(dets.axes_mm, np.float64) if keep_sizes else _NO_SIZES,
        )  # fmt: skip
        if n_live < 0:
            raise ValueError("Detections.extent_mm needs finite x_min <= x_max, y_min <= y_max")
        tab.n = n_live
        self.t_last = t_tick
        self.refresh_outlook(cls_frac, threshold, order)

    def refresh_outlook(
        self, cls_frac: np.ndarray, threshold: np.ndarray, order: np.ndarray
    ) -> None:
        """Recompute class and fraction outlook of the undecided tracks whose
        evidence changed (all of them after ``invalidate_outlook``)."""
        tab = self.table
        n = tab.n
        refresh_outlook(
            tab.EV[:n], tab.NEV[:n], tab.DEC[:n], cls_frac, threshold, order,
            (tab.CLS[:n], tab.CPROB[:n], tab.FRAC[:n], tab.TCLS[:n]), tab.TID[:n], self.outlook,
            self.pool,
        )  # fmt: skip

    def invalidate_outlook(self) -> None:
        """Recompute every undecided row's outlook at the next refresh (new recipe)."""
        self.outlook.force = True

    def tracks(self, tick_u32: int) -> Tracks:
        """The live tracks as a ``Tracks`` batch (fresh arrays)."""
        tab = self.table
        cols = kernels._export(
            tab.X, tab.H, tab.EV, tab.TID, tab.CONF, tab.DEC, tab.MISS, tab.CLS, tab.CPROB,
            tab.NVIEW, tab.CROSS, tab.FRAC, tab.n,
        )  # fmt: skip
        return trusted_batch(Tracks, tick=tick_u32, **dict(zip(_TRACK_FIELDS, cols, strict=True)))
