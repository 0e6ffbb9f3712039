"""The bridge when things go wrong, over real loopback sockets: watchdog,
a killed and restarted PLC, late pulses, timeouts without stale replies,
exception and malformed replies named by register."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from core.types import Pulses
from plc import regmap as rm
from plc.bridge import BridgeConfig, PlcBridge
from sim.vplc.core import PlcCore
from sim.vplc.link import CoreLink
from sim.vplc.server import VirtualPlcServer

from .conftest import START_TICK, DelayProxy, Line, make_bridge


def pulse(first: int, last: int, on: int, off: int, actuator: int = 0) -> Pulses:
    return Pulses(
        actuator=[actuator], first_valve=[first], last_valve=[last], on_tick=[on],
        off_tick=[off], track_id=[0], fraction=np.zeros(1, dtype=np.int16),
    )  # fmt: skip


def wait_for(cond: Callable[[], bool], timeout_s: float = 5.0, step_s: float = 0.005) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step_s)
    return cond()


def test_stopped_heartbeat_de_energises_within_the_watchdog_time(bridges: list[PlcBridge]) -> None:
    watchdog_s = 0.25
    core = PlcCore(80, watchdog_ms=watchdog_s * 1000, clock=time.monotonic)
    core.advance(START_TICK, 2500.0, 0.0)
    with VirtualPlcServer(core) as server:
        bridge = make_bridge(server.port)
        bridges.append(bridge)
        assert bridge.wait_connected(5.0)
        bridge.submit(pulse(0, 79, START_TICK + 1, START_TICK + 100_000))
        assert bridge.flush(5.0)
        core.advance(START_TICK + 1, 2500.0, 0.0)
        assert core.valves_open().all()
        bridge.stop()  # the controller dies: no more heartbeats
        tick = START_TICK + 1
        while core.valves_open().any():
            age = core.heartbeat_age_s()
            assert age is not None and age < watchdog_s + 0.1, "valves still open"
            tick += 10
            core.advance(tick, 2500.0, 0.0)
            time.sleep(0.005)
        age = core.heartbeat_age_s()
        assert age is not None and age > watchdog_s  # not before its time
        assert core.state is rm.PackMLState.HELD
        assert core.faults & rm.FaultBit.WATCHDOG


@pytest.mark.parametrize("same_plc", [True, False], ids=["outage", "new_plc"])
def test_killed_and_restarted_plc_is_survived(same_plc: bool, bridges: list[PlcBridge]) -> None:
    core = PlcCore(80, watchdog_ms=5000, clock=time.monotonic)
    core.advance(START_TICK, 2500.0, 0.0)
    server = VirtualPlcServer(core)
    server.start()
    port = server.port
    bridge = make_bridge(port, reconnect_max_s=0.05)
    bridges.append(bridge)
    try:
        assert bridge.wait_connected(5.0)
        bridge.submit(pulse(1, 1, START_TICK + 100, START_TICK + 200))
        assert bridge.flush(5.0)
        boot0 = bridge.snapshot().boot_id
        server.stop()
        assert wait_for(lambda: not bridge.snapshot().connected)
        bridge.submit(pulse(2, 2, START_TICK + 300, START_TICK + 400))  # queued while down
        if not same_plc:
            core = PlcCore(80, watchdog_ms=5000, clock=time.monotonic)
            core.advance(START_TICK, 2500.0, 0.0)
        server = VirtualPlcServer(core, port=port)
        server.start()
        assert wait_for(lambda: bridge.snapshot().connected)
        assert bridge.flush(5.0)
        bridge.submit(pulse(3, 3, START_TICK + 500, START_TICK + 600))
        assert bridge.flush(5.0)
        snap = bridge.snapshot()
        assert snap.reconnects >= 1 and snap.pulses_late == 0
        assert (snap.boot_id == boot0) == same_plc
        if same_plc:  # the outage: the pulse queued while down is sent after it
            assert snap.pulses_acked == 3 and snap.pulses_stale == 0 and core.pending() == 3
            assert snap.acked_seq == core.acked_seq == 3
        else:  # a restarted PLC: its ticks belong to the old count, never sent
            assert snap.pulses_acked == 2 and snap.pulses_stale == 1 and core.pending() == 1
            assert snap.acked_seq == core.acked_seq == 1
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("ahead_ticks", "sent"), [(100, False), (249, False), (251, True), (5000, True)]
)
def test_late_pulses_are_counted_not_sent(
    ahead_ticks: int, sent: bool, bridges: list[PlcBridge], line: Line
) -> None:
    # lead 10 ms at 2500 mm/s and 0.1 mm/tick = 250 ticks before the on tick
    bridge = make_bridge(line.server.port, deadline_lead_ms=10.0)
    bridges.append(bridge)
    assert bridge.wait_connected(5.0)
    bridge.submit(pulse(5, 6, START_TICK + ahead_ticks, START_TICK + ahead_ticks + 50))
    assert bridge.flush(5.0)
    snap = bridge.snapshot()
    assert (snap.pulses_sent, snap.pulses_acked, snap.pulses_late) == (
        (1, 1, 0) if sent else (0, 0, 1)
    )
    assert line.core.counters["late"] == 0  # never reached the PLC late
    assert line.core.pending() == int(sent)


def test_extrapolated_encoder_makes_old_pulses_late(bridges: list[PlcBridge], line: Line) -> None:
    bridge = make_bridge(line.server.port, extrapolate_encoder=True, heartbeat_s=1.0)
    bridges.append(bridge)
    assert bridge.wait_connected(5.0)
    time.sleep(0.1)  # 0.1 s at 2.5 m/s: the estimate moves ~2,500 ticks past the reading
    est = bridge.estimate_tick()
    assert est is not None and est - START_TICK >= 2000
    bridge.submit(pulse(1, 1, START_TICK + 1000, START_TICK + 1100))
    assert bridge.flush(5.0)
    assert bridge.snapshot().pulses_late == 1


def test_invalid_valves_are_refused_locally(line: Line) -> None:
    line.bridge.submit(pulse(70, 80, START_TICK + 100, START_TICK + 200))  # bar has 80
    line.bridge.submit(pulse(0, 0, START_TICK + 100, START_TICK + 200, actuator=3))  # 2 flaps
    assert line.bridge.flush(5.0)
    snap = line.bridge.snapshot()
    assert snap.pulses_invalid == 2 and snap.pulses_sent == 0


def test_delayed_reply_is_never_taken_for_a_later_request(
    bridges: list[PlcBridge], line: Line
) -> None:
    proxy = DelayProxy(line.server.port)
    try:
        bridge = make_bridge(proxy.port, timeout_s=0.05, retries=0, heartbeat_s=1.0)
        bridges.append(bridge)
        assert bridge.wait_connected(5.0)
        proxy.hold_next_reply(0.3)  # the pulse write's reply arrives after the timeout
        bridge.submit(pulse(4, 4, START_TICK + 1000, START_TICK + 2000))
        assert bridge.flush(5.0)
        for k in range(5):  # later requests get their own replies
            bridge.submit(pulse(10 + k, 10 + k, START_TICK + 3000, START_TICK + 4000))
        assert bridge.flush(5.0)
        snap = bridge.snapshot()
        assert proxy.held == 1
        assert snap.read_errors >= 1 and "no valid reply" in snap.last_error
        assert snap.reconnects >= 1
        assert snap.pulses_acked == 6 and snap.pulses_rejected_by_plc == 0
        assert line.core.pending() == 6 and line.core.acked_seq == 6  # each taken once
    finally:
        proxy.close()


def test_exception_reply_is_reported_with_the_register(
    bridges: list[PlcBridge], line: Line
) -> None:
    bridge = make_bridge(line.server.port, device_id=7)  # the PLC answers as unit 1 only
    bridges.append(bridge)
    assert not bridge.wait_connected(0.5)
    err = bridge.snapshot().last_error
    assert f"read IR 0-{rm.IR_STATUS_WORDS - 1}" in err and "exception" in err


def _garbage_server(reply: Callable[[bytes], bytes]) -> tuple[socket.socket, threading.Thread]:
    """A TCP server on 127.0.0.1 answering each request with ``reply(request)``."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                try:
                    while data := conn.recv(1024):
                        conn.sendall(reply(data))
                except OSError:
                    pass

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    return listener, th


