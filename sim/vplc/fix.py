"""Standard exception replies for requests pymodbus cannot decode.

pymodbus 3.16 answers a request it cannot decode (a register count outside
1..125, an unknown function code) with function code 0x80 and exception 01,
which a strict client reads as a broken frame. ``ExceptionPatcher`` is a
``trace_packet`` hook: it remembers each request's function code and rewrites
those replies to ``fc | 0x80`` with exception 03 (a function we serve, bad
value) or 01 (a function we do not serve), as the Modbus spec asks; the
bit functions (no coils) get 01 also where pymodbus found the address bad.

pymodbus also answers, with normal replies, functions this PLC does not offer
(FC 7, 8 diagnostics, 11 and 12 comm events, 17 server id, 24 FIFO; found by
``tests/plc/test_fuzz_mbap.py``: a client probing for them is told they
exist). Over TCP the patcher also gates requests: a function outside
``REQUEST_FCS`` has its code replaced by 0 on the way in, so pymodbus answers
"cannot decode", and the reply is rewritten to that function's exception 01
like any unknown function. (Not over RTU: there the hook sees the request in
the pieces the serial port delivers, not as frames.)

``WriteReadRequest`` replaces pymodbus's FC 23 request: pymodbus writes, then
finds the read range unmapped and replies exception 02 with the write already
applied (ring records taken and run behind a refusal). The spec checks both
ranges first; so does this class, so a refused FC 23 changes nothing.
"""

from __future__ import annotations

import struct
import threading

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.framer import FramerRTU
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.pdu.register_message import ReadWriteMultipleRegistersRequest

SERVED_FCS = frozenset((3, 4, 6, 16, 23))
# what reaches pymodbus: the served functions, device identification (FC 43 /
# MEI 14) and the bit functions (no coils: pymodbus refuses them, patched to 01)
REQUEST_FCS = SERVED_FCS | {0x2B, 1, 2, 5, 15}
_BAD_FC = 0x80
_BIT_EXC = frozenset(fc | 0x80 for fc in (1, 2, 5, 15))  # no coils: always exception 01


class ExceptionPatcher:
    """``trace_packet(sending, data) -> data`` for one TCP or RTU server."""

    def __init__(self, rtu: bool) -> None:
        self.rtu = rtu
        self._lock = threading.Lock()
        self._fc_by_tid: dict[int, int] = {}
        self._last_fc = 0

    def __call__(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            self._remember(data)
            return data if self.rtu else self._gate_tcp(data)
        return self._patch_rtu(data) if self.rtu else self._patch_tcp(data)

    @staticmethod
    def _gate_tcp(data: bytes) -> bytes:
        """Requests of functions outside ``REQUEST_FCS``: code 0 (undecodable)."""
        out = bytearray(data)
        pos = 0
        while pos + 8 <= len(out):  # MBAP: tid, proto, length, unit; then fc
            length = struct.unpack_from(">H", out, pos + 4)[0]
            if out[pos + 7] not in REQUEST_FCS:
                out[pos + 7] = 0
            pos += 6 + max(length, 1)
        return bytes(out)

    def _remember(self, data: bytes) -> None:
        with self._lock:
            if self.rtu:
                if len(data) >= 2:
                    self._last_fc = data[1]
                return
            pos = 0
            while pos + 8 <= len(data):  # MBAP: tid, proto, length, unit; then fc
                tid, _proto, length = struct.unpack_from(">HHH", data, pos)
                self._fc_by_tid[tid] = data[pos + 7]
                pos += 6 + max(length, 1)
            if len(self._fc_by_tid) > 4096:
                self._fc_by_tid.clear()

    @staticmethod
    def _code(fc: int) -> int:
        return 3 if fc in SERVED_FCS else 1

    def _patch_tcp(self, data: bytes) -> bytes:
        if len(data) == 9 and data[7] in _BIT_EXC:
            return data[:8] + b"\x01"
        if len(data) != 9 or data[7] != _BAD_FC:
            return data
        tid = struct.unpack_from(">H", data, 0)[0]
        with self._lock:
            fc = self._fc_by_tid.pop(tid, 0)
        if not 0 < fc < 0x80:
            return data
        return data[:7] + bytes([fc | 0x80, self._code(fc)])

    def _patch_rtu(self, data: bytes) -> bytes:
        if len(data) == 5 and data[1] in _BIT_EXC:
            fc = data[1] & 0x7F  # a bit function: exception 01 (below)
        elif len(data) != 5 or data[1] != _BAD_FC:
            return data
        else:
            with self._lock:
                fc = self._last_fc
        if not 0 < fc < 0x80:
            return data
        body = bytes([data[0], fc | 0x80, self._code(fc)])
        return body + struct.pack(">H", FramerRTU.compute_CRC(body))


class WriteReadRequest(ReadWriteMultipleRegistersRequest):
    """FC 23 that refuses an unmapped read range before writing anything."""

    def _counts_ok(self) -> bool:
        n = self.write_count
        payload = self._payload_byte_count
        return (
            1 <= self.read_count <= self.MAX_READ_COUNT
            and 1 <= n <= self.MAX_WRITE_COUNT
            and self.write_byte_count == 2 * n
            and (payload is None or payload == self.write_byte_count)
        )

    async def datastore_update(self, context: ModbusServerContext, device_id: int) -> ModbusPDU:
        if self._counts_ok():  # else pymodbus answers exception 03 as the spec asks
            fc, address, count = self.function_code, self.read_address, self.read_count
            probe = await context.async_getValues(device_id, fc, address, count)
            if isinstance(probe, ExcCodes):
                return ExceptionResponse(fc, probe)
        return await super().datastore_update(context, device_id)
