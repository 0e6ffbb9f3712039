"""Standard exception replies for requests pymodbus cannot decode.

pymodbus 3.16 answers a request it cannot decode (a register count outside
1..125, an unknown function code) with function code 0x80 and exception 01,
which a strict client reads as a broken frame. ``ExceptionPatcher`` is a
``trace_packet`` hook: it remembers each request's function code and rewrites
those replies to ``fc | 0x80`` with exception 03 (a function we serve, bad
value) or 01 (a function we do not serve), as the Modbus spec asks.
"""

from __future__ import annotations

import struct
import threading

from pymodbus.framer import FramerRTU

SERVED_FCS = frozenset((3, 4, 6, 16, 23))
_BAD_FC = 0x80


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
            return data
        return self._patch_rtu(data) if self.rtu else self._patch_tcp(data)

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
        if len(data) != 9 or data[7] != _BAD_FC:
            return data
        tid = struct.unpack_from(">H", data, 0)[0]
        with self._lock:
            fc = self._fc_by_tid.pop(tid, 0)
        if not 0 < fc < 0x80:
            return data
        return data[:7] + bytes([fc | 0x80, self._code(fc)])

    def _patch_rtu(self, data: bytes) -> bytes:
        if len(data) != 5 or data[1] != _BAD_FC:
            return data
        with self._lock:
            fc = self._last_fc
        if not 0 < fc < 0x80:
            return data
        body = bytes([data[0], fc | 0x80, self._code(fc)])
        return body + struct.pack(">H", FramerRTU.compute_CRC(body))