def _short_read_reply(request: bytes) -> bytes:
    tid, _, _, unit, fc = struct.unpack(">HHHBB", request[:8])
    pdu = bytes([fc, 2, 0, 1])  # one register where more were asked for
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


def _wrong_function_reply(request: bytes) -> bytes:
    tid, _, _, unit, _fc = struct.unpack(">HHHBB", request[:8])
    n = rm.IR_STATUS_WORDS
    pdu = bytes([3, 2 * n]) + bytes(2 * n)  # holding registers for an input read
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


@pytest.mark.parametrize(
    ("reply", "cause"),
    [
        (_short_read_reply, f"1 words, want {rm.IR_STATUS_WORDS}"),
        (_wrong_function_reply, "function 3, want 4"),
    ],
)
def test_malformed_reply_is_a_fault_naming_the_register(
    bridges: list[PlcBridge], reply: Callable[[bytes], bytes], cause: str
) -> None:
    listener, _ = _garbage_server(reply)
    try:
        bridge = make_bridge(int(listener.getsockname()[1]), timeout_s=0.05, retries=0)
        bridges.append(bridge)
        assert not bridge.wait_connected(0.5)
        err = bridge.snapshot().last_error
        assert f"read IR 0-{rm.IR_STATUS_WORDS - 1}: malformed reply" in err and cause in err, err
    finally:
        listener.close()


