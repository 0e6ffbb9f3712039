"""Sparkplug B traffic of several lines into one broker: end-to-end latency
from publish to an independent subscriber, and what saturates first.

``sortline bench plant_mqtt [--lines 3] [--fragments-s 500] [--seconds S]
[--publish-s 0.5,0.05,0.01,0.005] [--json OUT] [--quick]``

Three live lines at 500 fragments/s do not fit two cores, so each line here
is its own ``SparkplugNode`` (the publisher ``sortline run`` uses, unchanged
but for a timestamp taken as each message is handed to paho) fed from a
recorded decision stream: a seeded Poisson stream of fragments at
``--fragments-s`` per line, each decided (targeted 40 %, a deadline miss 0.1
%), read back as the line's ``StatusSnapshot`` at each publishing round.
A real ``mosquitto`` on loopback carries the traffic; ``mosquitto_sub``
(another process) stamps each message as it prints it (``%U``, wall clock,
ns). Latency = that stamp minus the publish stamp, matched by node and
``seq``. Per setting of ``publish_s`` (how often a line publishes its
changes), on a broker with its default settings and with ``set_tcp_nodelay
true`` (mosquitto leaves Nagle's algorithm on by default; the node turns it
off on its own socket): messages/s, bytes/s, latency p50/p99/max, messages
dropped, the machine's load, and the CPU share of the broker, the subscriber
and the publishers' process, which says what saturates first.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import write_result
from core.net import free_port as _free_port
from plc.bridge import PlcStatus
from sortline.config import MqttSection
from sortline.sparkplug import LineReading, Payload, SparkplugNode
from sortline.status import CameraView, LatencyMs, Quality, StatusSnapshot, TimeBaseView

GROUP = "bench"


def _plc_status() -> PlcStatus:
    """A connected PLC, every field given (whatever the dataclass holds today)."""
    blank = {"bool": True, "int": 0, "float": 0.0, "str": ""}
    kw: dict[str, Any] = {}
    for f in dataclasses.fields(PlcStatus):
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
            continue
        t = str(f.type)
        kw[f.name] = next((v for k, v in blank.items() if t.startswith(k)), None)
        if t.startswith("dict"):
            kw[f.name] = {}
        elif t.startswith("tuple"):
            kw[f.name] = (0,) * 80
    kw.update(speed_mm_s=2500.0, state=6, estop=False)
    return PlcStatus(**kw)


def _template(line: str) -> StatusSnapshot:
    cam = CameraView.model_construct(
        source="plant", name="recorded", connected=True, frames_read=0, frames_lost=0,
        frames_bad=0, reconnects=0, last_error="", seconds_since_frame=0.0,
    )  # fmt: skip
    tb = TimeBaseView.model_construct(
        mode="trigger", trigger_every_ticks=250, frames_stamped=0, frames_unstamped=0,
        mismatches=0, timing_outliers=0, frames_unchecked=0, error_source="camera",
        error_ticks_p50=0.0, error_ticks_p99=0.0, error_ticks_max=0.0, error_mm_p99=0.0,
        last_problem="",
    )  # fmt: skip
    return StatusSnapshot.model_construct(
        line=line, state="EXECUTE", state_code=6, causes=[], events=[], recipe="default",
        calibration={}, line_params={}, uptime_s=0.0, frames=0, frames_dropped=0,
        frames_untimed=0, live_tracks=0, controller={}, throughput_per_min=None,
        deadline_misses=0, quality=Quality(), composition={},
        latency_ms=LatencyMs(p50=3.0, p99=6.0, max=9.0), camera=cam, timebase=tb,
        plc=_plc_status(), virtual_plant=False, warm_up_s=None, valves_disabled=[],
    )  # fmt: skip


class RecordedLine:
    """A line's decision stream (seeded): fragment times, targeted, missed."""

    def __init__(self, name: str, fragments_s: float, seconds: float, seed: int) -> None:
        rng = np.random.default_rng(seed)
        n = int(fragments_s * seconds * 1.2) + 10
        self.t_s = np.cumsum(rng.exponential(1.0 / fragments_s, n))
        self.targeted = np.cumsum(rng.random(n) < 0.4)
        self.missed = np.cumsum(rng.random(n) < 0.001)
        self.template = _template(name)
        self.fragments_s = fragments_s
        self.t0 = time.monotonic()

    def reading(self) -> LineReading:
        t = time.monotonic() - self.t0
        k = int(np.searchsorted(self.t_s, t))
        last = max(0, k - 1)
        recent = k - int(np.searchsorted(self.t_s, t - 1.0))
        snap = self.template.model_copy(
            update={
                "frames": int(t * 100), "uptime_s": t, "live_tracks": recent // 10,
                "controller": {"objects_seen": k, "objects_targeted": int(self.targeted[last])},
                "deadline_misses": int(self.missed[last]) if k else 0,
                "throughput_per_min": 60.0 * recent if t >= 1.0 else None,
            }
        )  # fmt: skip
        return LineReading(snap, 0)


