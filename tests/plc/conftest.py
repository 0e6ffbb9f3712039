"""Fixtures for the PLC tests: a virtual PLC on an ephemeral loopback port and
a bridge connected to it (real sockets, real pymodbus, in-process)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from plc.bridge import BridgeConfig, PlcBridge
from sim.vplc import VirtualPlcServer
from sim.vplc_core import PlcCore

START_TICK = 10_000


@dataclass
class Line:
    core: PlcCore
    server: VirtualPlcServer
    bridge: PlcBridge


def make_bridge(port: int, **kw: object) -> PlcBridge:
    cfg = dict(
        port=port,
        timeout_s=0.2,
        heartbeat_s=0.02,
        reconnect_max_s=0.1,
        deadline_lead_ms=0.0,
        extrapolate_encoder=False,
    )
    cfg.update(kw)
    bridge = PlcBridge(BridgeConfig(**cfg))  # type: ignore[arg-type]
    bridge.start()
    return bridge


@pytest.fixture
def line() -> Iterator[Line]:
    core = PlcCore(80, n_diverters=2, watchdog_ms=2000, clock=time.monotonic)
    core.advance(START_TICK, 2500.0, 0.0)
    server = VirtualPlcServer(core)
    server.start()
    bridge = make_bridge(server.port)
    try:
        assert bridge.wait_connected(5.0), bridge.snapshot().last_error
        yield Line(core, server, bridge)
    finally:
        bridge.stop()
        server.stop()
