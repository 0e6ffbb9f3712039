"""The line's PackML (ISA-TR88) state, as the controller sees it.

The PLC runs the machine: its state (IR 3) is the line's state, and operator
commands go to it (HR 2, ``plc.regmap.PackMLCommand``). The controller adds
only what the PLC cannot know:

- the PLC link lost -> Held ("plc link lost"), back by itself when it returns;
- internal causes of its own (camera stalled or delivering wrong frames, no
  encoder count for the frames) -> Held while the PLC executes, back by
  itself when they clear;
- the E-stop (hardwired, observed through the PLC's inputs) -> Aborted,
  latched in the PLC until Reset with the E-stop released, then Start.
- a stopped belt (PLC Suspended) -> Suspended.

``command`` checks an operator command against the current state (a clear
refusal for what PackML does not allow from there) and returns the PLC
command to send; the state then follows the PLC. Only Execute lets pulses
through; in every other state the PLC keeps valves de-energised.
Acting states (Holding, Suspending, ...) passed within one observation are
recorded in the history so the sequence is visible to operators.
"""

from __future__ import annotations

import dataclasses
import enum
import threading
import time
from collections import deque
from collections.abc import Callable

from plc.regmap import PackMLCommand, PackMLState

__all__ = ["Command", "Conditions", "LineStateMachine", "PackMLState", "TransitionError"]

S = PackMLState


class Command(enum.Enum):
    START = "start"
    STOP = "stop"
    RESET = "reset"

    @property
    def plc(self) -> PackMLCommand:
        return PackMLCommand[self.name]


class TransitionError(RuntimeError):
    """An operator command that the current state does not accept, or that the
    PLC refused."""


@dataclasses.dataclass(frozen=True, slots=True)
class Conditions:
    """What the controller observed this cycle.

    plc_state: the PLC's PackML state (None before the first read);
    holds: the controller's own reasons to hold (camera, time base)."""

    plc_linked: bool = True
    plc_state: PackMLState | None = PackMLState.EXECUTE
    estop: bool = False
    belt_running: bool = True
    holds: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Transition:
    t_unix_s: float
    from_state: str
    to_state: str
    cause: str


_ALLOWED: dict[Command, frozenset[PackMLState]] = {
    Command.START: frozenset({S.IDLE}),
    Command.STOP: frozenset({S.IDLE, S.EXECUTE, S.HELD, S.SUSPENDED, S.STARTING}),
    Command.RESET: frozenset({S.STOPPED, S.ABORTED, S.COMPLETE}),
}
_ACTING = {  # stable state -> the acting state passed on the way in
    S.HELD: S.HOLDING,
    S.SUSPENDED: S.SUSPENDING,
    S.ABORTED: S.ABORTING,
    S.STOPPED: S.STOPPING,
    S.IDLE: S.RESETTING,
}
_LEAVING = {S.HELD: S.UNHOLDING, S.SUSPENDED: S.UNSUSPENDING}
_EXECUTING = (S.EXECUTE, S.UNHOLDING, S.UNSUSPENDING, S.STARTING)


class LineStateMachine:
    """Thread-safe: the real-time loop calls ``observe``; the API ``command``."""

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
        self._estop = False
        self._causes: tuple[str, ...] = ()
        self._expected: tuple[str, float] | None = None

    @property
    def state(self) -> PackMLState:
        return self._state

    @property
    def causes(self) -> tuple[str, ...]:
        """Why the line is Held, Suspended, Stopped or Aborted (empty in Execute)."""
        return self._causes

    @property
    def may_actuate(self) -> bool:
        return self._state is PackMLState.EXECUTE

    def history(self) -> list[Transition]:
        with self._lock:
            return list(self._history)

    def expect(self, cause: str, within_s: float = 5.0) -> None:
        """An operator command the PLC took: the transitions it makes (within
        ``within_s``) are recorded with ``cause`` rather than the PLC's state."""
        with self._lock:
            self._expected = (cause, self._clock() + within_s)

    def note(self, cause: str) -> None:
        """Record an event that is not a state change (a command sent or refused)."""
        with self._lock:
            name = self._state.name
            self._history.append(Transition(self._clock(), name, name, cause))

    def _go(self, to: PackMLState, cause: str) -> None:
        if to is self._state:
            return
        leaving = _LEAVING.get(self._state)
        if leaving is not None and to is S.EXECUTE:
            self._history.append(Transition(self._clock(), self._state.name, leaving.name, cause))
            self._state = leaving
        acting = _ACTING.get(to)
        if acting is not None and self._state is not acting:
            self._history.append(Transition(self._clock(), self._state.name, acting.name, cause))
            self._state = acting
        self._history.append(Transition(self._clock(), self._state.name, to.name, cause))
        self._state = to

    def command(self, cmd: Command) -> PackMLCommand:
        """The PLC command for operator command ``cmd``, or ``TransitionError``
        when the line's state does not allow it."""
        with self._lock:
            allowed = _ALLOWED[cmd]
            if self._state not in allowed:
                names = ", ".join(sorted(s.name for s in allowed))
                raise TransitionError(
                    f"cannot {cmd.value} while {self._state.name}; allowed from {names}"
                )
            if cmd is Command.RESET and self._estop:
                raise TransitionError("cannot reset while the E-stop is still pressed")
            return cmd.plc

    def observe(self, cond: Conditions) -> PackMLState:
        """Apply this cycle's observation; returns the line's state after it."""
        with self._lock:
            self._estop = cond.estop
            target, causes = self._target(cond)
            cause = ", ".join(causes) or "plc " + target.name.lower()
            expected = self._expected
            if expected is not None and target is not self._state:
                if self._clock() <= expected[1]:
                    cause = expected[0]
                self._expected = None
            self._go(target, cause)
            self._causes = causes
            return self._state

    def _target(self, cond: Conditions) -> tuple[PackMLState, tuple[str, ...]]:
        if cond.estop:
            return S.ABORTED, ("e-stop",)
        if not cond.plc_linked or cond.plc_state is None:
            return S.HELD, ("plc link lost", *cond.holds)
        plc = cond.plc_state
        if plc in (S.ABORTED, S.ABORTING, S.CLEARING):
            return S.ABORTED, ("aborted: reset required",)
        if plc in (S.STOPPED, S.STOPPING):
            return S.STOPPED, ("stopped",)
        if plc in (S.IDLE, S.RESETTING):
            return S.IDLE, ("idle: start required",)
        if plc in (S.HELD, S.HOLDING):
            return S.HELD, ("plc held (heartbeat watchdog or operator hold)", *cond.holds)
        if cond.holds:
            return S.HELD, cond.holds
        if plc in (S.SUSPENDED, S.SUSPENDING) or (plc in _EXECUTING and not cond.belt_running):
            return S.SUSPENDED, ("belt stopped" if not cond.belt_running else "plc suspended",)
        if plc in _EXECUTING:
            return S.EXECUTE, ()
        return plc, (f"plc {plc.name.lower()}",)
