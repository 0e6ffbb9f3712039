"""Recipes: TOML validated strictly, bound to the model's class names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from control.recipe import load_recipe
from core.classes import DEFAULT_CLASSES
from core.errors import InputFileError

GOOD = """
name = "two-bins"
version = 3
co_ejection_tolerance = 0.2
[fractions]
eject = 0
metals = 1
[classes.copper]
fraction = "eject"
threshold = 0.6
priority = 4
[classes.steel]
fraction = "metals"
priority = 2
[classes.battery]
fraction = "eject"
priority = 1
[classes.pcb]
priority = 9
"""


def test_builtin_default(recipe):
    assert recipe.targets() == {"copper": "eject", "brass": "eject", "battery": "eject"}
    assert recipe.fraction_names == ("eject",)
    assert recipe.battery_id == DEFAULT_CLASSES.index("battery")
    assert recipe.priority[recipe.battery_id] == recipe.priority.max()
    assert not recipe.class_fraction.flags.writeable


def test_file_recipe_binds_by_name(tmp_path: Path):
    p = tmp_path / "r.toml"
    p.write_text(GOOD)
    classes = tuple(reversed(DEFAULT_CLASSES))  # the model's own order
    r = load_recipe(p, classes)
    assert r.targets() == {"copper": "eject", "steel": "metals", "battery": "eject"}
    assert r.class_fraction[classes.index("steel")] == 1
    assert r.threshold[classes.index("copper")] == pytest.approx(0.6)
    assert r.n_diverters == 1
    # battery always wins, whatever the file says
    assert (
        r.priority[classes.index("battery")] > np.delete(r.priority, classes.index("battery")).max()
    )


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        (GOOD.replace("threshold = 0.6", "threshold = 1.6"), "classes.copper.threshold", "less"),
        (GOOD.replace("version = 3", 'version = "3"'), "version", "integer"),
        ("speed = 3\n" + GOOD, "speed", "Extra"),
        (GOOD.replace('fraction = "metals"', 'fraction = "gold"'), None, "unknown fraction"),
        (GOOD.replace("[classes.pcb]", "[classes.kryptonite]"), "classes.kryptonite", "not known"),
        (GOOD.replace("metals = 1", "metals = 0\nmore = 1\nother = 1"), None, "share one"),
        ("name = 'x'\nversion = 1\n[fractions]\n", "fractions", "at least 1"),
        ("not toml [", None, "not valid TOML"),
    ],
)
def test_bad_recipes_one_line(tmp_path: Path, text, field, words):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(InputFileError) as err:
        load_recipe(p, DEFAULT_CLASSES)
    msg = str(err.value)
    assert "\n" not in msg and str(p) in msg and words in msg
    if field is not None:
        assert err.value.field == field


@pytest.mark.parametrize("name", ["missing.toml", "builtin:nope"])
def test_missing_recipe(tmp_path: Path, name):
    target = name if name.startswith("builtin:") else tmp_path / name
    with pytest.raises(InputFileError, match=r"not found|no such"):
        load_recipe(target, DEFAULT_CLASSES)
