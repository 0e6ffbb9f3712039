"""Where actuation-only purity goes (issue 15): every non-target in the eject
bin of a ``truth-segments`` run, counted by cause in the brief's terms.

    sortline bench line_coeject --presets crowded,shred --seeds 3001,3002,4001 \
        --frames 500 [--prefer balanced] [--aim-rule search-strict,search] \
        [--json bench/results/line_issue15_actuation_coeject.json]

The line runs stepped with the plant's true segments and classes in place of
its vision (``--vision classes``: the line's own segmentation and merge flag,
true classes; a neighbour merged into its target's segment then shows as
``no_track``), so tracking, prediction and actuation are the line's own
(``bench._coeject_diagnosis`` taps the plant's chutes and the scheduler; the
plant's code is untouched). ``shred`` is the issue's scenario file: the
preset at its own 500 fragments/s. Each non-target in the eject bin gets one
cause, the first that applies:

- ``merged_windows``: no single run's air lifts it, several together do;
- ``no_track``: no track stood for it at its crossing (hidden, merged);
- ``target_off``: the target's prediction was over 6 mm off (timing/position);
- ``moved``: it rolled, slid or bounced after the camera and the
  controller's prediction of it was clear of the air (``neighbour_error``);
- ``inseparable``: no air rectangle lifts the target and spares it under
  the plant's cover rule (touching/overlapping at the valve line);
- ``battery``: known under the air, the target a battery (priority 100:
  ejected whatever the neighbours);
- ``accepted_no_window``: known under the air, no rectangle spares it with
  0.1 of margin either side (only an edge between two footprint samples
  would): ``balanced`` let the target win;
- ``accepted_window``: known under the air, a rectangle with 0.1 margin
  exists on the true footprints: the controller's box model (bounding
  boxes, sigmas, the jet) did not find it;
- ``criterion``: clear by the controller's rule on both predicted and true
  boxes, lifted by the plant (shape: boxes are not footprints).

Beside the causes: per target, how many non-targets its air took (``k``),
and what skipping the non-battery targets that take ``k >= 2`` would give
(``skip_k2``: purity, recovery, counted from the same run; tumbles aside).
With ``--vision classes``, each co-ejected non-target and its target: in how
many of the frames that saw both the line's segmentation made them one
segment (``one_segment`` k/n; ``pairs_one_segment``: never, sometimes,
always), which tells a tracker's remedy (pairs seen apart) from vision's
(pairs never apart).
Each run also compares the decision core's crossing predictions at decision
with the true crossings (``prediction``: errors in mm and in its own sigmas).
Each run also times the decision core (thread CPU of ``Controller.update``
per frame, p50 / p99, the first 20 frames left out): an upper bound on a
shared machine. A bench instrument: the line never runs with it.
"""

from __future__ import annotations

import argparse
import collections
import tempfile
from pathlib import Path
from typing import Any, cast

import numpy as np

from bench import _coeject_diagnosis as cd
from bench._line_truth import Mode
from control.controller import AIM_RULES

CAUSES = (
    "merged_windows",
    "no_track",
    "target_off",
    "moved",
    "inseparable",
    "battery",
    "accepted_no_window",
    "accepted_window",
    "criterion",
)
_PLAIN = {
    "several_runs": "merged_windows",
    "no_track": "no_track",
    "no_target": "no_track",
    "target_error": "target_off",
    "unavoidable": "inseparable",
    "criterion": "criterion",
}


def brief_cause(row: dict[str, Any], motion: str) -> str:
    """The diagnosis row's cause (``bench._coeject_diagnosis``) in the terms
    above; ``motion``: the neighbour's (``FragmentRecord.motion``)."""
    c = row["cause"]
    if c in _PLAIN:
        return _PLAIN[c]
    if c == "neighbour_error":
        return "moved" if motion != "lying" else "criterion"
    if row.get("target_class") == "battery":
        return "battery"
    return "accepted_window" if row.get("separable_with_margin") else "accepted_no_window"