def test_nothing_listening_backs_off_without_hanging(bridges: list[PlcBridge]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])  # bound, not listening: connections refused
        bridge = make_bridge(port, reconnect_max_s=0.05)
        bridges.append(bridge)
        assert not bridge.wait_connected(0.3)
        assert "connect tcp 127.0.0.1" in bridge.snapshot().last_error
        t0 = time.monotonic()
        bridge.stop()
        assert time.monotonic() - t0 < 2.0


def test_queue_overflow_is_counted(bridges: list[PlcBridge], line: Line) -> None:
    line.server.stop()  # nothing can be sent: the queue fills
    bridge = make_bridge(line.server.port, max_queue=10, reconnect_max_s=0.05)
    bridges.append(bridge)
    for k in range(25):
        bridge.submit(pulse(k, k, START_TICK + 10_000, START_TICK + 10_100))
    assert wait_for(lambda: bridge.snapshot().pulses_overflow == 15)
    assert not bridge.flush(0.1)  # ten still waiting for the PLC


def test_estop_belt_stop_and_commands_seen_through_the_bridge(line: Line) -> None:
    core, bridge = line.core, line.bridge

    def state_is(code: rm.PackMLState) -> bool:
        return bridge.snapshot().state == code

    core.set_estop(True)
    assert wait_for(lambda: state_is(rm.PackMLState.ABORTED) and bridge.snapshot().estop)
    bridge.submit(pulse(1, 1, START_TICK + 100, START_TICK + 200))
    assert bridge.flush(5.0)
    assert bridge.snapshot().pulses_rejected_by_plc == 1  # not ready: nothing runs
    core.set_estop(False)
    bridge.command(rm.PackMLCommand.RESET)
    assert wait_for(lambda: state_is(rm.PackMLState.IDLE))
    assert bridge.snapshot().faults == 0
    bridge.command(rm.PackMLCommand.START)
    assert wait_for(lambda: state_is(rm.PackMLState.EXECUTE))
    core.advance(START_TICK + 50, 0.0, 1.0)  # the belt stops
    assert wait_for(lambda: state_is(rm.PackMLState.SUSPENDED))
    assert bridge.snapshot().speed_mm_s == 0.0
    bridge.submit(pulse(2, 2, START_TICK + 100, START_TICK + 200))  # still taken
    assert bridge.flush(5.0)
    core.advance(START_TICK + 60, 2500.0, 2.0)  # and runs again
    assert wait_for(lambda: state_is(rm.PackMLState.EXECUTE))
    snap = bridge.snapshot()
    assert (snap.pulses_acked, snap.pulses_rejected_by_plc) == (1, 1)
    assert core.pending() == 1


