"""``sortline bench soak``: the slope and verdict arithmetic and the per-minute
rows, on made-up samples (the soak itself runs for minutes: bench/results)."""

from __future__ import annotations

import pytest

from bench import soak


def _samples(minutes: float, rss: float, rss_per_min: float, fds_per_min: float) -> list[dict]:
    out = []
    for i in range(int(minutes * 6) + 1):
        t = i * 10.0
        out.append({
            "t_s": t, "frames": int(100 * t), "objects_seen": int(20 * t),
            "frames_dropped": i, "deadline_misses": 0, "latency_p99_ms": 9.0, "state": "EXECUTE",
            "line_rss_mb": rss + rss_per_min * t / 60, "line_fds": 15 + int(fds_per_min * t / 60),
            "plant_rss_mb": 200.0, "plant_fds": 10,
        })  # fmt: skip
    return out


@pytest.mark.parametrize(
    ("minutes", "rss_per_min", "fds_per_min", "word"),
    [
        (30, 0.0, 0.0, "bounded"),
        (30, 0.1, 0.0, "bounded"),  # 6 MB/h on 300 MB: under max(20 MB, 5 %)
        (30, 1.0, 0.0, "growing"),  # 60 MB/h
        (30, 0.0, 0.5, "growing"),  # a descriptor every 2 minutes
        (3, 1.0, 0.0, "inconclusive"),  # too short to tell a slow leak from warm-up
        (3, 20.0, 0.0, "growing"),  # but a fast one shows
        (0.5, 0.0, 0.0, "too short"),
    ],
)
def test_verdicts(minutes: float, rss_per_min: float, fds_per_min: float, word: str) -> None:
    s = _samples(minutes, 300.0, rss_per_min, fds_per_min)
    t = [x["t_s"] for x in s]
    v = soak.verdict(t, [x["line_rss_mb"] for x in s], [x["line_fds"] for x in s])
    assert v["verdict"].startswith(word), v
    if v["rss_mb_per_h"] is not None:
        assert v["rss_mb_per_h"] == pytest.approx(60 * rss_per_min, abs=0.01)


def test_a_store_that_fills_then_stays_is_bounded_a_leak_is_not() -> None:
    """Judged over the second half: RSS that rises 3 MB/min for 10 minutes and
    then stays is bounded (the whole window's slope says growing); RSS that
    rises 1 MB/min throughout is growing either way."""
    s = _samples(30, 300.0, 0.0, 0.0)
    t = [x["t_s"] for x in s]
    filled = [300.0 + 3.0 * min(x, 600.0) / 60 for x in t]
    v = soak.judged(t, filled, [15] * len(t))
    assert v["verdict"] == "bounded" and v["whole_window"]["verdict"] == "growing", v
    leak = [300.0 + x / 60 for x in t]
    v = soak.judged(t, leak, [15] * len(t))
    assert v["verdict"] == "growing" and v["rss_mb_per_h"] == pytest.approx(60.0), v


def test_per_minute_rows_are_rates_and_deltas() -> None:
    rows = soak.per_minute(_samples(3, 300.0, 0.0, 0.0))
    assert [r["minute"] for r in rows] == [1, 2, 3]
    first = rows[0]
    assert first["frames_per_s"] == pytest.approx(100.0) and first["fragments_per_s"] == 20.0
    assert first["frames_dropped"] == 6 and first["deadline_misses"] == 0


def test_slope_needs_three_points_and_rejects_bad_arguments() -> None:
    assert soak.slope_per_h([0.0, 1.0], [1.0, 2.0]) is None
    assert soak.slope_per_h([0.0, 1.0, 2.0], [0.0, 1.0, 2.0]) == pytest.approx(3600.0)
    with pytest.raises(SystemExit):
        soak.main(["--minutes", "0"])
