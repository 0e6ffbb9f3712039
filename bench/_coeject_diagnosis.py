"""Why non-targets end in the eject bin: a diagnosis of co-ejection with true
segments and classes (issue 15, the actuation half).

    python -m bench._coeject_diagnosis --presets crowded,shred --seeds 101,7 \
        --frames 800 [--prefer balanced] [--json out.json]
    sortline bench line --presets crowded --coeject   # the same, wired into bench line

The line runs stepped with ground truth in place of its vision
(``bench._line_truth``, ``truth-segments``): tracking, prediction and
actuation are the line's. The plant's chutes are tapped (a wrapper on the
instance, the plant's code untouched) for every settled fragment's footprint
points at the valve line (x, along-belt offset, crossing tick: what
``sim.plant.ejection.coverage`` judges) and for the air rows of the runs
that hit it; the scheduler is tapped for each track's prediction at its
decision (crossing ticks and sigma, x and sigma, half sizes).

For each non-target in the eject bin (co-ejected or a false eject) the run
whose air covered most of it is its run, the run's best-matching fragment its
target. Causes, in this order:

- ``several_runs``: no single run's air ejects it; their air together does
  (merged or neighbouring windows);
- ``unavoidable``: no air rectangle (a contiguous valve run x a window at
  least a jet long) ejects the target under the plant's cover rule without
  ejecting it: physically unavoidable under this ejection rule;
- ``target_error``: the target's predicted crossing was off its true one by
  more than ``ERR_MM`` along or across the belt (timing / position);
- ``seen_accepted``: by the controller's own rule the air was over the
  neighbour's predicted box (``cut``: length x width share above the
  recipe's 0.15; ``search``: both shares above lift - margin, 0.4): it knew
  and sent the air anyway (aim failed; ``balanced`` lets priority decide; a
  battery target always wins: the ``battery target`` flag);
- ``neighbour_error``: it judged the neighbour clear, the neighbour's true
  box is over that bound: the neighbour's prediction erred;
- ``criterion``: predicted and true boxes both clear by the controller's
  share rule, yet the plant ejected it (the share rule misjudges the
  plant's per-axis cover rule or the shape);
- ``no_track``: no track's prediction lies near the neighbour's crossing;
- ``no_target``: the run that lifted it hit no fragment of a target class.

Flags beside the cause: ``touching`` (footprints within 2 grid cells) and
``far`` (its target farther than 10 mm: air spilled over a gap).
A bench instrument: the line never runs with it.
"""

from __future__ import annotations

import argparse
import collections
import tempfile
from pathlib import Path
from typing import Any, cast

import numpy as np

ERR_MM = 6.0  # a target prediction farther off than this is a timing / position error
TOUCH_MM = 4.0  # footprints this close touch (2 grid cells)
FAR_MM = 10.0
Pts = tuple[np.ndarray, np.ndarray, np.ndarray]  # footprint points: x, along-belt offset, tick
CAUSES = (
    "no_target",
    "several_runs",
    "unavoidable",
    "target_error",
    "seen_accepted",
    "neighbour_error",
    "criterion",
    "no_track",
)


class _Tap:
    """Footprint points and hitting air of every settled fragment; decisions."""

    def __init__(self, line: Any) -> None:
        from sim.plant.ejection import crossing_ticks

        plant = line.parts.plant.plant
        chutes = plant._chutes
        self.points: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.air: dict[int, dict[int, np.ndarray]] = {}  # fragment -> run -> (k, 4) rects
        self.decisions: dict[int, np.ndarray] = {}  # track id -> prediction row
        settle = chutes.settle
        y_valve = plant.geometry.valves.y_valve_mm

        def tapped_settle(rec: Any, c: Any, now_s: float) -> None:
            settle(rec, c, now_s)
            t_pts = crossing_ticks(c.foot_y_mm, c.path_tick, c.path_y_mm, y_valve)
            x_pts = np.interp(t_pts, c.path_tick, c.path_x_mm) + c.foot_x_mm
            self.points[rec.fragment_id] = (x_pts, c.foot_y_mm.copy(), t_pts)
            a, ids = chutes._air, chutes._ids
            rows: dict[int, np.ndarray] = {}
            for k in rec.run_hits:
                m = (ids == k) & (a.actuator == 0)
                rows[k] = np.stack(
                    [a.x_left_mm[m], a.x_right_mm[m], a.on_tick[m], a.off_tick[m]], axis=1
                )
            self.air[rec.fragment_id] = rows

        chutes.settle = tapped_settle
        sched = line.parts.controller._sched
        schedule = sched.schedule

        def tapped_schedule(table: Any, now_tick: int, *rest: Any) -> Any:
            n = table.n
            dec0 = table.DEC[:n].copy()
            out = schedule(table, now_tick, *rest)
            for r in np.flatnonzero(table.DEC[:n] & ~dec0.astype(bool)):
                self.decisions[int(table.TID[r])] = np.array(
                    [*table.CROSS[r, :3], *table.XC[r, :2], *table.H[r, :2], table.FRAC[r]]
                )
            return out

        sched.schedule = tapped_schedule


