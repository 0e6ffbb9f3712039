"""PackML commands through the bridge over real loopback sockets: written at
once, evaluated by the PLC (IR 92-94), each with a logged outcome."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from core.types import Pulses
from plc import regmap as rm
from plc.bridge import CommandOutcome, PlcBridge
from plc.regmap import PackMLCommand as C
from plc.regmap import PackMLState as S
from sim.vplc.core import PlcCore
from sim.vplc.server import VirtualPlcServer

from .conftest import START_TICK, Line, make_bridge


def outcome(bridge: PlcBridge, n: int, timeout_s: float = 2.0) -> CommandOutcome:
    """The ``n``-th command outcome (1-based), waiting for it."""
    end = time.monotonic() + timeout_s
    while len(log := bridge.command_log()) < n:
        assert time.monotonic() < end, f"no outcome {n}: {log}"
        time.sleep(0.002)
    return log[n - 1]


def state_after_poll(bridge: PlcBridge) -> S:
    assert bridge.poll_now(2.0)
    return S(bridge.snapshot().state)


def serve(
    core: PlcCore, bridges: list[PlcBridge], **kw: object
) -> tuple[VirtualPlcServer, PlcBridge]:
    core.advance(START_TICK, 2500.0, 0.0)
    server = VirtualPlcServer(core)
    server.start()
    bridge = make_bridge(server.port, **kw)
    bridges.append(bridge)
    assert bridge.wait_connected(5.0), bridge.snapshot().last_error
    return server, bridge


def test_estop_cycle_through_the_bridge_commands(line: Line) -> None:
    core, bridge = line.core, line.bridge
    core.set_estop(True)
    assert state_after_poll(bridge) is S.ABORTED and bridge.snapshot().estop
    steps = [
        (C.RESET, "refused: E-stop open", S.ABORTED),
        (C.START, "refused: not allowed in ABORTED", S.ABORTED),
        (None, "", S.ABORTED),  # the E-stop is released: still latched
        (C.RESET, "taken", S.IDLE),
        (C.START, "taken", S.EXECUTE),
        (C.START, "refused: not allowed in EXECUTE", S.EXECUTE),
    ]
    n = 0
    for cmd, result, state in steps:
        if cmd is None:
            core.set_estop(False)
        else:
            bridge.command(cmd)
            n += 1
            got = outcome(bridge, n)
            assert (got.name, got.result) == (cmd.name, result)
            assert abs(got.t_unix_s - time.time()) < 5.0
        assert state_after_poll(bridge) is state
    assert bridge.snapshot().last_command == "START: refused: not allowed in EXECUTE"
    assert bridge.snapshot().faults == 0
    on = START_TICK + 500
    bridge.submit(Pulses(actuator=[0], first_valve=[2], last_valve=[2], on_tick=[on],
                         off_tick=[on + 50], track_id=[0],
                         fraction=np.zeros(1, dtype=np.int16)))  # fmt: skip
    assert bridge.flush(5.0)
    snap = bridge.snapshot()
    assert (snap.pulses_acked, snap.pulses_rejected_by_plc) == (1, 0)
    assert core.pending() == 1


def test_a_command_goes_out_without_waiting_for_the_heartbeat(
    line: Line, bridges: list[PlcBridge]
) -> None:
    bridge = make_bridge(line.server.port, heartbeat_s=5.0)
    bridges.append(bridge)
    assert bridge.wait_connected(5.0)
    time.sleep(0.05)  # the first heartbeat period has started
    t0 = time.monotonic()
    bridge.command(C.HOLD)
    assert outcome(bridge, 1).result == "taken"
    assert time.monotonic() - t0 < 0.5
    assert line.core.state is S.HELD


def test_commands_given_back_to_back_are_taken_in_order(line: Line) -> None:
    for cmd in (C.STOP, C.RESET, C.START, C.SUSPEND, C.UNSUSPEND):
        line.bridge.command(cmd)
    log = [outcome(line.bridge, k) for k in range(1, 6)]
    assert [(o.name, o.result) for o in log] == [
        (c, "taken") for c in ("STOP", "RESET", "START", "SUSPEND", "UNSUSPEND")
    ]
    assert line.core.state is S.EXECUTE and line.core.command_count == 5


class SilentPlc(PlcCore):
    """A PLC (test double of the device) whose program leaves IR 92-94 at 0."""

    def status_words(self) -> dict[str, int]:
        words = super().status_words()
        words.update(last_command=0, command_result=0, command_count=0)
        return words


def test_a_plc_that_does_not_report_results_gets_sent(bridges: list[PlcBridge]) -> None:
    core = SilentPlc(8, watchdog_ms=5000, clock=time.monotonic)
    server, bridge = serve(core, bridges)
    try:
        bridge.command(C.STOP)
        assert outcome(bridge, 1).result == "sent"
        assert core.state is S.STOPPED  # it did take it
        t0 = time.monotonic()
        bridge.command(C.RESET)  # known now: no second wait for IR 94
        assert outcome(bridge, 2).result == "sent"
        assert time.monotonic() - t0 < 0.2
        assert state_after_poll(bridge) is S.IDLE
    finally:
        server.stop()


class LocalModePlc(PlcCore):
    """A PLC (test double of the device) in local mode: refuses remote commands."""

    def write_holding(self, address: int, values: Sequence[int]) -> rm.ExcCode | None:
        if address <= rm.HR_COMMAND < address + len(values):
            return rm.ExcCode.DEVICE_FAILURE
        return super().write_holding(address, values)


def test_an_exception_reply_is_an_error_outcome(bridges: list[PlcBridge]) -> None:
    core = LocalModePlc(8, watchdog_ms=5000, clock=time.monotonic)
    server, bridge = serve(core, bridges)
    try:
        bridge.command(C.STOP)
        got = outcome(bridge, 1)
        assert got.result == "error: write HR 2: exception 04 DEVICE_FAILURE", got
        assert bridge.snapshot().last_command == f"STOP: {got.result}"
        assert core.state is S.EXECUTE
        hb = bridge.snapshot().heartbeat
        assert bridge.poll_now(2.0) and bridge.snapshot().connected  # the link stays up
        assert bridge.snapshot().heartbeat >= hb
    finally:
        server.stop()


def test_a_command_while_the_link_is_down_is_dropped_at_once(
    bridges: list[PlcBridge], line: Line
) -> None:
    port = line.server.port
    line.server.stop()
    bridge = make_bridge(port, reconnect_max_s=0.05)
    bridges.append(bridge)
    bridge.command(C.START)
    got = outcome(bridge, 1)
    assert (got.name, got.result) == ("START", "dropped: link down")
    with VirtualPlcServer(line.core, port=port):  # the PLC comes back: START stays dropped
        assert bridge.wait_connected(5.0)
        assert bridge.poll_now(2.0)
        assert len(bridge.command_log()) == 1 and line.core.command_count == 0


def test_the_command_log_is_bounded(line: Line) -> None:
    for _ in range(40):
        line.bridge.command(C.HOLD)
    end = time.monotonic() + 5.0
    while line.core.command_count < 40:
        assert time.monotonic() < end
        time.sleep(0.005)
    assert line.bridge.poll_now(2.0)
    log = line.bridge.command_log()
    assert len(log) == 32 and all(str(o) == "HOLD: taken" for o in log)
