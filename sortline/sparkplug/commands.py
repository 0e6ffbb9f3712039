"""NCMD line commands of the Sparkplug node, on a thread of their own:
``Line Control/Start|Stop|Reset`` (true) and ``Line Control/Recipe`` (the
recipe's TOML text), allowed by ``[mqtt] command_role`` (operator: start,
stop, reset; engineer: also the recipe, as for the status API), each written
to the audit log whatever its outcome (200 done, 403 not allowed, 409 the
line's state refused it, 422 a bad value, 503 too many waiting)."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from sortline.auth import AuditEntry, AuditLog
from sortline.config import MqttSection
from sortline.sparkplug.metrics import RECIPE, Value
from sortline.state import Command, PackMLState, TransitionError

__all__ = ["COMMANDS", "CommandRunner", "CommandTarget"]

log = logging.getLogger("sortline.sparkplug")

COMMANDS = {
    "Line Control/Start": Command.START,
    "Line Control/Stop": Command.STOP,
    "Line Control/Reset": Command.RESET,
}
_RANK = {"operator": 1, "engineer": 2}


class CommandTarget(Protocol):
    """What NCMD commands act on (``SortingLine``)."""

    def command(self, cmd: Command, who: str) -> PackMLState: ...

    def switch_recipe(self, text: str, who: str) -> dict[str, Any]: ...


class CommandRunner:
    """``offer`` never blocks (paho's network thread calls it); the line's
    command (bounded wait for the PLC) runs on the runner's thread, then
    ``done`` is called (the node publishes the new state at once)."""

    def __init__(
        self,
        cfg: MqttSection,
        target: CommandTarget | None,
        audit: AuditLog | None,
        client: str,
        done: Callable[[], None],
    ) -> None:
        self.cfg, self.target, self.audit, self.client, self.done = cfg, target, audit, client, done
        self.accepted = self.refused = 0
        self._queue: queue.Queue[tuple[str, Value] | None] = queue.Queue(maxsize=16)
        self._thread = threading.Thread(target=self._run, name="mqtt-commands", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout_s)
        self._thread.join(timeout_s)

    def offer(self, name: str, value: Value) -> None:
        try:
            self._queue.put_nowait((name, value))
        except queue.Full:
            self._audit(name, 503, "refused: too many commands waiting")

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._execute(*item)
            self.done()

    def _execute(self, name: str, value: Value) -> None:
        role = self.cfg.command_role
        need = "engineer" if name == RECIPE else "operator"
        who = self.cfg.command_name
        if self.target is None or not role:
            self._audit(name, 403, "refused: commands over MQTT are off ([mqtt] command_role)")
            return
        if _RANK[role] < _RANK[need]:
            self._audit(name, 403, f"refused: role {role} may not do this (needs {need})")
            return
        try:
            if name == RECIPE:
                if not isinstance(value, str) or not value.strip():
                    self._audit(name, 422, "refused: Recipe needs the recipe's TOML text")
                    return
                info = self.target.switch_recipe(value, who)
                self._audit(name, 200, f"recipe {info.get('name')!r} v{info.get('version')}")
                return
            if value is not True:
                self._audit(name, 422, f"refused: {name} needs the value true")
                return
            state = self.target.command(COMMANDS[name], who)
            self._audit(name, 200, f"state {state.name}")
        except TransitionError as exc:
            self._audit(name, 409, f"refused: {exc}")
        except Exception as exc:  # a bad recipe (InputFileError) and the like: said, not raised
            self._audit(name, 422, f"refused: {exc}")

    def _audit(self, name: str, status: int, detail: str) -> None:
        ok = 200 <= status < 300
        if ok:
            self.accepted += 1
        else:
            self.refused += 1
        (log.warning if ok else log.error)("MQTT NCMD %s: %d %s", name, status, detail)
        if self.audit is not None:
            self.audit.append(
                AuditEntry(
                    t_unix_s=time.time(),
                    who=self.cfg.command_name,
                    role=self.cfg.command_role or None,
                    client=self.client,
                    action=f"NCMD {name}",
                    status=status,
                    detail=detail,
                )
            )
