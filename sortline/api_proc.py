"""The status API served from its own process, so people watching cost the
real-time loop (nearly) nothing.

**Why.** In the controller's process every request is Python that holds
the GIL: uvicorn's HTTP parsing, FastAPI's routing and dependencies,
pydantic validation and JSON (measured: 1.5 ms of the API thread's CPU per
camera-preview request, about 3 ms per ``/valves`` or ``/alarms``; the
framework's floor alone 0.25-0.4 ms). The frame loop releases the GIL at
every OpenCV, ONNX and Numba call and must win it back each time, so that
CPU lands on its frame time: three dashboards and a scrape raised the
loop's p99 by 4.8 ms (``bench api_load``). Here uvicorn, FastAPI and the
routes (``sortline.api.create_app``, the very same app) run in a child
process under their own GIL; they reach the line through
``sortline.remote`` proxies, and what stays in the controller's process per
request is the call on the line's object and the pickling of its answer.

**Priority.** The child lowers its own scheduling priority (``nice``,
default 10: ``[api] nice``), so on a busy machine the loop's threads take a
free core before it does. The API still gets the CPU the loop leaves.

**Life.** ``ApiProcess`` has ``ApiServer``'s interface (``start``, ``port``,
``stop``). The child is spawned (never forked: the controller has threads);
``start`` returns once it listens, with the port it bound (port 0: a free
one, kept for restarts). A child that dies (killed, crashed) is started
again on the same port by a watchdog thread within about a second, and the
restart is counted (``restarts``), logged and raised as the ``api.process``
alarm (``conditions``, a source of the line's alarm book; held for a minute
after the restart so it is seen); a child whose parent dies
leaves at once (its control pipe closes). ``stop`` asks it to finish its
requests and exit, then kills it if it has not within the timeout.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from sortline.alarm_rules import Raised
from sortline.auth import AuditLog, KeyBook
from sortline.remote import ObjectServer, RemoteClient

__all__ = ["ALARM_HOLD_S", "DEFAULT_NICE", "ApiProcess"]

log = logging.getLogger(__name__)

DEFAULT_NICE = 10
ALARM_HOLD_S = 60.0  # how long the api.process alarm stays after a restart


def _child(
    address: str,
    authkey: bytes,
    roots: dict[str, Any],
    keys: KeyBook,
    host: str,
    port: int,
    nice: int,
    control: Connection,
) -> None:
    """The API process: the app over remote objects, uvicorn in a thread,
    this thread waiting on the control pipe."""
    import uvicorn

    from sortline.api import create_app

    if nice:
        os.nice(nice)
    try:
        client = RemoteClient(address, authkey, roots)
        app = create_app(client.root("line"), keys, client.root("audit"), preview_inline=True)  # type: ignore[arg-type]
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="api", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30.0
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"could not listen on {host}:{port} (port in use?)")
            time.sleep(0.01)
        bound = port
        for s in getattr(server, "servers", []):
            for sock in s.sockets:
                bound = int(sock.getsockname()[1])
        control.send(("ready", bound))
    except Exception as exc:
        control.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    with contextlib.suppress(EOFError, OSError):
        control.recv()  # "stop", or EOF when the controller's process is gone
    server.should_exit = True
    thread.join(timeout=5.0)
    for close in getattr(app.state, "on_close", []):
        close()


def _finish(proc: Any, control: Connection | None, timeout_s: float) -> None:
    """Ask the child to finish its requests and leave; kill it if it has not
    within ``timeout_s``."""
    if control is not None:
        with contextlib.suppress(OSError, ValueError):
            control.send("stop")
    if proc is not None:
        proc.join(timeout_s)
        if proc.is_alive():
            proc.kill()
            proc.join(2.0)
    if control is not None:
        control.close()


class ApiProcess:
    """The status API over ``line`` in a child process (module doc)."""

    def __init__(
        self,
        line: Any,
        keys: KeyBook,
        audit: AuditLog,
        host: str,
        port: int,
        nice: int = DEFAULT_NICE,
        start_timeout_s: float = 60.0,
    ) -> None:
        self.line, self.keys, self.audit = line, keys, audit
        self.host, self._port, self.nice = host, port, nice
        self.start_timeout_s = start_timeout_s
        self.restarts = 0
        self._exits: list[tuple[float, int | None]] = []  # (monotonic s, exit code) of deaths
        self._ctx = mp.get_context("spawn")
        self._server: ObjectServer | None = None
        self._proc: Any = None
        self._control: Connection | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watchdog: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else int(self._proc.pid)

    @property
    def rpc_requests(self) -> int:
        """Requests the controller's process has answered for the API."""
        return 0 if self._server is None else self._server.requests

    @property
    def rpc_cpu_s(self) -> float:
        """The controller process's CPU time spent answering them."""
        return 0.0 if self._server is None else self._server.cpu_s

    def start(self, timeout_s: float | None = None) -> None:
        """Start the child and return once it listens; ``RuntimeError`` (one
        line) if it cannot."""
        self._server = ObjectServer({"line": self.line, "audit": self.audit})
        try:
            self._spawn(self.start_timeout_s if timeout_s is None else timeout_s)
        except BaseException:
            self._server.close()
            self._server = None
            raise
        self._watchdog = threading.Thread(target=self._watch, name="api-watchdog", daemon=True)
        self._watchdog.start()

    def _spawn(self, timeout_s: float) -> None:
        assert self._server is not None
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=_child,
            args=(self._server.address, self._server.authkey, self._server.roots, self.keys,
                  self.host, self._port, self.nice, child),
            name="sortline-api",
            daemon=True,
        )  # fmt: skip
        proc.start()
        child.close()
        try:
            if not parent.poll(timeout_s):
                raise RuntimeError(f"the status API did not start in {timeout_s:g} s")
            kind, body = parent.recv()
        except (EOFError, OSError):
            kind, body = "error", f"its process exited (code {proc.exitcode})"
        except RuntimeError:
            proc.kill()
            proc.join(2.0)
            parent.close()
            raise
        if kind != "ready":
            proc.join(2.0)
            parent.close()
            raise RuntimeError(f"the status API failed to start: {body}")
        with self._lock:
            self._proc, self._control, self._port = proc, parent, int(body)

    def _watch(self) -> None:
        """Start the child again whenever it dies while the API should run."""
        backoff_s = 0.5
        while not self._stopping.is_set():
            proc = self._proc
            if proc is None:
                return
            proc.join(timeout=0.5)
            if self._stopping.is_set() or proc.is_alive():
                continue
            log.warning("status API process exited (code %s); starting it again on port %d",
                        proc.exitcode, self._port)  # fmt: skip
            with self._lock:
                self._exits.append((time.monotonic(), proc.exitcode))
                self._proc = None
            if self._control is not None:
                self._control.close()
            while not self._stopping.is_set():
                try:
                    self._spawn(self.start_timeout_s)
                    self.restarts += 1
                    backoff_s = 0.5
                    if self._stopping.is_set():  # stop() came while this one started
                        with self._lock:
                            _finish(self._proc, self._control, 5.0)
                    break
                except RuntimeError as exc:
                    log.error("status API restart failed: %s; again in %.1f s", exc, backoff_s)
                    self._stopping.wait(backoff_s)
                    backoff_s = min(10.0, 2 * backoff_s)

    def conditions(self) -> dict[str, Raised]:
        """The ``api.process`` alarm (for the line's alarm book) while the
        API's process is down, and for ``ALARM_HOLD_S`` after it died."""
        now = time.monotonic()
        with self._lock:
            self._exits = [e for e in self._exits if now - e[0] < ALARM_HOLD_S]
            down = self._watchdog is not None and self._proc is None
            exits, down = list(self._exits), down and not self._stopping.is_set()
        if not exits and not down:
            return {}
        state = "down, restarting" if down else f"restarted on port {self._port}"
        code = exits[-1][1] if exits else None
        return {
            "api.process": Raised(
                "warning",
                f"status API process {state}: exited {len(exits)} time(s) in the last "
                f"{ALARM_HOLD_S:g} s (last exit code {code}); the line went on sorting",
            )
        }

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        with self._lock:
            proc, control = self._proc, self._control
        _finish(proc, control, timeout_s)
        if self._watchdog is not None:
            self._watchdog.join(timeout=2.0)
        if self._server is not None:
            self._server.close()
            self._server = None
