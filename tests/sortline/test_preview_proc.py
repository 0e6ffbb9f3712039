"""The preview's child process: it draws exactly what the in-process drawing
would, in another process, throttled per server; a renderer that died or
hangs is replaced on the next request, and closing stops it."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from sortline.preview import PreviewTap, draw_preview, encode_jpeg
from sortline.preview_proc import PreviewEncoder, PreviewUnavailableError, pulses_to_come
from tests.sortline.test_preview import PLANNED, T, _cycle, _geo, _pulses


def _alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = open(f"/proc/{pid}/stat").read()  # noqa: SIM115
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _gone(pid: int, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def encoder() -> PreviewEncoder:
    tap = PreviewTap()
    enc = PreviewEncoder(tap, _geo, max_fps=1000.0)
    yield enc
    enc.close()


def test_the_child_draws_what_the_drawing_draws(encoder: PreviewEncoder) -> None:
    assert encoder.image() is None  # no frame yet: no child either
    assert encoder.renderer.pid is None
    c = _cycle(T, 5)
    encoder.tap.on_cycle(c)
    encoder.tap.on_cycle(_cycle(T, 6, PLANNED))
    got = encoder.image()
    assert got is not None and got.frame_id == 6 and got.tick == T
    img, windows = draw_preview(encoder.tap.latest, [PLANNED], _geo(), 640)  # type: ignore[arg-type]
    assert got.jpeg == encode_jpeg(img) and got.windows == len(windows) == 2
    assert got.detections == 2
    pid = encoder.renderer.pid
    assert pid is not None and pid != os.getpid()
    encoder.tap.on_cycle(_cycle(T + 1, 7))
    assert encoder.image().frame_id == 7  # type: ignore[union-attr]
    assert encoder.renderer.pid == pid and encoder.renderer.starts == 1  # kept


def test_throttled_to_max_fps() -> None:
    tap = PreviewTap()
    enc = PreviewEncoder(tap, _geo, max_fps=10.0)
    try:
        tap.on_cycle(_cycle(T, 0))
        assert enc.image() is not None  # the child's start is not part of the timing below
        t0 = time.monotonic()
        frame_ids = set()
        for i in range(1, 300):  # a new frame before every request: still at most 10 a second
            tap.on_cycle(_cycle(T + i, i))
            got = enc.image()
            assert got is not None
            frame_ids.add(got.frame_id)
        elapsed = time.monotonic() - t0
        assert 1 <= enc.encoded <= 2 + int(elapsed * 10) + 1
        assert len(frame_ids) <= enc.encoded
    finally:
        enc.close()


def test_a_killed_renderer_is_started_again(encoder: PreviewEncoder) -> None:
    encoder.tap.on_cycle(_cycle(T, 1))
    assert encoder.image() is not None
    pid = encoder.renderer.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert _gone(pid)
    encoder.tap.on_cycle(_cycle(T + 1, 2))
    got = encoder.image()
    assert got is not None and got.frame_id == 2
    assert encoder.renderer.starts == 2 and encoder.renderer.pid not in (None, pid)


def test_a_hung_renderer_is_refused_in_time_then_replaced(encoder: PreviewEncoder) -> None:
    encoder.renderer.timeout_s = 0.5
    encoder.tap.on_cycle(_cycle(T, 1))
    assert encoder.image() is not None
    pid = encoder.renderer.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # alive but never answers
    encoder.tap.on_cycle(_cycle(T + 1, 2))
    t0 = time.monotonic()
    with pytest.raises(PreviewUnavailableError, match=r"no answer in 0\.5 s"):
        encoder.image()
    assert time.monotonic() - t0 < 4.0
    assert _gone(pid)  # killed, not left stopped
    got = encoder.image()
    assert got is not None and got.frame_id == 2 and encoder.renderer.starts == 2


def test_close_stops_the_child() -> None:
    tap = PreviewTap()
    enc = PreviewEncoder(tap, _geo)
    tap.on_cycle(_cycle(T, 1))
    assert enc.image() is not None
    pid = enc.renderer.pid
    assert pid is not None and _alive(pid)
    enc.close()
    assert _gone(pid) and enc.renderer.pid is None


@pytest.mark.parametrize("now", [T, 2**32 - 200])
def test_pulses_to_come_keeps_the_bar_pulses_not_over(now: int) -> None:
    p = _pulses(
        [
            (0, 1, 2, now + 10, now + 400),  # to come
            (0, 3, 3, now - 50, now + 5),  # open now
            (0, 4, 4, now - 500, now - 1),  # over
            (0, 5, 5, now - 500, now),  # closes at this count: over
            (1, 0, 0, now + 10, now + 400),  # a flap, not the bar
        ]
    )
    got = pulses_to_come([p, PLANNED[:0]], now)
    assert got.first_valve.tolist() == [1, 3]
    assert len(pulses_to_come([], now)) == 0
    assert np.all(got.actuator == 0)


def test_a_renderer_reaped_elsewhere_is_replaced_within_the_request(
    encoder: PreviewEncoder,
) -> None:
    """Another part of the process reaped the dead child first (a waitpid of
    its own): multiprocessing still thinks it alive, its pipe is broken; the
    request starts a new renderer and is answered."""
    encoder.tap.on_cycle(_cycle(T, 1))
    assert encoder.image() is not None
    pid = encoder.renderer.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)  # reaped here, not by multiprocessing
    encoder.tap.on_cycle(_cycle(T + 1, 2))
    got = encoder.image()
    assert got is not None and got.frame_id == 2
    assert encoder.renderer.starts == 2 and encoder.renderer.pid != pid
