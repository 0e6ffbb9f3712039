"""LiveCalibration: the running line picks up activations and rollbacks without a restart."""

from __future__ import annotations

from pathlib import Path

from calibration.geometry import LineGeometry
from calibration.live import LiveCalibration
from calibration.record import BeltSection, Calibration, ValvesSection
from calibration.store import CalibrationStore

LINE = "line-live"


def _cal(mm_per_tick: float, n_valves: int = 80) -> Calibration:
    return Calibration(
        line=LINE,
        passed=True,
        source=f"test {mm_per_tick}",
        belt=BeltSection(mm_per_tick=mm_per_tick),
        valves=ValvesSection(
            y_valve_mm=301.0,
            open_delay_ms=[3.0] * n_valves,
            close_delay_ms=[2.0] * n_valves,
            disabled_valves=[5],
        ),
    )


def test_live_calibration_follows_the_store(tmp_path: Path) -> None:
    store = CalibrationStore(tmp_path, LINE)
    base = LineGeometry()
    live = LiveCalibration(CalibrationStore(tmp_path, LINE), base)
    assert live.geometry == base and live.status()["version"] is None
    assert live.poll() is False
    for mm in (0.101, 0.102):
        store.save(_cal(mm), "alice")
    store.save(_cal(0.103, n_valves=40), "mallory")  # does not fit this bar

    store.activate(1, "alice")
    assert live.poll() is True and live.geometry.belt.mm_per_tick == 0.101
    assert live.poll() is False
    store.activate(2, "bob")
    assert live.poll() is True and live.geometry.belt.mm_per_tick == 0.102
    status = live.status()
    assert (status["version"], status["activated_by"], status["disabled_valves"]) == (2, "bob", [5])

    store.activate(3, "mallory")
    assert live.poll() is False
    assert live.geometry.belt.mm_per_tick == 0.102  # kept what it had
    assert "v3 not applied" in live.status()["error"]

    store.rollback("carol")
    assert live.poll() is True and live.geometry.belt.mm_per_tick == 0.102
    assert live.status()["activated_by"] == "carol" and live.status()["error"] is None
    store.rollback("carol")
    assert live.poll() is True and live.geometry.belt.mm_per_tick == 0.101
    assert live.camera_model.centre_scale_mm_per_px()[0] == base.camera.mm_per_px_x
