"""``sortline bench predict`` (``bench/predict.py``) runs and writes its rows;
its reference fit is exact on a straight path; on lying fragments the
decision core beats the 5-point fit 10 frames ahead. The ceiling's path
family (``bench/_predict_oracle.py``) is exact on noise-free paths of the
plant's own form and its fit recovers them."""

from __future__ import annotations

import json
import math

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
    assert {r["model"] for r in rows} == {"sortline", "cv_fit5", "oracle", "oracle_lsq"}
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
    # the ceiling knows a lying piece rests: it is not beaten there
    oracle = {r["motion"]: r for r in rows if r["model"] == "oracle" and r["horizon_frames"] == 10}
    assert oracle["lying"]["hit_rate"] >= 0.95
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


@pytest.mark.parametrize(
    ("family", "params"),
    [
        ("rest", [400.0, -50.0]),
        ("slide", [400.0, -50.0, 300.0, -900.0, 0.4 * 9810.0]),  # brakes to rest in view
        ("roll", [400.0, -50.0, -60.0, 450.0, 1.5e-3, 0.02 * 9810.0]),  # +18 %, curving
    ],
)
def test_oracle_recovers_the_plants_path_forms(family, params):
    """Noise-free centres of each family's path (10 frames at 100/s, the belt
    at 2.5 m/s): the fitted path crosses y = 300 mm where the true one does,
    to 0.01 frame and 0.01 mm; the path itself is the plant's step rule
    (``sim.plant.motion``) integrated finely."""
    from bench import _predict_oracle as oracle

    p = np.asarray(params, float)
    times = np.arange(10) * 0.01
    ticks = 1000.0 + times * 25_000.0
    x, u = oracle.arc_path(p, times, family)
    xy = np.column_stack([x, u + 0.1 * (ticks - ticks[-1])])
    tick, xc = oracle.predict(ticks, times, xy, family, 300.0, 0.1, 0.01)
    fine = np.arange(0.0, 0.6, 1e-5)
    xt, ut = oracle.arc_path(p, fine, family)
    yt = ut + 2500.0 * (fine - times[-1])
    j = int(np.nonzero(yt >= 300.0)[0][0])
    assert tick == pytest.approx(ticks[-1] + 25_000.0 * (fine[j] - times[-1]), abs=2.5)
    assert xc == pytest.approx(xt[j], abs=0.01)
    # the closed form against the plant's rule: speed falls by d dt, velocity turns by k s dt
    if family == "roll":
        vx, vu, xx, uu, dt = p[2], p[3], p[0], p[1], 1e-5
        for _ in range(round(times[-1] / dt)):
            s = math.hypot(vx, vu)
            turn = p[4] * s * dt
            vx, vu = (
                math.cos(turn) * vx - math.sin(turn) * vu,
                math.sin(turn) * vx + math.cos(turn) * vu,
            )
            xx, uu = xx + vx * dt, uu + vu * dt
            scale = max(s - p[5] * dt, 0.0) / s
            vx, vu = vx * scale, vu * scale
        assert xx == pytest.approx(x[-1], abs=0.01) and uu == pytest.approx(u[-1], abs=0.01)
