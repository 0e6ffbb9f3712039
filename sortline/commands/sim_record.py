"""``sortline sim record --out belt.mp4``: the virtual plant's camera to a
video, with a JSON ground truth beside it (no valve ever fires)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sim_sub: argparse._SubParsersAction) -> None:
    p = sim_sub.add_parser("record", help="record the virtual camera to a video + JSON truth")
    p.add_argument("--out", required=True, type=Path, help="video file (.mp4, mp4v)")
    p.add_argument("--seconds", type=float, default=10.0, metavar="S", help="sim seconds")
    p.add_argument("--speed", type=float, default=None, metavar="M_S", help="belt speed, m/s")
    p.add_argument("--rate", type=float, default=None, metavar="OBJ_S", help="fragments per s")
    p.add_argument("--scenario", default=None, help="preset name or TOML (default: config's)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: config's)")
    p.add_argument("--config", default=None, help="line config TOML (default: embedded)")
    p.set_defaults(func=_run)


def _fail(message: str) -> int:
    print(f"sortline sim record: error: {message}", file=sys.stderr)
    return 2


def _run(args: argparse.Namespace) -> int:
    from core.errors import model_from_data
    from sim.plant.plant import VirtualPlant
    from sim.plant.record import RecordError, record
    from sim.plant.scenario import Scenario, load_scenario
    from sim.vplc.core import PlcCore
    from sortline.config import load_config

    if not 0 < args.seconds <= 3600:
        return _fail(f"--seconds {args.seconds} outside (0, 3600]")
    if args.seed is not None and args.seed < 0:
        return _fail(f"--seed {args.seed} is negative")
    if args.out.suffix.lower() not in (".mp4", ".m4v", ".mov"):
        return _fail(f"--out {args.out}: use an .mp4 name (the video is mp4v)")
    cfg = load_config(args.config)
    scen = load_scenario(args.scenario or cfg.sim.scenario)
    data = scen.model_dump()
    if args.speed is not None:
        data["motion"]["speed_mm_s"] = args.speed * 1000.0
    if args.rate is not None:
        data["feed"]["rate_obj_s"] = args.rate
    scen = model_from_data(Scenario, data, "command line (--speed/--rate)")
    plc = PlcCore(n_valves=cfg.valves.n_valves, watchdog_ms=cfg.plc.watchdog_ms)
    seed = cfg.sim.seed if args.seed is None else args.seed
    plant = VirtualPlant(cfg.geometry, scen, plc, seed=seed)
    n_frames = max(1, round(args.seconds * cfg.camera.fps))
    try:
        doc = record(plant, args.out, n_frames)
    except (RecordError, OSError) as exc:
        return _fail(str(exc))
    print(
        f"wrote {args.out} ({n_frames} frames, {cfg.camera.width_px}x{cfg.camera.height_px} "
        f"@ {cfg.camera.fps:g} fps) and {args.out.with_suffix('.json')} "
        f"({len(doc['fragments'])} fragments)"
    )
    return 0
