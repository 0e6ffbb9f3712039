"""``sortline bench predict`` (``bench/predict.py``) runs and writes its rows;
its reference fit is exact on a straight path; on lying fragments the
decision core beats the 5-point fit 10 frames ahead."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import predict


def test_fit5_is_exact_on_a_straight_path():
    ticks = np.arange(8) * 250.0 + 1000.0
    xy = np.column_stack([500.0 + 0.004 * (ticks - 1000.0), -100.0 + 0.115 * (ticks - 1000.0)])
    tick, x = predict.fit5(ticks, xy, 300.0)
    assert tick == pytest.approx(1000.0 + 400.0 / 0.115)
    assert x == pytest.approx(500.0 + 0.004 * 400.0 / 0.115)


def test_bench_predict_writes_its_rows(tmp_path):
    out = tmp_path / "predict.json"
    argv = ["--presets", "default", "--seconds", "2.5", "--line-frames", "0",
            "--loop-seconds", "0", "--json", str(out)]  # fmt: skip
    assert predict.main(argv) == 0
    data = json.loads(out.read_text())
    assert data["command"].startswith("sortline bench predict")
    rows = data["rows"]
    assert {r["model"] for r in rows} == {"sortline", "cv_fit5"}
    assert {r["horizon_frames"] for r in rows} == {5, 10}
    for r in rows:
        assert 0.0 <= r["hit_rate"] <= 1.0 and r["n"] > 0
        assert r["t_err_p95_frames"] >= r["t_err_median_frames"] >= 0.0
        assert r["x_err_p95_mm"] >= r["x_err_median_mm"] >= 0.0
    lying = {r["model"]: r for r in rows if r["motion"] == "lying" and r["horizon_frames"] == 10}
    assert lying["sortline"]["n"] >= 20
    assert lying["sortline"]["hit_rate"] >= max(0.95, lying["cv_fit5"]["hit_rate"])
    assert 0.5 <= lying["sortline"]["x_within_2sigma"] <= 1.0
    assert data["hit_definition"] == {"t_frames": 0.5, "x_mm": 0.85}
    # the two-model filter of before rides along on the same fragments
    two = {(r["motion"], r["horizon_frames"]): r["n"] for r in data["rows_two_models"]}
    ours = {(r["motion"], r["horizon_frames"]): r["n"] for r in rows if r["model"] == "sortline"}
    assert two == ours and {r["model"] for r in data["rows_two_models"]} == {"sortline_2m"}


def test_bounce_share_variant_puts_bouncers_in_numbers():
    """``--bounce-share 1``: every fragment of the preset bounces; a share
    outside [0, 1] is refused."""
    from control.params import ControlParams

    samples = predict.run_preset("default", 1.5, 3, 0.25, {"sortline": ControlParams()}, 1.0)
    assert samples and {s["motion"] for s in samples} == {"bouncing"}
    with pytest.raises(SystemExit):
        predict.main(["--bounce-share", "1.5", "--seconds", "0.1"])
