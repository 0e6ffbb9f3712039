"""``sortline sim plc``: the virtual PLC alone, belt running by wall clock."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from plc.bridge import BridgeConfig, PlcBridge

CMD = [sys.executable, "-m", "sortline.cli", "sim", "plc"]


def test_sim_plc_serves_a_running_belt() -> None:
    proc = subprocess.Popen(
        [*CMD, "--port", "0", "--speed", "1.0", "--duration", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert "Modbus TCP 127.0.0.1:" in banner, banner
        port = int(banner.split()[4].rsplit(":", 1)[1])
        bridge = PlcBridge(BridgeConfig(port=port, timeout_s=0.5, heartbeat_s=0.02))
        bridge.start()
        try:
            assert bridge.wait_connected(10.0), bridge.snapshot().last_error
            first = bridge.snapshot()
            end = time.monotonic() + 10.0
            while bridge.snapshot().encoder_tick == first.encoder_tick:
                assert time.monotonic() < end, "encoder does not move"
                time.sleep(0.02)
            snap = bridge.snapshot()
            assert snap.speed_mm_s == 1000.0 and snap.state == 6  # Execute
        finally:
            bridge.stop()
    finally:
        proc.terminate()
        proc.wait(10)


def test_sim_plc_stops_after_its_duration() -> None:
    r = subprocess.run([*CMD, "--port", "0", "--duration", "0.2"],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "virtual PLC stopped" in r.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--port", "70000"], "--port"), (["--speed", "-1"], "--speed"),
     (["--duration", "-1"], "--duration"), (["--config", "/nonexistent.toml"], "nonexistent")],
)  # fmt: skip
def test_sim_plc_bad_arguments(args: list[str], message: str) -> None:
    r = subprocess.run([*CMD, *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr


def test_sim_plc_port_in_use() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = str(s.getsockname()[1])
        r = subprocess.run([*CMD, "--port", port, "--duration", "0.2"],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sortline sim plc: error: virtual PLC"), lines