def _rule_cover(
    x: np.ndarray, dy: np.ndarray, t: np.ndarray, rects: np.ndarray, grid_mm: float
) -> tuple[np.ndarray, np.ndarray]:
    """Width and length shares (R,) of one footprint under each of ``rects``
    (R, 4) x_lo, x_hi, t_lo, t_hi: the plant's coverage rule, one rectangle each."""
    xb = np.unique(np.floor(x / grid_mm), return_inverse=True)[1]
    yb = np.unique(np.floor(dy / grid_mm), return_inverse=True)[1]
    hit = (
        (x[None] >= rects[:, :1]) & (x[None] <= rects[:, 1:2])
        & (t[None] >= rects[:, 2:3]) & (t[None] <= rects[:, 3:4])
    )  # fmt: skip
    bx = np.zeros((len(rects), xb.max() + 1), bool)
    by = np.zeros((len(rects), yb.max() + 1), bool)
    r_idx, p_idx = np.nonzero(hit)
    bx[r_idx, xb[p_idx]] = True
    by[r_idx, yb[p_idx]] = True
    return bx.sum(1) / bx.shape[1], by.sum(1) / by.shape[1]


def _union_cover(pts: Pts, rects: np.ndarray, grid_mm: float) -> tuple[float, float]:
    """Width and length shares of one footprint under the union of ``rects``."""
    x, dy, t = pts
    hit = np.zeros(len(x), bool)
    for r in rects:
        hit |= (x >= r[0]) & (x <= r[1]) & (t >= r[2]) & (t <= r[3])
    if not hit.any():
        return 0.0, 0.0
    xb, yb = np.floor(x / grid_mm), np.floor(dy / grid_mm)
    return (
        np.unique(xb[hit]).size / np.unique(xb).size,
        np.unique(yb[hit]).size / np.unique(yb).size,
    )


def _candidate_rects(tp: Pts, valves: Any, jet_ticks: float, n_t: int = 14) -> np.ndarray:
    """Air rectangles that could eject the target: every contiguous valve run
    over its x range x windows between quantiles of its crossing ticks."""
    x, _, t = tp
    b2 = valves.blast_width_mm / 2
    v0 = int(valves.valve_at_mm(x.min() - b2))
    v1 = int(valves.valve_at_mm(x.max() + b2))
    xs = [
        (float(valves.valve_centre_mm(a)) - b2, float(valves.valve_centre_mm(b)) + b2)
        for a in range(v0, v1 + 1)
        for b in range(a, v1 + 1)
    ]
    edges = np.quantile(t, np.linspace(0.0, 1.0, n_t))
    ts = [(lo, max(hi, lo + jet_ticks)) for k, lo in enumerate(edges) for hi in edges[k + 1 :]]
    return np.array([(a, b, lo, hi) for a, b in xs for lo, hi in ts], np.float64)


def _separable(
    tp: Pts, npts: Pts, valves: Any, jet_ticks: float,
    grid_mm: float, w_frac: float, l_frac: float, margin: float = 0.0,
) -> bool:  # fmt: skip
    """Whether some air rectangle ejects the target and not the neighbour
    (with ``margin``: the target's shares that much above the rule, the
    neighbour's that much below it on one axis)."""
    rects = _candidate_rects(tp, valves, jet_ticks)
    tw, tl = _rule_cover(*tp, rects, grid_mm)
    ok = (tw >= w_frac + margin - 1e-9) & (tl >= l_frac + margin - 1e-9)
    if not ok.any():
        return False
    nw, nl = _rule_cover(*npts, rects[ok], grid_mm)
    return bool(np.any((nw < w_frac - margin - 1e-9) | (nl < l_frac - margin - 1e-9)))


