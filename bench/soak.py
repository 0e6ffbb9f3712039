"""Soak: the line for M minutes with the plant in its own process.

    sortline bench soak --minutes 30 [--json bench/results/soak.json]
                        [--png bench/results/soak.png] [--scenario crowded]

``sortline sim plant`` (paced, the ``crowded`` preset: frame ring + virtual
PLC) and ``sortline run`` on its ring (status API on loopback; records off
unless ``--records``), both real processes started here. Every
``--sample-s`` seconds the bench reads the line's ``/status`` and, from
``/proc``, the resident memory (VmRSS) and the open file descriptors of both
processes. Per minute: frames and fragments (objects seen) per second,
latency p99 (the line's window), deadline misses, frames dropped, RSS and
fds at the minute's end. After a warm-up (the first ``--warmup-s``), a
least-squares line through the samples of the second half of the rest gives
the RSS slope (MB/h) and the fd slope (fds/h) of each process (bounded
stores fill in the first half; the whole window's slopes are kept beside),
with a verdict: "bounded" when RSS grows less
than ``max(20 MB, 5 % of its mean)`` per hour and fds less than 1 per hour,
else "growing" (a leak to look at); a window under 10 minutes after the
warm-up is "inconclusive" unless RSS grew by 10 % or fds by 10 within it
(a fast leak); "too short" with fewer than 5 samples.
A PNG plots throughput, latency, RSS and fds against time.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import write_result
from bench._faults_procs import Line, Plant, free_port

RESULTS = Path(__file__).parent / "results"
MIN_JUDGE_MIN = 10.0  # a shorter window only shows a fast leak (10 % of RSS, 10 fds)


def proc_usage(pid: int) -> tuple[float, int] | None:
    """(VmRSS in MB, open fds) of ``pid`` from /proc; None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            rss_kb = next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:"))
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, StopIteration, ValueError):
        return None
    return rss_kb / 1024.0, fds


def slope_per_h(t_s: list[float], y: list[float]) -> float | None:
    """Least-squares slope of ``y`` against ``t_s``, per hour (None: < 3 points)."""
    if len(t_s) < 3 or max(t_s) - min(t_s) <= 0:
        return None
    a, _ = np.polyfit(np.asarray(t_s, dtype=np.float64), np.asarray(y, dtype=np.float64), 1)
    return float(a) * 3600.0


def verdict(t_s: list[float], rss: list[float], fds: list[float]) -> dict[str, Any]:
    """Slopes and the verdict for one process (see the module doc)."""
    if len(t_s) < 5:
        return {"rss_mb_per_h": None, "fds_per_h": None, "verdict": "too short"}
    rss_h, fds_h = slope_per_h(t_s, rss), slope_per_h(t_s, fds)
    assert rss_h is not None and fds_h is not None
    rss_limit = max(20.0, 0.05 * float(np.mean(rss)))
    bounded = rss_h < rss_limit and fds_h < 1.0
    window_min = (t_s[-1] - t_s[0]) / 60.0
    grew = rss[-1] - rss[0] > 0.1 * float(np.mean(rss)) or fds[-1] - fds[0] >= 10
    if bounded:
        word = "bounded"
    elif window_min < MIN_JUDGE_MIN and not grew:
        word = f"inconclusive: {window_min:.1f} min after warm-up (judged from {MIN_JUDGE_MIN} min)"
    else:
        word = "growing"
    return {
        "rss_mb_per_h": round(rss_h, 2),
        "fds_per_h": round(fds_h, 2),
        "rss_limit_mb_per_h": round(rss_limit, 1),
        "rss_mb_mean": round(float(np.mean(rss)), 1),
        "fds_last": int(fds[-1]),
        "window_min": round(window_min, 2),
        "verdict": word,
    }


