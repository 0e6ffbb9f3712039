"""The plant side's capacity: the records and Sparkplug traffic of 1, 2, 3, ...
lines at 500 fragments/s each into one PostgreSQL and one mosquitto.

``sortline bench plant_capacity [--steps 1,2,3,4,6,8,12,16,24] [--fragments-s 500]
[--seconds S] [--publish-s 0.05] [--json OUT] [--quick]``

Live lines at that rate do not fit two cores, so each line here is its own
process (as on a plant) playing a recorded decision stream through the
line's own parts: ``RecordsWriter`` (the records listener of ``sortline
run``, into PostgreSQL) fed the cycles a line deciding ``--fragments-s``
fragments/s at 50 frames/s hands it (``bench.records``: 120 live tracks a
frame, pulses for the eject fraction), offered on a paced thread at the
frame period; and ``SparkplugNode`` (the line's edge node, stamping each
message as it goes to paho: ``bench.plant_mqtt``) reading a snapshot of the
same stream every ``--publish-s``. One PostgreSQL (initdb'd for the run by
``sortline.plantctl.postgres``) and one mosquitto (loopback, TCP_NODELAY) take
it all; ``mosquitto_sub`` in its own process stamps every message on receipt.

Per load step (number of lines), over the same window: records/s offered and
committed (sustained: committed by the end of the window; all: after the
final flush), records dropped, the writers' lag (age of a batch's oldest
row at its commit) p50/p99/max, MQTT end-to-end latency (publish -> the
subscriber's stamp) p50/p99/max, messages dropped, the CPU of PostgreSQL
(server and backends), mosquitto, the subscriber and the line processes (in
% of one core; the machine has ``os.cpu_count()``), the load average, and
the limits hit: saturated = records behind (sustained < 95 % of offered,
or rows dropped) or the CPU full (this bench's parts together above 90 % of
the machine; how busy the whole machine was, other work included, is in
``machine_busy_percent`` and ``machine_iowait_percent`` from ``/proc/stat``);
late = writer lag p99 > 1 s or MQTT p99 > 100 ms or messages dropped (on
a shared machine, other work's scheduling causes these too). Steps stop
after the first saturated one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import write_result

FPS = 50.0
LIVE = 120
SUSTAIN_SHARE = 0.95
LAG_P99_MAX_S = 1.0
MQTT_P99_MAX_MS = 100.0
CPU_SHARE_MAX = 0.9
GROUP = "capacity"


# ------------------------------------------------------------- one line
def _worker(spec: dict[str, Any]) -> None:
    """One line's process: play the stream for ``seconds`` from wall time ``go``."""
    from bench.plant_mqtt import TimedNode, _template
    from bench.records import CTX, _cycles
    from control.recipe import load_recipe
    from core.classes import DEFAULT_CLASSES
    from sortline.config import MqttSection
    from sortline.records import Offer, RecordsWriter
    from sortline.sparkplug import LineReading

    name, seconds = spec["line"], float(spec["seconds"])
    recipe = load_recipe("builtin:default", DEFAULT_CLASSES)
    cycles = _cycles(spec["fragments_s"], FPS, int(seconds * FPS), LIVE, seed=spec["seed"])
    spool = Path(spec["folder"]) / f"{name}-spool.sqlite"
    writer = RecordsWriter(spec["url"], name, DEFAULT_CLASSES, queue_cycles=4096, spool=spool)
    seen = [0, 0]  # decided, targeted so far (the snapshot the node reads)
    template = _template(name)
    t_start = [time.monotonic()]

    def reading() -> LineReading:
        t = time.monotonic() - t_start[0]
        snap = template.model_copy(update={
            "frames": int(t * FPS), "uptime_s": t,
            "controller": {"objects_seen": seen[0], "objects_targeted": seen[1]},
            "throughput_per_min": 60.0 * spec["fragments_s"],
        })  # fmt: skip
        return LineReading(snap, 0)

    mqtt = MqttSection(url=spec["mqtt"], group=GROUP, publish_s=spec["publish_s"])
    node = TimedNode(mqtt, name, reading)
    node.sent = defaultdict(deque)
    node.start()
    time.sleep(max(spec["go"] - time.time(), 0.0))
    cpu0, t0 = time.process_time(), time.perf_counter()
    t_start[0] = time.monotonic()
    period = 1.0 / FPS
    i0 = int(FPS)  # the sustained rate is measured from 1 s in (both ends lag alike)
    mark = (0.0, 0, 0)  # time, written, decided at cycle i0
    for i, (tr, pu) in enumerate(cycles):
        wait = t0 + i * period - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        if i == i0:
            mark = (time.perf_counter(), writer.written, seen[0])
        writer.offer(Offer(time.time(), i, i * 100, tr, pu, recipe, CTX))
        decided = tr.track_id[tr.state == 3]  # ids ascend from 1: the newest = how many
        if len(decided):
            seen[0] = max(seen[0], int(decided.max()))
        seen[1] += len(pu.track_id)
    t_end = time.perf_counter()
    feed_s = t_end - t0
    span_s = t_end - mark[0]
    sustained = (writer.written - mark[1]) / span_s
    offered_s = (seen[0] - mark[2]) / span_s
    cpu1 = time.process_time()
    node.stop()
    flushed = writer.flush(60.0)
    writer.close()
    offered = len({int(t) for tr, _ in cycles for t in tr.track_id[tr.state == 3].tolist()})
    sent = [(seq, t_ns) for (_, seq), q in node.sent.items() for t_ns in q]
    out = {
        "line": name, "feed_s": feed_s, "offered": offered, "sustained_s": sustained,
        "offered_s": offered_s, "written": writer.written, "flushed": flushed,
        "dropped": writer.dropped, "failed": writer.failed, "lag_s": list(writer.lag_s),
        "commit_ms": list(writer.commit_ms),
        "cpu_s": cpu1 - cpu0, "mqtt": node.stats(), "sent": sent,
    }  # fmt: skip
    Path(spec["out"]).write_text(json.dumps(out))


