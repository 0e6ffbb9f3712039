"""The bridge's configuration and the status snapshot it publishes.

Plain values only: ``plc/`` does not import ``sortline``; the integrator builds
a ``BridgeConfig`` from its ``[plc]`` section with ``from_line_config``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Literal

from plc import regmap as rm

__all__ = ["BridgeConfig", "PlcStatus"]


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """Modbus/TCP Security (TLS, mutual certificates; port 802 by convention):
    ``ca`` the PEM file of the CA that signs the peers' certificates, ``cert``
    and ``key`` this end's certificate and private key. Paths only: the key
    is read by ``ssl`` and never by us, so it cannot end up in a log."""

    ca: str
    cert: str
    key: str

    def check(self) -> None:
        """ValueError naming the first file that is not there."""
        for name in ("ca", "cert", "key"):
            path = getattr(self, name)
            if not os.path.isfile(os.path.expanduser(path)):
                raise ValueError(f"tls {name} file {path} not found")


@dataclasses.dataclass(frozen=True)
class BridgeConfig:
    """How to reach the PLC and how hard to try. Times in seconds unless named.

    deadline_lead_ms: valve open delay + safety margin; a pulse must be in the
    PLC this long before its on tick. mm_per_tick: encoder scale (converts the
    lead to ticks at the measured belt speed). watchdog_ms: written to the PLC
    on connect when set. extrapolate_encoder: False for stepped simulation,
    where the plant's encoder does not follow the wall clock (the deadline is
    then judged against the last count read). rt_priority: Linux SCHED_FIFO
    priority (1..99) for the bridge thread, for a line computer shared with
    other work (needs CAP_SYS_NICE; a failure is reported in ``last_error``).
    trigger_every_ticks: the camera trigger period written to HR 3 on every
    connect when set (0 turns the PLC's trigger off; None leaves it alone).
    ``mm_per_tick`` and ``deadline_lead_ms`` are the starting values;
    ``PlcBridge.set_line_params`` replaces them while running.
    """

    transport: Literal["tcp", "rtu"] = "tcp"
    host: str = "127.0.0.1"
    port: int = 5020
    device_id: int = rm.DEFAULT_DEVICE_ID
    serial_port: str | None = None
    baudrate: int = 115200
    timeout_s: float = 0.04
    retries: int = 1
    heartbeat_s: float = 0.05
    reconnect_max_s: float = 2.0
    deadline_lead_ms: float = 8.0
    mm_per_tick: float = 0.1
    watchdog_ms: float | None = None
    max_queue: int = 4096
    extrapolate_encoder: bool = True
    rt_priority: int | None = None
    trigger_every_ticks: int | None = None
    tls: TlsFiles | None = None

    def __post_init__(self) -> None:
        checks = (
            (self.transport in ("tcp", "rtu"), "transport must be 'tcp' or 'rtu'"),
            (self.transport != "rtu" or bool(self.serial_port), "rtu needs serial_port"),
            (self.transport == "tcp" or self.tls is None, "tls needs transport 'tcp'"),
            (0 <= self.port <= 65535, "port outside 0..65535"),
            (1 <= self.device_id <= 247, "device_id outside 1..247"),
            (self.timeout_s > 0 and self.heartbeat_s > 0, "timeout_s and heartbeat_s > 0"),
            (self.retries >= 0 and self.reconnect_max_s > 0, "retries >= 0, reconnect_max_s > 0"),
            (self.deadline_lead_ms >= 0 and self.mm_per_tick > 0, "lead >= 0, mm_per_tick > 0"),
            (self.max_queue > 0, "max_queue > 0"),
            (self.rt_priority is None or 1 <= self.rt_priority <= 99, "rt_priority 1..99"),
            (
                self.watchdog_ms is None
                or rm.WATCHDOG_MS_RANGE[0] <= self.watchdog_ms <= rm.WATCHDOG_MS_RANGE[1],
                f"watchdog_ms outside {rm.WATCHDOG_MS_RANGE[0]}..{rm.WATCHDOG_MS_RANGE[1]}",
            ),
            (
                self.trigger_every_ticks is None
                or rm.TRIGGER_EVERY_RANGE[0] <= self.trigger_every_ticks
                <= rm.TRIGGER_EVERY_RANGE[1],
                f"trigger_every_ticks outside {rm.TRIGGER_EVERY_RANGE[0]}.."
                f"{rm.TRIGGER_EVERY_RANGE[1]}",
            ),
        )  # fmt: skip
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"BridgeConfig: {msg}")

    @classmethod
    def from_line_config(
        cls,
        plc: object,
        mm_per_tick: float,
        lead_ms: float,
        port: int | None = None,
        trigger_every_ticks: int | None = None,
    ) -> BridgeConfig:
        """From a ``[plc]`` config section (any object with its attribute names:
        transport, host, port, device_id, serial_port, baudrate, timeout_ms,
        retries, heartbeat_ms, reconnect_max_ms, watchdog_ms; optionally tls
        with ca, cert, key);
        ``trigger_every_ticks`` from ``[camera]`` when the PLC triggers it."""

        def get(name: str) -> object:
            return getattr(plc, name)

        tls: Any = getattr(plc, "tls", None)
        parts = [str(getattr(tls, k, "") or "") for k in ("ca", "cert", "key")]
        files = TlsFiles(*parts) if any(parts) else None

        return cls(
            transport=get("transport"),  # type: ignore[arg-type]
            host=str(get("host")),
            port=int(get("port") if port is None else port),  # type: ignore[call-overload]
            device_id=int(get("device_id")),  # type: ignore[call-overload]
            serial_port=get("serial_port"),  # type: ignore[arg-type]
            baudrate=int(get("baudrate")),  # type: ignore[call-overload]
            timeout_s=float(get("timeout_ms")) / 1000.0,  # type: ignore[arg-type]
            retries=int(get("retries")),  # type: ignore[call-overload]
            heartbeat_s=float(get("heartbeat_ms")) / 1000.0,  # type: ignore[arg-type]
            reconnect_max_s=float(get("reconnect_max_ms")) / 1000.0,  # type: ignore[arg-type]
            deadline_lead_ms=float(lead_ms),
            mm_per_tick=float(mm_per_tick),
            watchdog_ms=float(get("watchdog_ms")),  # type: ignore[arg-type]
            trigger_every_ticks=trigger_every_ticks,
            tls=files,
        )


@dataclasses.dataclass(frozen=True)
class PlcStatus:
    """What the bridge knows about the PLC, as of ``t_s`` (time.monotonic).

    encoder_tick: last count read (uint32); encoder_t_s: when the request that
    read it was sent (the count was sampled no earlier, so extrapolating from
    there never lags the encoder); state: PackML code; faults:
    ``regmap.FaultBit``; inputs: ``regmap.InputBit``.
    Pulse counters: every submitted pulse ends as exactly one of acked (taken
    by the PLC for execution), late (refused by the bridge: could not meet its
    deadline), rejected_by_plc (the PLC took it late / not ready, or refused
    the write), invalid (valves or flap the PLC does not have), stale (queued
    when the PLC restarted: their ticks belong to its old count), overflow (the
    bridge's queue was full). ``pulses_sent`` counts records written (resends
    after a lost link included). plc_counters: the PLC's own counters (IR 14-23,
    41-42) by register name; valve_cycles: per-valve run counts (IR 100..),
    refreshed about once a second.
    trigger_seq: IR 43, the PLC's last camera-trigger seq (0: none since its
    boot); trigger_latches_missed: triggers the PLC's 16-slot latch ring
    overwrote before a status read saw them (poll faster: ``request_poll``).
    mm_per_tick, deadline_lead_ms: what the deadline check uses now, set by
    ``set_line_params`` (``params_version`` calls; 0: from the config).
    last_command: the last ``CommandOutcome`` as "NAME: result" ("" before any).
    """

    connected: bool
    encoder_tick: int | None
    encoder_t_s: float
    speed_mm_s: float
    state: int
    estop: bool
    inputs: int
    faults: int
    last_error: str
    acked_seq: int
    boot_id: int
    heartbeat: int
    pulses_submitted: int
    pulses_sent: int
    pulses_acked: int
    pulses_late: int
    pulses_rejected_by_plc: int
    pulses_invalid: int
    pulses_overflow: int
    reconnects: int
    read_errors: int
    plc_counters: dict[str, int]
    valve_cycles: tuple[int, ...]
    t_s: float
    pulses_stale: int = 0
    trigger_seq: int = 0
    trigger_latches_missed: int = 0
    mm_per_tick: float = 0.0
    deadline_lead_ms: float = 0.0
    params_version: int = 0
    last_command: str = ""
