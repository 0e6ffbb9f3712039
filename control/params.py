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
T_R_MM2 = 1  # measurement noise variance of a box centre, mm^2 (filter; adapted per frame)
T_Q = 2  # base white-acceleration density of a track, mm^2 / tick^3
T_V0_VAR = 3  # initial velocity variance relative to the belt, (mm/tick)^2
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
T_R_GATE_MM2 = 25  # association noise variance of a box centre (gate), mm^2
T_Q_MAN = 26  # process noise added per unit of NIS average above T_NIS_G0, mm^2 / tick^3
T_NIS_G0 = 27  # NIS average a track may show before its process noise grows
T_NIS_ALPHA = 28  # weight of one innovation in a track's NIS average
T_R_ADAPT = 29  # weight of one frame's measurement-noise estimate (0: fixed)
T_R_MIN_MM2 = 30  # bounds of the estimated measurement variance
T_R_MAX_MM2 = 31
T_Q_STILL = 32  # diffusion of a piece at rest on the belt, mm^2 / tick
T_P_STILL = 33  # probability that a piece at rest stays at rest over a frame
T_P_MOVE = 34  # probability that a moving piece keeps moving over a frame
T_MU_MIN = 35  # floor of either model's probability
T_MU0 = 36  # probability of rest of a new track
T_A0_VAR = 37  # acceleration prior of the constant-acceleration model, (mm/tick^2)^2
T_Q_JERK = 38  # its white-jerk density, mm^2 / tick^5
T_P_ACCEL = 39  # probability that an accelerating piece keeps its model over a frame
T_MA0 = 40  # probability of acceleration of a new track
T_ACCEL_ON = 41  # 1: three models; 0: rest and constant velocity only
T_MODE_CUT = 42  # a model below this probability is left out of the crossing
N_TRACKER = 43

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
S_PREFER = 28  # the recipe's purity/recovery trade-off (PREFER_*)
S_AIM_COVER = 29  # aiming around neighbours keeps at least this share of the target under air
S_AIM_RULE = 30  # how aiming chooses the air (AIM_RULE_*)
S_LIFT = 31  # share of a piece's length and of its width under air that lifts it (valve bar)
S_AIM_MARGIN = 32  # search rule: target >= lift + margin, neighbours <= lift - margin
S_JET_MM = 33  # length of one jet's footprint along the belt (search rule: neighbours)
S_AIM_FALLBACK = 34  # search rule: the thinner margin tried when air goes out anyway
S_AIM_LAST = 35  # search rule: the air when no window spares every neighbour (AIM_LAST_*)
S_AIM_LAST_K = 36  # ... its target kept under air for a crossing error within this many sigmas
N_SCHEDULE = 37

# how aiming around neighbours chooses the target's air (``control.kernels_aim``,
# ``control.kernels_aim_search``)
AIM_RULE_CUT = 0  # cut the window clear of one neighbour at a time (product share <= tolerance)
AIM_RULE_SEARCH = 1  # search the sub-windows against every neighbour's lift rule

# recipe ``prefer``: what a target whose air would touch a neighbour of another
# fraction gets (``control.kernels_aim``)
PREFER_RECOVERY = 0  # the full window; the higher priority decides (the earlier rule)
PREFER_BALANCED = 1  # aim around the neighbour; when that cannot work, priority decides
PREFER_PURITY = 2  # aim around the neighbour; when that cannot work, leave the target

# search rule, when no sub-window spares every neighbour at any margin tried and
# the air goes out anyway (``control.kernels_aim_search._aim_least``)
AIM_LAST_COVER = 0  # the window lifting the fewest, then covering the most of the target
AIM_LAST_LEAST = 1  # the window putting the least air over the neighbours it lifts

RULE_SUM = 0
RULE_MAX = 1

MODE_ADAPTIVE = 0
MODE_BASELINE = 1


