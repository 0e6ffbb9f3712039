"""The virtual PLC's allow-list of client addresses, on real sockets on
loopback: 127.0.0.2 is another client address of this host (all of 127/8 is
loopback), so one test can be both an allowed and a refused client."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import time

import pytest

from sim.vplc.core import PlcCore
from sim.vplc.server import VirtualPlcServer

READ_IR0 = struct.pack(">HHHBBHH", 7, 0, 6, 1, 4, 0, 2)


def _ask(port: int, source: str) -> bytes:
    """One FC 04 request from ``source``; the reply, or b"" when closed."""
    with socket.create_connection(
        ("127.0.0.1", port), timeout=2.0, source_address=(source, 0)
    ) as s:
        try:
            s.sendall(READ_IR0)
            return s.recv(64)
        except OSError:
            return b""


@pytest.mark.parametrize(
    ("allow", "served", "refused"),
    [
        (None, ("127.0.0.1", "127.0.0.2"), ()),
        (["127.0.0.2"], ("127.0.0.2",), ("127.0.0.1",)),
        (["127.0.0.1", "127.0.0.2"], ("127.0.0.1", "127.0.0.2"), ()),
        ([], (), ("127.0.0.1", "127.0.0.2")),
    ],
)
def test_only_allowed_addresses_are_served(
    allow: list[str] | None, served: tuple[str, ...], refused: tuple[str, ...]
) -> None:
    core = PlcCore(8, clock=time.monotonic)
    with VirtualPlcServer(core, allow=allow) as server:
        for src in served:
            reply = _ask(server.port, src)
            assert len(reply) == 13 and reply[:2] == b"\x00\x07", (src, reply)
        for src in refused:
            assert _ask(server.port, src) == b"", src
        assert server.refused == len(refused)
        assert server.gate.last_refused == (refused[-1] if refused else "")
        for src in served:  # still serving after a refusal
            assert len(_ask(server.port, src)) == 13


def test_sim_plc_allow_flag_refuses_others_and_bad_addresses_are_one_line_errors() -> None:
    base = [sys.executable, "-m", "sortline.cli", "sim", "plc", "--port", "0"]
    proc = subprocess.Popen(
        [*base, "--allow", "127.0.0.2", "--duration", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        port = int(banner.split("127.0.0.1:")[1].split()[0])
        assert _ask(port, "127.0.0.1") == b""
        assert len(_ask(port, "127.0.0.2")) == 13
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    bad = subprocess.run([*base, "--allow", "127.0.0.1,plc.local"], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "--allow" in lines[0] and "plc.local" in lines[0], bad.stderr


def test_the_virtual_plc_and_the_api_listen_on_loopback_by_default() -> None:
    from sortline.config import load_config

    cfg = load_config()
    assert cfg.api.host == "127.0.0.1" and cfg.plc.host == "127.0.0.1"
    with VirtualPlcServer(PlcCore(8)) as server:
        listener = server._server
        assert listener is not None
        bound = {s.getsockname()[0] for s in getattr(listener.transport, "sockets", ())}
    assert bound == {"127.0.0.1"}
