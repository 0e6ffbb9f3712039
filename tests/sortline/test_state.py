"""PackML line states: E-stop latches Aborted, internal causes Hold, external Suspend."""

from __future__ import annotations

import pytest

from sortline.state import Command, Conditions, LineStateMachine, PackMLState, TransitionError

S = PackMLState


def _running() -> LineStateMachine:
    sm = LineStateMachine()
    sm.command(Command.RESET)
    sm.command(Command.START)
    assert sm.state is S.EXECUTE and sm.may_actuate
    return sm


@pytest.mark.parametrize(
    ("cond", "state", "cause"),
    [
        (Conditions(), S.EXECUTE, ()),
        (Conditions(plc_linked=False), S.HELD, ("plc link lost",)),
        (Conditions(camera_ok=False), S.HELD, ("camera stalled",)),
        (
            Conditions(plc_fault=True, camera_ok=False),
            S.HELD,
            ("plc not executing", "camera stalled"),
        ),
        (Conditions(belt_running=False), S.SUSPENDED, ("belt stopped",)),
        (Conditions(estop=True), S.ABORTED, ("e-stop",)),
        (Conditions(estop=True, plc_linked=False), S.ABORTED, ("e-stop",)),
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
    sm.observe(Conditions(camera_ok=False))
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


def test_estop_latches_until_reset_after_release() -> None:
    sm = _running()
    sm.observe(Conditions(estop=True))
    with pytest.raises(TransitionError, match="still pressed"):
        sm.command(Command.RESET)
    assert sm.observe(Conditions()) is S.ABORTED  # released, still latched
    assert "reset required" in sm.causes[0]
    assert sm.command(Command.RESET) is S.IDLE
    assert not sm.may_actuate
    assert sm.command(Command.START) is S.EXECUTE


@pytest.mark.parametrize(
    ("setup", "cmd"),
    [
        ([], Command.START),  # Stopped cannot start without reset
        ([Command.RESET, Command.START], Command.RESET),  # Execute cannot reset
        ([Command.RESET, Command.START], Command.START),
    ],
)
def test_commands_refused_with_a_reason(setup: list[Command], cmd: Command) -> None:
    sm = LineStateMachine()
    for c in setup:
        sm.command(c)
    before = sm.state
    with pytest.raises(TransitionError, match=f"cannot {cmd.value} while {before.name}"):
        sm.command(cmd)
    assert sm.state is before


def test_stop_from_held() -> None:
    sm = _running()
    sm.observe(Conditions(plc_linked=False))
    assert sm.command(Command.STOP) is S.STOPPED
    assert sm.observe(Conditions(plc_linked=False)) is S.STOPPED  # stays stopped
