"""``sortline sim plc``: the virtual PLC alone on Modbus TCP, belt running."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time


def register(sim_sub: argparse._SubParsersAction) -> None:
    p = sim_sub.add_parser(
        "plc",
        help="the virtual PLC alone (Modbus TCP, register map in plc/REGISTERS.md)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=None, help="TCP port (default: [plc] port)")
    p.add_argument("--speed", type=float, default=None, metavar="M_S",
                   help="belt speed in m/s (default: the line's)")  # fmt: skip
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="stop after S seconds (default: until Ctrl-C)")  # fmt: skip
    p.add_argument("--config", default=None, help="line config TOML (default: embedded)")
    p.set_defaults(func=_run)


def _fail(message: str) -> int:
    print(f"sortline sim plc: error: {message}", file=sys.stderr)
    return 2


def _run(args: argparse.Namespace) -> int:
    from sim.vplc.core import PlcCore
    from sim.vplc.server import BeltDriver, VirtualPlcServer
    from sortline.config import load_config

    logging.getLogger("pymodbus").setLevel(logging.ERROR)  # our own one-line errors
    cfg = load_config(args.config)
    port = cfg.plc.port if args.port is None else args.port
    if not 0 <= port <= 65535:
        return _fail(f"--port {port} outside 0..65535")
    speed_mm_s = cfg.belt.speed_mm_s if args.speed is None else args.speed * 1000.0
    if not 0.0 <= speed_mm_s <= 65535.0:
        return _fail(f"--speed {speed_mm_s / 1000.0} m/s outside 0..65.5")
    if args.duration is not None and args.duration < 0:
        return _fail(f"--duration {args.duration} is negative")
    core = PlcCore(cfg.valves.n_valves, watchdog_ms=cfg.plc.watchdog_ms, clock=time.monotonic)
    server = VirtualPlcServer(core, host=args.host, port=port, device_id=cfg.plc.device_id)
    try:
        server.start()
    except OSError as exc:
        return _fail(str(exc))
    belt = BeltDriver(core, speed_mm_s, cfg.belt.mm_per_tick)
    belt.start()
    print(
        f"virtual PLC: Modbus TCP {args.host}:{server.port} device {cfg.plc.device_id}, "
        f"{cfg.valves.n_valves} valves, belt {speed_mm_s / 1000.0:g} m/s "
        f"({cfg.belt.mm_per_tick:g} mm/tick); Ctrl-C stops",
        flush=True,
    )
    try:
        threading.Event().wait(args.duration)  # None: until Ctrl-C
    except KeyboardInterrupt:
        pass
    finally:
        belt.stop()
        server.stop()
    c = core.counters
    print(
        f"virtual PLC stopped: executed {c['executed']}, late {c['late']}, "
        f"malformed {c['malformed']}, cut {c['cut']}, watchdog trips {c['watchdog_trips']}",
        flush=True,
    )
    return 0
