"""``[sensor] enabled`` on the line itself (the one path ``sortline run``
takes): the embedded plant's bar streams to the line's reader over UDP, the
fusion hook adds its evidence in the controller, and a silent bar is the
``sensor.link`` alarm while the line goes on sorting on the camera alone."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sortline.config import load_config
from sortline.runtime import SortingLine
from sortline.sensor import wiring


def _line(tmp_path: Path, **sensor: object) -> SortingLine:
    cfg = load_config()
    data = cfg.model_dump()
    data["sensor"].update({"enabled": True, "port": 0, **sensor})
    data["records"]["dir"] = str(tmp_path)
    return SortingLine(
        type(cfg).model_validate(data), stepped=True, plc_port=0, seed=3, records=False
    )


def test_the_bar_reaches_the_controller_and_a_silent_bar_is_an_alarm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wiring, "GRACE_S", 0.0)
    line = _line(tmp_path, needs_sensor=["aluminium"], stall_ms=100.0)
    link = line.parts.sensor
    assert link is not None and line.parts.plant is not None
    line.start()
    try:
        line.run_frames(120)
        status = link.status()
        assert status["packets_ok"] > 50 and not status["refused"] and not status["stalled"]
        assert link.fusion.fused_rows > 0  # tracks took the bar's evidence
        assert link.conditions() == {}
        line.parts.plant.sensor_mute = True  # the bar goes silent
        time.sleep(0.3)
        raised = link.conditions()["sensor.link"]
        assert raised.severity == "warning" and "no valid packet" in raised.message
        assert "held back: aluminium" in raised.message
        line.run_frames(20)  # sorting goes on, on the camera alone
        assert line.snapshot().state == "EXECUTE"
        line.parts.plant.sensor_mute = False
        line.run_frames(10)
        assert link.conditions() == {}
    finally:
        line.stop()


def test_a_port_in_use_is_one_line_naming_the_section(tmp_path: Path) -> None:
    first = _line(tmp_path)
    try:
        port = first.parts.sensor.reader.port  # type: ignore[union-attr]
        with pytest.raises(ValueError, match=r"sensor: .*cannot listen on udp 127.0.0.1:\d+"):
            _line(tmp_path, port=port)
    finally:
        first.stop()


def _v3_file(tmp_path: Path) -> Path:
    from tests.sensor.test_fusion import _random_v3

    path = tmp_path / "v3.json"
    _random_v3().save(path)
    return path


@pytest.mark.parametrize(
    ("model", "hz"),
    [("builtin:induction-v2", [5000.0]), ("v3-file", [5000.0, 50000.0])],
)
def test_one_and_two_frequency_bars_on_the_line(
    tmp_path: Path, model: str, hz: list[float]
) -> None:
    """``[sensor] frequencies_hz``: one (the single-frequency model) or two (a
    two-frequency model): the plant's bar sends version-2 packets of its
    frequencies, the reader takes them, fusion reads them."""
    spec = str(_v3_file(tmp_path)) if model == "v3-file" else model
    line = _line(tmp_path, model=spec, frequencies_hz=hz)
    link = line.parts.sensor
    assert link is not None
    line.start()
    try:
        line.run_frames(120)
        status = link.status()
        assert status["packets_ok"] > 50 and not status["refused"]
        assert link.reader.ring.channels == 32 * len(hz) and link.fusion.fused_rows > 0
    finally:
        line.stop()


def test_a_model_for_other_frequencies_is_refused(tmp_path: Path) -> None:
    from core.errors import InputFileError

    with pytest.raises(InputFileError, match=r"sensor.*reads \[5000.0, 50000.0\] Hz.*\[5000.0\]"):
        _line(tmp_path, model=str(_v3_file(tmp_path)), frequencies_hz=[5000.0])