def _meant_for(
    run: int,
    recs_by_run: dict[int, list[Any]],
    targets: dict[str, str],
    best: dict[int, tuple[float, int]],
) -> int:
    """The fragment a run was meant for: of the fragments it hit whose class the
    recipe targets, the best match; else the run's best match."""
    hit = [r for r in recs_by_run.get(run, []) if targets.get(r.class_name, "pass") != "pass"]
    if hit:
        return max(hit, key=lambda r: r.run_match.get(run, 0.0)).fragment_id
    return best.get(run, (0.0, -1))[1]


def _gap_mm(a: Pts, b: Pts, mm_per_tick: float) -> float:
    """Closest distance between two footprints at the valve line (x, along-belt)."""
    pa = np.stack([a[0], a[2] * mm_per_tick], 1)
    pb = np.stack([b[0], b[2] * mm_per_tick], 1)
    d2 = ((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1)
    return float(np.sqrt(d2.min()))


def _share(pred: tuple[float, float, float, float], rect: np.ndarray, rule: str) -> float:
    """The controller's conflict share of box (t0, t1, x0, x1) under ``rect``
    (x_lo, x_hi, t_lo, t_hi): time share x width share (``cut`` rule), the
    smaller of the two (``search``: the lift rule)."""
    t0, t1, x0, x1 = pred
    ov_t = min(rect[3], t1) - max(rect[2], t0)
    ov_x = min(rect[1], x1) - max(rect[0], x0)
    if ov_t <= 0 or ov_x <= 0:
        return 0.0
    s_t = min(ov_t / max(t1 - t0, 1.0), 1.0)
    s_x = min(ov_x / max(x1 - x0, 1e-6), 1.0)
    return min(s_t, s_x) if rule == "search" else s_t * s_x


def _pred_box(d: np.ndarray, widen: bool) -> tuple[float, float, float, float]:
    s_t, s_x = (d[2], d[4]) if widen else (0.0, 0.0)
    return d[0] - s_t, d[1] + s_t, d[3] - d[5] - s_x, d[3] + d[5] + s_x


def _true_box(r: Any) -> tuple[float, float, float, float]:
    return (
        r.cross_lead_tick,
        r.cross_trail_tick,
        r.x_cross_mm - r.width_mm / 2,
        r.x_cross_mm + r.width_mm / 2,
    )


def diagnose(
    preset: str,
    frames: int,
    seed: int,
    prefer: str | None = None,
    line_config: str | None = None,
    aim_rule: str | None = None,
) -> dict[str, Any]:
    """One stepped truth-segments run; per non-target in the eject bin, its cause."""
    from bench._line_truth import TruthTap, TruthVision
    from bench.line import _config
    from sortline.runtime import SortingLine

    with tempfile.TemporaryDirectory() as tmp:
        line = SortingLine(
            _config(prefer, Path(tmp), line_config),
            stepped=True, plc_port=0, scenario=preset, seed=seed, records=False,
        )  # fmt: skip
        assert line.parts.plant is not None, "the diagnosis needs the embedded plant"
        plant = line.parts.plant.plant
        truth_tap = TruthTap(plant)
        tap = _Tap(line)
        if aim_rule is not None:
            line.parts.controller.set_aim_rule(aim_rule)
        line.start()
        n_classes = len(line.parts.class_names)
        stage = TruthVision(line.loop.vision, truth_tap, line.parts.geometry, n_classes, "segments")
        line.loop.vision = cast(Any, stage)
        try:
            line.run_frames(frames)
            report = line.report()
            targets = line.parts.recipe.targets()
            recs = [r for r in plant.fragments if r.bin is not None]
            runs = plant.runs
            geo, ej = plant.geometry, plant.scenario.ejection
            stats = line.parts.controller.stats()
        finally:
            line.stop()
    params = line.parts.controller.params
    return _analyse(recs, runs, tap, geo, ej, targets, params) | {
        "preset": Path(preset).stem, "seed": seed, "prefer": prefer or "recipe",
        "aim_rule": line.parts.controller.params.aim_rule,
        "purity": report["purity"], "recovery": report["recovery"],
        "co_ejection_rate": report["co_ejection_rate"], "controller": stats,
    }  # fmt: skip


def _analyse(
    recs: list[Any],
    runs: Any,
    tap: _Tap,
    geo: Any,
    ej: Any,
    targets: dict[str, str],
    params: Any,
) -> dict[str, Any]:
    by_id = {r.fragment_id: r for r in recs}
    best: dict[int, tuple[float, int]] = {}
    for r in recs:
        for k, s in (r.run_match or r.run_hits).items():
            if k not in best or s > best[k][0]:
                best[k] = (s, r.fragment_id)
    mm_tick = geo.belt.mm_per_tick
    jet_ticks = ej.jet_length_mm / mm_tick
    rule = params.aim_rule  # the controller's own conflict rule (recipe tolerance 0.15)
    tol = params.lift_share - params.aim_margin if rule == "search" else 0.15
    # track id -> fragment, and prediction lookup by crossing for non-targets
    dec = tap.decisions
    tids = np.array(list(dec), np.int64)
    preds = np.array([dec[t] for t in tids]) if len(tids) else np.zeros((0, 8))
    # the runs carry the PLC's sequence numbers, not track ids: a fragment's
    # prediction is the decision nearest its true crossing (belt mm), after the
    # median offset between the two counts (0 unless a count wrapped)
    t_off = 0.0
    if len(preds):
        offs = []
        for r in recs:
            tc = 0.5 * (r.cross_lead_tick + r.cross_trail_tick)
            dist = np.hypot(
                (0.5 * (preds[:, 0] + preds[:, 1]) - tc) * mm_tick, preds[:, 3] - r.x_cross_mm
            )
            j = int(np.argmin(dist))
            if dist[j] < 20.0:
                offs.append(0.5 * (preds[j, 0] + preds[j, 1]) - tc)
        t_off = float(np.median(offs)) if offs else 0.0

    def nearest_pred(r: Any) -> np.ndarray | None:
        if not len(preds):
            return None
        tc = 0.5 * (r.cross_lead_tick + r.cross_trail_tick) + t_off
        d_t = (0.5 * (preds[:, 0] + preds[:, 1]) - tc) * mm_tick
        d_x = preds[:, 3] - r.x_cross_mm
        dist = np.hypot(d_t, d_x)
        j = int(np.argmin(dist))
        return preds[j] if dist[j] < max(0.5 * r.size_mm, 8.0) else None

    recs_by_run: dict[int, list[Any]] = collections.defaultdict(list)
    for r in recs:
        for k in r.run_hits:
            recs_by_run[k].append(r)
    rows = []
    for r in recs:
        if r.bin == "pass" or targets.get(r.class_name, "pass") == r.bin:
            continue
        pts = tap.points.get(r.fragment_id)
        air = tap.air.get(r.fragment_id, {})
        if pts is None or not air:
            continue
        single = {k: _union_cover(pts, a, ej.grid_mm) for k, a in air.items() if len(a)}
        alone = [
            k for k, (w, ln) in single.items()
            if w >= ej.cover_width_frac - 1e-9 and ln >= ej.cover_length_frac - 1e-9
        ]  # fmt: skip
        main = max(air, key=lambda k: r.run_hits.get(k, 0.0))
        fid_t = _meant_for(main, recs_by_run, targets, best)
        tr = by_id.get(fid_t)
        row: dict[str, Any] = {
            "fragment": r.fragment_id, "class": r.class_name, "size_mm": round(r.size_mm, 1),
            "runs": len(air), "target_fragment": fid_t,
            "target_class": None if tr is None else tr.class_name,
        }  # fmt: skip
        tpts = tap.points.get(fid_t)
        if tr is not None and tpts is not None and fid_t != r.fragment_id:
            gap = _gap_mm(tpts, pts, mm_tick)
            row["gap_mm"] = round(gap, 1)
        else:
            gap = float("nan")
        row["touching"] = bool(gap <= TOUCH_MM)
        row["far"] = bool(gap > FAR_MM)
        rect = air[main][:, :4]
        rect_all = np.array(
            [rect[:, 0].min(), rect[:, 1].max(), rect[:, 2].min(), rect[:, 3].max()]
        )
        d_t = None if tr is None else nearest_pred(tr)
        d_n = nearest_pred(r)
        if not alone:
            cause = "several_runs"
        elif tpts is None or tr is None or fid_t == r.fragment_id:
            cause = "no_target"
        elif not _separable(
            tpts, pts, geo.valves, jet_ticks, ej.grid_mm, ej.cover_width_frac, ej.cover_length_frac
        ):
            cause = "unavoidable"
        else:
            row["separable_with_margin"] = _separable(
                tpts,
                pts,
                geo.valves,
                jet_ticks,
                ej.grid_mm,
                ej.cover_width_frac,
                ej.cover_length_frac,
                margin=0.1,
            )
            err_t = err_x = 0.0
            if d_t is not None:
                err_t = (
                    abs(
                        0.5 * (d_t[0] + d_t[1])
                        - t_off
                        - 0.5 * (tr.cross_lead_tick + tr.cross_trail_tick)
                    )
                    * mm_tick
                )
                err_x = abs(d_t[3] - tr.x_cross_mm)
            row["target_err_mm"] = [round(err_t, 1), round(err_x, 1)]
            rc = rect_all + np.array([0, 0, t_off, t_off])
            s_true = _share(_true_box(r), rect_all, rule)
            row["share_true_box"] = round(s_true, 2)
            if d_n is not None:
                s_pred = _share(_pred_box(d_n, True), rc, rule)
                row["share_pred"] = round(s_pred, 2)
            if max(err_t, err_x) > ERR_MM:
                cause = "target_error"
            elif d_n is None:
                cause = "no_track"  # no prediction near the neighbour (hidden, merged)
            elif s_pred > tol:
                cause = "seen_accepted"
            elif s_true > tol:
                cause = "neighbour_error"
            else:
                cause = "criterion"
        row["cause"] = cause
        row["cover_by_run"] = [round(float(v), 2) for v in single.get(main, (0.0, 0.0))]
        rows.append(row)
    counts = collections.Counter(r["cause"] for r in rows)
    flags = {
        "touching": sum(r["touching"] for r in rows),
        "far": sum(r["far"] for r in rows),
        "battery_target": sum(r["target_class"] == "battery" for r in rows),
        "separable_with_margin": sum(bool(r.get("separable_with_margin")) for r in rows),
    }
    n_eject = sum(1 for r in recs if r.bin == "eject")
    return {
        "ejected": n_eject,
        "non_targets_ejected": len(rows),
        "causes": {c: counts.get(c, 0) for c in CAUSES},
        "flags": flags,
        "tick_offset": round(t_off, 1),
        "rows": rows,
    }


def table(results: list[dict[str, Any]]) -> str:
    """Causes per run as a Markdown table."""
    head = (
        "| preset | seed | prefer | aim | purity | recovery | non-targets ejected | "
        + " | ".join(CAUSES)
        + " | touching | far | battery target | separable with margin |"
    )
    out = [head, "|" + "---|" * (11 + len(CAUSES))]
    for r in results:
        c = r["causes"]
        out.append(
            f"| {r['preset']} | {r['seed']} | {r['prefer']} | {r['aim_rule']} | "
            f"{r['purity']:.3f} | "
            f"{r['recovery']:.3f} | {r['non_targets_ejected']} | "
            + " | ".join(str(c[k]) for k in CAUSES)
            + f" | {r['flags']['touching']} | {r['flags']['far']} | "
            f"{r['flags']['battery_target']} | {r['flags']['separable_with_margin']} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench._coeject_diagnosis", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--presets", default="crowded,shred")
    ap.add_argument("--seeds", default="101")
    ap.add_argument("--frames", type=int, default=800)
    ap.add_argument("--prefer", default="", help="comma list of recipe prefer values")
    ap.add_argument("--aim-rule", default="", help="comma list: search, cut")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    prefers: list[str | None] = [p for p in args.prefer.split(",") if p] or [None]
    aims: list[str | None] = [a for a in args.aim_rule.split(",") if a] or [None]
    results = []
    for preset in args.presets.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            for prefer, aim in ((p, a) for p in prefers for a in aims):
                res = diagnose(preset, args.frames, seed, prefer, aim_rule=aim)
                results.append(res)
                print(table([res]).splitlines()[-1], flush=True)
    print(table(results))
    if args.json:
        from bench._common import write_result

        write_result(
            "coeject", argv, "co-ejection causes, truth segments", results, Path(args.json)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
