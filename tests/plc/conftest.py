"""Fixtures for the PLC tests: a virtual PLC on an ephemeral loopback port and
a bridge connected to it (real sockets, real pymodbus, in-process)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from plc.bridge import BridgeConfig, PlcBridge
from sim.vplc.core import PlcCore
from sim.vplc.server import VirtualPlcServer

START_TICK = 10_000


@dataclass
class Line:
    core: PlcCore
    server: VirtualPlcServer
    bridge: PlcBridge


@pytest.fixture
def bridges() -> Iterator[list[PlcBridge]]:
    """Bridges a test made; stopped after it."""
    made: list[PlcBridge] = []
    yield made
    for b in made:
        b.stop()


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


class DelayProxy:
    """A TCP relay between a client and ``target_port`` on 127.0.0.1 that can
    hold back the next reply (``hold_next_reply(s)``) or cut every connection.
    Threads are daemons; ``close()`` stops them."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._hold_s = 0.0
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._closed = False
        self.held = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def hold_next_reply(self, seconds: float) -> None:
        with self._lock:
            self._hold_s = seconds

    def cut(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.cut()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            except OSError:
                if self._closed:
                    return
                continue
            server.settimeout(None)
            with self._lock:
                self._conns += [client, server]
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, src: object, dst: object, replies: bool) -> None:
        assert isinstance(src, socket.socket) and isinstance(dst, socket.socket)
        try:
            while data := src.recv(4096):
                if replies:
                    with self._lock:
                        hold, self._hold_s = self._hold_s, 0.0
                    if hold:
                        self.held += 1
                        time.sleep(hold)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A bridge or server thread that dies of an exception fails its test."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(
                pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
            )
