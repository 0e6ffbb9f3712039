"""``ModbusLink``: the bridge's thin async shell over a pymodbus client.

Every call names the registers it touches, so a failure reads as
"read IR 0-42: exception 02 ILLEGAL_ADDRESS". Rules:
- a timeout (after the configured retries) or a malformed reply closes the
  connection (``LinkDownError``): the next request goes over a fresh socket or a
  reopened serial port, so a late reply can never answer a later request;
- an exception reply (``PlcRefusedError``) leaves the link up: the PLC answered.
pymodbus's own reconnect is off; the bridge reconnects with its own backoff.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient, AsyncModbusTlsClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType

from plc.bridge_config import TlsFiles
from plc.regmap import ExcCode

Transport = Literal["tcp", "rtu"]


class LinkError(Exception):
    """A request failed; ``str()`` names the registers and the cause."""


class LinkDownError(LinkError):
    """No (valid) reply: the connection was closed."""


class PlcRefusedError(LinkError):
    """The PLC replied with a Modbus exception."""

    def __init__(self, what: str, code: int) -> None:
        name = ExcCode(code).name if code in ExcCode._value2member_map_ else "?"
        super().__init__(f"{what}: exception {code:02d} {name}")
        self.code = code


@dataclass(frozen=True, slots=True)
class LinkParams:
    transport: Transport
    host: str
    port: int
    device_id: int
    serial_port: str | None
    baudrate: int
    timeout_s: float
    retries: int
    tls: TlsFiles | None = None


class Link(Protocol):
    """What ``PlcBridge`` needs of a connection (``ModbusLink`` on the wire;
    ``sim.vplc.link.CoreLink`` is its in-process twin for tests)."""

    async def connect(self) -> None: ...
    def close(self) -> None: ...
    async def read_input(self, address: int, count: int) -> list[int]: ...
    async def read_holding(self, address: int, count: int) -> list[int]: ...
    async def write_holding(self, address: int, values: Sequence[int]) -> None: ...
    async def write_read(
        self, write_address: int, values: Sequence[int], read_address: int, read_count: int
    ) -> list[int]: ...


def client_context(tls: TlsFiles) -> ssl.SSLContext:
    """TLS 1.2+ client context: the PLC's certificate must chain to ``tls.ca``
    and name the host connected to; ours (``tls.cert``/``tls.key``) is offered
    for the PLC to check (mutual authentication, Modbus/TCP Security).
    ``LinkDownError`` naming the file when one cannot be loaded."""
    try:
        tls.check()
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(tls.cert, tls.key)
    except (ValueError, OSError) as exc:  # ssl.SSLError is an OSError
        raise LinkDownError(f"tls: {exc}") from None
    return ctx


def span(table: str, address: int, count: int) -> str:
    """``"IR 0-42"``: how errors name a register range."""
    return f"{table} {address}" if count == 1 else f"{table} {address}-{address + count - 1}"


class ModbusLink:
    """One Modbus connection; all methods run on the bridge's event loop."""

    def __init__(self, params: LinkParams) -> None:
        self.params = params
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # we report failures

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    async def connect(self) -> None:
        self.close()
        p = self.params
        client: AsyncModbusTcpClient | AsyncModbusSerialClient
        if p.transport == "rtu":
            if not p.serial_port:
                raise LinkDownError("rtu transport needs a serial_port")
            client = AsyncModbusSerialClient(
                p.serial_port, framer=FramerType.RTU, baudrate=p.baudrate,
                timeout=p.timeout_s, retries=p.retries, reconnect_delay=0,
            )  # fmt: skip
        elif p.tls is not None:
            client = AsyncModbusTlsClient(
                p.host, port=p.port, sslctx=client_context(p.tls), timeout=p.timeout_s,
                retries=p.retries, reconnect_delay=0,
            )  # fmt: skip
        else:
            client = AsyncModbusTcpClient(
                p.host, port=p.port, timeout=p.timeout_s, retries=p.retries, reconnect_delay=0
            )
        self._client = client
        try:
            ok = await asyncio.wait_for(client.connect(), timeout=max(p.timeout_s, 0.05) * 5)
        except (TimeoutError, OSError) as exc:
            ok = False
            why = str(exc) or type(exc).__name__
        else:
            why = "refused or unreachable"
        if not ok:
            self.close()
            where = p.serial_port if p.transport == "rtu" else f"{p.host}:{p.port}"
            kind = "tls" if p.tls is not None else p.transport
            raise LinkDownError(f"connect {kind} {where}: {why}")
        if p.transport == "rtu":
            await asyncio.sleep(2 * p.timeout_s)  # late replies drain, unanswered

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _call(
        self,
        what: str,
        fc: int,
        want_words: int | None,
        request: Callable[[], Awaitable[Any]],
        echo: tuple[int, int] | None = None,
    ) -> list[int]:
        """``echo``: (address, count) a write reply must repeat."""
        try:
            reply = await request()
        except (ModbusException, OSError, TimeoutError) as exc:
            self.close()
            raise LinkDownError(f"{what}: no valid reply ({exc})") from None
        got_fc = int(getattr(reply, "function_code", -1)) & 0x7F
        if got_fc != fc:
            self.close()
            raise LinkDownError(f"{what}: malformed reply (function {got_fc}, want {fc})")
        if reply.isError():
            raise PlcRefusedError(what, int(getattr(reply, "exception_code", 0)))
        if echo is not None:  # FC 6 value not checked: pymodbus servers reply the read-back
            got = (getattr(reply, "address", -1), getattr(reply, "count", 1) if fc == 16 else 1)
            if got != echo:
                self.close()
                raise LinkDownError(f"{what}: malformed reply (echo {got}, want {echo})")
        words = list(getattr(reply, "registers", []) or [])
        if want_words is not None and len(words) != want_words:
            self.close()
            raise LinkDownError(f"{what}: malformed reply ({len(words)} words, want {want_words})")
        return words

    def _require(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        if self._client is None:
            raise LinkDownError("not connected")
        return self._client

    async def read_input(self, address: int, count: int) -> list[int]:
        c, dev = self._require(), self.params.device_id
        return await self._call(
            f"read {span('IR', address, count)}",
            4,
            count,
            lambda: c.read_input_registers(address, count=count, device_id=dev),
        )

    async def read_holding(self, address: int, count: int) -> list[int]:
        c, dev = self._require(), self.params.device_id
        return await self._call(
            f"read {span('HR', address, count)}",
            3,
            count,
            lambda: c.read_holding_registers(address, count=count, device_id=dev),
        )

    async def write_holding(self, address: int, values: Sequence[int]) -> None:
        c, dev = self._require(), self.params.device_id
        what = f"write {span('HR', address, len(values))}"
        words = [int(v) for v in values]
        if len(words) == 1:
            await self._call(
                what, 6, None, lambda: c.write_register(address, words[0], device_id=dev),
                echo=(address, 1),
            )  # fmt: skip
        else:
            await self._call(
                what, 16, None, lambda: c.write_registers(address, words, device_id=dev),
                echo=(address, len(words)),
            )  # fmt: skip

    async def write_read(
        self, write_address: int, values: Sequence[int], read_address: int, read_count: int
    ) -> list[int]:
        """FC 23: write ``values`` then read ``read_count`` words, one transaction."""
        c = self._require()
        what = (
            f"write {span('HR', write_address, len(values))} + "
            f"read {span('HR', read_address, read_count)}"
        )
        words, dev = [int(v) for v in values], self.params.device_id
        return await self._call(
            what,
            23,
            read_count,
            lambda: c.readwrite_registers(
                read_address=read_address,
                read_count=read_count,
                write_address=write_address,
                values=words,
                device_id=dev,
            ),
        )
