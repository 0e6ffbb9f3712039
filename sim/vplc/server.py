"""The virtual PLC on the wire: a pymodbus server in front of a ``PlcCore``.

``VirtualPlcServer`` runs on its own asyncio loop in a daemon thread
(``core.aio.LoopThread``). Its Modbus blocks come from
``plc.regmap.REGISTERS`` (unmapped addresses and writes to read-only
registers get exception 02 from pymodbus), and a device ``action``
hook routes every read and write through ``PlcCore``, which validates writes
and renders reads. ``BeltDriver`` advances the encoder by wall clock for
``sortline sim plc``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
import time
from collections.abc import Iterable
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer, ModbusTlsServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType, SimData, SimDevice

from core.aio import LoopThread
from core.ticks import wrap_tick
from plc import regmap as rm
from plc.bridge_config import TlsFiles
from sim.vplc.core import PlcCore
from sim.vplc.fix import ExceptionPatcher, WriteReadRequest

_BIT_FCS = (1, 2, 5, 15)
_WRITE_FCS = (6, 16, 23)
_HR_READ_FCS = (3, 6, 16, 23)


def _regs(address: int, count: int, readonly: bool = False) -> SimData:
    return SimData(address, count=count, values=0, datatype=DataType.REGISTERS, readonly=readonly)


def build_device(core: PlcCore, device_id: int = rm.DEFAULT_DEVICE_ID) -> SimDevice:
    """A pymodbus ``SimDevice`` laid out as the register map, served by ``core``."""
    bits = [SimData(0, values=[False] * 16, datatype=DataType.BITS)]
    cycles = rm.reg("valve_cycles")
    ack, results, ring = rm.reg("ack_seq"), rm.reg("slot_result"), rm.reg("pulse_ring")
    inputs = [_regs(0, rm.IR_STATUS_WORDS), _regs(cycles.address, 2 * core.n_valves)]
    holding = [
        _regs(0, rm.HR_CONTROL_WORDS),
        _regs(ack.address, results.end - ack.address, readonly=True),
        _regs(ring.address, ring.words),
    ]

    async def action(
        fc: int,
        start: int,
        address: int,
        count: int,
        registers: list[int],
        values: Any,
    ) -> ExcCodes | None:
        if fc in _BIT_FCS or fc not in (4, *_HR_READ_FCS):
            return ExcCodes.ILLEGAL_FUNCTION
        if values is not None and fc in _WRITE_FCS:
            code = core.write_holding(address, [int(v) for v in values])
            return None if code is None else ExcCodes(int(code))
        words = core.read_input(address, count) if fc == 4 else core.read_holding(address, count)
        if not isinstance(words, list):
            return ExcCodes(int(words))
        registers[address - start : address - start + count] = words
        return None

    return SimDevice(id=device_id, simdata=(bits, list(bits), holding, inputs), action=action)


def server_context(tls: TlsFiles) -> ssl.SSLContext:
    """TLS 1.2+ server context that demands a client certificate signed by
    ``tls.ca`` (Modbus/TCP Security: mutual authentication); ValueError
    naming the file when one cannot be loaded."""
    tls.check()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_cert_chain(tls.cert, tls.key)
        ctx.load_verify_locations(cafile=tls.ca)
    except (OSError, ValueError) as exc:
        raise ValueError(f"tls: {exc}") from None
    return ctx


def _peer_host(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    host = str(peer[0]) if peer else ""
    return host.removeprefix("::ffff:")  # an IPv4 client on a dual-stack socket


class _GateHandler(ServerRequestHandler):
    """A connection the allow-list admits, or closes at once (and counts)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        gate: _Gate = self.server.gate
        host = _peer_host(transport)
        if gate.allow is not None and host not in gate.allow:
            gate.refused += 1
            gate.last_refused = host
            self.transport = transport
            self.close()
            return
        gate.admitted += 1
        super().connection_made(transport)


class _Gate:
    def __init__(self, allow: frozenset[str] | None) -> None:
        self.allow = allow
        self.admitted = 0
        self.refused = 0
        self.last_refused = ""


class _GatedTcpServer(ModbusTcpServer):
    gate = _Gate(None)

    def callback_new_connection(self) -> ServerRequestHandler:
        return _GateHandler(self, self.trace_packet, self.trace_pdu, self.trace_connect)


class _GatedTlsServer(ModbusTlsServer):
    gate = _Gate(None)

    def callback_new_connection(self) -> ServerRequestHandler:
        return _GateHandler(self, self.trace_packet, self.trace_pdu, self.trace_connect)


