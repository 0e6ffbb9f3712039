"""GET /metrics over real HTTP on loopback, against a real (stepped) line:
the scrape parsed with prometheus_client's own parser, checked against the
line's status, and linted by ``promtool`` when it is installed."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from core.types import Pulses
from plc.regmap import PackMLState
from sortline.api import ApiServer
from sortline.config import load_config
from sortline.metrics_prom import UNKNOWN_FRACTION, MetricsListener
from sortline.runtime import SortingLine

from .conftest import ApiKeys, served_line

N_FRAMES = 60


@pytest.fixture(scope="module")
def served(api_keys: ApiKeys) -> Iterator[tuple[SortingLine, str]]:
    with served_line(api_keys, N_FRAMES) as served:
        yield served


def scrape(url: str) -> tuple[str, dict[str, list[Sample]], dict[str, str]]:
    """The text, samples by family name and family types."""
    r = httpx.get(f"{url}/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, list[Sample]] = {}
    types: dict[str, str] = {}
    for fam in text_string_to_metric_families(r.text):
        assert fam.name.startswith("sortline_"), fam.name
        assert fam.documentation, f"{fam.name}: no HELP"
        assert fam.type != "unknown", f"{fam.name}: no TYPE"
        samples[fam.name] = fam.samples
        types[fam.name] = fam.type
    return r.text, samples, types


def value(samples: dict[str, list[Sample]], family: str, **labels: str) -> float:
    got = [s.value for s in samples[family] if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(got) == 1, (family, labels, got)
    return got[0]


def by_label(samples: list[Sample], label: str) -> dict[str, float]:
    return {s.labels[label]: s.value for s in samples}


def histogram(samples: dict[str, list[Sample]], family: str) -> tuple[list[float], float]:
    """Cumulative bucket counts (increasing ``le``) and ``_count``, checked."""
    fam = samples[family]
    buckets = sorted(
        ((float(s.labels["le"]), s.value) for s in fam if s.name.endswith("_bucket")),
    )
    counts = [n for _, n in buckets]
    assert buckets[-1][0] == float("inf")
    assert all(a <= b for a, b in itertools.pairwise(counts)), counts
    (count,) = [s.value for s in fam if s.name == f"{family}_count"]
    (total,) = [s.value for s in fam if s.name == f"{family}_sum"]
    assert counts[-1] == count and total >= 0
    return counts, count


def test_every_family_is_named_typed_and_labelled(served: tuple[SortingLine, str]) -> None:
    line, url = served
    _, samples, types = scrape(url)
    for name, fam in samples.items():
        for s in fam:
            assert s.labels["line"] == line.cfg.line.name, s
            if types[name] == "counter":
                assert s.name.endswith("_total"), s.name
            else:
                assert not s.name.endswith("_total"), s.name
    for must in ("sortline_frame_latency_seconds", "sortline_pulse_ack_latency_seconds"):
        assert types[must] == "histogram"


def test_counters_match_the_status(served: tuple[SortingLine, str]) -> None:
    line, url = served
    _, samples, _ = scrape(url)
    snap = line.snapshot()
    assert snap.frames == N_FRAMES
    assert value(samples, "sortline_frames_processed") == N_FRAMES
    tb = snap.timebase
    assert value(samples, "sortline_timebase_mismatches") == tb.mismatches
    assert value(samples, "sortline_timebase_frames_unchecked") == tb.frames_unchecked
    dropped = by_label(samples["sortline_frames_dropped"], "reason")
    assert set(dropped) == {"lost", "bad", "untimed"}
    assert sum(dropped.values()) == snap.frames_dropped
    _, count = histogram(samples, "sortline_frame_latency_seconds")
    assert count == N_FRAMES
    by_class = by_label(samples["sortline_objects_by_class"], "class")
    assert by_class == {k: float(v) for k, v in snap.composition.items()}
    assert sum(by_class.values()) == sum(snap.composition.values()) > 0
    seen = snap.controller["objects_seen"]
    assert value(samples, "sortline_objects_seen") == seen
    assert value(samples, "sortline_objects_targeted") == snap.controller["objects_targeted"]
    load = snap.belt_load
    assert load is not None and load.segments > 0
    assert value(samples, "sortline_segments") == load.segments
    assert value(samples, "sortline_segments_merged") == load.segments_merged
    # one window of the belt load is 300 frames: not yet, so no ratio is published
    assert load.merged_share is None and "sortline_segments_merged_ratio" not in samples


def test_pulse_counters_match_the_plc_status(served: tuple[SortingLine, str]) -> None:
    line, url = served
    _, samples, _ = scrape(url)
    plc = line.parts.bridge.snapshot()
    assert plc.pulses_acked > 0  # the default scenario fires within 60 frames
    assert value(samples, "sortline_pulses_submitted") == plc.pulses_submitted
    assert value(samples, "sortline_pulses_sent") == plc.pulses_sent
    fates = by_label(samples["sortline_pulses_settled"], "fate")
    assert fates == {
        "acked": plc.pulses_acked, "late": plc.pulses_late,
        "rejected": plc.pulses_rejected_by_plc, "invalid": plc.pulses_invalid,
        "overflow": plc.pulses_overflow, "stale": plc.pulses_stale,
    }  # fmt: skip
    misses = by_label(samples["sortline_deadline_misses"], "stage")
    assert sum(misses.values()) == line.snapshot().deadline_misses
    fractions = by_label(samples["sortline_pulses_by_fraction"], "fraction")
    assert set(line.parts.recipe.fraction_names) <= set(fractions)
    assert sum(fractions.values()) == line.loop.pulses_handed == plc.pulses_submitted
    _, batches = histogram(samples, "sortline_pulse_ack_latency_seconds")
    assert 1 <= batches <= plc.pulses_sent
    assert value(samples, "sortline_plc_connected") == 1
    assert value(samples, "sortline_plc_encoder_ticks") == plc.encoder_tick
    assert value(samples, "sortline_belt_speed_meters_per_second") > 0
    assert value(samples, "sortline_camera_connected") == 1
    assert 0 <= value(samples, "sortline_plant_purity_ratio") <= 1  # the virtual plant's


def test_promtool_accepts_the_scrape(served: tuple[SortingLine, str], tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    text, _, _ = scrape(served[1])
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_registry_is_the_lines_own(served: tuple[SortingLine, str]) -> None:
    line, _ = served
    assert not [m for m in REGISTRY.collect() if m.name.startswith("sortline_")]
    assert b"sortline_frames_processed_total" in line.metrics.render()


def test_metrics_route_is_documented(served: tuple[SortingLine, str]) -> None:
    _, url = served
    op = httpx.get(f"{url}/openapi.json").json()["paths"]["/metrics"]["get"]
    assert "text/plain" in op["responses"]["200"]["content"]


def test_closed_metrics_answer_404(tmp_path: Path, api_keys: ApiKeys) -> None:
    cfg_path = tmp_path / "line.toml"
    cfg_path.write_text("[api]\nopen_metrics = false\n")
    line = SortingLine(load_config(cfg_path), stepped=True, plc_port=0, records=False)
    api = ApiServer(api_keys.app(line), "127.0.0.1", 0)
    api.start()
    try:
        url = f"http://127.0.0.1:{api.port}"
        assert httpx.get(f"{url}/metrics").status_code == 404
        assert httpx.get(f"{url}/health").status_code == 200
    finally:
        api.stop()
        line.stop()


def test_listener_counts_pulses_by_fraction_name() -> None:
    names = ("eject", "keep")
    listener = MetricsListener(lambda: names)
    fraction = np.array([0, 1, 1, 7], dtype=np.int16)
    n = len(fraction)
    zeros = np.zeros(n, dtype=np.int64)
    pulses = Pulses(
        actuator=zeros, first_valve=zeros, last_valve=zeros, on_tick=zeros + 10,
        off_tick=zeros + 20, track_id=np.arange(n), fraction=fraction,
    )  # fmt: skip
    cycle = type("C", (), {"pulses": pulses, "latency_ms": 4.0})()
    listener.on_cycle(cycle)  # type: ignore[arg-type]
    assert listener.pulses_by_fraction() == {"eject": 1, "keep": 2, UNKNOWN_FRACTION: 1}
    h = listener.frame_latency.snapshot()
    assert h.count == 1 and h.sum_s == pytest.approx(0.004)


def test_state_gauges_follow_a_stop(served: tuple[SortingLine, str], api_keys: ApiKeys) -> None:
    """Last in this module: it leaves the line stopped."""
    _, url = served
    _, samples, _ = scrape(url)
    assert value(samples, "sortline_line_state_code") == int(PackMLState.EXECUTE)
    current = by_label(samples["sortline_line_state"], "state")
    assert current["EXECUTE"] == 1 and sum(current.values()) == 1
    assert set(current) == {s.name for s in PackMLState}
    r = api_keys.client("operator").post(f"{url}/commands/stop", json={})
    assert r.json() == {"state": "STOPPED"}
    _, samples, _ = scrape(url)
    assert value(samples, "sortline_line_state_code") == int(PackMLState.STOPPED) == 2
    current = by_label(samples["sortline_line_state"], "state")
    assert current["STOPPED"] == 1 and sum(current.values()) == 1
