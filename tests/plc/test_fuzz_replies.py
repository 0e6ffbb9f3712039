"""Bad replies, fuzzed, against the bridge over real loopback sockets.

``FaultyRelay`` sits between the bridge and a real virtual PLC and spoils
the replies to the next requests as hypothesis chose: too short, too long,
wrong function code, exception codes 1-4 and unknown ones (answered by the
relay; the PLC never sees that request), another transaction id, late (past
``timeout_s``), garbage, no reply, the connection closed mid-reply. Then the
replies are valid again. The bridge must never raise or hang, count and name
each fault, give every pulse exactly one fate (none taken twice by the PLC),
and be back up with a pulse acknowledged.
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import threading
import time
from collections import deque

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from core.types import Pulses
from plc.bridge import PlcStatus
from sim.vplc.core import PlcCore
from sim.vplc.server import VirtualPlcServer

from .conftest import START_TICK, make_bridge

TIMEOUT_S = 0.05
FAULTS = ("short", "long", "echo", "length", "wrong_fc", "exception", "tid", "slow",
          "garbage", "drop", "close")  # fmt: skip
EXC_CODES = (1, 2, 3, 4, 0x0B, 0x55)
TARGETS = (None, 4, 6, 23)  # None: whatever request comes next
# a changed data word (no CRC on TCP) or FC 6 value (pymodbus servers reply the read-back)
UNDETECTABLE = {("echo", 3), ("echo", 4), ("echo", 23), ("long", 6)}
_NAMED = re.compile(r"(read|write) (IR|HR) \d+")


def recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def recv_frame(s: socket.socket) -> bytes:
    head = recv_exact(s, 7)
    return head + recv_exact(s, struct.unpack(">H", head[4:6])[0] - 1)


def spoil(fault: str, code: int, request: bytes, reply: bytes) -> bytes:
    """``reply`` (a whole MBAP frame) spoiled by ``fault``."""
    head, pdu = reply[:7], reply[7:]
    if fault == "exception":
        pdu = bytes([request[7] | 0x80, code])
    elif fault == "short":
        pdu = pdu[:-2] if len(pdu) > 3 else pdu[:1]
    elif fault == "long":  # one word more than asked for (a write: a count off by one)
        if pdu[0] in (3, 4, 23):
            pdu = bytes([pdu[0], pdu[1] + 2]) + pdu[2:] + b"\x00\x07"
        else:
            pdu = pdu[:3] + struct.pack(">H", (struct.unpack(">H", pdu[3:5])[0] + 1) & 0xFFFF)
    elif fault == "echo" and pdu[0] in (6, 16):  # a write reply for another address
        pdu = bytes([pdu[0]]) + struct.pack(">H", struct.unpack(">H", pdu[1:3])[0] ^ 1) + pdu[3:]
    elif fault == "echo":
        pdu = pdu[:-2] + bytes([pdu[-2] ^ 0x80, pdu[-1]])  # a flipped bit: undetectable
    elif fault == "wrong_fc":
        pdu = bytes([{3: 4, 4: 3, 6: 16, 16: 6, 23: 3}.get(pdu[0], 3)]) + pdu[1:]
    elif fault == "tid":
        head = struct.pack(">H", (struct.unpack(">H", head[:2])[0] + 1) & 0xFFFF) + head[2:]
    elif fault == "length":  # the MBAP length field lies (too long: the client waits)
        head = head[:4] + struct.pack(">H", len(pdu) + 1 + code) + head[6:]
        return head + pdu
    elif fault == "garbage":
        return bytes((b * 37 + code) & 0xFF for b in reply)
    return head[:4] + struct.pack(">H", len(pdu) + 1) + head[6:] + pdu


class FaultyRelay:
    """A frame-aware TCP relay to ``target_port`` that spoils the replies to
    the requests matching the queued faults; ``injected`` lists what it did."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._faults: deque[tuple[str, int, int | None]] = deque()
        self.injected: list[tuple[str, int]] = []  # (fault, request fc)
        self._socks: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, faults: list[tuple[str, int, int | None]]) -> None:
        with self._lock:
            self._faults.extend(faults)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._faults)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            except OSError:
                continue
            with self._lock:
                self._socks += [client, server]
            threading.Thread(target=self._serve, args=(client, server), daemon=True).start()

    def _take(self, fc: int) -> tuple[str, int] | None:
        with self._lock:
            if self._faults and self._faults[0][2] in (None, fc):
                fault, code, _ = self._faults.popleft()
                self.injected.append((fault, fc))
                return fault, code
        return None

    def _serve(self, client: socket.socket, server: socket.socket) -> None:
        try:
            while True:
                request = recv_frame(client)
                fault, code = self._take(request[7]) or ("ok", 0)
                if fault == "exception":  # the PLC refused it: it never ran
                    client.sendall(spoil(fault, code, request, request[:7] + b"\x00\x00"))
                    continue
                server.sendall(request)
                reply = recv_frame(server)
                if fault == "drop":
                    continue
                if fault == "slow":
                    time.sleep(3 * TIMEOUT_S)
                if fault == "close":
                    client.sendall(reply[: len(reply) // 2])
                    break
                client.sendall(spoil(fault, code, request, reply) if fault != "ok" else reply)
        except OSError:
            pass
        finally:
            for s in (client, server):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()


def pulse(k: int) -> Pulses:
    on = START_TICK + 100_000 + 100 * k
    return Pulses(
        actuator=[0], first_valve=[k % 16], last_valve=[k % 16], on_tick=[on],
        off_tick=[on + 50], track_id=[k], fraction=np.zeros(1, dtype=np.int16),
    )  # fmt: skip


def faults_counted(snap: PlcStatus) -> int:
    """Failed requests, and ring writes the PLC refused (pulses far ahead: none late)."""
    return snap.read_errors + snap.pulses_rejected_by_plc


def wait_for(cond: object, timeout_s: float) -> bool:
    assert callable(cond)
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return bool(cond())


fault_lists = st.lists(
    st.tuples(st.sampled_from(FAULTS), st.sampled_from(EXC_CODES), st.sampled_from(TARGETS)),
    min_size=1,
    max_size=4,
)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(faults=fault_lists)
def test_bad_replies_are_survived_counted_and_recovered(
    faults: list[tuple[str, int, int | None]],
) -> None:
    core = PlcCore(16, watchdog_ms=5000, clock=time.monotonic)
    core.advance(START_TICK, 2500.0, 0.0)
    with VirtualPlcServer(core) as server:
        relay = FaultyRelay(server.port)
        bridge = make_bridge(
            relay.port, timeout_s=TIMEOUT_S, retries=0, reconnect_max_s=0.02, heartbeat_s=0.02
        )
        try:
            assert bridge.wait_connected(5.0), bridge.snapshot().last_error
            k, errors_seen = 0, set()
            for fault in faults:  # one at a time: each must show in the counters
                assert wait_for(lambda: bridge.snapshot().connected, 5.0), bridge.snapshot()
                counted0 = faults_counted(bridge.snapshot())
                relay.arm([fault])
                end = time.monotonic() + 5.0
                while relay.pending and time.monotonic() < end:
                    bridge.submit(pulse(k))
                    k += 1
                    t0 = time.monotonic()
                    snap = bridge.snapshot()
                    assert time.monotonic() - t0 < 0.1  # never blocks on the link
                    errors_seen.add(snap.last_error)
                    time.sleep(0.01)
                assert not relay.pending, f"fault not consumed: {fault}"
                if relay.injected[-1] not in UNDETECTABLE:
                    assert wait_for(
                        lambda c0=counted0: faults_counted(bridge.snapshot()) > c0, 2.0
                    ), (
                        relay.injected,
                        bridge.snapshot(),
                    )
                errors_seen.add(bridge.snapshot().last_error)
            assert wait_for(lambda: bridge.snapshot().connected, 5.0), bridge.snapshot()
            bridge.submit(pulse(k))
            k += 1
            assert bridge.flush(5.0), bridge.snapshot()
            snap = bridge.snapshot()
            errors_seen.add(snap.last_error)
        finally:
            t0 = time.monotonic()
            bridge.stop(timeout_s=2.0)
            assert time.monotonic() - t0 < 3.0
            relay.close()
    # every pulse has exactly one fate; the PLC took each acknowledged one once
    fates = (snap.pulses_acked + snap.pulses_rejected_by_plc + snap.pulses_late
             + snap.pulses_invalid + snap.pulses_overflow + snap.pulses_stale)  # fmt: skip
    assert snap.pulses_submitted == k == fates, snap
    assert core.acked_seq == core.pending() == snap.pulses_acked, snap
    assert snap.pulses_acked >= 1 and snap.connected  # recovered
    # every fault counted and reported, naming the registers
    seen = [x for x in relay.injected if x not in UNDETECTABLE]
    named = [e for e in errors_seen if e]
    assert bool(named) == bool(seen) and all(_NAMED.search(e) or "connect" in e for e in named), (
        named
    )
    if any(f != "exception" for f, _ in seen):
        assert snap.reconnects >= 1
