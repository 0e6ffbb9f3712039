from __future__ import annotations

import numpy as np
import pytest

from core.ticks import TICK_MODULUS, TickUnwrapper, tick_diff, tick_diff_array, wrap_tick


@pytest.mark.parametrize(
    ("a", "b", "diff"),
    [
        (10, 5, 5),
        (5, 10, -5),
        (3, TICK_MODULUS - 2, 5),  # a just after the wrap
        (TICK_MODULUS - 2, 3, -5),
        (0, 0, 0),
    ],
)
def test_tick_diff(a: int, b: int, diff: int) -> None:
    assert tick_diff(a, b) == diff
    assert tick_diff_array(np.array([a]), b)[0] == diff


def test_unwrapper_follows_the_wrap() -> None:
    unwrap = TickUnwrapper()
    counts = [TICK_MODULUS - 300, TICK_MODULUS - 1, 5, 400, 390]
    got = [unwrap(c) for c in counts]
    assert got == [
        TICK_MODULUS - 300,
        TICK_MODULUS - 1,
        TICK_MODULUS + 5,
        TICK_MODULUS + 400,
        TICK_MODULUS + 390,
    ]
    assert wrap_tick(got[2]) == 5
    with pytest.raises(ValueError):
        unwrap(-1)
