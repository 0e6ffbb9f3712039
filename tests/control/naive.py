"""Readable slow twins of the decision-core kernels (stumpy's ``tests/naive.py`` idea).

Each function states the textbook form (full matrices, brute force, plain
lists) of what a kernel in ``control/kernels*.py`` computes faster.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


# -- Kalman filter, full 4x4 form -------------------------------------------------
def cv_matrices(dt: float, q: float) -> tuple[np.ndarray, np.ndarray]:
    """State (x, u, vx, vu): transition F and white-acceleration noise Q."""
    F = np.eye(4)
    F[0, 2] = F[1, 3] = dt
    q1 = np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]]) * q
    Q = np.zeros((4, 4))
    for a in range(2):
        idx = np.ix_([a, a + 2], [a, a + 2])
        Q[idx] = q1
    return F, Q


def packed_to_full(p6: np.ndarray) -> np.ndarray:
    """(6,) xx_pp, xx_pv, xx_vv, uu_pp, uu_pv, uu_vv -> (4, 4) covariance."""
    P = np.zeros((4, 4))
    for a in range(2):
        pp, pv, vv = p6[3 * a : 3 * a + 3]
        P[a, a], P[a, a + 2], P[a + 2, a], P[a + 2, a + 2] = pp, pv, pv, vv
    return P


def full_to_packed(P: np.ndarray) -> np.ndarray:
    return np.array([P[0, 0], P[0, 2], P[2, 2], P[1, 1], P[1, 3], P[3, 3]])


def predict(x: np.ndarray, p6: np.ndarray, dt: float, q: float) -> tuple[np.ndarray, np.ndarray]:
    F, Q = cv_matrices(dt, q)
    return F @ x, full_to_packed(F @ packed_to_full(p6) @ F.T + Q)


def update_axis(
    x: np.ndarray, p6: np.ndarray, axis: int, innov: float, r: float
) -> tuple[np.ndarray, np.ndarray]:
    """Kalman update with the scalar measurement of position ``axis``."""
    P = packed_to_full(p6)
    Hm = np.zeros((1, 4))
    Hm[0, axis] = 1.0
    S = Hm @ P @ Hm.T + r
    K = P @ Hm.T / S
    x2 = x + (K * innov).ravel()
    P2 = (np.eye(4) - K @ Hm) @ P
    return x2, full_to_packed(P2)


# -- gating and assignment -----------------------------------------------------
def mahal2(x, u, hu, pxx, puu, box, clip, travel, r, ru, top=-math.inf, band=0.0) -> float:
    """Squared Mahalanobis distance, written out per clip case. A whole box that
    has just come in (trailing edge within ``band`` of ``top``, the track's
    within two bands) and is longer than the track by over two edge sigmas is
    measured by whichever fits better of its centre and its leading edge."""
    cx = 0.5 * (box[0] + box[1])
    d2 = (cx - x) ** 2 / (pxx + r)
    if clip == 3:
        return d2
    just_in = box[2] < top + band and u - hu + travel <= top + 2 * band
    if clip == 0 and just_in and (box[3] - box[2]) / 2 - hu > 2 * math.sqrt(ru - r):
        centre = (0.5 * (box[2] + box[3]) - travel - u) ** 2 / (puu + r)
        lead = (box[3] - travel - (u + hu)) ** 2 / (puu + ru)
        return d2 + min(centre, lead)
    if clip == 0:
        iu = 0.5 * (box[2] + box[3]) - travel - u
        var = puu + r
    elif clip == 1:
        iu = box[3] - travel - (u + hu)
        var = puu + ru
    else:
        iu = box[2] - travel - (u - hu)
        var = puu + ru
    return d2 + iu**2 / var


def gate_all_pairs(X, P, H, observable, dbox, clip, travel, gate, r, ru, top, band) -> dict:
    """{(track, det): cost} for every pair cheaper than ``gate`` (brute force)."""
    out = {}
    for i in range(len(observable)):
        if not observable[i]:
            continue
        for j in range(dbox.shape[0]):
            d2 = mahal2(
                X[i, 0], X[i, 1], H[i, 1], P[i, 0], P[i, 3], dbox[j], clip[j], travel, r, ru,
                top, band,
            )  # fmt: skip
            if d2 < gate:
                out[(i, j)] = d2
    return out


def dense_gated(n_rows: int, n_cols: int, er, ec, cost, gate: float) -> np.ndarray:
    """The dense matrix whose missing (gated-out) entries cost ``gate``."""
    m = np.full((n_rows, n_cols), gate)
    m[np.asarray(er, int), np.asarray(ec, int)] = cost
    return m


def assignment_total(n_rows, n_cols, er, ec, cost, gate) -> float:
    """Optimum of the gated problem by SciPy on the dense matrix: matched pairs
    at their cost, every row left unmatched in the min dimension at ``gate``."""
    if n_rows == 0 or n_cols == 0:
        return 0.0
    m = dense_gated(n_rows, n_cols, er, ec, cost, gate)
    rows, cols = linear_sum_assignment(m)
    return float(m[rows, cols].sum())


def lsa_brute(cost: np.ndarray) -> float:
    """Minimum total over every injective row -> column map (R <= C, tiny)."""
    nr, nc = cost.shape
    return min(sum(cost[i, p[i]] for i in range(nr)) for p in itertools.permutations(range(nc), nr))


def components(n_rows, n_cols, er, ec) -> np.ndarray:
    """Component label per node (rows then columns), -1 for isolated nodes."""
    nn = n_rows + n_cols
    er = np.asarray(er, int)
    ec = np.asarray(ec, int)
    g = coo_matrix((np.ones(len(er)), (er, n_rows + ec)), shape=(nn, nn))
    _, lab = connected_components(g, directed=False)
    has = np.zeros(nn, bool)
    has[er] = True
    has[n_rows + ec] = True
    return np.where(has, lab, -1)


# -- crossing and class outlook --------------------------------------------------
def crossing(x, u, vx, vu, hu, p6, t, travel, y_valve, mpt, q, ev):
    """Predict the state to the crossing midpoint with the full matrices."""
    vel = max(mpt + vu, 0.25 * mpt)
    yc = u + travel
    ton = t + (y_valve - yc - hu) / vel
    toff = t + (y_valve - yc + hu) / vel
    d = max(0.5 * (ton + toff) - t, 0.0)
    _, p_at = predict(np.array([x, u, vx, vu]), p6, d, q)
    return (
        ton,
        toff,
        math.sqrt(p_at[3] + ev) / vel,
        x + vx * d,
        math.sqrt(p_at[0] + ev),
    )


def outlook(ev_row, nev, cls_frac, thr, priority, pooled=False):
    """(class, prob, fraction, target class) for one track, plainly; ``pooled``:
    when no class meets its threshold, the first by priority whose fraction's
    classes of no higher threshold together do (the recipe's ``pool_classes``)."""
    if nev == 0 or len(ev_row) == 0:
        return -1, 0.0, -1, -1
    mean = np.asarray(ev_row, float) / nev
    p = np.exp(mean - mean.max())
    p /= p.sum()
    best = int(np.argmax(p))
    by_priority = sorted(range(len(p)), key=lambda c: (-priority[c], c))
    for c in by_priority:
        if cls_frac[c] >= 0 and p[c] >= thr[c]:
            return best, float(p[best]), int(cls_frac[c]), c
    for c in by_priority if pooled else ():
        mates = [m for m in range(len(p)) if cls_frac[m] == cls_frac[c] and thr[m] <= thr[c]]
        if cls_frac[c] >= 0 and sum(p[m] for m in mates) >= thr[c]:
            return best, float(p[best]), int(cls_frac[c]), c
    return best, float(p[best]), -1, -1


# -- valves and interval sets ---------------------------------------------------
def valve_cover(x_lo, x_hi, x_centre, pitch, x0, blast, n_valves) -> tuple[int, int]:
    """Fewest adjacent valves whose blasts together cover [x_lo, x_hi], by search;
    ties broken toward the run whose middle is nearest ``x_centre``."""
    centres = x0 + (np.arange(n_valves) + 0.5) * pitch
    best = None
    for length in range(1, n_valves + 1):
        for a in range(n_valves - length + 1):
            b = a + length - 1
            if centres[a] - blast / 2 <= x_lo + 1e-9 and centres[b] + blast / 2 >= x_hi - 1e-9:
                key = abs(0.5 * (centres[a] + centres[b]) - x_centre)
                if best is None or key < best[0] - 1e-12:
                    best = (key, a, b)
        if best is not None:
            return best[1], best[2]
    return 0, n_valves - 1


def merge_interval(committed: list[tuple[int, int]], a: int, b: int, min_off: int):
    """Merge [a, b) into sorted disjoint ``committed`` (gaps >= min_off kept).

    Returns (new committed list, new segments, continuation flags): gaps
    shorter than ``min_off`` between the request and committed intervals are
    bridged; the new segments are the merged span minus what was already
    committed; a segment continues a committed interval when it starts where
    one of the merged intervals ends."""
    touching = [iv for iv in committed if iv[1] + min_off > a and iv[0] < b + min_off]
    rest = [iv for iv in committed if iv not in touching]
    lo = min([a] + [iv[0] for iv in touching])
    hi = max([b] + [iv[1] for iv in touching])
    covered = np.zeros(hi - lo, bool)
    for s, e in touching:
        covered[s - lo : e - lo] = True
    segs = []
    k = 0
    while k < len(covered):
        if not covered[k]:
            m = k
            while m < len(covered) and not covered[m]:
                m += 1
            segs.append((lo + k, lo + m))
            k = m
        else:
            k += 1
    flags = [any(e == s for _, e in touching) for s, _ in segs]
    return sorted([*rest, (lo, hi)]), segs, flags


def covered_share(box, dbox: np.ndarray, owner: np.ndarray) -> float:
    """Share of ``box`` (x0, x1, y0, y1) under the rows of ``dbox`` with owner >= 0:
    summed intersection areas over its area, capped at 1; 0 for no area."""
    x0, x1, y0, y1 = box
    area = (x1 - x0) * (y1 - y0)
    if not area > 0:
        return 0.0
    d = dbox[owner >= 0]
    w = np.clip(np.minimum(x1, d[:, 1]) - np.maximum(x0, d[:, 0]), 0.0, None)
    h = np.clip(np.minimum(y1, d[:, 3]) - np.maximum(y0, d[:, 2]), 0.0, None)
    return float(min((w * h).sum() / area, 1.0))


def miss_and_birth_scores(
    track_boxes, unmatched, dbox, owner, occluded, miss_loss, birth_entry, birth_mid, entry_y_mm
):
    """Score change of each unmatched wholly-in-view track and initial score of
    each unowned box (occlusion rule of ``control.kernels``): a track under
    owned boxes by >= ``occluded`` (> 0) loses nothing (nor does its miss
    count); a box that is under them, or starts above ``entry_y_mm``, is born
    with the entry score."""
    dscore = [
        0.0 if occluded > 0 and covered_share(b, dbox, owner) >= occluded else -miss_loss
        for b, u in zip(track_boxes, unmatched, strict=True)
        if u
    ]
    births = [
        birth_entry
        if dbox[j, 2] < entry_y_mm
        or (occluded > 0 and covered_share(dbox[j], dbox, owner) >= occluded)
        else birth_mid
        for j in range(len(dbox))
        if owner[j] < 0
    ]
    return dscore, births


# -- aiming around neighbours (kernels_aim) ----------------------------------------
def worst_cover(lo: float, hi: float, a: float, b: float, s: float) -> float:
    """Worst share of [a, b] under [lo, hi] over shifts sampled densely in [-s, s]."""
    shifts = np.linspace(-s, s, 201) if s > 0 else np.zeros(1)
    ov = np.minimum(hi, b + shifts) - np.maximum(lo, a + shifts)
    return float(np.clip(ov, 0.0, None).min() / max(b - a, 1e-9))


def aim(i, first, last, on, off, CROSS, XC, H, FRAC, k, kx, tol, need, pitch, x_first, blast):
    """Cut target i's air rectangle clear of neighbours of another fraction, one
    conflict at a time (worst share first, at most 4 cuts); each cut is the
    better of: the valves short of the neighbour, or the air after (before)
    it; allowed while ``need`` of the target's length and width stay covered
    for any error within k (kx) sigma. -> (first, last, on, off, 0 clear / 1 cut / 2 failed)."""

    def span(f, lst):
        return x_first + (f + 0.5) * pitch - blast / 2, x_first + (lst + 0.5) * pitch + blast / 2

    def foot(j):
        st, sx = CROSS[j, 2], XC[j, 1]
        return (CROSS[j, 0] - st, CROSS[j, 1] + st, XC[j, 0] - H[j, 0] - sx,
                XC[j, 0] + H[j, 0] + sx, max(CROSS[j, 1] - CROSS[j, 0], 1.0),
                max(2 * H[j, 0], 1e-6))  # fmt: skip

    def cover(f, lst, a_on, a_off):
        if f > lst or a_off <= a_on:
            return 0.0, 0.0
        xl, xh = span(f, lst)
        cu = worst_cover(a_on, a_off, CROSS[i, 0], CROSS[i, 1], k * CROSS[i, 2])
        cx = worst_cover(xl, xh, XC[i, 0] - H[i, 0], XC[i, 0] + H[i, 0], kx * XC[i, 1])
        return cu, cx

    def worst(f, lst, a_on, a_off):
        xl, xh = span(f, lst)
        best, best_share = -1, tol
        for j in range(len(FRAC)):
            if j == i or FRAC[j] == FRAC[i]:
                continue
            t0, t1, x0, x1, dur, wid = foot(j)
            ov_t, ov_x = min(a_off, t1) - max(a_on, t0), min(xh, x1) - max(xl, x0)
            if ov_t > 0 and ov_x > 0:
                share = min(ov_t / dur, 1.0) * min(ov_x / wid, 1.0)
                if share > best_share:
                    best, best_share = j, share
        return best

    f, lst, a_on, a_off = first, last, on, off
    for n_cut in range(5):
        j = worst(f, lst, a_on, a_off)
        if j < 0:
            return f, lst, a_on, a_off, 0 if n_cut == 0 else 1
        if n_cut == 4:
            break
        t0, t1, x0, x1, dur, wid = foot(j)
        fx, lx = f, lst
        if XC[j, 0] >= XC[i, 0]:  # keep the valves whose blast ends before j (+ tolerance)
            while lx >= fx and span(fx, lx)[1] > x0 + tol * wid + 1e-9:
                lx -= 1
        else:
            while fx <= lx and span(fx, lx)[0] < x1 - tol * wid - 1e-9:
                fx += 1
        ton, toff = a_on, a_off
        if CROSS[j, 0] + CROSS[j, 1] <= CROSS[i, 0] + CROSS[i, 1]:
            ton = max(a_on, t1 - tol * dur)
        else:
            toff = min(a_off, t0 + tol * dur)
        cx_ = cover(fx, lx, a_on, a_off)
        ct_ = cover(f, lst, ton, toff)
        ok_x = min(cx_) >= need
        ok_t = min(ct_) >= need and toff > ton
        if ok_x and (not ok_t or cx_[0] * cx_[1] >= ct_[0] * ct_[1]):
            f, lst = fx, lx
        elif ok_t:
            a_on, a_off = ton, toff
        else:
            break
    return first, last, on, off, 2


# -- motion model: three-model IMM (kernels_motion, kernels_motion_ca) -----------------
def ca_matrices(dt: float, q_jerk: float) -> tuple[np.ndarray, np.ndarray]:
    """One axis (position, velocity, acceleration): transition F, white-jerk noise Q."""
    F = np.array([[1.0, dt, dt * dt / 2], [0.0, 1.0, dt], [0.0, 0.0, 1.0]])
    Q = q_jerk * np.array(
        [
            [dt**5 / 20, dt**4 / 8, dt**3 / 6],
            [dt**4 / 8, dt**3 / 3, dt**2 / 2],
            [dt**3 / 6, dt**2 / 2, dt],
        ]
    )
    return F, Q


def sym3(p: np.ndarray) -> np.ndarray:
    """Packed (pp, pv, pa, vv, va, aa) -> 3x3 covariance."""
    pp, pv, pa, vv, va, aa = p
    return np.array([[pp, pv, pa], [pv, vv, va], [pa, va, aa]])


def pack3(c: np.ndarray) -> np.ndarray:
    return np.array([c[0, 0], c[0, 1], c[0, 2], c[1, 1], c[1, 2], c[2, 2]])


def imm3_transitions(p_still: float, p_move: float, p_accel: float, on: bool) -> np.ndarray:
    """T[i, j]: probability of going from model i to j over a frame (rest,
    constant velocity, constant acceleration); off: rest and velocity only."""
    if not on:
        return np.array(
            [[p_still, 1 - p_still, 0.0], [1 - p_move, p_move, 0.0],
             [(1 - p_accel) / 2, (1 - p_accel) / 2, p_accel]]
        )  # fmt: skip
    off = np.array([1 - p_still, 1 - p_move, 1 - p_accel]) / 2
    return np.array(
        [[p_still, off[0], off[0]], [off[1], p_move, off[1]], [off[2], off[2], p_accel]]
    )


def imm3_predict(x, p6, g, xs, ps, mu, xa, pa12, ma, dt, prm):
    """Textbook IMM prediction of one row: every model as a 3-state (position,
    velocity, acceleration) Gaussian per axis (rest: velocity and acceleration
    0 with the priors ``v0``, ``a0``; constant velocity: acceleration 0 with
    ``a0``), mixed with w[i, j] = T[i, j] mu_i / c_j, then each model's own
    prediction (a braking piece of the acceleration model rests where its
    relative speed reaches 0). ``prm``: dict of q_base, q_man, g0, q_still,
    p_still, p_move, v0, a0, q_jerk, p_accel, on. Returns (x, p6, xs, ps, mu,
    xa, pa12, ma)."""
    T = imm3_transitions(prm["p_still"], prm["p_move"], prm["p_accel"], prm["on"])
    prior = np.array([mu, 1 - mu - ma, ma])
    c = prior @ T
    x, p6, xs, ps, xa, pa12 = (np.array(a, float) for a in (x, p6, xs, ps, xa, pa12))
    v0, a0 = prm["v0"], prm["a0"]
    mixed_a = []
    for a in range(2):
        means = [
            np.array([xs[a], 0.0, 0.0]),
            np.array([x[a], x[a + 2], 0.0]),
            np.array([xa[a], xa[a + 2], xa[a + 4]]),
        ]
        pp, pv, vv = p6[3 * a : 3 * a + 3]
        covs = [
            np.diag([ps[a], v0, a0]),
            np.array([[pp, pv, 0.0], [pv, vv, 0.0], [0.0, 0.0, a0]]),
            sym3(pa12[6 * a : 6 * a + 6]),
        ]
        mixed = []
        for j in range(3):
            # an unreachable model (the acceleration one when off) follows velocity
            w = T[:, j] * prior / c[j] if c[j] > 1e-12 else np.array([0.0, 1.0, 0.0])
            m0 = sum(wi * mi for wi, mi in zip(w, means, strict=True))
            c0 = sum(
                wi * (ci + np.outer(mi - m0, mi - m0))
                for wi, mi, ci in zip(w, means, covs, strict=True)
            )
            mixed.append((m0, c0))
        (ms0, cs0), (mv0, cv0), (ma0, ca0) = mixed
        xs[a], ps[a] = ms0[0], cs0[0, 0] + prm["q_still"] * dt
        q = prm["q_base"] + prm["q_man"] * max(g[a] - prm["g0"], 0.0)
        f2 = np.array([[1.0, dt], [0.0, 1.0]])
        q2 = q * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
        m2, c2 = f2 @ mv0[:2], f2 @ cv0[:2, :2] @ f2.T + q2
        x[a], x[a + 2] = m2
        p6[3 * a : 3 * a + 3] = c2[0, 0], c2[0, 1], c2[1, 1]
        mixed_a.append((ma0, ca0))
    # the acceleration model: a braking piece (acceleration against its
    # velocity) rests where its relative speed reaches 0
    (mx, _), (mu_, _) = mixed_a
    speed = math.hypot(mx[1], mu_[1])
    brake = -(mx[1] * mx[2] + mu_[1] * mu_[2]) / speed if speed > 0 else 0.0
    t_stop = speed / brake if brake > 0 else (0.0 if speed == 0 else math.inf)
    for a, (ma0, ca0) in enumerate(mixed_a):
        F, Q = ca_matrices(dt, prm["q_jerk"])
        m3, c3 = F @ ma0, F @ ca0 @ F.T + Q
        if t_stop < dt:
            ts = t_stop
            m3 = np.array([ma0[0] + ma0[1] * ts + ma0[2] * ts * ts / 2, 0.0, 0.0])
        xa[a], xa[a + 2], xa[a + 4] = m3
        pa12[6 * a : 6 * a + 6] = pack3(c3)
    return x, p6, xs, ps, c[0], xa, pa12, c[2] if prm["on"] else 0.0


def mode_posterior(ms, ma, nis, log_det, floor, on):
    """Bayes' rule over (rest, velocity, acceleration): prior (ms, 1 - ms - ma,
    ma) times exp(-nis/2) / sqrt(det) per model (``log_det`` the log of the
    product of its innovation variances), each probability floored (the
    acceleration model's 0 when off) -> (ms, ma)."""
    prior = np.array([ms, 1 - ms - ma, ma if on else 0.0])
    log_like = -0.5 * np.asarray(nis) - 0.5 * np.asarray(log_det)
    log_like[1:] = log_like[0] + np.clip(log_like[1:] - log_like[0], -50, 50)
    post = prior * np.exp(log_like - log_like.max())
    post /= post.sum()
    if not on:
        return float(np.clip(post[0], floor, 1 - floor)), 0.0
    ps = float(np.clip(post[0], floor, 1 - 2 * floor))
    return ps, float(np.clip(post[2], floor, 1 - ps - floor))


def ca_crossing(state, cov_x, cov_u, q_jerk, t, travel, y_valve, mpt, step=0.01):
    """The constant-acceleration crossing by stepping time: the piece moves
    with x'' = ax, u'' = au relative to the belt (less any part along its
    velocity that would speed it up) until its relative speed would grow
    again after braking (friction stops it there), the belt adds
    ``mpt`` per tick; the centre's crossing tick is found by bisection on
    the stepped path. -> (tick, sigma ticks, speed mm/tick, x mm, sigma mm)."""
    x, u, vx, vu, ax, au = state
    v = np.array([vx, vu])
    acc = np.array([ax, au])
    if v @ acc > 0:  # nothing speeds a piece up relative to the belt: keep the turning part
        acc = acc - (v @ acc) / (v @ v) * v
    ax, au = acc

    def pos(tau):
        s0 = math.hypot(vx, vu)
        brake = -(ax * vx + au * vu) / s0 if s0 > 0 else 0.0
        t_stop = s0 / brake if brake > 0 else math.inf
        te = min(tau, t_stop) if s0 > 0 else 0.0
        return (x + vx * te + ax * te * te / 2, u + vu * te + au * te * te / 2 + mpt * tau, te)

    dist = y_valve - travel
    if pos(0.0)[1] >= dist:  # already past the line: no motion of its own counted
        vel = max(mpt + vu, 0.25 * mpt)
        var = [sym3(c)[0, 0] for c in (cov_x, cov_u)]
        return t + (dist - u) / vel, math.sqrt(var[1]) / vel, vel, x, math.sqrt(var[0])
    else:
        lo, hi = 0.0, 1.0
        while pos(hi)[1] < dist:
            hi *= 2
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if pos(mid)[1] < dist else (lo, mid)
        tau = 0.5 * (lo + hi)
        te = pos(tau)[2]
        vel = max((pos(tau + step)[1] - pos(tau - step)[1]) / (2 * step), 0.25 * mpt)
    F, Q = ca_matrices(te, q_jerk)
    var = [(F @ sym3(c) @ F.T + Q)[0, 0] for c in (cov_x, cov_u)]
    return t + tau, math.sqrt(var[1]) / vel, vel, pos(tau)[0], math.sqrt(var[0])


def aim_search(
    i, first, last, on, off, CROSS, XC, H, FRAC, k, kx, tol, lift, margin, pitch, x_first, blast,
    n_grid=200,
):  # fmt: skip
    """Brute force of ``kernels_aim_search._aim_search``: every valve run inside
    first..last x air on/off on a grid of ``n_grid`` steps over [on, off]; a
    neighbour of another fraction is spared when its length or width share
    under the air widened by one sigma of its own prediction is at most
    lift - margin, or the product at most ``tol``; the target's worst
    shares (k, kx sigmas) must reach min(lift + margin, the full window's).
    -> (n lifted by the full window, n lifted by the best, best cover
    product, best (first, last, on, off))."""

    def span(f, lst):
        return x_first + (f + 0.5) * pitch - blast / 2, x_first + (lst + 0.5) * pitch + blast / 2

    def most(lo, hi, a, b, s):  # the air widened by s each side over [a, b]
        return max(min(hi + s, b) - max(lo - s, a), 0.0) / max(b - a, 1e-9)

    def cover(f, lst, a_on, a_off):
        xl, xh = span(f, lst)
        cu = worst_cover(a_on, a_off, CROSS[i, 0], CROSS[i, 1], k * CROSS[i, 2])
        cx = worst_cover(xl, xh, XC[i, 0] - H[i, 0], XC[i, 0] + H[i, 0], kx * XC[i, 1])
        return cu, cx

    def lifted(f, lst, a_on, a_off):
        xl, xh = span(f, lst)
        n = 0
        for j in range(len(FRAC)):
            if j == i or FRAC[j] == FRAC[i]:
                continue
            t0, t1 = CROSS[j, 0], max(CROSS[j, 1], CROSS[j, 0] + 1.0)
            su = min(most(a_on, a_off, t0, t1, CROSS[j, 2]), 1.0)
            sx = min(most(xl, xh, XC[j, 0] - H[j, 0], XC[j, 0] + H[j, 0], XC[j, 1]), 1.0)
            if not (su * sx <= tol or min(su, sx) <= lift - margin + 1e-9):
                n += 1
        return n

    cu0, cx0 = cover(first, last, on, off)
    need_u, need_x = min(lift + margin, cu0), min(lift + margin, cx0)
    n_full = lifted(first, last, on, off)
    best = (n_full, cu0 * cx0, (first, last, on, off))
    if n_full == 0:
        return 0, 0, cu0 * cx0, (first, last, on, off)
    grid = np.linspace(on, off, n_grid + 1)
    for f in range(first, last + 1):
        for lst in range(f, last + 1):
            for a, a_on in enumerate(grid):
                for a_off in grid[a + 1 :]:
                    cu, cx = cover(f, lst, a_on, a_off)
                    if cu < need_u - 1e-12 or cx < need_x - 1e-12:
                        continue
                    n = lifted(f, lst, a_on, a_off)
                    if n < best[0] or (n == best[0] and cu * cx > best[1]):
                        best = (n, cu * cx, (f, lst, a_on, a_off))
    return n_full, best[0], best[1], best[2]


def aim_least(
    i, first, last, on, off, CROSS, XC, H, FRAC, k, kx, tol, lift, margin, pitch, x_first, blast,
    t_edges, jet_ticks=0.0, window=None,
):  # fmt: skip
    """Brute force of ``kernels_aim_search._aim_least`` (no air committed):
    every valve run inside first..last x every pair of ``t_edges`` (inside
    [on, off]) as air on/off. The target's worst shares (k, kx sigmas; the air
    reaching ``jet_ticks`` beyond the window along the belt) must reach
    min(lift + margin, the full window's); the neighbours of another fraction
    the full air lifts (judged as in ``aim_search``, widened by one sigma of
    their own and the jet) are the conflicts, and a window's excess is the sum
    over them of max(min(length share, width share) - (lift - margin), 0)
    (0 when the product is at most ``tol`` or the air misses it).
    -> (excess of the full window, best excess, best cover product, best
    (first, last, on, off)); None when the full air lifts no neighbour.
    With ``window`` (first, last, on, off): (its excess, its cover product)."""

    def span(f, lst):
        return x_first + (f + 0.5) * pitch - blast / 2, x_first + (lst + 0.5) * pitch + blast / 2

    def most(lo, hi, a, b, s):
        return max(min(hi + s, b) - max(lo - s, a), 0.0) / max(b - a, 1e-9)

    def shares(j, f, lst, a_on, a_off):
        xl, xh = span(f, lst)
        t0, t1 = CROSS[j, 0], max(CROSS[j, 1], CROSS[j, 0] + 1.0)
        su = min(most(a_on, a_off, t0, t1, CROSS[j, 2] + jet_ticks), 1.0)
        sx = min(most(xl, xh, XC[j, 0] - H[j, 0], XC[j, 0] + H[j, 0], XC[j, 1]), 1.0)
        return su, sx

    spare = lift - margin
    others = [j for j in range(len(FRAC)) if j != i and FRAC[j] != FRAC[i]]
    conf = []
    for j in others:
        su, sx = shares(j, first, last, on, off)
        if su > 0 and sx > 0 and not (su * sx <= tol or min(su, sx) <= spare + 1e-9):
            conf.append(j)
    if not conf:
        return None if window is None else (0.0, float("nan"))

    def excess(f, lst, a_on, a_off):
        total = 0.0
        for j in conf:
            su, sx = shares(j, f, lst, a_on, a_off)
            if su == 0 or sx == 0 or su * sx <= tol:
                continue
            total += max(min(su, sx) - spare, 0.0)
        return total

    def cover(f, lst, a_on, a_off):
        xl, xh = span(f, lst)
        cu = worst_cover(
            a_on - jet_ticks, a_off + jet_ticks, CROSS[i, 0], CROSS[i, 1], k * CROSS[i, 2]
        )
        cx = worst_cover(xl, xh, XC[i, 0] - H[i, 0], XC[i, 0] + H[i, 0], kx * XC[i, 1])
        return cu, cx

    if window is not None:
        cu, cx = cover(*window)
        return excess(*window), cu * cx
    cu0, cx0 = cover(first, last, on, off)
    need_u, need_x = min(lift + margin, cu0), min(lift + margin, cx0)
    e_full = excess(first, last, on, off)
    best = (math.inf, -1.0, (first, last, on, off))
    edges = sorted({min(max(float(t), on), off) for t in t_edges})
    for f in range(first, last + 1):
        for lst in range(f, last + 1):
            for a, a_on in enumerate(edges):
                for a_off in edges[a + 1 :]:
                    cu, cx = cover(f, lst, a_on, a_off)
                    if cu < need_u - 1e-12 or cx < need_x - 1e-12:
                        continue
                    e = excess(f, lst, a_on, a_off)
                    if e < best[0] - 1e-9 or (e <= best[0] + 1e-9 and cu * cx > best[1]):
                        best = (min(e, best[0]), cu * cx, (f, lst, a_on, a_off))
    return e_full, best[0], best[1], best[2]
