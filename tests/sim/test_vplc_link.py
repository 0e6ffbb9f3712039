"""The bridge over ``CoreLink`` (no sockets): the same behaviour as on the wire."""

from __future__ import annotations

import time

import numpy as np

from core.types import Pulses
from plc.bridge import BridgeConfig, PlcBridge
from sim.vplc.core import PlcCore
from sim.vplc.link import CoreLink

T = 50_000


def one(first: int, on: int, off: int) -> Pulses:
    return Pulses(actuator=[0], first_valve=[first], last_valve=[first], on_tick=[on],
                  off_tick=[off], track_id=[0], fraction=np.zeros(1, dtype=np.int16))  # fmt: skip


def wait_for(cond: object, timeout_s: float = 5.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():  # type: ignore[operator]
            return True
        time.sleep(0.005)
    return False


def test_bridge_over_core_link() -> None:
    core = PlcCore(16, watchdog_ms=5000, clock=time.monotonic)
    core.advance(T, 2500.0, 0.0)
    link = CoreLink(core)
    cfg = BridgeConfig(heartbeat_s=0.01, deadline_lead_ms=0.0, extrapolate_encoder=False,
                       reconnect_max_s=0.02)  # fmt: skip
    bridge = PlcBridge(cfg, link=link)
    bridge.start()
    try:
        assert bridge.wait_connected(5.0)
        bridge.submit(one(3, T + 10, T + 20))
        bridge.submit(one(99, T + 10, T + 20))  # no valve 99 on a 16-valve bar
        assert bridge.flush(5.0)
        snap = bridge.snapshot()
        assert (snap.pulses_acked, snap.pulses_invalid) == (1, 1)
        core.advance(T + 10, 2500.0, 0.0)
        assert core.valves_open().nonzero()[0].tolist() == [3]
        link.down = True  # the link fails; pulses queue; it comes back
        assert wait_for(lambda: not bridge.snapshot().connected)
        bridge.submit(one(4, T + 100, T + 200))
        link.down = False
        assert bridge.flush(5.0)
        snap = bridge.snapshot()
        assert snap.reconnects >= 1 and snap.pulses_acked == 2 and core.acked_seq == 2
        assert "link is down" in snap.last_error
    finally:
        bridge.stop()


def test_stepped_trigger_and_commands_over_core_link() -> None:
    """A stepped plant's loop: step to the next trigger, poll, read the latch."""
    from plc.regmap import PackMLCommand, PackMLState

    core = PlcCore(16, watchdog_ms=5000, clock=time.monotonic)
    core.advance(T, 2500.0, 0.0)
    cfg = BridgeConfig(heartbeat_s=1.0, deadline_lead_ms=0.0, extrapolate_encoder=False,
                       trigger_every_ticks=250)  # fmt: skip
    bridge = PlcBridge(cfg, link=CoreLink(core))
    bridge.start()
    try:
        assert bridge.wait_connected(5.0)
        for k in range(1, 4):
            tick = core.next_trigger_tick()
            assert tick == T + 250 * k
            core.advance(tick, 2500.0, 0.0)
            assert bridge.poll_now(2.0)
            lat = bridge.trigger_latches()
            assert (len(lat), lat.seq[-1], lat.tick[-1]) == (k, k, tick)
            assert bridge.encoder_samples().tick[-1] == tick
        bridge.command(PackMLCommand.STOP)
        assert wait_for(lambda: len(bridge.command_log()) == 1)
        assert str(bridge.command_log()[0]) == "STOP: taken"
        assert core.state is PackMLState.STOPPED
    finally:
        bridge.stop()