def summarise(
    rows: list[dict[str, Any]],
    motions: dict[int, str],
    n_targets: int,
    n_target_ejected: int,
    n_ejected: int,
) -> dict[str, Any]:
    """Counts by cause, targets by how many non-targets their air took, and
    the purity/recovery if the non-battery targets taking two or more were
    left on the belt (their non-targets with them)."""
    for r in rows:
        r["motion"] = motions.get(r["fragment"], "lying")
        r["brief_cause"] = brief_cause(r, r["motion"])
    counts = collections.Counter(r["brief_cause"] for r in rows)
    per_target: dict[int, list[dict[str, Any]]] = collections.defaultdict(list)
    for r in rows:
        if r.get("target_fragment", -1) >= 0 and r["cause"] != "several_runs":
            per_target[r["target_fragment"]].append(r)
    k_hist: collections.Counter[int] = collections.Counter(len(v) for v in per_target.values())
    drop_t = drop_n = 0
    for rs in per_target.values():
        if len(rs) >= 2 and rs[0].get("target_class") != "battery":
            drop_t += 1
            drop_n += len(rs)
    ej = n_ejected - drop_t - drop_n
    return {
        "causes_brief": {c: counts.get(c, 0) for c in CAUSES},
        "moving_neighbours": sum(r["motion"] != "lying" for r in rows),
        "targets_by_k": {str(k): k_hist[k] for k in sorted(k_hist)},
        "skip_k2": {
            "targets_left": drop_t,
            "non_targets_saved": drop_n,
            "purity": round((n_target_ejected - drop_t) / max(ej, 1), 4),
            "recovery": round((n_target_ejected - drop_t) / max(n_targets, 1), 4),
        },
    }


def prediction_errors(
    recs: list[Any], decisions: dict[int, np.ndarray], mm_per_tick: float
) -> dict[str, Any]:
    """The decision core's crossing predictions at decision against the
    plant's true crossings, every settled fragment with a decision within 8 mm
    of it (``_coeject_diagnosis._Tap.decisions`` rows: lead, trail, edge sigma
    ticks, x, x sigma mm, ...): the leading edge's tick error and the centre's
    x error, in mm and in the prediction's own sigmas (how cautious the aiming's
    sigmas are)."""
    rows = np.array(list(decisions.values())) if decisions else np.zeros((0, 8))
    e_t, e_x, s_t, s_x = [], [], [], []
    for r in recs:
        if r.cross_lead_tick is None or not len(rows):
            continue
        tc = 0.5 * (r.cross_lead_tick + r.cross_trail_tick)
        d_t = (0.5 * (rows[:, 0] + rows[:, 1]) - tc) * mm_per_tick
        d = np.hypot(d_t, rows[:, 3] - r.x_cross_mm)
        j = int(np.argmin(d))
        if d[j] > 8.0:
            continue
        e_t.append((rows[j, 0] - r.cross_lead_tick) * mm_per_tick)
        s_t.append(rows[j, 2] * mm_per_tick)
        e_x.append(rows[j, 3] - r.x_cross_mm)
        s_x.append(rows[j, 4])
    if not e_t:
        return {"n": 0}
    at, ax = np.abs(e_t), np.abs(e_x)
    zt, zx = at / np.asarray(s_t), ax / np.asarray(s_x)

    def pct(a: np.ndarray) -> list[float]:
        return [round(float(v), 3) for v in np.percentile(a, [50, 90, 99])]

    return {
        "n": len(e_t),
        "lead_err_mm_p50_p90_p99": pct(at),
        "lead_err_sigmas_p50_p90_p99": pct(zt),
        "lead_within_1_2_sigma": [round(float((zt <= 1).mean()), 3),
                                  round(float((zt <= 2).mean()), 3)],
        "x_err_mm_p50_p90_p99": pct(ax),
        "x_err_sigmas_p50_p90_p99": pct(zx),
        "x_within_1_2_sigma": [round(float((zx <= 1).mean()), 3),
                               round(float((zx <= 2).mean()), 3)],
        "sigma_edge_mm_p50": round(float(np.median(s_t)), 3),
        "sigma_x_mm_p50": round(float(np.median(s_x)), 3),
    }  # fmt: skip