def judged(t_s: list[float], rss: list[float], fds: list[float]) -> dict[str, Any]:
    """The verdict over the second half of the window after warm-up, with the
    whole window's slopes beside it. Bounded stores fill during the first
    minutes (the plant keeps the ground truth of its last 200,000 fragments:
    16 min at ``crowded``), which a slope over the whole window takes for
    growth; growth without bound goes on in the second half as well."""
    half = len(t_s) // 2
    out = verdict(t_s[half:], rss[half:], fds[half:])
    whole = verdict(t_s, rss, fds)
    out["whole_window"] = {k: whole.get(k) for k in ("rss_mb_per_h", "fds_per_h", "verdict")}
    return out


def _status_row(line: Line) -> dict[str, Any] | None:
    try:
        st = line.status()
    except RuntimeError:
        return None
    return {
        "frames": st["frames"],
        "frames_dropped": st["frames_dropped"],
        "objects_seen": int(st["controller"].get("objects_seen", 0)),
        "deadline_misses": st["deadline_misses"],
        "latency_p99_ms": st["latency_ms"]["p99"],
        "state": st["state"],
    }


def sample(line: Line, plant_pid: int, t0: float) -> dict[str, Any]:
    row: dict[str, Any] = {"t_s": round(time.monotonic() - t0, 2)}
    row.update(_status_row(line) or {})
    for name, pid in (("line", line.proc.pid), ("plant", plant_pid)):
        use = proc_usage(pid)
        row[f"{name}_rss_mb"] = None if use is None else round(use[0], 2)
        row[f"{name}_fds"] = None if use is None else use[1]
    return row


