"""The shared-memory frame ring: round trip, newest wins, no torn frames across
processes, stepped requests, one-line errors, stale rings replaced."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from core.frame_ring import (
    HEADER_BYTES,
    FrameRingError,
    FrameRingReader,
    FrameRingWriter,
    ring_path,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def name() -> Iterator[str]:
    """A ring name in /dev/shm no other test uses; removed afterwards."""
    n = f"sortline-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield n
    ring_path(n).unlink(missing_ok=True)


def frame(value: int, shape: tuple[int, ...] = (48, 64, 3)) -> np.ndarray:
    return np.full(shape, value % 256, np.uint8)


def run_python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(("channels", "shape"), [(3, (48, 64, 3)), (1, (48, 64))])
@pytest.mark.parametrize("tick", [123456, None, 2**32 - 1])
def test_round_trip(name: str, channels: int, shape: tuple[int, ...], tick: int | None) -> None:
    writer = FrameRingWriter.create(name, 64, 48, channels, slots=4)
    reader = FrameRingReader.attach(name)
    image = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    writer.write(image, counter=7, t_s=12.5, exposure_tick=tick)
    got = reader.read(0.5)
    assert np.array_equal(got.image, image)
    assert (got.counter, got.t_s, got.exposure_tick) == (7, 12.5, tick)
    image[...] = 0  # the reader holds a copy
    assert got.image.any()
    assert (reader.width, reader.height, reader.channels, reader.slots) == (64, 48, channels, 4)
    reader.close()
    writer.close()
    assert not ring_path(name).exists()


def test_newest_wins_and_skipped_frames_are_gaps(name: str) -> None:
    writer = FrameRingWriter.create(name, 64, 48, 3, slots=4)
    reader = FrameRingReader.attach(name)
    with pytest.raises(TimeoutError):
        reader.read(0.01)
    for k in range(10):  # more than the ring holds
        writer.write(frame(k), k, float(k))
    assert reader.latest_counter() == 9
    got = reader.read(0.1)
    assert got.counter == 9 and got.image[0, 0, 0] == 9
    with pytest.raises(TimeoutError):
        reader.read(0.01)  # nothing newer
    writer.write(frame(10), 10, 10.0)
    writer.write(frame(11), 11, 11.0)
    assert reader.read(0.1).counter == 11  # 10 skipped: a gap in the counter
    reader.close()
    writer.close()


def test_a_reader_attached_late_gets_only_frames_written_since(name: str) -> None:
    """A camera reopened after a stall must not deliver again the frames the
    line already processed."""
    writer = FrameRingWriter.create(name, 64, 48, 3)
    for k in range(3):
        writer.write(frame(k), 100 + k, 0.0)
    reader = FrameRingReader.attach(name)
    with pytest.raises(TimeoutError):
        reader.read(0.05)
    writer.write(frame(3), 103, 0.0)
    assert reader.read(0.1).counter == 103
    reader.close()
    writer.close()


_FAST_WRITER = """
import sys, time
import numpy as np
from core.frame_ring import FrameRingWriter
w = FrameRingWriter.create(sys.argv[1], 640, 256, 3, slots=2)
img = np.empty((256, 640, 3), np.uint8)
print("ready", flush=True)
end = time.monotonic() + float(sys.argv[2])
k = 0
while time.monotonic() < end:
    img.fill(k % 251)
    w.write(img, k, time.monotonic(), k)
    k += 1
