"""Shared fixtures: free loopback ports and a line config for tests."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    return _free_port()


@pytest.fixture
def line_config_file(tmp_path: Path) -> Path:
    """The embedded default line on free loopback ports (virtual PLC and API)."""
    p = tmp_path / "line.toml"
    p.write_text(f"[plc]\nport = {_free_port()}\n[api]\nport = {_free_port()}\n")
    return p