class _SegmentHistory:
    """Per frame, each visible fragment's main segment (the line's segment
    holding most of its pixels at the segmentation's resolution), recorded
    from the ``"classes"`` stage's own segmentation (``--vision classes``)."""

    def __init__(self, stage: Any) -> None:
        self.frames: list[dict[int, int]] = []
        process = stage.process

        def recorded(frame: Any) -> Any:
            out = process(frame)
            seg = getattr(stage.inner, "last_segments", None)
            if seg is not None:
                self.frames.append(self._mains(stage.tap.truth(frame.frame_id), seg))
            return out

        stage.process = recorded

    @staticmethod
    def _mains(truth: Any, seg: Any) -> dict[int, int]:
        from bench._line_truth import _downsampled_truth

        lab = _downsampled_truth(truth, seg.labels.shape, seg.scale)
        mains: dict[int, int] = {}
        for fid in np.asarray(truth.fragment_id).tolist():
            s = seg.labels[lab == fid]
            s = s[s > 0]
            if s.size >= 2:
                v, c = np.unique(s, return_counts=True)
                mains[int(fid)] = int(v[c.argmax()])
        return mains

    def pair(self, a: int, b: int) -> tuple[int, int]:
        """(frames in which fragments a and b were one segment, frames both were seen)."""
        both = [m for m in self.frames if a in m and b in m]
        return sum(m[a] == m[b] for m in both), len(both)


def pair_kinds(rows: list[dict[str, Any]], hist: _SegmentHistory) -> dict[str, int]:
    """Each co-ejected non-target's ``one_segment`` frames with its target
    (``k/n``) and the counts by kind: ``never`` one segment, ``sometimes``,
    ``always``, or ``no_pair`` (no target, or never seen with it)."""
    kinds: collections.Counter[str] = collections.Counter()
    for r in rows:
        t = r.get("target_fragment")
        if t is None or t < 0 or t == r["fragment"]:
            kinds["no_pair"] += 1
            continue
        one, both = hist.pair(int(r["fragment"]), int(t))
        r["one_segment"] = f"{one}/{both}"
        if both == 0:
            kind = "no_pair"
        else:
            kind = "never" if one == 0 else "always" if one == both else "sometimes"
        kinds[kind] += 1
    return {k: kinds.get(k, 0) for k in ("never", "sometimes", "always", "no_pair")}


class _ControlClock:
    """Thread CPU time of each ``Controller.update`` (the loop calls it by
    attribute, so a wrapper on the instance sees every frame)."""

    def __init__(self, controller: Any) -> None:
        import time

        self.ms: list[float] = []
        update = controller.update

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.thread_time()
            out = update(*args, **kwargs)
            self.ms.append((time.thread_time() - t0) * 1e3)
            return out

        controller.update = timed

    def figures(self, skip: int = 20) -> dict[str, float | None]:
        """Control CPU per frame p50 / p99 ms (the first ``skip`` frames,
        compilation and warm-up, left out)."""
        import numpy as np

        ms = np.asarray(self.ms[skip:])
        if not ms.size:
            return {"p50": None, "p99": None}
        return {"p50": round(float(np.percentile(ms, 50)), 3),
                "p99": round(float(np.percentile(ms, 99)), 3)}  # fmt: skip


def run(
    preset: str,
    frames: int,
    seed: int,
    prefer: str | None,
    aim_rule: str | None = None,
    vision: Mode = "segments",
) -> dict[str, Any]:
    """One stepped run with true classes and its diagnosis. ``aim_rule``:
    ``Controller.set_aim_rule`` (None: the controller's own); ``vision``:
    ``"segments"`` (true segments too) or ``"classes"`` (the line's own
    segmentation, ``bench._line_truth``)."""
    from bench._line_truth import TruthTap, TruthVision
    from bench.line import _config
    from sortline.runtime import SortingLine

    with tempfile.TemporaryDirectory() as tmp:
        line = SortingLine(
            _config(prefer, Path(tmp), None),
            stepped=True, plc_port=0, scenario=preset, seed=seed, records=False,
        )  # fmt: skip
        if line.parts.plant is None:
            raise SystemExit("line_coeject: the line has no embedded plant")
        plant = line.parts.plant.plant
        truth_tap = TruthTap(plant)
        tap = cd._Tap(line)
        if aim_rule is not None:
            line.parts.controller.set_aim_rule(aim_rule)
        clock = _ControlClock(line.parts.controller)
        line.start()
        n_cls = len(line.parts.class_names)
        stage = TruthVision(line.loop.vision, truth_tap, line.parts.geometry, n_cls, vision)
        hist = _SegmentHistory(stage) if vision == "classes" else None
        line.loop.vision = cast(Any, stage)
        try:
            line.run_frames(frames)
            report = line.report()
            targets = line.parts.recipe.targets()
            recs = [r for r in plant.fragments if r.bin is not None]
            geo, ej = plant.geometry, plant.scenario.ejection
            stats = line.parts.controller.stats()
            params = line.parts.controller.params
        finally:
            line.stop()
    res = cd._analyse(recs, plant.runs, tap, geo, ej, targets, params)
    is_t = [targets.get(r.class_name, "pass") == "eject" for r in recs]
    n_t = sum(is_t)
    n_te = sum(t and r.bin == "eject" for t, r in zip(is_t, recs, strict=True))
    n_e = sum(r.bin == "eject" for r in recs)
    motions = {r.fragment_id: r.motion for r in recs}
    out = res | summarise(res["rows"], motions, n_t, n_te, n_e)
    out["prediction"] = prediction_errors(recs, tap.decisions, geo.belt.mm_per_tick)
    if hist is not None:
        out["pairs_one_segment"] = pair_kinds(res["rows"], hist)
    return out | {
        "preset": Path(preset).stem, "seed": seed, "prefer": prefer or "recipe", "vision": vision,
        "aim_rule": aim_rule or "search", "control_cpu_ms": clock.figures(),
        "frames": frames, "purity": report["purity"], "recovery": report["recovery"],
        "co_ejection_rate": report["co_ejection_rate"], "controller": stats,
        # a loaded machine can starve the stepped loop's heartbeat: a run with
        # trips (valves de-energised) is not a measurement
        "plc_watchdog_trips": (report.get("plc") or {}).get("plc_counters", {}).get(
            "watchdog_trips"
        ),
    }  # fmt: skip


