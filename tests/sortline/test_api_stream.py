"""``GET /stream`` (Server-Sent Events) and ``GET /preview.jpg`` over HTTP
against a running (stepped) line: events carry the status snapshot and follow
the line, the key may come as ``?key=`` on these routes only, the rate is
bounded, the number of streams too, and the preview is a JPEG of the newest
frame."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

import sortline.api_stream as api_stream
from sortline.auth import Role
from sortline.runtime import SortingLine

from .conftest import ApiKeys, served_line, until

Served = tuple[SortingLine, str]
AsRole = Callable[[Role | None], httpx.Client]


@pytest.fixture(scope="module")
def served(api_keys: ApiKeys) -> Iterator[tuple[SortingLine, str]]:
    with served_line(api_keys, 30, records=False) as got:
        yield got


def events(resp: httpx.Response) -> Iterator[dict[str, Any]]:
    """Parsed SSE events of a streaming response."""
    event: dict[str, Any] = {}
    for line in resp.iter_lines():
        if not line:
            if "data" in event:
                yield event
            event = {}
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(": ")
        event[field] = value


def test_stream_sends_status_snapshots_that_follow_the_line(
    served: Served, api_keys: ApiKeys
) -> None:
    line, url = served
    with httpx.stream(
        "GET", f"{url}/stream", params={"rate_hz": 10}, headers=api_keys.headers("maintenance"),
        timeout=30,
    ) as r:  # fmt: skip
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        it = events(r)
        first = next(it)
        assert first["event"] == "status" and first["id"] == "1"
        snap = json.loads(first["data"])
        assert snap["line"] == "virtual-plant" and snap["state"] == "EXECUTE"
        frames0 = snap["frames"]
        line.run_frames(5)
        for n, ev in enumerate(it, 2):
            assert ev["id"] == str(n)
            if json.loads(ev["data"])["frames"] == frames0 + 5:
                break
            assert n < 100, "the stream never showed the new frames"


def test_key_in_the_url_only_on_the_live_routes(served: Served, api_keys: ApiKeys) -> None:
    _, url = served
    key = api_keys.key["maintenance"]
    r = httpx.get(f"{url}/preview.jpg", params={"key": key})
    assert r.status_code == 200
    with httpx.stream("GET", f"{url}/stream", params={"key": key}) as s:
        assert s.status_code == 200
    for path in ("/stream", "/preview.jpg", "/preview/legend"):
        assert httpx.get(f"{url}{path}", params={"key": "sl_" + "x" * 43}).status_code == 401
        assert httpx.get(f"{url}{path}").status_code == 401
    assert httpx.get(f"{url}/status", params={"key": key}).status_code == 401
    assert httpx.get(f"{url}/whoami", params={"key": key}).status_code == 401


@pytest.mark.parametrize("rate", ["0", "11", "-1", "fast"])
def test_rate_is_bounded(served: Served, as_role: AsRole, rate: str) -> None:
    _, url = served
    r = as_role("maintenance").get(f"{url}/stream", params={"rate_hz": rate})
    assert r.status_code == 422 and "rate_hz" in json.dumps(r.json()["detail"])


def test_streams_are_limited(served: Served, api_keys: ApiKeys) -> None:
    _, url = served
    n = api_stream.MAX_STREAMS  # the API runs in its own process: the real limit
    h = api_keys.headers("maintenance")
    with contextlib.ExitStack() as stack:
        for _ in range(n):
            c = stack.enter_context(httpx.Client(headers=h, timeout=30))
            s = stack.enter_context(c.stream("GET", f"{url}/stream", params={"rate_hz": 10}))
            assert s.status_code == 200
        r = httpx.get(f"{url}/stream", headers=h)
        assert r.status_code == 503 and f"{n} streams" in r.json()["detail"]

    def one_more_gets_in() -> bool:
        with httpx.stream("GET", f"{url}/stream", headers=h) as s:
            return s.status_code == 200

    assert until(one_more_gets_in, 10.0)  # closed streams are counted out


def test_preview_is_the_newest_frame_annotated(served: Served, as_role: AsRole) -> None:
    line, url = served
    line.run_frames(3)
    r = as_role("maintenance").get(f"{url}/preview.jpg")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    img = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape == (256, 640, 3)  # 1280 x 512 scaled to 640 wide
    latest = line.preview.latest
    assert latest is not None
    assert int(r.headers["x-frame-id"]) == latest.frame.frame_id
    assert int(r.headers["x-detections"]) == len(latest.detections)
    assert int(r.headers["x-windows"]) >= 0
    legend = as_role("maintenance").get(f"{url}/preview/legend").json()["colours"]
    assert list(legend) == list(line.parts.class_names) and legend["battery"] == "#ff0000"


def test_preview_before_the_first_frame(api_keys: ApiKeys, as_role: AsRole) -> None:
    with served_line(api_keys, 0, records=False) as (_, url):
        r = as_role("maintenance").get(f"{url}/preview.jpg")
        assert r.status_code == 503 and r.json()["detail"] == "no camera frame yet"


def test_bench_api_load_quick_writes_its_json(tmp_path: Path) -> None:
    """``sortline bench api_load --quick``: a wall-clock line with and without
    three dashboards and a scraper; the JSON has both phases and the clients
    were served (figures are the bench's, not asserted here)."""
    from bench import api_load

    out = tmp_path / "api_load.json"
    assert api_load.main(["--quick", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["benchmark"] == "api_load" and "api_load --quick" in data["command"]
    idle, loaded = data["results"]
    assert idle["phase"] == "idle-1" and idle["frames"] > 0 and idle["clients"] is None
    assert loaded["phase"] == "loaded-1" and loaded["frames"] > 0
    c = loaded["clients"]
    assert c["events"] > 0 and c["previews"] > 0 and c["scrapes"] >= 1  # errors: in the JSON
    assert set(data["summary"]) >= {"idle", "loaded", "p99_change_ms"}


def test_bench_renices_every_thread_of_the_plant(tmp_path: Path) -> None:
    """``--plant-nice``: a nice value is per thread on Linux, so every running
    thread of the plant's process gets it, not only its first."""
    import subprocess
    import sys

    from bench.api_load import _renice_all

    code = (
        "import threading,time\n"
        "for _ in range(3): threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
        "print('ready', flush=True); time.sleep(30)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        _renice_all(child.pid, 7)
        tasks = list(Path(f"/proc/{child.pid}/task").iterdir())
        assert len(tasks) == 4
        assert [os.getpriority(os.PRIO_PROCESS, int(t.name)) for t in tasks] == [7] * 4
    finally:
        child.kill()
        child.wait(timeout=10)


def test_preview_draws_the_planned_air_jet_windows(served: Served, as_role: AsRole) -> None:
    """Frame by frame until a pulse is planned: its window is drawn (here on the
    valve-line strip: pulses go out shortly before the valve line, which lies
    downstream of the camera's view)."""
    line, url = served
    for _ in range(300):
        line.run_frames(1)
        r = as_role("maintenance").get(f"{url}/preview.jpg")
        if int(r.headers["x-windows"]) > 0:
            break
    else:
        pytest.fail("no air-jet window planned in 300 frames")
    img = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    px = img.astype(int)  # cyan (B, G high, R low: no class colour) where valves will open
    cyan = (px[..., 0] > 180) & (px[..., 1] > 180) & (px[..., 2] < 110)
    assert cyan.any()
