"""Production records at line rate: every decision recorded, the writer never behind.

``sortline bench records [--rate FRAG_S] [--fps N] [--seconds S] [--live N]
[--url postgresql://...] [--json OUT] [--quick]``

Feeds ``RecordsWriter`` (the records thread of a line, SQLite WAL on this
machine's disk) the cycles a line deciding ``--rate`` fragments/s at ``--fps``
frames/s hands its records listener: each cycle's live tracks (``--live``
per frame, the newly decided ones among them, the decided ones still in
view as the controller keeps them), with a pulse for every fragment of the
eject fraction (copper, brass, battery in the default recipe: ~30 %),
class evidence from 3 to 8 views. Cycles are offered on a paced thread at
the frame period, as the real-time loop would, and ``offer`` is timed there.

Reports: decisions offered and committed (target: all), rows/s sustained,
commit latency (median, p99: one batched transaction), the writer's lag
(age of the oldest row at its commit; target: max < 1 s), the real-time
thread's cost of ``offer`` (median, p99, max), and a second, unpaced run
(cycles offered as fast as possible) for the writer's ceiling. ``--url``
writes to that database instead of a temporary SQLite file (each run as its
own line name, so runs never collide).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import write_result
from control.recipe import Recipe, load_recipe
from core.classes import DEFAULT_CLASSES
from core.types import Pulses, Tracks, TrackState
from sortline.records import Context, Offer, RecordsWriter
from sortline.records.db import open_db

TARGET_LAG_S = 1.0
CTX = Context("default", 1, "builtin:sortline-cnn", "bench", None)


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sortline bench records", description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=float, default=1000.0, help="fragments decided per second")
    p.add_argument("--fps", type=float, default=50.0, help="frames (cycles) per second")
    p.add_argument("--seconds", type=float, default=20.0, help="paced run length")
    p.add_argument("--live", type=int, default=120, help="live tracks per frame")
    p.add_argument("--url", default="", help="records database (default: temp SQLite)")
    p.add_argument("--json", type=Path, default=None, help="write the result here")
    p.add_argument("--quick", action="store_true", help="3 s paced, small unpaced run (tests)")
    return p.parse_args(argv)


def _cycles(
    rate: float, fps: float, n: int, live: int, seed: int = 1
) -> list[tuple[Tracks, Pulses]]:
    """``n`` cycles of a stream deciding ``rate`` fragments/s; track ids ascend."""
    rng = np.random.default_rng(seed)
    recipe = load_recipe("builtin:default", DEFAULT_CLASSES)
    k = len(DEFAULT_CLASSES)
    per = rate / fps
    kept = 3  # cycles a decided track stays in view past its decision
    out: list[tuple[Tracks, Pulses]] = []
    next_id, carry = 1, 0.0
    decided: list[np.ndarray] = []
    for _ in range(n):
        carry += per
        m = int(carry)
        carry -= m
        new_ids = np.arange(next_id, next_id + m, dtype=np.int64)
        next_id += m
        decided = [*decided[-(kept - 1) :], new_ids] if kept > 1 else [new_ids]
        dec_ids = np.concatenate(decided)
        undecided = max(live - len(dec_ids), 0)
        ids = np.concatenate([dec_ids, np.arange(10**9 + next_id, 10**9 + next_id + undecided)])
        rows = len(ids)
        cls = rng.integers(0, k, rows).astype(np.int16)
        views = rng.integers(3, 9, rows).astype(np.int16)
        ev = rng.normal(-4.0, 1.0, (rows, k)).astype(np.float32) * views[:, None]
        ev[np.arange(rows), cls] = np.log(0.95) * views
        frac = recipe.class_fraction[cls].astype(np.int16)
        state = np.full(rows, int(TrackState.CONFIRMED), np.int8)
        state[: len(dec_ids)] = int(TrackState.DECIDED)
        tr = Tracks(
            tick=0, track_id=ids, state=state, centroid_mm=np.zeros((rows, 2)),
            velocity_mm_tick=np.zeros((rows, 2)), extent_mm=np.zeros((rows, 4)),
            class_evidence=ev, class_id=cls, class_prob=np.full(rows, 0.95, np.float32),
            n_views=views, cross_on_tick=np.zeros(rows, np.int64),
            cross_off_tick=np.zeros(rows, np.int64), cross_sigma_tick=np.ones(rows, np.float32),
            fraction=frac,
        )  # fmt: skip
        new_rows = np.arange(len(dec_ids) - m, len(dec_ids))
        ej = new_rows[frac[new_rows] >= 0]
        q = len(ej)
        pu = Pulses(
            actuator=np.zeros(q, np.int16), first_valve=np.full(q, 10, np.int16),
            last_valve=np.full(q, 12, np.int16), on_tick=np.full(q, 1000, np.uint32),
            off_tick=np.full(q, 1100, np.uint32), track_id=ids[ej], fraction=frac[ej],
        )  # fmt: skip
        out.append((tr, pu))
    return out


def _run(
    cycles: list[tuple[Tracks, Pulses]], recipe: Recipe, fps: float | None, folder: Path,
    url: str = "",
) -> dict[str, Any]:  # fmt: skip
    mode = "paced" if fps else "unpaced"
    path = folder / f"records-{mode}.sqlite"
    line = f"bench-{mode}-{uuid.uuid4().hex[:8]}"
    w = RecordsWriter(url or path, line, DEFAULT_CLASSES, queue_cycles=4096)
    offer_ns = np.zeros(len(cycles), np.int64)
    period = 0.0 if fps is None else 1.0 / fps
    t0 = time.perf_counter()
    for i, (tr, pu) in enumerate(cycles):
        if period:
            wait = t0 + i * period - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        o = Offer(time.time(), i, i * 100, tr, pu, recipe, CTX)
        a = time.perf_counter_ns()
        w.offer(o)
        offer_ns[i] = time.perf_counter_ns() - a
    fed_s = time.perf_counter() - t0
    ok = w.flush(120.0)
    done_s = time.perf_counter() - t0
    w.close()
    db = open_db(url or f"sqlite:///{path}")
    in_db, ej_db = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(ejected), 0) FROM decisions WHERE line = ?", (line,)
    ).fetchone()
    db.close()
    decided = len({int(t) for tr, _ in cycles for t in tr.track_id[tr.state == 3].tolist()})
    commit = np.array(w.commit_ms) if w.commit_ms else np.zeros(1)
    lag = np.array(w.lag_s) if w.lag_s else np.zeros(1)
    us = offer_ns / 1e3
    return {
        "mode": "paced" if fps else "unpaced",
        "cycles": len(cycles),
        "decisions_offered": decided,
        "decisions_in_db": int(in_db),
        "ejections_in_db": int(ej_db),
        "all_recorded": bool(ok and in_db == decided),
        "dropped": w.dropped,
        "store_failures": w.failed,
        "fed_s": round(fed_s, 3),
        "rows_per_s": round(in_db / done_s, 1),
        "commits": len(w.commit_ms),
        "commit_ms": {
            "p50": round(float(np.median(commit)), 3),
            "p99": round(float(np.percentile(commit, 99)), 3),
            "max": round(float(commit.max()), 3),
        },
        "lag_s": {
            "p50": round(float(np.median(lag)), 3),
            "p99": round(float(np.percentile(lag, 99)), 3),
            "max": round(float(lag.max()), 3),
        },
        "offer_us": {
            "p50": round(float(np.median(us)), 2),
            "p99": round(float(np.percentile(us, 99)), 2),
            "max": round(float(us.max()), 2),
        },
        "store": "postgresql" if url else "sqlite",
    }


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv or [])
    seconds = 3.0 if args.quick else args.seconds
    n = max(int(seconds * args.fps), 1)
    recipe = load_recipe("builtin:default", DEFAULT_CLASSES)
    cycles = _cycles(args.rate, args.fps, n, args.live)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-records-") as d:
        paced = _run(cycles, recipe, args.fps, Path(d), args.url)
        paced["target_met"] = paced["all_recorded"] and paced["lag_s"]["max"] < TARGET_LAG_S
        rows.append(paced)
        burst = cycles if not args.quick else cycles[: max(n // 3, 1)]
        rows.append(_run(burst, recipe, None, Path(d), args.url))
    note = (
        f"{args.rate:g} fragments/s decided at {args.fps:g} fps, {args.live} live tracks per "
        f"frame, {seconds:g} s paced then the same cycles unpaced; "
        f"{'PostgreSQL (--url)' if args.url else 'SQLite WAL in a temp folder'}, "
        "batch 200 ms / 500 rows (the defaults); lag = oldest row's age at its commit"
    )
    out = write_result("records", argv, note, rows, args.json)
    for r in rows:
        print(
            f"{r['mode']:8s} {r['decisions_in_db']}/{r['decisions_offered']} decisions, "
            f"{r['rows_per_s']:.0f} rows/s, commit p50 {r['commit_ms']['p50']} ms "
            f"p99 {r['commit_ms']['p99']} ms, lag max {r['lag_s']['max']} s, "
            f"offer p50 {r['offer_us']['p50']} us p99 {r['offer_us']['p99']} us"
        )
    return 0 if out["results"][0]["target_met"] else 1


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
