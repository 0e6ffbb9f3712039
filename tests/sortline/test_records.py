"""Sort records: one JSON line per pulse, appended off the real-time thread."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from core.types import Pulses, Tracks
from sortline.records import RecordWriter, read_records

CLASSES = ("copper", "brass", "steel")


def _tracks() -> Tracks:
    n = 2
    return Tracks(
        tick=100,
        track_id=np.array([7, 9]),
        state=np.ones(n, np.int8),
        centroid_mm=np.zeros((n, 2)),
        velocity_mm_tick=np.zeros((n, 2)),
        extent_mm=np.array([[10.0, 30.0, 0, 5], [50.0, 80.0, 0, 5]]),
        class_evidence=np.zeros((n, 3), np.float32),
        class_id=np.array([0, 1], np.int16),
        class_prob=np.array([0.97, 0.88], np.float32),
        n_views=np.full(n, 5, np.int16),
        cross_on_tick=np.array([1000, 2000]),
        cross_off_tick=np.array([1100, 2100]),
        cross_sigma_tick=np.ones(n, np.float32),
        fraction=np.zeros(n, np.int16),
    )


def _pulses(track_ids: list[int]) -> Pulses:
    n = len(track_ids)
    return Pulses(
        actuator=np.zeros(n, np.int16),
        first_valve=np.full(n, 3, np.int16),
        last_valve=np.full(n, 5, np.int16),
        on_tick=np.full(n, 1000, np.uint32),
        off_tick=np.full(n, 1100, np.uint32),
        track_id=np.array(track_ids),
        fraction=np.zeros(n, np.int16),
    )


def test_records_round_trip(tmp_path: Path) -> None:
    w = RecordWriter(tmp_path, "line-a", CLASSES, ("eject",))
    w.offer(_pulses([7, 9]), _tracks())
    w.offer(_pulses([]), _tracks())  # nothing to record
    w.offer(_pulses([42]), _tracks())  # a pulse whose track is no longer live
    w.close()
    files = list(tmp_path.glob("line-a-*.jsonl"))
    assert len(files) == 1
    recs = list(read_records(files[0]))
    assert [r["track_id"] for r in recs] == [7, 9, 42]
    assert recs[0]["class"] == "copper" and recs[1]["class"] == "brass"
    assert recs[0]["class_prob"] == pytest.approx(0.97, abs=1e-4)
    assert recs[0]["valves"] == [3, 5] and recs[0]["fraction"] == "eject"
    assert recs[2]["class"] is None and recs[2]["class_prob"] is None
    assert w.written == 3 and w.dropped == 0
    assert abs(recs[0]["t_unix_s"] - time.time()) < 60


def test_torn_last_line_is_skipped_but_a_bad_middle_line_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "r.jsonl"
    good = json.dumps({"track_id": 1})
    p.write_text(good + "\n" + '{"track_id": 2, "cla')  # crash mid-write
    assert [r["track_id"] for r in read_records(p)] == [1]
    p.write_text(good + "\nnot json\n" + good + "\n")
    with pytest.raises(ValueError, match="line 2: not a JSON record"):
        list(read_records(p))


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    w = RecordWriter(tmp_path, "line-b", CLASSES, ("eject",), max_pending=1)
    t0 = time.monotonic()
    for _ in range(500):
        w.offer(_pulses([7]), _tracks())
    assert time.monotonic() - t0 < 5.0  # never waits on the disk
    w.close()
    assert w.written + w.dropped == 500
    assert w.written >= 1
