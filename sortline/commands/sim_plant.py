"""``sortline sim plant``: the virtual plant in its own process.

Frames go to a shared-memory frame ring (a controller reads it with
``[camera] source = "shm:NAME"``), the virtual PLC listens on Modbus TCP, and
the plant's ground-truth score is served on loopback HTTP
(``sim.plant.score_http``). SIGTERM or Ctrl-C stop it; the ring is removed.
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sim.plant.runner import PlantRunner
    from sim.plant.score_http import ScoreServer


def register(sim_sub: argparse._SubParsersAction) -> None:
    p = sim_sub.add_parser(
        "plant",
        help="the virtual plant in its own process: frame ring, virtual PLC, score endpoint",
    )
    p.add_argument("--config", default=None, help="line config TOML (default: embedded)")
    p.add_argument("--scenario", default=None, metavar="NAME|FILE",
                   help="scenario preset or TOML file (default: [sim] scenario)")  # fmt: skip
    p.add_argument("--seed", type=int, default=None, help="random seed (default: [sim] seed)")
    p.add_argument("--ring", default=None, metavar="NAME",
                   help='frame ring in /dev/shm, or a path (default: the "shm:NAME" of '
                        '[camera] source, else "sortline-<line name>")')  # fmt: skip
    p.add_argument("--plc-host", default="127.0.0.1", metavar="H",
                   help="address the virtual PLC listens on")  # fmt: skip
    p.add_argument("--plc-port", type=int, default=None, metavar="N",
                   help="Modbus TCP port (default: [plc] port; 0: a free port)")  # fmt: skip
    p.add_argument("--score-port", type=int, default=0, metavar="N",
                   help="score endpoint port on 127.0.0.1 (default 0: a free port)")  # fmt: skip
    p.add_argument("--stepped", action="store_true",
                   help="one frame per request of the ring reader (repeatable runs)")  # fmt: skip
    p.add_argument("--keep-fragments", type=int, default=None, metavar="N",
                   help="fragments whose ground truth the plant keeps for scoring (default "
                        "200,000; memory grows with it, then stays)")  # fmt: skip
    p.add_argument("--sensor-to", default=None, metavar="HOST:PORT",
                   help="put the induction bar of [sensor] on the belt and stream its rows "
                        "over UDP to HOST:PORT (the line's [sensor] host and port)")  # fmt: skip
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="stop after S seconds (default: until Ctrl-C or SIGTERM)")  # fmt: skip
    p.set_defaults(func=_run)


def _fail(message: str) -> int:
    print(f"sortline sim plant: error: {message}", file=sys.stderr)
    return 2


def default_ring(source: str, line_name: str) -> str:
    """The ring a line's controller reads: its ``shm:NAME`` source, else
    ``sortline-<line name>`` (characters a ring name cannot hold become '-')."""
    if source.startswith("shm:"):
        return source.removeprefix("shm:")
    return "sortline-" + re.sub(r"[^A-Za-z0-9_.-]", "-", line_name)


def _run(args: argparse.Namespace) -> int:
    from core.errors import InputFileError
    from core.frame_ring import FrameRingError, ring_path
    from sim.plant.runner import PlantRunner
    from sim.plant.scenario import load_scenario
    from sim.plant.score_http import ScoreServer
    from sortline.config import load_config

    logging.getLogger("pymodbus").setLevel(logging.ERROR)  # our own one-line errors
    try:
        cfg = load_config(args.config)
        scenario = load_scenario(args.scenario or cfg.sim.scenario)
    except InputFileError as exc:
        return _fail(str(exc))
    plc_port = cfg.plc.port if args.plc_port is None else args.plc_port
    for flag, port in (("--plc-port", plc_port), ("--score-port", args.score_port)):
        if not 0 <= port <= 65535:
            return _fail(f"{flag} {port} outside 0..65535")
    if args.seed is not None and args.seed < 0:
        return _fail(f"--seed {args.seed} is negative")
    if args.duration is not None and args.duration < 0:
        return _fail(f"--duration {args.duration} is negative")
    if args.keep_fragments is not None and args.keep_fragments < 1:
        return _fail(f"--keep-fragments {args.keep_fragments} must be >= 1")
    sensor_to = None
    if args.sensor_to is not None:
        host, _, port_text = args.sensor_to.rpartition(":")
        if not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            return _fail(f"--sensor-to {args.sensor_to!r}: expected HOST:PORT, port 1..65535")
        sensor_to = (host, int(port_text))
    ring = args.ring or default_ring(cfg.camera.source, cfg.line.name)
    try:
        ring_path(ring)
        runner = PlantRunner(
            cfg.geometry, scenario,
            seed=cfg.sim.seed if args.seed is None else args.seed,
            n_valves=cfg.valves.n_valves, watchdog_ms=cfg.plc.watchdog_ms,
            ring_name=ring, timebase=cfg.camera.timebase, fps=cfg.camera.fps,
            plc_host=args.plc_host, plc_port=plc_port, device_id=cfg.plc.device_id,
            stepped=args.stepped,
        )  # fmt: skip
        if args.keep_fragments is not None:
            runner.plant.keep_fragments = args.keep_fragments
        if sensor_to is not None:
            from sortline.sensor.wiring import add_plant_bar

            add_plant_bar(cfg, runner, sensor_to)
        runner.start()
    except (FrameRingError, ValueError, OSError) as exc:
        return _fail(str(exc))
    try:
        score = ScoreServer(
            runner.score, runner.health, "127.0.0.1", args.score_port, estop=runner.plc.set_estop
        )
    except OSError as exc:
        runner.stop()
        return _fail(f"score endpoint on 127.0.0.1:{args.score_port}: {exc.strerror or exc}")
    score.start()
    return _serve(args, runner, score, cfg.camera.timebase)


def _serve(args: argparse.Namespace, runner: PlantRunner, score: ScoreServer, timebase: str) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    mode = "stepped" if args.stepped else "paced"
    print(
        f"virtual plant: ring {runner.ring_name}, PLC {runner.plc_host}:{runner.plc_port}, "
        f"score {score.url}/score, timebase {timebase}, {mode}; Ctrl-C stops",
        flush=True,
    )
    end = None if args.duration is None else time.monotonic() + args.duration
    code = 0
    try:
        while not stop.is_set():
            if runner.error is not None:
                print(f"sortline sim plant: error: {runner.error}", file=sys.stderr)
                code = 1
                break
            left = 0.2 if end is None else min(0.2, end - time.monotonic())
            if left <= 0:
                break
            stop.wait(left)
    finally:
        score.stop()
        runner.stop()
        for s, handler in old.items():
            signal.signal(s, handler)
    h = runner.health()
    print(
        f"virtual plant stopped: {h['frames']} frames, tick {h['tick']}, "
        f"trigger seq {h['trigger']['seq']}, skipped {h['skipped_s']:.2f} s",
        flush=True,
    )
    return code
