"""Tuning knobs of the decision core, as one frozen dataclass.

Kernels take these as a flat float64 vector (``ControlParams.tracker_vector`` /
``schedule_vector``); the index constants below name its slots. Units are in
the names: ``_mm``, ``_ticks`` (encoder counts), ``_frames``.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

# tracker vector slots
T_GATE = 0  # squared Mahalanobis gate (chi-square, 2 dof)
T_R_MM2 = 1  # measurement noise variance of a box centre, mm^2
T_Q = 2  # white-acceleration spectral density, mm^2 / tick^3
T_V0_VAR = 3  # initial velocity variance, (mm/tick)^2
T_HIT = 4  # score gained per associated detection
T_MISS = 5  # score lost per miss while fully in view
T_BIRTH_ENTRY = 6  # initial score of a track born where fragments enter
T_BIRTH_MID = 7  # initial score of a track born mid-view
T_CONFIRM = 8  # score at which a track is confirmed
T_DELETE = 9  # tentative tracks below this score die
T_SCORE_MAX = 10
T_MAX_COAST = 11  # consecutive in-view misses before a confirmed track is lost
T_ENTRY_BAND_MM = 12
T_CLIP_TOL_MM = 13  # a box edge this close to the view edge is clipped
T_EXTENT_ALPHA = 14  # EMA weight of a new half-size observation
T_EXTENT_VAR_MM2 = 15  # variance of an edge position (segmentation), mm^2
T_PASS_MM = 16  # a decided track is dropped this far past the valve line
T_VIEW_TOP = 17
T_VIEW_BOTTOM = 18
T_Y_VALVE = 19
T_MM_PER_TICK = 20
T_CELL_MM = 21  # spatial hash cell size (set per frame)
T_X_MIN = 22  # grid origin across the belt
T_X_SPAN = 23
T_OCCLUDED = 24  # a box this share covered by other boxes is occluded (0: off)
N_TRACKER = 25

# schedule vector slots
S_K_SIGMA = 0  # window widening in crossing sigmas
S_OPEN_TICKS = 1  # valve open delay converted at the measured speed
S_CLOSE_TICKS = 2
S_MIN_ON_TICKS = 3
S_MIN_OFF_TICKS = 4
S_LEAD_TICKS = 5  # open delay + deadline margin: the PLC must have it by on - lead
S_GUARD_TICKS = 6  # decide this long before the deadline (frames ahead)
S_PITCH_MM = 7
S_X_FIRST_MM = 8
S_BLAST_MM = 9
S_N_VALVES = 10
S_COVER_X = 11  # share of the width the air must cover (centred)
S_COVER_U = 12  # share of the length
S_TOLERANCE = 13  # co-ejection tolerance (recipe)
S_BATTERY = 14  # battery class id or -1
S_MODE = 15  # 0 adaptive, 1 fixed-window baseline
S_BASE_STEP_MM = 16
S_BASE_PAD_MM = 17  # the baseline's fixed 3.3 mm margin
S_BASE_MARGIN_MM = 18  # the baseline's tuned extra margin (total, split both ends)
S_DIV_DEAD_TICKS = 19
S_DIV_DWELL_TICKS = 20
S_MM_PER_TICK = 21
S_SIGMA_X_K = 22  # widening across the belt in x sigmas
S_BELT_WIDTH_MM = 23
S_WINDOW_RULE = 24  # 0 share + k sigma (sum), 1 max(share, k sigma + floor)
S_FLOOR_U_MM = 25  # the max rule's positional tolerance floor along the belt
S_FLOOR_X_MM = 26  # ... and across it
S_LONG_MM = 27  # max rule: a longer predicted side over this gets full width (0: off)
N_SCHEDULE = 28

RULE_SUM = 0
RULE_MAX = 1

MODE_ADAPTIVE = 0
MODE_BASELINE = 1


@dataclasses.dataclass(frozen=True, slots=True)
class ControlParams:
    """Tracker and scheduler settings; defaults suit the embedded virtual plant."""

    gate_chi2: float = 13.8  # 99.9 % for 2 dof
    meas_sigma_mm: float = 2.0
    accel_q_mm2_tick3: float = 2e-10
    init_speed_sigma_mm_tick: float = 0.004  # 100 mm/s drift at 0.1 mm/tick, 2.5 m/s
    hit_gain: float = 1.0
    miss_loss: float = 1.5
    birth_entry_score: float = 1.0
    birth_mid_score: float = 0.0
    confirm_score: float = 2.0
    delete_score: float = -0.75
    max_score: float = 6.0
    max_coast_frames: int = 6
    entry_band_mm: float = 30.0
    clip_tol_px: float = 2.0
    extent_alpha: float = 0.5
    extent_sigma_mm: float = 1.5
    pass_mm: float = 30.0
    # occlusion (crowded belts): a track whose predicted box is at least this
    # share covered by the boxes other tracks took this frame is not expected
    # to be seen (its miss costs no score and does not count towards
    # max_coast_frames), and a box born mid-view that far under them is a
    # fragment coming out from under another one (scored as an entry birth);
    # 0 turns both off
    occluded_share: float = 0.5
    k_sigma: float = 2.0
    k_sigma_x: float = 1.0
    decide_frames_ahead: float = 2.0
    # coverage rule: air over the central share of the predicted width and
    # length (each widened by the prediction's uncertainty); a jet centred on
    # the fragment lifts it without blowing its whole outline (bench/air.py)
    cover_x_share: float = 0.7
    cover_u_share: float = 0.7
    # how the share and the prediction's uncertainty combine into the air's
    # half-length (half-width): "max": max(share x half size, k sigma + floor),
    # the centred air then tolerates a crossing error up to that half-length
    # (a jet over half a fragment's length lifts it); "sum": share x half size
    # + k sigma (the earlier rule: the share's slack and sigma both paid)
    window_rule: Literal["max", "sum"] = "max"
    tolerance_floor_mm: float = 6.0
    tolerance_floor_x_mm: float = 4.0
    # long pieces (longer predicted side over this, mm; 0 turns it off) get
    # their full width plus k_x sigma_x across the belt under the max rule: a
    # diagonal wire's covered part is where the x and u windows overlap along
    # it, so cross- and along-belt errors add up (bench air: crowded, dirty)
    long_full_width_mm: float = 60.0
    mode: Literal["adaptive", "baseline"] = "adaptive"
    baseline_step_mm: float = 4.8
    baseline_pad_mm: float = 3.3
    baseline_margin_mm: float = 10.0
    diverter_dead_ms: float = 30.0
    diverter_dwell_ms: float = 40.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not np.isfinite(v):
                raise ValueError(f"ControlParams.{f.name} must be finite, got {v}")
        if self.window_rule not in ("max", "sum"):
            raise ValueError(
                f"ControlParams.window_rule must be max or sum, not {self.window_rule!r}"
            )
        if not 0 <= self.occluded_share <= 1:
            raise ValueError("ControlParams.occluded_share must lie in [0, 1]")
        if self.long_full_width_mm < 0:
            raise ValueError("ControlParams.long_full_width_mm must be >= 0")
        if self.tolerance_floor_mm < 0 or self.tolerance_floor_x_mm < 0:
            raise ValueError("ControlParams tolerance floors must be >= 0")
        if self.mode not in ("adaptive", "baseline"):
            raise ValueError(f"ControlParams.mode must be adaptive or baseline, not {self.mode!r}")
        if not (0 < self.cover_x_share <= 1 and 0 < self.cover_u_share <= 1):
            raise ValueError("ControlParams cover shares must lie in (0, 1]")
        if self.gate_chi2 <= 0 or self.meas_sigma_mm <= 0:
            raise ValueError("ControlParams gate_chi2 and meas_sigma_mm must be positive")
