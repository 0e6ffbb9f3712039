"""``CoreLink``: the bridge's link to a ``PlcCore`` in the same process.

The in-process twin of ``plc.link.ModbusLink`` (as pymodbus's ``NullModem``
twins a socket): the same register-level requests, validation and exception
codes, no sockets, no timing. ``PlcBridge(config, link=CoreLink(core))`` runs
the real bridge against the real PLC logic; set ``down`` to cut the link.
"""

from __future__ import annotations

from collections.abc import Sequence

from plc.link import LinkDownError, PlcRefusedError, span
from plc.regmap import ExcCode
from sim.vplc.core import PlcCore


class CoreLink:
    """Implements ``plc.link.Link`` over ``core``; ``down=True`` fails every call."""

    def __init__(self, core: PlcCore) -> None:
        self.core = core
        self.down = False
        self.requests = 0
        self._open = False

    async def connect(self) -> None:
        if self.down:
            raise LinkDownError("connect in-process PLC: link is down")
        self._open = True

    def close(self) -> None:
        self._open = False

    def _check(self, what: str) -> None:
        if self.down or not self._open:
            self._open = False
            raise LinkDownError(f"{what}: no valid reply (link is down)")
        self.requests += 1

    async def read_input(self, address: int, count: int) -> list[int]:
        what = f"read {span('IR', address, count)}"
        self._check(what)
        return _words(what, self.core.read_input(address, count))

    async def read_holding(self, address: int, count: int) -> list[int]:
        what = f"read {span('HR', address, count)}"
        self._check(what)
        return _words(what, self.core.read_holding(address, count))

    async def write_holding(self, address: int, values: Sequence[int]) -> None:
        what = f"write {span('HR', address, len(values))}"
        self._check(what)
        code = self.core.write_holding(address, [int(v) for v in values])
        if code is not None:
            raise PlcRefusedError(what, int(code))

    async def write_read(
        self, write_address: int, values: Sequence[int], read_address: int, read_count: int
    ) -> list[int]:
        what = (
            f"write {span('HR', write_address, len(values))} + "
            f"read {span('HR', read_address, read_count)}"
        )
        self._check(what)
        code = self.core.write_holding(write_address, [int(v) for v in values])
        if code is not None:
            raise PlcRefusedError(what, int(code))
        return _words(what, self.core.read_holding(read_address, read_count))


def _words(what: str, reply: list[int] | ExcCode) -> list[int]:
    if isinstance(reply, ExcCode):
        raise PlcRefusedError(what, int(reply))
    return reply