class TimedNode(SparkplugNode):
    """The line's node, stamping each message as it is handed to paho."""

    sent: dict[tuple[str, int], deque[int]]

    def _send(self, topic: str, payload: Any) -> bool:
        t_ns = time.time_ns()
        ok = super()._send(topic, payload)
        if ok:
            self.sent[(self.node, int(payload.seq))].append(t_ns)
        return ok


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run(args: argparse.Namespace, publish_s: float, port: int, broker_pid: int) -> dict[str, Any]:
    sent: dict[tuple[str, int], deque[int]] = defaultdict(deque)
    got: list[tuple[str, int, int, int]] = []  # node, seq, receive ns, bytes
    sub = subprocess.Popen(
        ["mosquitto_sub", "-p", str(port), "-t", f"spBv1.0/{GROUP}/#", "-F", "%U %t %x"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip

    def read() -> None:
        assert sub.stdout is not None
        for line in sub.stdout:
            stamp, topic, hexed = line.split()
            if topic.split("/")[2] == "NDEATH":
                continue  # a clean stop's death certificate: no seq, not data
            sec, _, frac = stamp.partition(".")
            raw = bytes.fromhex(hexed)
            seq = Payload.FromString(raw).seq
            got.append(
                (topic.split("/")[3], seq, int(sec) * 10**9 + int(frac.ljust(9, "0")), len(raw))
            )

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        time.sleep(0.5)
        return _measure(args, publish_s, port, broker_pid, sub, sent, got, reader)
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait(5)


def _measure(
    args: argparse.Namespace, publish_s: float, port: int, broker_pid: int,
    sub: subprocess.Popen[str], sent: dict[tuple[str, int], deque[int]],
    got: list[tuple[str, int, int, int]], reader: threading.Thread,
) -> dict[str, Any]:  # fmt: skip
    cfg = MqttSection(url=f"mqtt://127.0.0.1:{port}", group=GROUP, publish_s=publish_s)
    nodes = []
    for i in range(args.lines):
        rec = RecordedLine(f"line-{i + 1}", args.fragments_s, args.seconds + 5, seed=i)
        node = TimedNode(cfg, f"line-{i + 1}", rec.reading)
        node.sent = sent
        nodes.append(node)
    cpu0 = (_cpu_s(broker_pid), _cpu_s(sub.pid), time.process_time())
    t0 = time.monotonic()
    for node in nodes:
        node.start()
    time.sleep(args.seconds)
    for node in nodes:
        node.stop()
    wall = time.monotonic() - t0
    time.sleep(0.5)
    cpu1 = (_cpu_s(broker_pid), _cpu_s(sub.pid), time.process_time())
    sub.terminate()
    sub.wait(5)
    reader.join(5)
    lat_ms = []
    for name, seq, recv_ns, _ in got:
        q = sent.get((name, seq))
        if q:
            lat_ms.append((recv_ns - q.popleft()) / 1e6)
    stats = [n.stats() for n in nodes]
    lat = np.array(lat_ms) if lat_ms else np.array([np.nan])
    cpu = {
        name: round(100.0 * (b - a) / wall, 1)
        for name, a, b in zip(("broker", "subscriber", "publishers"), cpu0, cpu1, strict=True)
    }
    return {
        "publish_s": publish_s,
        "lines": args.lines,
        "fragments_s_per_line": args.fragments_s,
        "seconds": round(wall, 2),
        "messages_sent": int(sum(s["sent"] for s in stats)),
        "messages_received": len(got),
        "messages_dropped": int(sum(s["dropped"] for s in stats)),
        "messages_s": round(len(got) / wall, 1),
        "bytes_s": round(sum(g[3] for g in got) / wall, 1),
        "latency_ms": {
            "p50": round(float(np.percentile(lat, 50)), 3),
            "p99": round(float(np.percentile(lat, 99)), 3),
            "max": round(float(lat.max()), 3),
            "matched": len(lat_ms),
        },
        "cpu_percent_of_one_core": cpu,
        "busiest": max(cpu, key=lambda k: cpu[k]),
    }


def _with_broker(args: argparse.Namespace, publish_s: float, nodelay: bool) -> dict[str, Any]:
    """One run on a fresh mosquitto: its default, or ``set_tcp_nodelay true``."""
    import tempfile

    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\n"
            + ("set_tcp_nodelay true\n" if nodelay else "")
        )
        broker = subprocess.Popen(
            ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            time.sleep(0.5)
            row = _run(args, publish_s, port, broker.pid)
        finally:
            broker.terminate()
            broker.wait(5)
    return {"broker_tcp_nodelay": nodelay, "loadavg_1m": round(os.getloadavg()[0], 2), **row}


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sortline bench plant_mqtt", description=__doc__)
    p.add_argument("--lines", type=int, default=3)
    p.add_argument("--fragments-s", type=float, default=500.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--publish-s", default="0.5,0.05,0.01,0.005", help="comma-separated settings")
    p.add_argument("--json", type=Path, help="write the result here")
    p.add_argument("--quick", action="store_true", help="1 s, one setting (tests)")
    a = p.parse_args(argv)
    if a.quick:
        a.seconds, a.publish_s = 1.0, "0.05"
    return a


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    if shutil.which("mosquitto") is None or shutil.which("mosquitto_sub") is None:
        print("sortline bench plant_mqtt: needs mosquitto and mosquitto-clients", file=sys.stderr)
        return 2
    rows = []
    for nodelay in (False, True) if not args.quick else (False,):
        for s in args.publish_s.split(","):
            rows.append(_with_broker(args, float(s), nodelay))
    note = (
        f"{args.lines} lines x {args.fragments_s:g} fragments/s (recorded decision streams) "
        "through SparkplugNode into one mosquitto on loopback; latency = mosquitto_sub's "
        "print stamp minus the publish stamp (wall clock, same machine)"
    )
    out = write_result("plant_mqtt", argv, note, rows, args.json)
    for r in out["results"]:
        print(
            f"broker nodelay {r['broker_tcp_nodelay']!s:5} publish_s {r['publish_s']}: "
            f"{r['messages_s']} msg/s, {r['bytes_s'] / 1e3:.1f} kB/s, "
            f"latency p50 {r['latency_ms']['p50']} ms p99 {r['latency_ms']['p99']} ms, "
            f"dropped {r['messages_dropped']}, CPU % {r['cpu_percent_of_one_core']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
