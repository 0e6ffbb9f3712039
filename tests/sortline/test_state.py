"""PackML line states: the line follows the PLC's state; the controller adds
Held for its own causes and a lost link, Aborted for the E-stop."""

from __future__ import annotations

import pytest

from plc.regmap import PackMLCommand
from sortline.state import Command, Conditions, LineStateMachine, PackMLState, TransitionError

S = PackMLState


def _running() -> LineStateMachine:
    sm = LineStateMachine()
    assert sm.observe(Conditions(plc_state=S.EXECUTE)) is S.EXECUTE and sm.may_actuate
    return sm


@pytest.mark.parametrize(
    ("cond", "state", "cause"),
    [
        (Conditions(), S.EXECUTE, ()),
        (Conditions(plc_linked=False), S.HELD, ("plc link lost",)),
        (Conditions(plc_state=None), S.HELD, ("plc link lost",)),
        (Conditions(holds=("camera stalled: x",)), S.HELD, ("camera stalled: x",)),
        (
            Conditions(plc_linked=False, holds=("camera stalled: x",)),
            S.HELD,
            ("plc link lost", "camera stalled: x"),
        ),
        (Conditions(belt_running=False), S.SUSPENDED, ("belt stopped",)),
        (Conditions(plc_state=S.SUSPENDED), S.SUSPENDED, ("plc suspended",)),
        (Conditions(plc_state=S.HELD), S.HELD, ("plc held (heartbeat watchdog or operator hold)",)),
        (Conditions(estop=True), S.ABORTED, ("e-stop",)),
        (Conditions(estop=True, plc_linked=False), S.ABORTED, ("e-stop",)),
        (Conditions(plc_state=S.ABORTED), S.ABORTED, ("aborted: reset required",)),
        (Conditions(plc_state=S.STOPPED), S.STOPPED, ("stopped",)),
        (Conditions(plc_state=S.IDLE), S.IDLE, ("idle: start required",)),
    ],
)
def test_conditions_move_an_executing_line(
    cond: Conditions, state: PackMLState, cause: tuple[str, ...]
) -> None:
    sm = _running()
    assert sm.observe(cond) is state
    assert sm.causes == cause
    assert sm.may_actuate is (state is S.EXECUTE)


def test_held_and_suspended_recover_by_themselves() -> None:
    sm = _running()
    sm.observe(Conditions(holds=("camera stalled",)))
    assert sm.observe(Conditions()) is S.EXECUTE
    sm.observe(Conditions(belt_running=False))
    assert sm.observe(Conditions()) is S.EXECUTE
    names = [t.to_state for t in sm.history()]
    assert names[-8:] == [
        "HOLDING",
        "HELD",
        "UNHOLDING",
        "EXECUTE",
        "SUSPENDING",
        "SUSPENDED",
        "UNSUSPENDING",
        "EXECUTE",
    ]


def test_estop_cycle_follows_the_plc() -> None:
    sm = _running()
    sm.observe(Conditions(estop=True, plc_state=S.ABORTED))
    with pytest.raises(TransitionError, match="still pressed"):
        sm.command(Command.RESET)
    assert sm.observe(Conditions(plc_state=S.ABORTED)) is S.ABORTED  # released, still latched
    assert "reset required" in sm.causes[0]
    assert sm.command(Command.RESET) is PackMLCommand.RESET
    assert sm.observe(Conditions(plc_state=S.IDLE)) is S.IDLE and not sm.may_actuate
    assert sm.command(Command.START) is PackMLCommand.START
    assert sm.observe(Conditions(plc_state=S.EXECUTE)) is S.EXECUTE
    names = [t.to_state for t in sm.history()]
    assert names[-5:] == ["ABORTING", "ABORTED", "RESETTING", "IDLE", "EXECUTE"]


@pytest.mark.parametrize(
    ("plc_state", "cmd"),
    [
        (S.STOPPED, Command.START),  # Stopped cannot start without reset
        (S.EXECUTE, Command.RESET),  # Execute cannot reset
        (S.EXECUTE, Command.START),
        (S.ABORTED, Command.STOP),
    ],
)
def test_commands_refused_with_a_reason(plc_state: PackMLState, cmd: Command) -> None:
    sm = LineStateMachine()
    sm.observe(Conditions(plc_state=plc_state))
    before = sm.state
    with pytest.raises(TransitionError, match=f"cannot {cmd.value} while {before.name}"):
        sm.command(cmd)
    assert sm.state is before


def test_stop_from_held_is_sent_to_the_plc() -> None:
    sm = _running()
    sm.observe(Conditions(holds=("camera stalled",)))
    assert sm.command(Command.STOP) is PackMLCommand.STOP
    assert sm.observe(Conditions(plc_state=S.STOPPED, holds=("camera stalled",))) is S.STOPPED
