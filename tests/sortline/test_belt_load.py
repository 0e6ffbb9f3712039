"""The belt-load gauge (``sortline.belt_load``): blocks of frames, the share
of segments flagged as touching pieces and of the view covered, the
``belt_overfed`` alarm on fabricated readings, and a stepped crowded line
over HTTP on loopback whose status, /metrics and alarm book agree with the
detections its frame loop handed out."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.types import Detections
from sortline.alarm_rules import AlarmEvaluator, Observation
from sortline.belt_load import BeltLoadListener, BeltLoadReading
from sortline.config import AlarmsSection, load_config
from sortline.listeners import Cycle
from sortline.runtime import SortingLine

from .conftest import ApiKeys, served_line, until


def _dets(area_mm2: list[float], merged: list[bool]) -> Detections:
    n = len(area_mm2)
    return Detections(
        frame_id=1, tick=0, bbox_px=np.zeros((n, 4), np.float32),
        centroid_mm=np.zeros((n, 2)), extent_mm=np.zeros((n, 4)),
        area_mm2=np.asarray(area_mm2, np.float32), class_id=np.zeros(n, np.int16),
        confidence=np.ones(n, np.float32), class_prob=np.zeros((n, 0), np.float32),
        merged=np.asarray(merged, np.bool_),
    )  # fmt: skip


@dataclass
class _Cycle:
    detections: Detections


def test_blocks_give_the_merged_and_covered_shares() -> None:
    lis = BeltLoadListener(view_area_mm2=1000.0, window_frames=3, min_segments=5)
    frames = [([100.0, 50.0], [True, False]), ([200.0], [False]), ([100.0, 100.0, 50.0], [1, 0, 1])]
    for area, merged in frames[:2]:
        lis.on_cycle(_Cycle(_dets(area, merged)))  # type: ignore[arg-type]
    first = lis.reading
    assert first is None  # a block is three frames
    lis.on_cycle(_Cycle(_dets(*frames[2])))  # type: ignore[arg-type]
    r = lis.reading
    assert r is not None and r.judged and (r.segments, r.frames) == (6, 3)
    assert r.merged_share == pytest.approx(3 / 6)
    assert r.covered_share == pytest.approx((0.15 + 0.2 + 0.25) / 3)
    assert lis.totals() == (6, 3)
    for _ in range(3):  # an emptying belt: published, not judged (an alarm clears)
        lis.on_cycle(_Cycle(_dets([5000.0], [False])))  # type: ignore[arg-type]
    r = lis.reading
    assert r is not None and not r.judged and r.segments == 3 and r.merged_share == 0.0
    assert r.covered_share == 1.0  # a view cannot be more than covered
    assert lis.totals() == (9, 3)
    for _ in range(3):  # no segment at all
        lis.on_cycle(_Cycle(_dets([], [])))  # type: ignore[arg-type]
    assert lis.reading == BeltLoadReading(0.0, 0.0, 0, 3, False)


def test_bad_settings_are_refused_in_one_line() -> None:
    for kw in ({"view_area_mm2": 0.0}, {"window_frames": 0}, {"min_segments": 0}):
        args = {"view_area_mm2": 1.0, "window_frames": 1, "min_segments": 1, **kw}
        with pytest.raises(ValueError, match="belt load") as e:
            BeltLoadListener(**args)  # type: ignore[arg-type]
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="overfed_covered_share"):
        AlarmsSection(overfed_covered_share=0.0)


def test_belt_overfed_raises_at_its_limit_and_clears_below_four_fifths() -> None:
    ev = AlarmEvaluator(AlarmsSection(overfed_covered_share=0.20))

    def look(t: float, covered: float, judged: bool = True) -> bool:
        reading = BeltLoadReading(0.12, covered, 2400, 300, judged)
        out = ev.evaluate(Observation(t_s=t, belt_load=reading))
        if "belt_overfed" in out:
            a = out["belt_overfed"]
            assert a.severity == "warning" and "slow the feeder" in a.message
            assert f"{covered:.0%} of the view covered over the last 300 frames" in a.message
            assert "limit 20%" in a.message and "12% of 2400 segments" in a.message
        return "belt_overfed" in out

    assert [look(1, 0.19), look(2, 0.20), look(3, 0.17), look(4, 0.161), look(5, 0.159)] == [
        False, True, True, True, False,
    ]  # fmt: skip
    assert [look(6, 0.19), look(7, 0.25), look(8, 0.30, judged=False)] == [False, True, False]
    assert not ev.evaluate(Observation(t_s=9.0))  # no reading: no alarm


class _Count:
    """A second listener on the same loop: what the frame loop handed out."""

    def __init__(self) -> None:
        self.segments = self.merged = 0

    def on_cycle(self, cycle: Cycle) -> None:
        self.segments += len(cycle.detections)
        self.merged += int(np.count_nonzero(cycle.detections.merged))

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def crowded(
    tmp_path_factory: pytest.TempPathFactory, api_keys: ApiKeys
) -> Iterator[tuple[SortingLine, str, _Count]]:
    tmp = tmp_path_factory.mktemp("load")
    cfg = tmp / "line.toml"
    cfg.write_text(
        f'[records]\nenabled = false\n[recipes]\ndir = "{tmp / "r"}"\n'
        "[alarms]\nperiod_s = 0.05\nload_window_frames = 40\nload_min_segments = 20\n"
        "overfed_covered_share = 0.02\n"
    )
    count = _Count()

    def attach(line: SortingLine) -> None:
        line.loop.attach(count)

    with served_line(
        api_keys, 120, load_config(cfg), prepare=attach, scenario="crowded", seed=3001
    ) as (line, url):
        yield line, url, count


def test_a_crowded_belt_shows_in_status_metrics_and_alarms(
    crowded: tuple[SortingLine, str, _Count], api_keys: ApiKeys
) -> None:
    _, url, count = crowded
    http = api_keys.client("operator")
    assert until(lambda: http.get(f"{url}/status").json()["frames"] == 120)
    load = http.get(f"{url}/status").json()["belt_load"]
    assert (load["segments"], load["segments_merged"]) == (count.segments, count.merged)
    assert count.segments > 20 * 3 and count.merged > 0  # three windows; a crowded belt touches
    # the last full window (frames 81-120) is what the gauges and the alarm read
    assert load["window_frames"] == 40
    assert 0 < load["merged_share"] < 1 and 0.02 <= load["covered_share"] < 1
    text = http.get(f"{url}/metrics").text
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert fams["sortline_segments"].samples[0].value == count.segments
    assert fams["sortline_segments_merged"].samples[0].value == count.merged
    ratio = fams["sortline_segments_merged_ratio"]
    assert ratio.type == "gauge" and ratio.samples[0].value == load["merged_share"]
    assert fams["sortline_belt_covered_ratio"].samples[0].value == load["covered_share"]

    def overfed() -> list[dict[str, object]]:
        active = http.get(f"{url}/alarms").json()["active"]
        return [a for a in active if a["key"] == "belt_overfed"]

    assert until(lambda: bool(overfed()))  # crowded covers about a tenth of the view
    (alarm,) = overfed()
    assert alarm["severity"] == "warning" and "of the view covered" in str(alarm["message"])


def test_the_default_config_names_the_load_keys() -> None:
    text = (Path(__file__).parents[2] / "sortline" / "default_line.toml").read_text()
    cfg = load_config()
    for key in ("load_window_frames", "load_min_segments", "overfed_covered_share"):
        assert f"\n{key} = " in text
    assert cfg.alarms.overfed_covered_share == 0.20 and cfg.alarms.load_window_frames == 300
