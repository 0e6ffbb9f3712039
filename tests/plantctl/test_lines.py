"""A virtual line's generated config is a valid line config saying what the
plant told it; exit codes in words."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from sortline.auth import hash_key
from sortline.config import load_config
from sortline.plantctl.lines import LineSpec, line_toml
from sortline.plantctl.procs import describe_exit


def spec(folder: Path) -> LineSpec:
    return LineSpec(
        name="line-7", api_port=18007, plc_port=15027, folder=folder,
        records_url="postgresql://sortline@127.0.0.1:5999/sortline",
        mqtt_url="mqtt://127.0.0.1:18830", group="hall-b", seed=7,
        keys=(("plant-operator", "operator", hash_key("k", n=2**10)),),
    )  # fmt: skip


def test_the_generated_config_loads_with_the_plants_settings(tmp_path: Path) -> None:
    folder = tmp_path / 'odd "name" \\ here'  # quotes and a backslash survive TOML
    s = spec(folder)
    folder.mkdir()
    s.config.write_text(line_toml(s))
    cfg = load_config(s.config)
    assert cfg.line.name == "line-7" and cfg.sim.seed == 7 and cfg.sim.scenario == "easy"
    assert (cfg.api.port, cfg.plc.port) == (18007, 15027)
    assert cfg.records.url == s.records_url and cfg.records.dir == str(folder)
    assert (cfg.mqtt.url, cfg.mqtt.group) == ("mqtt://127.0.0.1:18830", "hall-b")
    assert [(k.name, k.role) for k in cfg.api.keys] == [("plant-operator", "operator")]
    assert (cfg.camera.fps, cfg.camera.trigger_every_ticks, cfg.belt.speed_mm_s) == (
        25.0,
        400,
        1000.0,
    )
    assert (cfg.plc.watchdog_ms, cfg.camera.stall_ms) == (1000.0, 1000.0)
    # the frame rate is the trigger's: 1000 mm/s over 400 ticks of 0.1 mm
    assert cfg.belt.speed_mm_s / (cfg.camera.trigger_every_ticks * cfg.belt.mm_per_tick) == 25.0


@pytest.mark.parametrize(
    ("code", "words"),
    [(0, "exit 0"), (1, "exit 1"), (-int(signal.SIGKILL), "signal 9 (SIGKILL)"),
     (-int(signal.SIGTERM), "signal 15 (SIGTERM)"), (-200, "signal 200")],
)  # fmt: skip
def test_exit_codes_in_words(code: int, words: str) -> None:
    assert describe_exit(code) == words
