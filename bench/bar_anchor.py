"""Where the line reads each piece on the induction bar, against where it crossed.

``sortline bench bar_anchor [--preset default] [--seed N[,N...]] [--frames N]
[--json OUT]``

The line runs stepped with ``[sensor] enabled`` (the embedded plant's bar, UDP
rows, ``SensorFusion``), the default recipe. A bench instrument taps the
fusion: in every frame, for every confirmed, undecided track, the centre of
the footprint it integrates over the bar's rows (the placement the line used,
``sortline.sensor.anchor``) and, beside it, the centre the per-frame
back-projection alone would give (``control.kernels_fusion._back_project``
with the track's velocity of that frame: the rule before session 12); both
carried to the frame's encoder count as the belt carries a patch of belt.
The plant's truth gives where each fragment's centroid crossed the bar line
(between two frames, linearly) and which fragment a track stands for (the
nearest visible centroid within 12 mm, the most frequent over its frames,
at least 3). Per fragment, the distance between the truth crossing and each
placement at the track's last undecided frame (the one its decision used), by
the plant's motion kind: median and p90, mm. The plant's code is untouched.
"""

from __future__ import annotations

import argparse
import collections
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import write_result

KINDS = ("lying", "sliding", "rolling", "bouncing")


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="sortline bench bar_anchor", description=__doc__.split("\n")[0]
    )
    p.add_argument("--preset", default="default")
    p.add_argument("--seed", default="3003", help="seed(s), comma-separated")
    p.add_argument("--frames", type=int, default=1000)
    p.add_argument("--json", type=Path)
    return p.parse_args(argv)


class _Tap:
    """Wraps ``SensorFusion.apply``: truth crossings, tracks' placements."""

    def __init__(self, fusion: Any, plant: Any) -> None:
        self.fusion, self.plant = fusion, plant
        self.mpt = fusion.params.mm_per_tick
        self.prev: dict[int, tuple[float, float, float]] = {}
        self.cross: dict[int, tuple[float, float]] = {}  # fid -> x, tick at the bar line
        self.votes: dict[int, collections.Counter[int]] = collections.defaultdict(
            collections.Counter
        )
        self.last: dict[int, tuple[float, float, float, float, float]] = {}
        self._apply = fusion.apply
        fusion.apply = self.apply

    def _unwrap(self, t32: int) -> float:
        ref = int(self.plant.tick_unwrapped)
        return float(ref - ((ref - int(t32)) % (1 << 32)))

    def _truth_crossings(self) -> None:
        y_bar, now = self.fusion.params.y_bar_mm, float(self.plant.tick_unwrapped)
        for f in self.plant.footprints_near(y_bar - 400.0, y_bar + 800.0):
            fid, x, y = int(f[0]), f[5] + float(np.mean(f[7])), f[6] + float(np.mean(f[8]))
            p = self.prev.get(fid)
            if p is not None and p[1] < y_bar <= y and fid not in self.cross:
                w = (y_bar - p[1]) / (y - p[1])
                self.cross[fid] = (p[0] + w * (x - p[0]), p[2] + w * (now - p[2]))
            self.prev[fid] = (x, y, now)

    def apply(self, table: Any, tick: int, travel: float, *rest: Any) -> None:
        from control.kernels_fusion import _back_project
        from sortline.sensor.fusion import MAX_REL_SPEED

        self._truth_crossings()
        self._apply(table, tick, travel, *rest)
        n = int(table.n)
        if n == 0:
            return
        t_frame = self._unwrap(tick)
        truth = self.plant.visible_truth()
        tc = np.array(truth.centroid_mm, np.float64).reshape(-1, 2)
        tc[:, 1] -= (self._unwrap(truth.tick) - t_frame) * self.mpt  # to the frame's count
        x, h = table.X[:n], table.H[:n]
        ext = [np.ascontiguousarray(v, np.float64) for v in (
            x[:, 0] - h[:, 0], x[:, 0] + h[:, 0], x[:, 1] - h[:, 1] + travel,
            x[:, 1] + h[:, 1] + travel)]  # fmt: skip
        per = 1.0 / self.mpt
        x0, x1, y0, y1 = ext
        y_bar = self.fusion.params.y_bar_mm
        _back_project(x0, x1, y0, y1, x[:, 2] * per, x[:, 3] * per, y_bar, MAX_REL_SPEED)
        used = self.fusion.last_centres
        for i in range(n):
            if table.DEC[i] or not table.CONF[i]:
                continue
            tid, cy = int(table.TID[i]), float(x[i, 1] + travel)
            if tc.size:
                d = np.hypot(tc[:, 0] - x[i, 0], tc[:, 1] - cy)
                j = int(np.argmin(d))
                if d[j] < 12.0:
                    self.votes[tid][int(truth.fragment_id[j])] += 1
            self.last[tid] = (
                0.5 * float(ext[0][i] + ext[1][i]), 0.5 * float(ext[2][i] + ext[3][i]),
                float(used[i, 0]), float(used[i, 1]), t_frame,
            )  # fmt: skip

    def errors(self) -> list[dict[str, Any]]:
        y_bar = self.fusion.params.y_bar_mm
        motion = {r.fragment_id: r.motion for r in self.plant.fragments}
        out = []
        for tid, (bx, by, ux, uy, t) in self.last.items():
            if not self.votes[tid]:
                continue
            fid, nv = self.votes[tid].most_common(1)[0]
            if nv < 3 or fid not in self.cross:
                continue
            cx, ct = self.cross[fid]
            cy = y_bar + (t - ct) * self.mpt  # the crossing, carried to the frame's count
            out.append({
                "fragment": fid, "motion": motion.get(fid, "?"),
                "per_frame_mm": float(np.hypot(bx - cx, by - cy)),
                "used_mm": float(np.hypot(ux - cx, uy - cy)),
            })  # fmt: skip
        return out


