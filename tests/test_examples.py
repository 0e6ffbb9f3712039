"""Every example line config loads (an overlay on the embedded default) and
says what it claims to: its camera, time base and PLC transport."""

from __future__ import annotations

from pathlib import Path

import pytest

from sortline.config import load_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize(
    ("name", "source", "timebase", "transport"),
    [
        ("real-line-genicam.toml", "genicam:/opt/camera-vendor/lib/GenTL.cti#0", "trigger", "tcp"),
        ("rtu-plc.toml", "v4l2:0", "free", "rtu"),
        ("recorded-video.toml", "belt.mp4", "free", "tcp"),
        ("virtual-plant-process.toml", "shm:sortline-demo", "trigger", "tcp"),
    ],
)
def test_example_configs_load(name: str, source: str, timebase: str, transport: str) -> None:
    cfg = load_config(EXAMPLES / name)
    assert (cfg.camera.source, cfg.camera.timebase, cfg.plc.transport) == (
        source, timebase, transport,
    )  # fmt: skip
    assert cfg.sim.enabled is False


def test_every_example_is_listed_and_tested() -> None:
    files = sorted(p.name for p in EXAMPLES.glob("*.toml"))
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    assert files and all(f"`{f}`" in readme for f in files)
    tested = {
        "real-line-genicam.toml", "rtu-plc.toml", "recorded-video.toml",
        "virtual-plant-process.toml", "fine-bar.toml",
    }  # fmt: skip
    assert set(files) == tested


def test_fine_bar_spans_the_same_belt_with_twice_the_valves() -> None:
    base, fine = load_config(), load_config(EXAMPLES / "fine-bar.toml")
    assert fine.sim.enabled is True and fine.camera.source == "plant"
    assert fine.valves.n_valves == 2 * base.valves.n_valves
    assert fine.valves.pitch_mm == base.valves.pitch_mm / 2
    span = fine.valves.n_valves * fine.valves.pitch_mm
    assert span == base.valves.n_valves * base.valves.pitch_mm <= fine.belt.width_mm
