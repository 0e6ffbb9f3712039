"""The line's PackML (ISA-TR88) state machine, as the controller sees it.

The controller never drives the belt; it decides whether it may actuate.
Conditions observed every cycle move the line between states:

- E-stop (hardwired, observed via the PLC) -> Aborted, latched until ``reset``
  with the E-stop released.
- Internal causes (camera stalled, PLC link lost, PLC fault) -> Held; back to
  Execute by itself when every cause has cleared.
- External causes (belt stopped, no feed) -> Suspended; back when they clear.
- Operator commands: ``start`` (Idle -> Execute), ``stop`` (-> Stopped),
  ``reset`` (Stopped/Aborted -> Idle).

Only Execute lets pulses through; every other state keeps valves de-energised.
Acting states (Starting, Holding, ...) are passed through within one cycle and
recorded in the history so the sequence is visible to operators.
"""

from __future__ import annotations

import dataclasses
import enum
import threading
import time
from collections import deque
from collections.abc import Callable

from plc.regmap import PackMLState

__all__ = ["Command", "Conditions", "LineStateMachine", "PackMLState", "TransitionError"]


class Command(enum.Enum):
    START = "start"
    STOP = "stop"
    RESET = "reset"


class TransitionError(RuntimeError):
    """An operator command that the current state does not accept."""


@dataclasses.dataclass(frozen=True, slots=True)
class Conditions:
    """What the controller observed this cycle."""

    estop: bool = False
    plc_linked: bool = True
    plc_fault: bool = False
    camera_ok: bool = True
    belt_running: bool = True

    def hold_causes(self) -> tuple[str, ...]:
        causes = []
        if not self.plc_linked:
            causes.append("plc link lost")
        if self.plc_fault:
            causes.append("plc not executing")
        if not self.camera_ok:
            causes.append("camera stalled")
        return tuple(causes)

    def suspend_causes(self) -> tuple[str, ...]:
        return () if self.belt_running else ("belt stopped",)


@dataclasses.dataclass(frozen=True, slots=True)
class Transition:
    t_unix_s: float
    from_state: str
    to_state: str
    cause: str


# Which stable state each operator command leads to, from which states; the
# acting state passed through on the way.
_COMMANDS: dict[Command, tuple[frozenset[PackMLState], PackMLState, PackMLState]] = {
    Command.START: (frozenset({PackMLState.IDLE}), PackMLState.STARTING, PackMLState.EXECUTE),
    Command.STOP: (
        frozenset(
            {
                PackMLState.IDLE,
                PackMLState.EXECUTE,
                PackMLState.HELD,
                PackMLState.SUSPENDED,
            }
        ),
        PackMLState.STOPPING,
        PackMLState.STOPPED,
    ),
    Command.RESET: (
        frozenset({PackMLState.STOPPED, PackMLState.ABORTED}),
        PackMLState.RESETTING,
        PackMLState.IDLE,
    ),
}


class LineStateMachine:
    """Thread-safe: the real-time loop calls ``observe``; the API calls ``command``."""

    def __init__(
        self,
        initial: PackMLState = PackMLState.STOPPED,
        history_len: int = 200,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._state = initial
        self._lock = threading.Lock()
        self._clock = clock
        self._history: deque[Transition] = deque(maxlen=history_len)
        self._estop_latched = False
        self._causes: tuple[str, ...] = ()

    @property
    def state(self) -> PackMLState:
        return self._state

    @property
    def causes(self) -> tuple[str, ...]:
        """Why the line is Held, Suspended or Aborted (empty otherwise)."""
        return self._causes

    @property
    def may_actuate(self) -> bool:
        return self._state is PackMLState.EXECUTE

    def history(self) -> list[Transition]:
        with self._lock:
            return list(self._history)

    def _go(self, to: PackMLState, cause: str) -> None:
        if to is self._state:
            return
        self._history.append(Transition(self._clock(), self._state.name, to.name, cause))
        self._state = to

    def command(self, cmd: Command, who: str = "operator") -> PackMLState:
        with self._lock:
            allowed, acting, target = _COMMANDS[cmd]
            if self._state not in allowed:
                names = ", ".join(sorted(s.name for s in allowed))
                raise TransitionError(
                    f"cannot {cmd.value} while {self._state.name}; allowed from {names}"
                )
            if cmd is Command.RESET and self._estop_latched:
                raise TransitionError("cannot reset while the E-stop is still pressed")
            self._go(acting, f"{cmd.value} by {who}")
            self._go(target, f"{cmd.value} by {who}")
            self._causes = ()
            return self._state

    def observe(self, cond: Conditions) -> PackMLState:
        """Apply this cycle's conditions; returns the state after them."""
        with self._lock:
            self._estop_latched = cond.estop
            if cond.estop:
                if self._state is not PackMLState.ABORTED:
                    self._go(PackMLState.ABORTING, "e-stop")
                    self._go(PackMLState.ABORTED, "e-stop")
                self._causes = ("e-stop",)
                return self._state
            if self._state is PackMLState.ABORTED:
                self._causes = ("e-stop released: reset required",)
                return self._state
            hold, suspend = cond.hold_causes(), cond.suspend_causes()
            if self._state in (PackMLState.EXECUTE, PackMLState.SUSPENDED) and hold:
                self._go(PackMLState.HOLDING, ", ".join(hold))
                self._go(PackMLState.HELD, ", ".join(hold))
            elif self._state is PackMLState.HELD and not hold:
                self._go(PackMLState.UNHOLDING, "causes cleared")
                self._go(PackMLState.EXECUTE, "causes cleared")
            if self._state is PackMLState.EXECUTE and suspend:
                self._go(PackMLState.SUSPENDING, ", ".join(suspend))
                self._go(PackMLState.SUSPENDED, ", ".join(suspend))
            elif self._state is PackMLState.SUSPENDED and not suspend:
                self._go(PackMLState.UNSUSPENDING, "belt running")
                self._go(PackMLState.EXECUTE, "belt running")
            if self._state is PackMLState.HELD:
                self._causes = hold
            elif self._state is PackMLState.SUSPENDED:
                self._causes = suspend
            else:
                self._causes = ()
            return self._state
