"""Writing TOML: what ``core.tomlw`` writes, ``tomllib`` reads back the same."""

from __future__ import annotations

import math
import tomllib

import pytest

from core.tomlw import dumps, toml_value


def test_round_trip_through_tomllib() -> None:
    data = {
        "name": 'a "quoted" \\ name',
        "seed": 5,
        "on": True,
        "nothing": None,  # left out
        "feed": {"rate_obj_s": 500.0, "mix": {"copper": 1.0, "pcb": 0.5}, "tags": ["x", "y"]},
        "api": {"keys": [{"name": "op", "role": "operator"}]},
    }
    back = tomllib.loads(dumps(data, "generated"))
    expected = {k: v for k, v in data.items() if v is not None}
    assert back == expected


@pytest.mark.parametrize("bad", [math.nan, math.inf, object()])
def test_values_toml_cannot_hold_are_refused(bad: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        toml_value(bad)