w.close()
print(k, flush=True)
"""


@pytest.mark.timeout(60)
def test_no_torn_frame_from_a_fast_writer_in_another_process(name: str) -> None:
    """Two slots and a writer as fast as it can go: the reader's copies are
    often overtaken, yet every frame it returns is one frame, whole."""
    proc = run_python(_FAST_WRITER, name, "1.5")
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        reader = FrameRingReader.attach(name)
        reads, last = 0, -1
        while True:
            try:
                got = reader.read(0.5)
            except TimeoutError:
                break
            img = got.image
            assert img.min() == img.max() == got.counter % 251, f"torn frame {got.counter}"
            assert got.exposure_tick == got.counter > last
            last = got.counter
            reads += 1
        written = int(proc.stdout.readline())
        assert proc.wait(10) == 0
    finally:
        proc.kill()
        proc.wait()
    assert reads > 50
    assert written > reads  # the writer lapped the reader: newest wins
    print(f"{written} written, {reads} read, {reader.retries} copies overtaken and redone")
    reader.close()


def test_stepped_requests(name: str) -> None:
    writer = FrameRingWriter.create(name, 64, 48, 3)
    reader = FrameRingReader.attach(name)
    assert writer.wait_request(0.01) is None
    reader.request(0)
    assert writer.wait_request(0.5) == 0
    assert writer.wait_request(0.01) is None  # asked once, answered once
    reader.request(3)
    assert writer.wait_request(0.5) == 3
    reader.request(2)  # older than one already asked for: nothing to do
    assert writer.wait_request(0.01) is None
    reader.request(4)
    assert writer.wait_request(0.5) == 4
    reader.close()
    writer.close()


@pytest.mark.parametrize("bad", ["", "a b", "..", ".hidden", "x" * 300])
def test_bad_names(bad: str) -> None:
    with pytest.raises(FrameRingError, match="frame ring name"):
        ring_path(bad)


def test_a_name_with_a_slash_is_a_path(tmp_path: Path) -> None:
    path = str(tmp_path / "ring")
    writer = FrameRingWriter.create(path, 64, 48, 3)
    assert writer.path == Path(path)
    reader = FrameRingReader.attach(path)
    writer.write(frame(5), 5, 0.0)
    assert reader.read(0.1).counter == 5
    reader.close()
    writer.close()
    assert not Path(path).exists()


def _header_of(tmp_path: Path) -> bytes:
    path = tmp_path / "good"
    writer = FrameRingWriter.create(str(path), 64, 48, 3, slots=2)
    data = path.read_bytes()
    writer.close()
    return data


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda d: b"NOTARING" + d[8:], "not a frame ring"),
        (lambda d: d[:8] + (99).to_bytes(4, "little") + d[12:], "layout version 99"),
        (lambda d: d[: HEADER_BYTES + 100], "truncated"),
        (lambda d: d[:20], "truncated"),
        (lambda d: d[:16] + bytes(4) + d[20:], "bad header"),
    ],
)
def test_attach_errors_are_one_line(
    tmp_path: Path, mangle: Callable[[bytes], bytes], message: str
) -> None:
    data = mangle(_header_of(tmp_path))
    path = tmp_path / "bad"
    path.write_bytes(data)
    with pytest.raises(FrameRingError, match=message) as err:
        FrameRingReader.attach(str(path))
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_missing_ring(name: str) -> None:
    with pytest.raises(FrameRingError, match="does not exist"):
        FrameRingReader.attach(name)


def test_wrong_image_is_refused(name: str) -> None:
    writer = FrameRingWriter.create(name, 64, 48, 3)
    with pytest.raises(ValueError, match="the ring holds"):
        writer.write(frame(1, (48, 64)), 0, 0.0)
    with pytest.raises(ValueError, match="the ring holds"):
        writer.write(np.zeros((48, 64, 3), np.float32), 0, 0.0)
    writer.close()


@pytest.mark.parametrize(("w", "h", "c", "slots"), [(0, 48, 3, 8), (64, 48, 2, 8), (64, 48, 3, 0)])
def test_bad_ring_shape(name: str, w: int, h: int, c: int, slots: int) -> None:
    with pytest.raises(FrameRingError):
        FrameRingWriter.create(name, w, h, c, slots)
    assert not ring_path(name).exists()


def test_a_live_writer_keeps_its_ring(name: str) -> None:
    writer = FrameRingWriter.create(name, 64, 48, 3)
    with pytest.raises(FrameRingError, match=f"in use by running process {os.getpid()}"):
        FrameRingWriter.create(name, 64, 48, 3)
    writer.close()


_CRASHING_WRITER = """
import os, sys
import numpy as np
from core.frame_ring import FrameRingWriter
w = FrameRingWriter.create(sys.argv[1], 64, 48, 3)
w.write(np.zeros((48, 64, 3), np.uint8), 0, 0.0)
os._exit(0)  # no close: the ring stays behind
"""


@pytest.mark.timeout(60)
def test_a_stale_ring_is_replaced(name: str) -> None:
    proc = run_python(_CRASHING_WRITER, name)
    assert proc.wait(30) == 0, proc.stderr.read() if proc.stderr else ""
    assert ring_path(name).exists()
    old = FrameRingReader.attach(name)
    assert not old.writer_alive()  # its process is gone
    writer = FrameRingWriter.create(name, 32, 16, 1)  # replaced, a new size
    reader = FrameRingReader.attach(name)
    writer.write(frame(9, (16, 32)), 0, 0.0)
    assert reader.writer_alive()
    assert reader.read(0.1).image.shape == (16, 32)
    with pytest.raises(TimeoutError):  # the old mapping: its writer is gone, nothing new
        old.read(0.01)
    for r in (old, reader):
        r.close()
    writer.close()


def test_a_closed_writer_is_not_alive_and_its_file_replaceable(name: str) -> None:
    writer = FrameRingWriter.create(name, 64, 48, 3)
    reader = FrameRingReader.attach(name)
    assert reader.writer_alive()
    writer.close(unlink=False)
    assert ring_path(name).exists() and not reader.writer_alive()
    again = FrameRingWriter.create(name, 64, 48, 3)
    again.close()
    assert not ring_path(name).exists()
    reader.close()


def test_close_leaves_a_newer_ring_alone(name: str) -> None:
    first = FrameRingWriter.create(name, 64, 48, 3)
    other = FrameRingWriter.create(name + "-other", 64, 48, 3)
    os.replace(ring_path(name + "-other"), ring_path(name))  # another ring put in its place
    first.close()
    assert ring_path(name).exists()
    other.close(unlink=False)


def test_writer_alive_needs_a_recent_beat(name: str) -> None:
    writer = FrameRingWriter.create(name, 64, 48, 3)
    reader = FrameRingReader.attach(name)
    time.sleep(0.06)
    assert not reader.writer_alive(stale_s=0.05)
    writer.beat()
    assert reader.writer_alive(stale_s=0.05)
    reader.close()
    writer.close()


@pytest.mark.timeout(60)
def test_rings_of_dead_writers_are_removed(tmp_path: Path) -> None:
    """A writer killed without closing leaves its ring file; ``remove_dead_rings``
    removes those of a prefix whose writer is gone, and leaves a live writer's
    ring, files that are not rings and other prefixes alone."""
    from core.frame_ring import remove_dead_rings

    dead = [tmp_path / f"sortline-l-{i}" for i in range(2)]
    for path in dead:
        proc = run_python(_CRASHING_WRITER, str(path))
        assert proc.wait(30) == 0, proc.stderr.read() if proc.stderr else ""
    other = tmp_path / "sortline-m-0"
    proc = run_python(_CRASHING_WRITER, str(other))
    assert proc.wait(30) == 0
    live = FrameRingWriter.create(str(tmp_path / "sortline-l-live"), 64, 48, 3)
    (tmp_path / "sortline-l-notes.txt").write_text("not a ring")
    try:
        assert remove_dead_rings("sortline-l-", tmp_path) == dead
        assert not any(p.exists() for p in dead)
        assert other.exists() and (tmp_path / "sortline-l-live").exists()
        assert (tmp_path / "sortline-l-notes.txt").exists()
        assert remove_dead_rings("sortline-l-", tmp_path) == []
    finally:
        live.close()