@dataclasses.dataclass(frozen=True, slots=True)
class ControlParams:
    """Tracker and scheduler settings; defaults suit the embedded virtual plant."""

    gate_chi2: float = 13.8  # 99.9 % for 2 dof
    # motion model (control/kernels_motion.py): the gate keeps a robust
    # association noise; the filter starts from a centroid's error and then
    # estimates it from the innovations; a wide velocity prior the data
    # override within a few frames; per-track process noise from the NIS
    gate_sigma_mm: float = 2.0
    meas_sigma_mm: float = 0.3
    meas_sigma_min_mm: float = 0.1
    meas_adapt: float = 0.05
    accel_q_mm2_tick3: float = 2e-11
    maneuver_q_mm2_tick3: float = 2e-9
    nis_g0: float = 1.5
    nis_alpha: float = 0.3
    init_speed_sigma_frac: float = 0.06  # of the belt speed; 2-3 frames of data override it
    # interacting multiple models: at rest on the belt vs moving (constant
    # velocity); the data decide within a frame or two (kernels_motion)
    still_q_mm2_tick: float = 1e-6
    still_stay: float = 0.999  # a piece at rest does not start to move by itself
    move_stay: float = 0.995  # bench predict (issue 16): 0.97 widened rollers' sigmas
    mode_floor: float = 1e-3
    still_prior: float = 0.5
    # the third model: constant acceleration relative to the belt (a slider
    # braking at 0.3-0.45 g, a roller's curving path); prior sigma of the
    # acceleration (mm/s^2, converted at the belt's nominal speed), white
    # jerk (mm^2/tick^5), staying probability, prior at birth (about the
    # share of braking pieces: a larger one widened young tracks' air on the
    # line with vision); off: two models. Chosen on bench predict's rolling
    # preset (seeds 5, 21) and bench line's default (seeds 7, 21, 101), issue 16
    accel_model: bool = True
    accel_prior_mm_s2: float = 2000.0
    jerk_q_mm2_tick5: float = 4e-16
    accel_stay: float = 0.98
    accel_prior: float = 0.05
    # the crossing combines the models whose probability exceeds this (the
    # floor only lets a model come back; it is not evidence)
    mode_cut: float = 0.002
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
    # aiming around neighbours (recipe ``prefer`` balanced or purity): the air
    # may be trimmed away from a neighbour of another fraction as long as this
    # share of the target's length and of its width stays under it for any
    # crossing error within k sigma (the plant lifts a piece with half of it
    # under air: ``sim`` ejection ``cover_*_frac``; the rest is margin)
    aim_min_cover: float = 0.6
    # "search" (default): per target, the sub-window (valve run x air on/off
    # cut at the neighbours' edges) that lifts it while no neighbour of another
    # fraction is lifted, judged by the air's lift rule below; "cut": the
    # earlier rule (one cut per conflict, a neighbour clear at
    # ``co_ejection_tolerance`` of its footprint; kept for comparison)
    aim_rule: Literal["cut", "search"] = "search"
    # the valve bar's air lifts a piece when at least this share of its length
    # and of its width lie under the air (a property of the nozzles and air
    # pressure, measured on the bench rig: ``bench/air.py``; the controller's
    # own setting, not read from the plant). Searching, a target keeps
    # lift + margin of both under air for any crossing error within k sigma,
    # and a neighbour keeps one of them at most lift - margin for an error
    # within one sigma of its own prediction
    lift_share: float = 0.5
    aim_margin: float = 0.1
    # a jet's footprint has a length along the belt: air reaches a piece from
    # half of it before the window to half of it after (a property of the
    # nozzles like the blast width; the default is the virtual plant's jet, to
    # be measured on a real bar). The search rule keeps neighbours that much
    # further from the window (the target's cover does not count on it)
    jet_length_mm: float = 8.0
    # when no sub-window spares every neighbour at ``aim_margin`` and the air
    # goes out anyway (``prefer = "balanced"``, a battery), the search runs
    # again at thinner margins, in two even steps down to this one (target >=
    # lift + it, neighbours <= lift - it; the jet's length counted over the
    # target too): a neighbour left at 0.45 or 0.5
    # of its length stays on the belt, one under the full window does not
    # (``bench/line_coeject.py``: most co-ejections at perfect perception
    # were such knowingly lifted neighbours). Equal to ``aim_margin``: off
    # (``aim_rule = "search-strict"`` in ``Controller.set_aim_rule``)
    aim_fallback_margin: float = 0.0
    # when even the thinnest margin leaves a neighbour lifted and the air goes
    # out anyway: "least" the window (target kept at lift +
    # aim_fallback_margin for an error within aim_last_k_sigma) whose air over
    # the neighbours it lifts exceeds their spare share the least (summed over
    # them), so a neighbour under 0.55 of its length may still stay on the
    # belt (the default since session 14: with the chroma split, the merge
    # flag's one-material check and the recipe's class pools it raises purity
    # and recovery together on held-out seeds, bench/README.md); "cover" the
    # earlier answer (the strict search's: lifting the fewest, then the most
    # of the target under air, usually the full window over the neighbour).
    # ``Controller.set_aim_rule("search-least" | "search-cover")`` compares them
    aim_last_resort: Literal["least", "cover"] = "least"
    # the "least" last resort keeps the target's length under air for a
    # crossing error within this many sigmas (the search: ``k_sigma``, 2): a
    # window that lifts a neighbour anyway is a compromise, and at true
    # perception 88 % of the crossings' edges lay within one sigma, 98 % within
    # two (``bench/line_coeject.py``, shred 500/s, tuning seed 3002; tuned on
    # seeds 3001, 3002, 4001: 1.0 against 2.0 took shred's purity from 0.951 to
    # 0.961 for 0.002 of recovery, crowded's 0.963 to 0.966 for 0.004)
    aim_last_k_sigma: float = 1.0

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
        if not 0 < self.aim_min_cover <= 1:
            raise ValueError("ControlParams.aim_min_cover must lie in (0, 1]")
        if not 0 <= self.jet_length_mm <= 100:
            raise ValueError("ControlParams.jet_length_mm must lie in [0, 100]")
        if self.aim_rule not in ("cut", "search"):
            raise ValueError(f"ControlParams.aim_rule must be cut or search, not {self.aim_rule!r}")
        if not 0 <= self.aim_margin < self.lift_share <= 1 - self.aim_margin:
            raise ValueError("ControlParams needs 0 <= aim_margin < lift_share <= 1 - aim_margin")
        if self.aim_last_resort not in ("least", "cover"):
            raise ValueError(
                "ControlParams.aim_last_resort must be least or cover, "
                f"not {self.aim_last_resort!r}"
            )
        if not 0 <= self.aim_last_k_sigma <= self.k_sigma:
            raise ValueError(
                f"ControlParams.aim_last_k_sigma must lie in [0, k_sigma = {self.k_sigma:g}], "
                f"not {self.aim_last_k_sigma:g}"
            )
        if not 0 <= self.aim_fallback_margin <= self.aim_margin:
            raise ValueError("ControlParams needs 0 <= aim_fallback_margin <= aim_margin")
        if not (0 < self.cover_x_share <= 1 and 0 < self.cover_u_share <= 1):
            raise ValueError("ControlParams cover shares must lie in (0, 1]")
        if not (0 < self.still_stay < 1 and 0 < self.move_stay < 1 and 0 < self.accel_stay < 1):
            raise ValueError(
                "ControlParams still_stay, move_stay and accel_stay must lie in (0, 1)"
            )
        if not (0 < self.mode_floor < 0.3 and 0 < self.still_prior < 1):
            raise ValueError("ControlParams mode_floor in (0, 0.3), still_prior in (0, 1)")
        if not 0 <= self.mode_cut < 0.3:
            raise ValueError("ControlParams.mode_cut must lie in [0, 0.3)")
        if not 0 < self.accel_prior < 1 - self.still_prior:
            raise ValueError("ControlParams accel_prior must lie in (0, 1 - still_prior)")
        if self.accel_prior_mm_s2 <= 0 or self.jerk_q_mm2_tick5 < 0:
            raise ValueError(
                "ControlParams accel_prior_mm_s2 must be > 0 and jerk_q_mm2_tick5 >= 0"
            )
        if not (0 < self.nis_alpha <= 1 and 0 <= self.meas_adapt <= 1):
            raise ValueError("ControlParams nis_alpha must lie in (0, 1], meas_adapt in [0, 1]")
        if min(self.accel_q_mm2_tick3, self.maneuver_q_mm2_tick3, self.init_speed_sigma_frac) < 0:
            raise ValueError("ControlParams process noises and the speed prior must be >= 0")
        if not 0 < self.meas_sigma_min_mm <= self.meas_sigma_mm <= self.gate_sigma_mm:
            raise ValueError(
                "ControlParams needs 0 < meas_sigma_min_mm <= meas_sigma_mm <= gate_sigma_mm"
            )
        if self.gate_chi2 <= 0 or self.meas_sigma_mm <= 0:
            raise ValueError("ControlParams gate_chi2 and meas_sigma_mm must be positive")