def run(preset: str, seed: int, frames: int) -> list[dict[str, Any]]:
    from sortline.config import load_config
    from sortline.runtime import SortingLine

    cfg = load_config()
    cfg = cfg.model_copy(update={"sensor": cfg.sensor.model_copy(
        update={"enabled": True, "port": 0, "stall_ms": 2000.0})})  # fmt: skip
    with tempfile.TemporaryDirectory():
        line = SortingLine(cfg, stepped=True, plc_port=0, scenario=preset, seed=seed, records=False)
        link, runner = line.parts.sensor, line.parts.plant
        assert link is not None and runner is not None
        tap = _Tap(link.fusion, runner.plant)
        try:
            line.start()
            line.run_frames(frames)
        finally:
            line.stop()
    return tap.errors()


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in KINDS:
        rs = [r for r in rows if r["motion"] == kind]
        if not rs:
            continue
        a = np.array([r["per_frame_mm"] for r in rs])
        b = np.array([r["used_mm"] for r in rs])
        out[kind] = {
            "fragments": len(rs),
            "per_frame_median_mm": round(float(np.median(a)), 1),
            "per_frame_p90_mm": round(float(np.percentile(a, 90)), 1),
            "used_median_mm": round(float(np.median(b)), 1),
            "used_p90_mm": round(float(np.percentile(b, 90)), 1),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv if argv is not None else [])
    rows: list[dict[str, Any]] = []
    for seed in (int(s) for s in str(args.seed).split(",")):
        rs = run(args.preset, seed, args.frames)
        print({"seed": seed, **summarise(rs)})
        rows += [{"seed": seed, **r} for r in rs]
    summary = summarise(rows)
    for kind, s in summary.items():
        print(f"{kind:9s} {s}")
    note = (
        "footprint centre at the bar against the plant's crossing, at each track's last "
        "undecided frame: per-frame back-projection vs the placement the line used"
    )
    write_result("bar_anchor", argv, note, [{"summary": summary}, *rows], args.json)
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
