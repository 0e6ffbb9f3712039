"""The plant's MQTT broker: Debian ``mosquitto`` on 127.0.0.1 and a free port,
with a config file of its own (loopback listener, anonymous clients: the
plant on one machine is a demo, not a plant network)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from sortline.plantctl.procs import spawn, stop_all

__all__ = ["MOSQUITTO_PACKAGE", "Broker", "BrokerStartError"]

MOSQUITTO_PACKAGE = "mosquitto"


class BrokerStartError(RuntimeError):
    """mosquitto exited or did not listen in time."""


def listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


class Broker:
    """``start()`` returns once the broker accepts connections."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port = folder, port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.folder / "mosquitto.log"

    def start(self, timeout_s: float = 10.0) -> Broker:
        self.folder.mkdir(parents=True, exist_ok=True)
        conf = self.folder / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"
            "persistence false\n"
        )
        self.proc = spawn(["mosquitto", "-c", str(conf)], self.log)
        deadline = time.monotonic() + timeout_s
        while not listening(self.port):
            if self.proc.poll() is not None:
                raise BrokerStartError(
                    f"mosquitto exited ({self.proc.returncode}) on port {self.port}: see {self.log}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerStartError(f"mosquitto did not listen on port {self.port} in time")
            time.sleep(0.05)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.proc is not None:
            stop_all([self.proc], timeout_s)
