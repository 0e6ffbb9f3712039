"""``sortline sim plant`` as its own process: frames read through the ring like a
camera, the PLC's trigger written over Modbus, the score over HTTP, SIGTERM
leaves nothing behind."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.frame_ring import FrameRingWriter, ring_path
from plc import regmap as rm
from vision.sources_shm import ShmRingCamera

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
SORTLINE = Path(sys.executable).with_name("sortline")
LINE = re.compile(r"ring (\S+), PLC 127\.0\.0\.1:(\d+), score (http://127\.0\.0\.1:\d+)/score")


@pytest.fixture
def ring() -> Iterator[str]:
    name = f"sortline-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield name
    ring_path(name).unlink(missing_ok=True)


def start(*args: str) -> tuple[subprocess.Popen[str], re.Match[str]]:
    proc = subprocess.Popen(
        [str(SORTLINE), "sim", "plant", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # printed (flushed) once everything listens
    found = LINE.search(line)
    if found is None:
        proc.kill()
        pytest.fail(f"no start line: {line!r} {proc.communicate()[1]!r}")
    return proc, found


def stop(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out, err


def http(url: str, body: dict[str, object] | None = None) -> dict[str, object]:
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(url, data=data, timeout=10) as reply:
        result: dict[str, object] = json.loads(reply.read())
        return result


def write_trigger_every(port: int, every: int) -> None:
    pdu = struct.pack(">BHH", 6, rm.HR_TRIGGER_EVERY, every)
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as s:
        s.sendall(struct.pack(">HHHB", 1, 0, len(pdu) + 1, 1) + pdu)
        assert s.recv(64)[7:] == pdu


def test_stepped_plant_process_serves_frames_plc_and_score(ring: str) -> None:
    proc, found = start("--stepped", "--plc-port", "0", "--score-port", "0", "--ring", ring)
    try:
        assert found[1] == ring and ring_path(ring).exists()
        plc_port, url = int(found[2]), found[3]
        write_trigger_every(plc_port, 250)  # the bridge does this on connect
        cam = ShmRingCamera(ring, size=(1280, 512), stepped=True)
        cam.open()
        frames = [cam.read(10.0) for _ in range(5)]
        assert [f.counter for f in frames] == [0, 1, 2, 3, 4]
        assert [f.exposure_tick for f in frames] == [250, 500, 750, 1000, 1250]
        health = http(url + "/health")
        assert health["frames"] == 5 and health["ring"] == ring
        assert health["plc_port"] == plc_port
        assert health["trigger"] == {"on": True, "every_ticks": 250, "next_tick": 1500, "seq": 5}
        score = http(url + "/score", {"targets": {"copper": "eject", "brass": "eject"}})
        assert score["targets"] == {"copper": "eject", "brass": "eject"}
        assert "purity" in score and "objects_ejected" in score
        with pytest.raises(urllib.error.HTTPError) as bad:
            http(url + "/score", {"targets": ["copper"]})
        assert bad.value.code == 400
        cam.close()
    finally:
        code, out, err = stop(proc)
    assert code == 0, err
    assert "virtual plant stopped: 5 frames" in out
    assert not ring_path(ring).exists()


def test_ring_in_use_is_a_one_line_error(ring: str) -> None:
    writer = FrameRingWriter.create(ring, 64, 48, 3)
    try:
        res = subprocess.run(
            [str(SORTLINE), "sim", "plant", "--plc-port", "0", "--ring", ring],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        writer.close()
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0
    assert res.stderr.startswith("sortline sim plant: error: frame ring") and "in use" in res.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ring", "a b"], "frame ring name"),
        (["--plc-port", "70000"], "--plc-port 70000 outside"),
        (["--scenario", "nosuch"], "no such preset"),
        (["--duration", "-1"], "--duration -1"),
        (["--keep-fragments", "0"], "--keep-fragments 0 must be >= 1"),
    ],
)
def test_bad_arguments(args: list[str], message: str) -> None:
    res = subprocess.run(
        [str(SORTLINE), "sim", "plant", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 2 and message in res.stderr, res.stderr


def test_paced_plant_runs_for_its_duration(ring: str) -> None:
    proc, found = start("--plc-port", "0", "--ring", ring, "--duration", "1.0")
    try:
        cam = ShmRingCamera(ring, size=(1280, 512))
        cam.open()
        write_trigger_every(int(found[2]), 250)
        frame = cam.read(5.0)
        assert frame.exposure_tick is not None and frame.exposure_tick % 250 == 0
        cam.close()
        _, err = proc.communicate(timeout=30)  # it stops by itself
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    assert not ring_path(ring).exists()