class VirtualPlcServer:
    """``core`` served on Modbus TCP (``host``, ``port``; 0 picks a free port),
    or on Modbus RTU when ``serial_port`` is given (``port`` is then unused).

    allow: client addresses admitted (None: any); a connection from another
    is closed before it is read, and counted (``refused``). tls: Modbus/TCP
    Security: TLS with a client certificate required (``server_context``);
    a client without one fails the handshake and is never served.
    """

    def __init__(
        self,
        core: PlcCore,
        host: str = "127.0.0.1",
        port: int = 0,
        device_id: int = rm.DEFAULT_DEVICE_ID,
        *,
        serial_port: str | None = None,
        baudrate: int = 115200,
        allow: Iterable[str] | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        if tls is not None and serial_port is not None:
            raise ValueError("tls needs Modbus TCP, not a serial port")
        self.gate = _Gate(None if allow is None else frozenset(allow))
        self._sslctx = None if tls is None else server_context(tls)
        self.core = core
        self.host = host
        self.port = port
        self.device_id = device_id
        self.serial_port = serial_port
        self.baudrate = baudrate
        self._loop_thread: LoopThread | None = None
        self._server: ModbusTcpServer | ModbusSerialServer | None = None

    @property
    def refused(self) -> int:
        """Connections closed because their address is not allowed."""
        return self.gate.refused

    def start(self, timeout_s: float = 5.0) -> None:
        """Returns once the server listens (``.port`` is then the real port)."""
        if self._loop_thread is not None:
            raise RuntimeError("VirtualPlcServer already started")
        lt = LoopThread("vplc-modbus")
        lt.start(timeout_s)
        try:
            lt.run(self._listen(), timeout_s)
        except BaseException:
            lt.stop(timeout_s)
            raise
        self._loop_thread = lt

    def stop(self, timeout_s: float = 5.0) -> None:
        """Close the listener and every client connection; join the thread."""
        lt, self._loop_thread = self._loop_thread, None
        if lt is None:
            return
        with contextlib.suppress(RuntimeError, TimeoutError):  # loop gone or stuck
            lt.run(self._close_server(), timeout_s)
        lt.stop(timeout_s)

    def __enter__(self) -> VirtualPlcServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _listen(self) -> None:
        device = build_device(self.core, self.device_id)
        if self.serial_port is not None:
            self._server = ModbusSerialServer(
                device,
                framer=FramerType.RTU,
                port=self.serial_port,
                baudrate=self.baudrate,
                trace_packet=ExceptionPatcher(rtu=True),
                custom_pdu=[WriteReadRequest],
            )
        elif self._sslctx is not None:
            self._server = _GatedTlsServer(
                device,
                address=(self.host, self.port),
                sslctx=self._sslctx,
                trace_packet=ExceptionPatcher(rtu=False),
                custom_pdu=[WriteReadRequest],
            )
            self._server.gate = self.gate
        else:
            self._server = _GatedTcpServer(
                device,
                address=(self.host, self.port),
                trace_packet=ExceptionPatcher(rtu=False),
                custom_pdu=[WriteReadRequest],
            )
            self._server.gate = self.gate
        try:
            await self._server.serve_forever(background=True)
        except RuntimeError:
            where = self.serial_port or f"{self.host}:{self.port}"
            raise OSError(f"virtual PLC cannot listen on {where} (in use?)") from None
        if self.serial_port is None:
            sockets = getattr(self._server.transport, "sockets", None)
            if sockets:
                self.port = int(sockets[0].getsockname()[1])

    async def _close_server(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        for conn in list(server.active_connections.values()):
            conn.close()
        await server.shutdown()
        await asyncio.sleep(0)  # let the transports finish closing


class BeltDriver:
    """Advances ``core``'s encoder by wall clock in a daemon thread.

    speed_mm_s: belt speed (``set_speed`` changes it; 0 stops the belt);
    mm_per_tick: encoder scale; period_s: physics step. ``runs`` counts the
    pulse runs completed (the driver has no plant to hand them to).

    Encoder faults for the fault bench (``sim.vplc.inject``): ``freeze(True)``
    keeps the count where it is while the belt (and its speed input) runs on,
    as a slipping encoder wheel does; ``freeze(False)`` lets it count on from
    there (the travel meanwhile is never counted). ``jump(ticks)`` moves the
    count by ``ticks`` at once (a glitch on the encoder lines, a counter
    preset): forward > 0, back < 0.
    """

    def __init__(
        self, core: PlcCore, speed_mm_s: float, mm_per_tick: float, period_s: float = 0.001
    ) -> None:
        self.core = core
        self.mm_per_tick = mm_per_tick
        self.period_s = period_s
        self.runs = 0
        self._speed_mm_s = speed_mm_s
        self._frozen = False
        self._jump_ticks = 0
        self._fault_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def set_speed(self, speed_mm_s: float) -> None:
        self._speed_mm_s = max(float(speed_mm_s), 0.0)

    @property
    def speed_mm_s(self) -> float:
        return self._speed_mm_s

    @property
    def frozen(self) -> bool:
        return self._frozen

    def freeze(self, frozen: bool) -> None:
        self._frozen = bool(frozen)

    def jump(self, ticks: int) -> None:
        with self._fault_lock:
            self._jump_ticks += int(ticks)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="vplc-belt", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def _loop(self) -> None:
        t0 = last = time.monotonic()
        travel_ticks = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            speed = self._speed_mm_s
            if not self._frozen:
                travel_ticks += (now - last) * speed / self.mm_per_tick
            with self._fault_lock:
                travel_ticks, self._jump_ticks = travel_ticks + self._jump_ticks, 0
            last = now
            tick = wrap_tick(int(travel_ticks))
            self.runs += len(self.core.advance(tick, speed, now - t0))
            self._stop.wait(self.period_s)