def table(results: list[dict[str, Any]]) -> str:
    """Causes per run as a Markdown table."""
    head = "| preset | seed | vision | prefer | aim | purity | recovery | non-targets ejected | "
    head += " | ".join(CAUSES)
    head += " | moving | targets by k | skip k>=2 P / R | one segment never/some/always"
    head += " | control CPU ms | watchdog trips |"
    out = [head, "|" + "---|" * (15 + len(CAUSES))]
    for r in results:
        c, s, cpu = r["causes_brief"], r["skip_k2"], r["control_cpu_ms"]
        ks = " ".join(f"{k}:{v}" for k, v in r["targets_by_k"].items())
        pairs = r.get("pairs_one_segment")
        one = "-" if pairs is None else f"{pairs['never']}/{pairs['sometimes']}/{pairs['always']}"
        cells = [
            r["preset"], r["seed"], r.get("vision", "segments"), r["prefer"], r["aim_rule"],
            f"{r['purity']:.3f}", f"{r['recovery']:.3f}", r["non_targets_ejected"],
            *(c[k] for k in CAUSES), r["moving_neighbours"], ks,
            f"{s['purity']:.3f} / {s['recovery']:.3f}", one, f"{cpu['p50']} / {cpu['p99']}",
            r.get("plc_watchdog_trips"),
        ]  # fmt: skip
        out.append("| " + " | ".join(str(v) for v in cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="sortline bench line_coeject",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--presets", default="crowded,shred", help="presets or scenario files")
    ap.add_argument("--seeds", default="3001", help="comma list of plant seeds")
    ap.add_argument("--frames", type=int, default=500)
    ap.add_argument("--prefer", default="", help="comma list of recipe prefer values")
    ap.add_argument(
        "--aim-rule",
        default="",
        help="comma list: search, search-least, search-cover, search-strict, cut (default: search)",
    )
    ap.add_argument(
        "--vision",
        default="segments",
        choices=("segments", "classes"),
        help="true segments and classes (actuation only), or the line's own "
        "segmentation with true classes",
    )
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    if args.frames <= 0:
        raise SystemExit(f"line_coeject: --frames must be positive, not {args.frames}")
    prefers: list[str | None] = [p for p in args.prefer.split(",") if p] or [None]
    aims: list[str | None] = [a for a in args.aim_rule.split(",") if a] or [None]
    for a in aims:
        if a is not None and a not in AIM_RULES:
            ap.error(f"--aim-rule: {a!r} is not one of {', '.join(AIM_RULES)}")
    results = []
    for preset in args.presets.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            for prefer, aim in ((p, a) for p in prefers for a in aims):
                res = run(preset, args.frames, seed, prefer, aim, args.vision)
                results.append(res)
                print(table([res]).splitlines()[-1], flush=True)
    print(table(results))
    if args.json:
        from bench._common import write_result

        note = (
            "co-ejected non-targets by cause, truth segments and classes (actuation only)"
            if args.vision == "segments"
            else "co-ejected non-targets by cause, the line's segmentation, true classes"
        )
        write_result("line_coeject", argv, note, results, Path(args.json))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
