"""The virtual PLC's machine states and which PackML command each allows
(plc/REGISTERS.md, "PackML commands"). Pure data, no locking."""

from __future__ import annotations

import enum

from plc.regmap import CommandResult, PackMLCommand


class Machine(enum.Enum):
    """The program's own state; ``PlcCore`` derives the reported PackML state
    (Execute, Suspended or Held while RUNNING)."""

    STOPPED = "stopped"
    IDLE = "idle"
    RUNNING = "running"
    ABORTED = "aborted"


_ANY = tuple(Machine)
ALLOWED: dict[PackMLCommand, tuple[Machine, ...]] = {
    PackMLCommand.RESET: _ANY,  # clears latched faults; Stopped/Aborted -> Idle
    PackMLCommand.START: (Machine.IDLE,),
    PackMLCommand.STOP: (Machine.RUNNING, Machine.IDLE),
    PackMLCommand.ABORT: _ANY,
    PackMLCommand.CLEAR: (Machine.ABORTED,),
    PackMLCommand.HOLD: (Machine.RUNNING,),
    PackMLCommand.UNHOLD: (Machine.RUNNING,),
    PackMLCommand.SUSPEND: (Machine.RUNNING,),
    PackMLCommand.UNSUSPEND: (Machine.RUNNING,),
}
NEEDS_ESTOP_RELEASED = frozenset((PackMLCommand.RESET, PackMLCommand.CLEAR, PackMLCommand.START))


def check_command(cmd: PackMLCommand, machine: Machine, estop_open: bool) -> CommandResult:
    """TAKEN if ``cmd`` may run in ``machine`` now, else why not (the state is
    checked first: Start in Aborted is refused for the state, E-stop or not)."""
    if machine not in ALLOWED.get(cmd, ()):
        return CommandResult.REFUSED_STATE
    if estop_open and cmd in NEEDS_ESTOP_RELEASED:
        return CommandResult.REFUSED_ESTOP
    return CommandResult.TAKEN