# ------------------------------------------------------------- the plant
def _cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine() -> tuple[float, float, float]:
    """/proc/stat totals: (all, idle, iowait) jiffies of every CPU."""
    with open("/proc/stat") as f:
        v = [float(x) for x in f.readline().split()[1:]]
    return sum(v[:8]), v[3], v[4]


def _pg_pids(data: Path) -> list[int]:
    """The postmaster and its children (backends, background workers)."""
    master = int((data / "postmaster.pid").read_text().split()[0])
    pids = [master]
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == master:
                pids.append(int(d.name))
    return pids


class Stamps:
    """``mosquitto_sub`` printing each message's receive time: (node, seq, ns)."""

    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen(
            ["mosquitto_sub", "-p", str(port), "-t", f"spBv1.0/{GROUP}/#", "-F", "%U %t %x"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.got: list[tuple[str, int, int]] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        from sortline.sparkplug import Payload

        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            stamp, topic, hexed = line.split()
            if topic.split("/")[2] == "NDEATH":
                continue
            sec, _, frac = stamp.partition(".")
            seq = Payload.FromString(bytes.fromhex(hexed)).seq
            self.got.append((topic.split("/")[3], seq, int(sec) * 10**9 + int(frac.ljust(9, "0"))))

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(5.0)
        self._thread.join(5.0)


def _pct(a: list[float] | np.ndarray, q: float, scale: float = 1.0) -> float | None:
    return None if len(a) == 0 else round(float(np.percentile(a, q)) * scale, 3)


def _step(
    n: int, args: argparse.Namespace, url: str, broker: Any, data: Path, folder: Path
) -> dict[str, Any]:
    stamps = Stamps(broker.port)
    time.sleep(0.5)
    go = time.time() + 3.0 + 0.8 * n  # time to start the processes, build the streams, connect
    procs, outs = [], []
    for i in range(n):
        out = folder / f"step{n}-line{i + 1}.json"
        spec = {"line": f"cap{n}-line-{i + 1}", "seconds": args.seconds, "seed": i + 1,
                "fragments_s": args.fragments_s, "url": url, "mqtt": broker.url, "go": go,
                "publish_s": args.publish_s, "out": str(out), "folder": str(folder)}  # fmt: skip
        cmd = [sys.executable, "-m", "bench.plant_capacity", "_worker", json.dumps(spec)]
        procs.append(subprocess.Popen(cmd))
        outs.append(out)
    time.sleep(max(go - time.time(), 0.0) + 0.2)
    pg, mq = _pg_pids(data), broker.proc.pid
    parts0 = (sum(_cpu_s(p) for p in pg), _cpu_s(mq), _cpu_s(stamps.proc.pid), *_machine())
    t0 = time.monotonic()
    time.sleep(args.seconds - 0.4)
    pg = sorted(set(pg) | set(_pg_pids(data)))
    parts1 = (sum(_cpu_s(p) for p in pg), _cpu_s(mq), _cpu_s(stamps.proc.pid), *_machine())
    window = time.monotonic() - t0
    for p in procs:
        p.wait(args.seconds + 120.0)
    time.sleep(0.5)
    stamps.close()
    lines = [json.loads(o.read_text()) for o in outs]
    return _row(n, args, lines, stamps.got, parts0, parts1, window)


def _row(
    n: int, args: argparse.Namespace, lines: list[dict[str, Any]], got: list[tuple[str, int, int]],
    parts0: tuple[float, ...], parts1: tuple[float, ...], window: float,
) -> dict[str, Any]:  # fmt: skip
    sent: dict[tuple[str, int], deque[int]] = defaultdict(deque)
    for x in lines:
        for seq, t_ns in sorted(x["sent"], key=lambda s: s[1]):
            sent[(x["line"], seq)].append(t_ns)
    lat_ms = [
        (r - sent[(node, seq)].popleft()) / 1e6 for node, seq, r in got if sent.get((node, seq))
    ]
    lag = np.array([v for x in lines for v in x["lag_s"]])
    feed_s = max(x["feed_s"] for x in lines)
    offered = sum(x["offered"] for x in lines)
    names = ("postgresql", "mosquitto", "subscriber")
    cpu = {k: round(100.0 * (b - a) / window, 1)
           for k, a, b in zip(names, parts0[:3], parts1[:3], strict=True)}  # fmt: skip
    total, idle, iowait = (b - a for a, b in zip(parts0[3:], parts1[3:], strict=True))
    commit = np.array([v for x in lines for v in x["commit_ms"]])
    cpu["line_processes"] = round(100.0 * sum(x["cpu_s"] for x in lines) / feed_s, 1)
    row: dict[str, Any] = {
        "lines": n, "fragments_s_per_line": args.fragments_s, "seconds": round(feed_s, 2),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "records_s_offered": round(sum(x["offered_s"] for x in lines), 1),
        "records_s_sustained": round(sum(x["sustained_s"] for x in lines), 1),
        "records_offered": offered, "records_written": sum(x["written"] for x in lines),
        "records_dropped": sum(x["dropped"] for x in lines),
        "store_failures": sum(x["failed"] for x in lines),
        "writer_lag_s": {"p50": _pct(lag, 50), "p99": _pct(lag, 99),
                         "max": None if len(lag) == 0 else round(float(lag.max()), 3)},
        "commit_ms": {"p50": _pct(commit, 50), "p99": _pct(commit, 99)},
        "mqtt_publish_s": args.publish_s,
        "mqtt_messages": len(got), "mqtt_messages_s": round(len(got) / feed_s, 1),
        "mqtt_dropped": sum(x["mqtt"]["dropped"] for x in lines),
        "mqtt_latency_ms": {"p50": _pct(lat_ms, 50), "p99": _pct(lat_ms, 99),
                            "max": round(max(lat_ms), 3) if lat_ms else None,
                            "matched": len(lat_ms)},
        "cpu_percent_of_one_core": cpu,
        "cpu_percent_of_machine": round(sum(cpu.values()) / (os.cpu_count() or 1), 1),
        "machine_busy_percent": round(100.0 * (total - idle - iowait) / max(total, 1.0), 1),
        "machine_iowait_percent": round(100.0 * iowait / max(total, 1.0), 1),
    }  # fmt: skip
    row["busiest"] = max(cpu, key=lambda k: cpu[k])
    row["saturated"], row["late"] = _limits(row)
    return row


def _limits(r: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(saturated: records behind or the CPU full; late: lag or MQTT latency
    past their bounds, which a shared machine's scheduling also causes)."""
    hard, soft = [], []
    if r["records_s_sustained"] < SUSTAIN_SHARE * r["records_s_offered"] or r["records_dropped"]:
        hard.append("records behind (sustained < 95 % of offered, or dropped)")
    if r["cpu_percent_of_machine"] > 100 * CPU_SHARE_MAX:
        busiest = max(r["cpu_percent_of_one_core"].items(), key=lambda kv: kv[1])
        hard.append(f"CPU: {r['cpu_percent_of_machine']} % of the machine ({busiest[0]} most)")
    if (r["writer_lag_s"]["p99"] or 0.0) > LAG_P99_MAX_S:
        soft.append(f"writer lag p99 > {LAG_P99_MAX_S:g} s")
    if (r["mqtt_latency_ms"]["p99"] or 0.0) > MQTT_P99_MAX_MS or r["mqtt_dropped"]:
        soft.append(f"MQTT p99 > {MQTT_P99_MAX_MS:g} ms or dropped")
    return hard, soft


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sortline bench plant_capacity", description=__doc__)
    p.add_argument(
        "--steps", default="1,2,3,4,6,8,12,16,24", help="lines per load step, comma-separated"
    )
    p.add_argument("--fragments-s", type=float, default=500.0, help="per line")
    p.add_argument("--seconds", type=float, default=12.0, help="per step")
    p.add_argument("--publish-s", type=float, default=0.05, help="Sparkplug publishing period")
    p.add_argument("--json", type=Path, help="write the result here")
    p.add_argument("--quick", action="store_true", help="2 lines, 3 s (tests)")
    a = p.parse_args(argv)
    if a.quick:
        a.steps, a.seconds = "2", 3.0
    return a


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_worker"]:
        _worker(json.loads(argv[1]))
        return 0
    args = _parse(argv)
    from sortline.plantctl.broker import Broker
    from sortline.plantctl.plant import free_port, missing_tools
    from sortline.plantctl.postgres import PgServer, pg_bin

    missing = missing_tools() or (
        None
        if shutil.which("mosquitto_sub")
        else "mosquitto_sub: apt-get install mosquitto-clients"
    )
    if missing:
        print(f"sortline bench plant_capacity: {missing}", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="bench-plant-"))
    folder.chmod(0o711)
    bin_ = pg_bin()
    assert bin_ is not None
    pg = PgServer(folder / "postgres", free_port(), bin_)
    rows: list[dict[str, Any]] = []
    try:
        pg.init().start()
        url = pg.create_database("capacity")
        broker = Broker(folder / "broker", free_port()).start()
        try:
            for n in (int(s) for s in args.steps.split(",")):
                row = _step(n, args, url, broker, pg.folder / "data", folder)
                rows.append(row)
                _print(row)
                if row["saturated"]:
                    break
        finally:
            broker.stop()
    finally:
        pg.stop()
        shutil.rmtree(folder, ignore_errors=True)
    first = next((r for r in rows if r["saturated"]), None)
    late = next((r for r in rows if r["late"]), None)
    note = (
        f"lines x {args.fragments_s:g} fragments/s each (recorded decision streams, "
        f"{FPS:g} frames/s, {LIVE} live tracks) through each line's RecordsWriter and "
        f"SparkplugNode (publish_s {args.publish_s:g}), one process per line, into one "
        "PostgreSQL and one mosquitto on loopback; "
        + ("nothing saturated up to the last step" if first is None else
           f"first saturated at {first['lines']} lines: {'; '.join(first['saturated'])}")
        + ("" if late is None else
           f"; first late at {late['lines']} lines: {'; '.join(late['late'])}")
    )  # fmt: skip
    write_result("plant_capacity", argv, note, rows, args.json)
    return 0


def _print(r: dict[str, Any]) -> None:
    print(
        f"{r['lines']} lines: records {r['records_s_sustained']:.0f}/{r['records_s_offered']:.0f}"
        f" per s (sustained/offered), lag p50 {r['writer_lag_s']['p50']} s p99 "
        f"{r['writer_lag_s']['p99']} s; MQTT {r['mqtt_messages_s']} msg/s p50 "
        f"{r['mqtt_latency_ms']['p50']} ms p99 {r['mqtt_latency_ms']['p99']} ms; CPU % "
        f"{r['cpu_percent_of_one_core']}; commit p50 {r['commit_ms']['p50']} ms p99 "
        f"{r['commit_ms']['p99']} ms; machine busy {r['machine_busy_percent']} % iowait "
        f"{r['machine_iowait_percent']} %; load {r['loadavg_1m']}; "
        f"saturated: {'; '.join(r['saturated']) or 'no'}; late: {'; '.join(r['late']) or 'no'}",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