class RefusingPlc(PlcCore):
    """A PLC (test double of the device) that refuses every pulse-ring write."""

    def write_holding(self, address: int, values: Sequence[int]) -> rm.ExcCode | None:
        if address >= rm.HR_RING_BASE:
            self.last_reject = (int(values[0]), rm.RejectReason.BAD_VALVES)
            return rm.ExcCode.ILLEGAL_VALUE
        return super().write_holding(address, values)


def test_refused_pulse_write_is_a_fault_naming_register_and_seq(bridges: list[PlcBridge]) -> None:
    core = RefusingPlc(80, watchdog_ms=5000, clock=time.monotonic)
    core.advance(START_TICK, 2500.0, 0.0)
    with VirtualPlcServer(core) as server:
        bridge = make_bridge(server.port)
        bridges.append(bridge)
        assert bridge.wait_connected(5.0)
        bridge.submit(pulse(1, 2, START_TICK + 100, START_TICK + 200))
        assert bridge.flush(5.0)
        snap = bridge.snapshot()
        assert snap.pulses_rejected_by_plc == 1 and snap.pulses_acked == 0
        assert "write HR 208-215 + read HR 100-135: exception 03 ILLEGAL_VALUE" in snap.last_error
        assert "seq 1 BAD_VALVES" in snap.last_error
        hb = snap.heartbeat
        assert wait_for(lambda: bridge.snapshot().heartbeat > hb + 2)  # link still up
        assert bridge.snapshot().connected


def test_commands_queued_while_the_link_is_down_are_dropped(
    bridges: list[PlcBridge], line: Line
) -> None:
    line.server.stop()
    bridge = make_bridge(line.server.port, reconnect_max_s=0.05)
    bridges.append(bridge)
    bridge.command(rm.PackMLCommand.STOP)
    assert wait_for(lambda: "STOP dropped: link down" in bridge.snapshot().last_error)


class CancelSwallowingLink(CoreLink):
    """The in-process link, with one request that swallows a cancellation, as
    ``asyncio.wait_for`` does on Python 3.11 when the reply lands with the
    cancel (CPython gh-86296; pymodbus awaits every reply with it)."""

    def __init__(self, core: PlcCore) -> None:
        super().__init__(core)
        self.hang_next = ""  # "read" (status) or "write_read" (pulses)
        self.entered = threading.Event()

    async def _maybe_hang(self, what: str) -> None:
        if self.hang_next == what:
            self.hang_next = ""
            self.entered.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(30)

    async def read_input(self, address: int, count: int) -> list[int]:
        await self._maybe_hang("read")
        return await super().read_input(address, count)

    async def write_read(
        self, write_address: int, values: Sequence[int], read_address: int, read_count: int
    ) -> list[int]:
        await self._maybe_hang("write_read")
        return await super().write_read(write_address, values, read_address, read_count)


@pytest.mark.parametrize("where", ["read", "write_read"])
def test_stop_is_prompt_even_when_a_request_swallows_the_cancel(where: str) -> None:
    core = PlcCore(8, watchdog_ms=5000, clock=time.monotonic)
    core.advance(START_TICK, 2500.0, 0.0)
    link = CancelSwallowingLink(core)
    bridge = PlcBridge(BridgeConfig(heartbeat_s=30.0), link=link)
    bridge.start()
    try:
        assert bridge.wait_connected(5.0)
        link.hang_next = where
        if where == "read":
            bridge.request_poll()
        else:
            bridge.submit(pulse(1, 1, START_TICK + 1000, START_TICK + 1100))
        assert link.entered.wait(5.0)
    finally:
        t0 = time.monotonic()
        bridge.stop()
    assert time.monotonic() - t0 < 1.0
