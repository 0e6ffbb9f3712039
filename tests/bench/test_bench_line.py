"""``sortline bench line``: the per-preset table, the report card's grid (a
short run of its quick cells), and the arithmetic behind the cells."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench import _line_grid as grid
from bench import line
from sim.plant.scenario import load_scenario


def test_line_bench_presets_writes_its_json(tmp_path: Path) -> None:
    out = tmp_path / "line.json"
    assert line.main(["--presets", "default", "--frames", "60", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["command"].startswith("sortline bench line")
    (row,) = data["results"]
    assert row["preset"] == "default" and row["frames"] == 60
    assert row["latency_ms"]["p99"] >= row["latency_ms"]["p50"] > 0


def test_quick_grid_writes_cells(tmp_path: Path) -> None:
    out, png = tmp_path / "grid.json", tmp_path / "grid.png"
    assert line.main(["--quick", "--frames", "50", "--json", str(out), "--png", str(png)]) == 0
    cells = json.loads(out.read_text())["cells"]
    assert [(c["preset"], c["speed_m_s"], c["feed_obj_s"]) for c in cells] == [
        ("default", 2.5, load_scenario("default").feed.rate_obj_s),
        ("shred", 2.5, 500.0),
    ]
    for c in cells:
        assert c["frames"] == 50 and c["valve_pitch_mm"] == 12.5
        assert c["frame_ms"]["p99"] >= c["frame_ms"]["p50"] > 0
        assert c["cpu_ms"]["vision"]["p50"] > 0 and c["cpu_ms"]["control"]["p50"] > 0
        assert c["ack_ms"]["p50"] is not None  # pulses were acknowledged in both
        assert 0 <= c["frames_lost_at_camera_rate"] <= 50 - grid.WARMUP_FRAMES
    assert cells[1]["fragments_per_s"] > 5 * cells[0]["fragments_per_s"]  # 500/s against 35/s
    assert png.stat().st_size > 10_000


def test_cell_scenario_overrides_speed_and_feed_only(tmp_path: Path) -> None:
    path = grid.cell_scenario(grid.Cell("shred", 3.5, 1000.0, 6.25), tmp_path)
    base, cell = load_scenario("shred"), load_scenario(path)
    assert cell.motion.speed_mm_s == 3500.0 and cell.feed.rate_obj_s == 1000.0
    assert cell.feed.class_mix == base.feed.class_mix
    assert cell.appearance == base.appearance and cell.ejection == base.ejection
    assert grid.Cell("shred", 3.5, 1000.0, 6.25).line_config == grid.FINE_BAR
    assert grid.Cell("shred", 3.5, 1000.0, 12.5).line_config is None


def test_grids() -> None:
    quick = grid.quick_cells()
    assert {(c.preset, c.feed_obj_s) for c in quick} == {("default", None), ("shred", 500.0)}
    full = grid.full_cells()
    assert {c.speed_m_s for c in full} == {1.5, 2.5, 3.5}
    assert {c.valve_pitch_mm for c in full} == {12.5, 6.25}
    assert {c.feed_obj_s for c in full if c.preset == "shred"} == {250.0, 500.0, 1000.0, 2000.0}
    assert len(full) == 2 * 3 * (3 + 4) and len(set(full)) == len(full)
    low = grid.full_cells(["shred"], shred_feeds=[50, 100.0])
    assert {(c.preset, c.feed_obj_s) for c in low} == {("shred", 50.0), ("shred", 100.0)}
    assert len(low) == 2 * 3 * 2


def test_grid_feeds_must_be_positive() -> None:
    from bench import line

    with pytest.raises(SystemExit, match="feeds must be > 0"):
        line.main(["--cells", "shred", "--feeds", "0,100", "--frames", "1"])


@pytest.mark.parametrize(
    ("service_ms", "lost"),
    [
        ([5.0] * 30, 0),  # always done within a frame
        ([15.0] * 30, 9),  # about 1 frame in 3 lost in steady state
        ([35.0] + [5.0] * 29, 2),  # one slow frame: the one-frame buffer takes the next
        ([9.9, 10.1] * 15, 0),  # over a period now and then, caught up with the buffer
    ],
)
def test_frames_lost_at_camera_rate(service_ms: list[float], lost: int) -> None:
    assert grid.dropped_at_rate(np.asarray(service_ms), 10.0) == lost


def test_histogram_quantile_matches_prometheus() -> None:
    upper = (0.001, 0.002, 0.005)
    cum = (10, 30, 40, 40)  # 10 <= 1 ms, 20 in 1-2 ms, 10 in 2-5 ms, none above
    assert grid.histogram_quantile(0.25, upper, cum) == pytest.approx(0.0010)
    assert grid.histogram_quantile(0.5, upper, cum) == pytest.approx(0.0015)
    assert grid.histogram_quantile(1.0, upper, cum) == pytest.approx(0.005)
    assert grid.histogram_quantile(0.99, upper, (0, 0, 0, 5)) == 0.005  # in +Inf
    assert grid.histogram_quantile(0.5, upper, (0, 0, 0, 0)) is None


def test_grid_options_with_a_per_preset_run_are_refused(capsys):
    """``--cells`` (and the grid's other options) with ``--aim-rule`` used to be
    left out without a word: the per-preset table ran instead of the cells asked."""
    with pytest.raises(SystemExit) as exc:
        line.main(["--cells", "shred", "--speeds", "1.5", "--aim-rule", "search"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--cells, --speeds: options of the report card's grid" in err
