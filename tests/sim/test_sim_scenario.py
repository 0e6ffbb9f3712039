"""Scenario presets load; bad scenario files give one line naming file and field."""

from __future__ import annotations

import pytest

from core.errors import InputFileError
from sim.plant.scenario import Scenario, load_scenario, preset_names


@pytest.mark.parametrize("name", ["easy", "default", "crowded", "fast", "dirty"])
def test_presets_load(name):
    s = load_scenario(name)
    assert isinstance(s, Scenario) and s.name == name


def test_fast_runs_at_3_5_m_s():
    assert load_scenario("fast").motion.speed_mm_s == 3500.0


def test_crowded_is_denser_than_default():
    d, c = load_scenario("default"), load_scenario("crowded")
    assert c.feed.rate_obj_s > d.feed.rate_obj_s and c.feed.density > d.feed.density


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("[feed]\nrate_obj_s = -1.0\n", "feed.rate_obj_s", "greater than or equal"),
        ("[feed]\nrate_obj_s = 'many'\n", "feed.rate_obj_s", "valid number"),
        ("[feed]\nclass_mix = { gold = 1.0 }\n", "feed.class_mix", "unknown class"),
        ("[motion]\nwarp = 9\n", "motion.warp", "Extra inputs"),
        ("[feed]\nsize_min_mm = 100.0\nsize_median_mm = 50.0\n", "feed", "size_min_mm"),
        ("seed = -3\n", "seed", "greater than or equal"),
    ],
)
def test_bad_scenario_file_names_file_and_field(tmp_path, text, field, words):
    p = tmp_path / "scene.toml"
    p.write_text(text)
    with pytest.raises(InputFileError) as err:
        load_scenario(p)
    msg = str(err.value)
    assert msg.startswith(str(p)) and f": {field}" in msg and words in msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    ("arg", "words"),
    [("nosuchpreset", "no such preset"), ("/nonexistent/scene.toml", "file not found")],
)
def test_missing_scenario(arg, words):
    with pytest.raises(InputFileError, match=words):
        load_scenario(arg)


def test_not_toml(tmp_path):
    p = tmp_path / "x.toml"
    p.write_text("[feed\n")
    with pytest.raises(InputFileError, match="not valid TOML"):
        load_scenario(p)


def test_preset_list():
    assert {"easy", "default", "crowded", "fast", "dirty"} <= set(preset_names())