def per_minute(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per whole minute: rates and deltas from the samples at its ends."""
    rows = []
    by_min: dict[int, dict[str, Any]] = {}
    for s in samples:
        by_min[math.ceil(s["t_s"] / 60.0)] = s  # the last sample of minute m (t <= 60 m)
    prev = samples[0]
    for m in sorted(k for k in by_min if k >= 1):
        end = by_min[m]
        dt = end["t_s"] - prev["t_s"]
        if dt <= 0 or "frames" not in end or "frames" not in prev:
            continue
        rows.append({
            "minute": m,
            "frames_per_s": round((end["frames"] - prev["frames"]) / dt, 1),
            "fragments_per_s": round((end["objects_seen"] - prev["objects_seen"]) / dt, 1),
            "latency_p99_ms": end["latency_p99_ms"],
            "deadline_misses": end["deadline_misses"] - prev["deadline_misses"],
            "frames_dropped": end["frames_dropped"] - prev["frames_dropped"],
            "state": end["state"],
            **{k: end[k] for k in ("line_rss_mb", "line_fds", "plant_rss_mb", "plant_fds")},
        })  # fmt: skip
        prev = end
    return rows


def plot(samples: list[dict[str, Any]], rows: list[dict[str, Any]], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t_s"] / 60.0 for s in samples]
    fig, ax = plt.subplots(4, 1, figsize=(8, 10), sharex=True)
    mins = [r["minute"] for r in rows]
    ax[0].plot(mins, [r["frames_per_s"] for r in rows], "o-", label="frames/s")
    ax[0].plot(mins, [r["fragments_per_s"] for r in rows], "s-", label="fragments/s")
    ax[0].set_ylabel("per second")
    ax[1].plot(t, [s.get("latency_p99_ms") for s in samples], label="latency p99")
    ax[1].set_ylabel("ms")
    for name in ("line", "plant"):
        ax[2].plot(t, [s[f"{name}_rss_mb"] for s in samples], label=f"{name} RSS")
        ax[3].plot(t, [s[f"{name}_fds"] for s in samples], label=f"{name} fds")
    ax[2].set_ylabel("MB")
    ax[3].set_ylabel("open fds")
    ax[3].set_xlabel("minutes")
    for a in ax:
        a.legend(loc="best", fontsize=8)
        a.grid(alpha=0.3)
    fig.suptitle("sortline soak: line + plant (crowded)")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90)
    plt.close(fig)


def run(
    minutes: float,
    sample_s: float,
    warmup_s: float,
    scenario: str,
    records: bool,
    tmp: Path,
    plant_keep: int | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    keep = () if plant_keep is None else ("--keep-fragments", str(plant_keep))
    plant = Plant(f"sortline-soak-{os.getpid()}", free_port(), free_port(), tmp,
                  extra=("--scenario", scenario, *keep))  # fmt: skip
    plant.start()
    assert plant.proc is not None
    rec = f'[records]\nenabled = true\ndir = "{tmp / "records"}"\n' if records else (
        "[records]\nenabled = false\n"
    )  # fmt: skip
    try:
        line = Line(
            f'[camera]\nsource = "shm:{plant.ring}"\n[plc]\nport = {plant.plc_port}\n'
            f'[sim]\nenabled = false\nscore_url = "{plant.panel}"\n{rec}',
            tmp,
        )
    except Exception:
        plant.proc.stop()
        raise
    samples: list[dict[str, Any]] = []
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < minutes * 60.0:
            samples.append(sample(line, plant.proc.pid, t0))
            time.sleep(max(0.0, t0 + len(samples) * sample_s - time.monotonic()))
        samples.append(sample(line, plant.proc.pid, t0))
        alive = {"line": line.proc.alive(), "plant": plant.proc.alive()}
    finally:
        line.proc.stop()
        plant.proc.stop()
    late = [s for s in samples if s["t_s"] >= warmup_s and s["line_rss_mb"] is not None]
    t = [s["t_s"] for s in late]
    summary: dict[str, Any] = {
        name: judged(t, [s[f"{name}_rss_mb"] for s in late], [s[f"{name}_fds"] for s in late])
        for name in ("line", "plant")
    }
    summary["alive_at_end"] = alive
    summary["samples"] = len(samples)
    return samples, summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sortline bench soak", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--sample-s", type=float, default=10.0, help="sampling period (s)")
    ap.add_argument("--warmup-s", type=float, default=60.0, help="left out of the slopes (s)")
    ap.add_argument("--scenario", default="crowded", help="plant preset (default: crowded)")
    ap.add_argument("--records", action="store_true", help="keep production records (sqlite)")
    ap.add_argument(
        "--plant-keep-fragments",
        type=int,
        default=None,
        metavar="N",
        help="the plant's scoring history (default 200,000 fragments: full after 16 min at "
        "crowded); smaller, its memory reaches its bound within the run",
    )
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--png", type=Path, default=None, help="the plot (default: beside --json)")
    args = ap.parse_args(argv)
    for name in ("minutes", "sample_s"):
        if not getattr(args, name) > 0:
            ap.error(f"--{name.replace('_', '-')} must be > 0")
    with tempfile.TemporaryDirectory(prefix="sortline-soak-") as d:
        samples, summary = run(args.minutes, args.sample_s, args.warmup_s, args.scenario,
                               args.records, Path(d), args.plant_keep_fragments)  # fmt: skip
    rows = per_minute(samples)
    png = args.png or (args.json.with_suffix(".png") if args.json else None)
    if png is not None:
        plot(samples, rows, png)
    for r in rows:
        print(r, flush=True)
    print({k: v for k, v in summary.items()}, flush=True)
    note = (
        f"sortline sim plant --scenario {args.scenario} (paced) + sortline run on its frame ring, "
        f"records {'on' if args.records else 'off'}; /status and /proc sampled every "
        f"{args.sample_s:g} s; slopes by least squares over the second half of the run after "
        f"{args.warmup_s:g} s of warm-up (the whole window's beside); plant history "
        f"{args.plant_keep_fragments or 200_000} fragments"
    )
    out = write_result("soak", argv, note, rows, args.json)
    if args.json is not None:
        out["summary"] = summary
        out["samples"] = samples
        out["png"] = None if png is None else str(png)
        from core.files import atomic_write_json

        atomic_write_json(args.json, out)
    ok = all(summary["alive_at_end"].values()) and all(
        summary[n]["verdict"] != "growing" for n in ("line", "plant")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
