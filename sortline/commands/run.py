"""``sortline run [--config line.toml] [--duration S] [--report out.json]``"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sortline.auth import KeyBook
    from sortline.config import LineConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run the line (default: the embedded virtual plant) with the status API",
        description="Run the line. With no --config, runs the embedded default: the virtual "
        "plant (rendered camera + virtual PLC on loopback) with the status API and dashboard "
        "on http://127.0.0.1:8000, until Ctrl-C.",
    )
    p.add_argument("--config", help="line config TOML (overlay on the embedded default)")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    p.add_argument("--report", metavar="PATH", help="write the JSON run summary here")
    p.add_argument("--scenario", help="virtual plant scenario preset or TOML file")
    p.add_argument("--seed", type=int, help="virtual plant seed")
    p.add_argument("--port", type=int, help="status API port (default from config)")
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.duration is not None and args.duration <= 0:
        print("sortline run: error: --duration must be > 0 seconds", file=sys.stderr)
        return 2
    from core.files import atomic_write_json
    from sortline.api_proc import ApiProcess
    from sortline.config import load_config
    from sortline.runtime import SortingLine

    cfg = load_config(args.config)
    if not cfg.api.keys and not cfg.api.loopback_only:
        print(
            f"sortline run: error: api.keys: no API keys configured and the API listens on "
            f"{cfg.api.host} (beyond 127.0.0.1): an open control API is not allowed; add keys "
            f"with `sortline keys new --name NAME --role ROLE`",
            file=sys.stderr,
        )
        return 2
    line = SortingLine(cfg, scenario=args.scenario, seed=args.seed)
    keys = _key_book(cfg, demo=args.config is None)
    audit = line.audit  # shared with the MQTT and OPC UA command paths
    port = cfg.api.port if args.port is None else args.port
    api = ApiProcess(line, keys, audit, cfg.api.host, port, nice=cfg.api.nice)
    line.alarms.sources.append(api.conditions)  # api.process: the API's process restarted
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(
        "sortline: preparing the vision and control kernels "
        "(about 30 s on the first start after an install, then about 1 s)",
        flush=True,
    )
    try:
        line.start()
    except PermissionError as exc:  # [control] rt_priority the machine does not grant
        line.stop()
        print(f"sortline run: error: {exc}", file=sys.stderr)
        return 2
    if line.warm_up_s is not None:
        print(f"sortline: kernels ready in {line.warm_up_s:.1f} s", flush=True)
    try:
        try:
            api.start()
        except RuntimeError as exc:
            print(f"sortline run: error: {exc} ({cfg.api.host}:{port})", file=sys.stderr)
            return 2
        print(
            f"sortline: line {cfg.line.name!r} running: camera {line.parts.camera_source}, "
            f"time base {cfg.camera.timebase}, PLC {line.parts.bridge.config.host}:"
            f"{line.parts.bridge.config.port}; status on "
            f"http://{cfg.api.host}:{api.port}/status  (Ctrl-C stops)",
            flush=True,
        )
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            stop.wait(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        api.stop()
        report = line.report()
        line.stop()
    if args.report:
        atomic_write_json(args.report, report)
        print(f"sortline: report written to {args.report}")
    print(_summary(report))
    return 0


def _key_book(cfg: LineConfig, demo: bool) -> KeyBook:
    """The config's keys; none configured (the API on loopback, checked before):
    generated operator and engineer keys for this run, printed once."""
    from sortline.auth import KeyBook

    if cfg.api.keys:
        return KeyBook(cfg.api.keys)
    if not demo:
        print(
            "sortline run: warning: api.keys: no API keys configured; generated keys for this "
            "run only (API on loopback)",
            file=sys.stderr,
        )
    book, generated = KeyBook.generated(("operator", "engineer"))
    for role, key in generated.items():
        print(f"sortline: {role} API key for this run (named {role!r}): {key}", flush=True)
    return book


def _summary(r: dict) -> str:
    def f(v: object) -> str:
        return "n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))

    state = r["state"] + (f" ({'; '.join(r['causes'])})" if r["causes"] else "")
    return (
        f"state at the end: {state}\n"
        f"frames {r['frames']} (dropped {r['frames_dropped']}), objects seen "
        f"{r['objects_seen']}, targeted {r['objects_targeted']}, ejected "
        f"{f(r['objects_ejected'])}, purity {f(r['purity'])}, recovery {f(r['recovery'])}, "
        f"deadline misses {r['deadline_misses']}, latency p50/p99 "
        f"{f(r['latency_ms']['p50'])}/{f(r['latency_ms']['p99'])} ms; "
        f"pulses acknowledged by the PLC {r['plc']['pulses_acked']}; time base "
        f"{r['timebase']['mode']} (error p99 {f(r['timebase']['error_ticks_p99'])} ticks, "
        f"mismatches {r['timebase']['mismatches']})"
    )
