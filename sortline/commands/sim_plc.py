"""``sortline sim plc``: the virtual PLC alone on Modbus TCP, belt running."""

from __future__ import annotations

import argparse
import ipaddress
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
    p.add_argument("--panel-port", type=int, default=None, metavar="N",
                   help="serve GET /health and POST /estop {\"pressed\": bool} (the hardwired "
                   "E-stop) on 127.0.0.1:N (0 = a free port; default: no panel)")  # fmt: skip
    p.add_argument("--allow", default=None, metavar="ADDR,...",
                   help="client addresses admitted (e.g. 127.0.0.1,10.0.0.5); others are "
                   "closed at once and counted (default: any)")  # fmt: skip
    p.add_argument("--tls-ca", default=None, metavar="PEM",
                   help="Modbus/TCP Security: serve TLS and demand a client certificate "
                   "signed by this CA (with --tls-cert, --tls-key; port 802 by "
                   "convention)")  # fmt: skip
    p.add_argument("--tls-cert", default=None, metavar="PEM", help="the PLC's certificate")
    p.add_argument("--tls-key", default=None, metavar="PEM", help="the PLC's private key")
    p.add_argument("--inject-port", type=int, default=None, metavar="N",
                   help="fault injection for tests on 127.0.0.1:N (0 = a free port): POST "
                   "/encoder {\"freeze\": bool} or {\"jump_ticks\": N}, POST /belt "
                   "{\"speed_m_s\": S} (sim/vplc/inject.py; default: none)")  # fmt: skip
    p.set_defaults(func=_run)


# the PLC's encoder supervision: a belt slower than 1 tick per 0.1 s reads as stalled
ENCODER_STALL_S = 0.1


def _fail(message: str) -> int:
    print(f"sortline sim plc: error: {message}", file=sys.stderr)
    return 2


def _run(args: argparse.Namespace) -> int:
    from plc.bridge_config import TlsFiles
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
    core = PlcCore(
        cfg.valves.n_valves, watchdog_ms=cfg.plc.watchdog_ms, clock=time.monotonic,
        encoder_stall_s=ENCODER_STALL_S,
    )  # fmt: skip
    tls_args = (args.tls_ca, args.tls_cert, args.tls_key)
    if any(tls_args) and not all(tls_args):
        return _fail("TLS needs all of --tls-ca, --tls-cert and --tls-key")
    allow = None
    if args.allow is not None:
        allow = [a.strip() for a in args.allow.split(",") if a.strip()]
        try:
            for a in allow:
                ipaddress.ip_address(a)
        except ValueError as exc:
            return _fail(f"--allow: {exc}")
    try:
        tls = TlsFiles(*tls_args) if all(tls_args) else None
        server = VirtualPlcServer(
            core, host=args.host, port=port, device_id=cfg.plc.device_id, allow=allow, tls=tls
        )
    except ValueError as exc:
        return _fail(str(exc))
    try:
        server.start()
    except OSError as exc:
        return _fail(str(exc))
    belt = BeltDriver(core, speed_mm_s, cfg.belt.mm_per_tick)
    belt.start()
    panel = None
    if args.panel_port is not None:
        from plc import regmap as rm
        from sim.plant.score_http import ScoreServer

        def health() -> dict[str, object]:
            w = core.read_input(0, rm.IR_STATUS_WORDS)
            assert isinstance(w, list)
            return {
                "state": rm.PackMLState(w[rm.IR_STATE]).name,
                "estop": bool(w[rm.IR_INPUTS] & rm.InputBit.ESTOP),
                "encoder_count": rm.unpack_u32(w[rm.IR_ENCODER], w[rm.IR_ENCODER + 1]),
                "faults": w[rm.IR_FAULTS],
            }

        try:
            panel = ScoreServer(None, health, "127.0.0.1", args.panel_port, estop=core.set_estop)
        except OSError as exc:
            belt.stop()
            server.stop()
            return _fail(f"--panel-port {args.panel_port}: {exc}")
        panel.start()
    inject = None
    if args.inject_port is not None:
        from plc import regmap as rmi
        from sim.vplc.inject import InjectServer

        def plc_view() -> dict[str, object]:
            w = core.read_input(0, rmi.IR_STATUS_WORDS)
            assert isinstance(w, list)
            return {
                "state": rmi.PackMLState(w[rmi.IR_STATE]).name,
                "encoder_count": rmi.unpack_u32(w[rmi.IR_ENCODER], w[rmi.IR_ENCODER + 1]),
                "encoder_stalls": core.counters["encoder_stalls"],
            }

        try:
            inject = InjectServer(belt, plc_view, "127.0.0.1", args.inject_port)
        except OSError as exc:
            if panel is not None:
                panel.stop()
            belt.stop()
            server.stop()
            return _fail(f"--inject-port {args.inject_port}: {exc}")
        inject.start()
    print(
        f"virtual PLC: Modbus {'TLS' if tls else 'TCP'} {args.host}:{server.port} "
        f"device {cfg.plc.device_id}, "
        f"{cfg.valves.n_valves} valves, belt {speed_mm_s / 1000.0:g} m/s "
        f"({cfg.belt.mm_per_tick:g} mm/tick)"
        + (f", panel {panel.url}" if panel is not None else "")
        + (f", inject {inject.url}" if inject is not None else "")
        + "; Ctrl-C stops",
        flush=True,
    )
    try:
        threading.Event().wait(args.duration)  # None: until Ctrl-C
    except KeyboardInterrupt:
        pass
    finally:
        if inject is not None:
            inject.stop()
        if panel is not None:
            panel.stop()
        belt.stop()
        server.stop()
    c = core.counters
    print(
        f"virtual PLC stopped: executed {c['executed']}, late {c['late']}, "
        f"malformed {c['malformed']}, cut {c['cut']}, watchdog trips {c['watchdog_trips']}",
        flush=True,
    )
    return 0
