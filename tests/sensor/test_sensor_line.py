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
