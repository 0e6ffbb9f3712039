"""``bench/render.py --quick`` runs and writes its JSON."""

from __future__ import annotations

import json

from bench import render


def test_render_bench_quick(tmp_path):
    out = tmp_path / "render.json"
    assert render.main(["--quick", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    (res,) = data["results"]
    assert res["preset"] == "default" and res["frames_timed"] == 15
    assert 0 < res["frame_ms_median"] <= res["frame_ms_p99"]
    assert data["command"].startswith("sortline bench render --quick")


def test_render_bench_unknown_preset(capsys):
    assert render.main(["--quick", "--presets", "nosuch"]) == 2
    assert "unknown preset" in capsys.readouterr().err
