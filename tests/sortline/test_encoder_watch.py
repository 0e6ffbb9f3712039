"""``EncoderWatch``: the PLC's encoder as the frame loop sees it, sample by
sample (2.5 m/s at 0.1 mm/tick: 25 ticks per ms), as a table of cases."""

from __future__ import annotations

import pytest

from sortline.timebase import EncoderWatch

MM, SPEED = 0.1, 2500.0


def _feed(watch: EncoderWatch, samples: list[tuple[float, int, float]], boot: int = 1) -> int:
    """(t_s, tick, speed) samples; the number of jumps seen."""
    return sum(watch.observe(tick, t, speed, MM, boot) for t, tick, speed in samples)


def _run(t0: float, n: int, tick0: int, dt: float = 0.01, speed: float = SPEED) -> list:
    per = round(speed * dt / MM)
    return [(t0 + i * dt, (tick0 + i * per) % (1 << 32), speed) for i in range(n)]


@pytest.mark.parametrize(
    ("samples", "jumps", "stuck"),
    [
        (_run(0, 50, 0), 0, False),  # a running belt
        (_run(0, 50, (1 << 32) - 1000), 0, False),  # across the uint32 wrap
        (_run(0, 10, 0) + [(0.10 + i * 0.01, 2250, SPEED) for i in range(40)], 0, True),
        (_run(0, 10, 0, speed=0.0) + [(0.1 + i * 0.01, 0, 0.0) for i in range(50)], 0, False),
        (_run(0, 10, 0) + _run(0.1, 10, 2500 + 50_000), 1, False),  # forward 5 m
        (_run(0, 10, 0) + _run(0.1, 10, (2500 - 50_000) % (1 << 32)), 1, False),  # back 5 m
        (_run(0, 10, 0) + _run(2.1, 10, 2500 + 52_500 - 250), 0, False),  # a 2 s gap, belt ran
        (_run(0, 10, 0, speed=5.0) + [(0.1 + i * 0.01, 0, 5.0) for i in range(30)], 0, False),
        (_run(0, 10, 0) + _run(0.1, 10, 2500 + 12_500), 1, False),  # 0.5 s of travel ahead
        (
            _run(0, 10, 0)
            + [(0.1 + i * 0.01, 2250, SPEED) for i in range(15)]
            + _run(0.25, 10, 2500),
            0,
            False,
        ),  # the plant stalled 0.15 s: slower, not stuck
    ],
    ids=[
        "running",
        "wrap",
        "frozen",
        "stopped",
        "fwd",
        "back",
        "paused-poll",
        "slow-belt",
        "fwd-half-second",
        "hiccup",
    ],
)
def test_watch(samples: list, jumps: int, stuck: bool) -> None:
    w = EncoderWatch()
    assert _feed(w, samples) == jumps == w.jumps
    assert bool(w.stuck) is stuck
    if stuck:
        assert w.stuck.startswith("encoder count stuck at 2250 for") and "2500 mm/s" in w.stuck


def test_stuck_clears_when_the_count_moves_and_a_new_boot_starts_over() -> None:
    w = EncoderWatch()
    _feed(w, _run(0, 5, 0) + [(0.05 + i * 0.01, 1000, SPEED) for i in range(40)])
    assert w.stuck
    w.observe(1250, 0.46, SPEED, MM, 1)
    assert not w.stuck
    assert not w.observe(7, 0.47, SPEED, MM, 2)  # another PLC boot: no jump, no stuck
    assert w.jumps == 0 and not w.stuck
    assert not w.observe(None, 0.48, SPEED, MM, 2) and not w.stuck  # no link: nothing judged
