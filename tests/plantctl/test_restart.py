"""The plant's watch over its lines, with real processes that die: reported,
restarted at once the first time, then after a growing back-off while they
keep dying young; left dead with ``--no-restart``; the broker's death stops
the plant."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from sortline.plantctl.broker import Broker
from sortline.plantctl.lines import LineProcess, LineSpec
from sortline.plantctl.plant import Plant, PlantOptions, free_port, missing_tools


class DyingLine(LineProcess):
    """A line whose process exits with code 3 after ``life_s``."""

    life_s = 0.1

    def command(self) -> list[str]:
        return ["sh", "-c", f"sleep {self.life_s}; exit 3"]


def plant_with(tmp_path: Path, restart: bool) -> tuple[Plant, DyingLine, list[str]]:
    said: list[str] = []
    plant = Plant(PlantOptions(lines=1, folder=tmp_path / "p", restart=restart), said.append)
    spec = LineSpec("line-1", 1, 2, tmp_path / "p" / "line-1", "", "", "plant", 1)
    line = DyingLine(spec)
    line.start()
    plant.lines.append(line)
    return plant, line, said


def watch_lines(plant: Plant, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        plant.check_lines()
        time.sleep(0.05)


def test_a_line_dying_young_is_restarted_with_a_growing_back_off(tmp_path: Path) -> None:
    plant, line, said = plant_with(tmp_path, restart=True)
    try:
        watch_lines(plant, 5.0)  # dies at ~0.1 s, ~0.2 s (restarted at once), ~2.3 s
    finally:
        plant.down()
    ended = [s for s in said if "ended: exit 3 after" in s]
    assert len(ended) == 3 and line.restarts == 2, said  # at once, then after 2 s
    assert "plant: line-1 keeps dying young: next start in 2 s" in said
    assert "plant: line-1 keeps dying young: next start in 4 s" in said
    first_restart = next(i for i, x in enumerate(said) if x.endswith("restart 1)"))
    assert first_restart < said.index("plant: line-1 keeps dying young: next start in 2 s")
    assert line.exits == ["exit 3"] * 3


def test_no_restart_leaves_the_line_dead(tmp_path: Path) -> None:
    plant, line, said = plant_with(tmp_path, restart=False)
    try:
        watch_lines(plant, 1.0)
    finally:
        plant.down()
    assert line.restarts == 0 and line.proc is None and len(said) == 1, said


@pytest.mark.skipif(missing_tools() is not None, reason="needs Debian mosquitto")
def test_the_broker_dying_stops_the_plant(tmp_path: Path) -> None:
    said: list[str] = []
    plant = Plant(PlantOptions(lines=1, folder=tmp_path / "p"), said.append)
    plant.broker = Broker(tmp_path / "broker", free_port()).start()
    try:
        assert plant.broker.proc is not None
        plant.broker.proc.kill()
        plant.broker.proc.wait(5.0)
        assert plant.watch(threading.Event(), seconds=10.0) == 1
    finally:
        plant.down()
    assert said == ["plant: the MQTT broker (mosquitto) died: stopping the plant"]
