"""``sortline plant up [--lines N] [--dir DIR] [--seconds S] [--no-restart]``
and ``sortline plant certificate --url URL --lot NAME --out FILE.html``."""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plant",
        help="a plant on this machine (broker, database, virtual lines); plant-wide records",
    )
    ps = p.add_subparsers(dest="plant_command", required=True, metavar="PLANT_COMMAND")
    up = ps.add_parser(
        "up",
        help="start mosquitto, PostgreSQL and N virtual lines on 127.0.0.1 until Ctrl-C",
        description="Start a plant on this machine: a mosquitto broker, a PostgreSQL server "
        "and N virtual lines, each its own `sortline run` process with its own virtual plant, "
        "recording into the database and publishing Sparkplug B to the broker. Prints what "
        "runs where; a line process that dies is restarted. Ctrl-C or SIGTERM stops it all.",
    )
    up.add_argument("--lines", type=int, default=3, help="virtual lines (default 3)")
    up.add_argument("--dir", type=Path, help="working folder (default: a temp folder, removed)")
    up.add_argument("--seconds", type=float, metavar="S", help="stop after S seconds")
    up.add_argument("--group", default="plant", help="Sparkplug group id (default plant)")
    up.add_argument("--no-restart", dest="restart", action="store_false",
                    help="do not restart a line process that dies")  # fmt: skip
    up.set_defaults(func=_up)
    cert = ps.add_parser(
        "certificate",
        help="one lot certificate across every line that ran the lot (HTML)",
        description="The certificate of a plant lot: every lot of that name in the records "
        "database, on whichever line, with counts per line and per fraction and each line's "
        "recipe, model and calibration versions.",
    )
    cert.add_argument(
        "--url", required=True, help="records database (postgresql://... or sqlite:///...)"
    )
    cert.add_argument("--lot", required=True, help="lot name (as opened on the lines)")
    cert.add_argument("--out", type=Path, required=True, help="the HTML file to write")
    cert.set_defaults(func=_certificate)


def _up(args: argparse.Namespace) -> int:
    from sortline.plantctl.plant import Plant, PlantOptions, missing_tools

    if args.seconds is not None and args.seconds <= 0:
        print("sortline plant up: error: --seconds must be > 0", file=sys.stderr)
        return 2
    if not 1 <= args.lines <= 50:
        print(f"sortline plant up: error: --lines {args.lines}: give 1 to 50", file=sys.stderr)
        return 2
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", args.group):
        print(f"sortline plant up: error: --group {args.group!r}: a Sparkplug group id "
              "(letters, digits, _ . -)", file=sys.stderr)  # fmt: skip
        return 2
    missing = missing_tools()
    if missing:
        print(f"sortline plant up: error: {missing}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def say(text: str) -> None:
        print(text, flush=True)

    opts = PlantOptions(lines=args.lines, folder=args.dir, restart=args.restart, group=args.group)
    plant = Plant(opts, say)
    code = 0
    try:
        say(f"plant: starting PostgreSQL, mosquitto and {args.lines} lines in {plant.folder}")
        plant.up(stop)
        if not stop.is_set():
            say(plant.table())
            say("plant: running (Ctrl-C stops)")
            code = plant.watch(stop, args.seconds)
    except RuntimeError as exc:
        print(f"sortline plant up: error: {exc}", file=sys.stderr)
        code = 1
    finally:
        say("plant: stopping")
        plant.down()
        say("plant: stopped")
    return code


def _certificate(args: argparse.Namespace) -> int:
    from sortline.plantctl.certificate import write_plant_certificate

    try:
        n = write_plant_certificate(args.url, args.lot, args.out)
    except (LookupError, RuntimeError, ValueError) as exc:
        print(f"sortline plant certificate: error: {exc}", file=sys.stderr)
        return 2
    print(f"sortline: certificate of lot {args.lot!r} ({n} decisions) written to {args.out}")
    return 0
