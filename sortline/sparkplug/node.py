"""A line as a Sparkplug B edge node (spec 3.0) over paho-mqtt.

Topics (``spBv1.0/<group>/<type>/<node>[/<device>]``): NBIRTH, NDATA, NDEATH,
NCMD for the node; DBIRTH and DDATA for its devices ``camera``, ``plc`` and
``valves`` (``sortline.sparkplug.metrics``).

- **Births.** After each CONNECT: NBIRTH (``seq`` 0, ``bdSeq``, every node
  metric with name, alias, type, unit and value), then one DBIRTH per device.
  A ``Node Control/Rebirth`` = true in an NCMD asks for them again.
- **Death.** The NDEATH (``bdSeq`` only, QoS 1) is the MQTT will registered
  with each CONNECT, so the broker publishes it when the line dies; a clean
  ``stop()`` publishes it itself. ``bdSeq`` (0..255) goes up by one for every
  new CONNECT, and the NBIRTH after it carries the same value. It is kept in
  a file (``<records dir>/<node>.sparkplug-bdseq``), so a restarted line
  connects with the next value: a will published late by the broker (a
  power cut is seen only after 1.5 keep-alives) cannot be taken for the
  death of the new session.
- **Data.** Every ``publish_s`` the publisher thread reads the line's
  snapshot; values that moved past their kind's deadband (``[mqtt.deadband]``)
  go out in one NDATA / DDATA per device, by alias. ``seq`` runs 0..255 over
  all messages after the NBIRTH and wraps.
- **Broker lost.** ``conditions()`` raises ``mqtt.link``; changes keep being
  collected into a backlog of at most ``backlog`` messages (oldest dropped,
  counted) and go out as historical data (``is_historical``) after the new
  births. While connected, at most ``backlog`` messages may wait in paho
  unwritten; beyond that a message is dropped and counted, never queued.
- **Commands.** NCMD ``Line Control/...`` go to ``sortline.sparkplug.commands``
  (allowed by ``[mqtt] command_role``, audited, on a thread of their own).

Threads: paho's network thread (connect, will, NCMD in), the publisher
thread (reads snapshots, publishes), the command thread. None of them is the
real-time loop, which only publishes snapshots.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

from core.files import atomic_write_text
from sortline.alarm_rules import Raised
from sortline.auth import AuditLog
from sortline.config import MqttSection
from sortline.sparkplug.commands import CommandRunner, CommandTarget
from sortline.sparkplug.metrics import (
    DEVICES,
    NODE_CONTROL,
    REBIRTH,
    RECIPE,
    LineReading,
    MetricDef,
    Value,
    changed,
    device_metrics,
    node_metrics,
)
from sortline.sparkplug.payload import (
    birth_metric,
    data_metric,
    death_payload,
    new_payload,
    read_value,
)
from sortline.sparkplug.schema import DataType, Payload

__all__ = ["Broker", "CommandTarget", "SparkplugNode", "parse_broker_url"]

log = logging.getLogger("sortline.sparkplug")

NAMESPACE = "spBv1.0"
LINK_GRACE_S = 3.0  # never connected yet: alarm after this


@dataclass(frozen=True)
class Broker:
    tls: bool
    host: str
    port: int

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_broker_url(url: str) -> Broker:
    """``mqtt://host[:1883]`` or ``mqtts://host[:8883]``; ValueError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"{url!r}: expected mqtt://host:port or mqtts://host:port")
    tls = parts.scheme == "mqtts"
    return Broker(tls, parts.hostname, parts.port or (8883 if tls else 1883))


@dataclass
class _Pending:
    """Changes collected while the broker was away: one later message."""

    device: str | None
    t_ms: int
    values: list[tuple[MetricDef, Value]]


class SparkplugNode:
    """``start()`` connects (in the background) and publishes; ``stop()``
    publishes the NDEATH and disconnects."""

    def __init__(
        self,
        cfg: MqttSection,
        node: str,
        read: Callable[[], LineReading],
        target: CommandTarget | None = None,
        audit: AuditLog | None = None,
        resolve: Callable[[str], Path] = Path,
        bd_seq_file: Path | None = None,
    ) -> None:
        if not node or any(c in node for c in "/#+"):
            raise ValueError(f"mqtt.node: {node!r} is not a Sparkplug node id (no / # +)")
        self.cfg = cfg
        self.broker = parse_broker_url(cfg.url)
        self.group, self.node = cfg.group, node
        self.read, self.target, self.audit = read, target, audit
        self.deadbands = cfg.deadband.model_dump()
        self.node_defs, self.device_defs = _aliased(node_metrics(), device_metrics())
        self._by_name = {d.name: d for d in self.node_defs}
        self._by_alias = {d.alias: d for d in self.node_defs}
        self._bd_seq_file = bd_seq_file
        self._bd_seq = 0 if bd_seq_file is None else (_last_bd_seq(bd_seq_file) + 1) % 256
        self._seq = 0
        self._last: dict[int, Value] = {}
        self._backlog: deque[_Pending] = deque()
        self._lock = threading.Lock()  # seq, counters, outstanding
        self._outstanding = 0
        self._connected = False
        self._ever_connected = False
        self._need_birth = True
        self._link_error = "not connected yet"
        self._started_s = time.monotonic()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.commands = CommandRunner(
            cfg, target, audit, f"{self.broker} {self.topic('NCMD')}", self._wake.set
        )
        self._threads: list[threading.Thread] = []
        self.counters = dict.fromkeys(
            ("births", "sent", "dropped", "backlog_dropped", "historical", "connects",
             "read_errors"), 0,
        )  # fmt: skip
        self.client = self._client(resolve)

    # ------------------------------------------------------------- topics
    def topic(self, kind: str, device: str | None = None) -> str:
        t = f"{NAMESPACE}/{self.group}/{kind}/{self.node}"
        return t if device is None else f"{t}/{device}"

    # ------------------------------------------------------------ client
    def _client(self, resolve: Callable[[str], Path]) -> mqtt.Client:
        cfg = self.cfg
        client_id = cfg.client_id or f"sortline-{self.group}-{self.node}"
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        if cfg.username:
            c.username_pw_set(cfg.username, cfg.password or None)
        if self.broker.tls:
            c.tls_set(
                ca_certs=str(resolve(cfg.ca)) if cfg.ca else None,
                certfile=str(resolve(cfg.cert)) if cfg.cert else None,
                keyfile=str(resolve(cfg.key)) if cfg.key else None,
            )
        c.reconnect_delay_set(1, max(1, int(cfg.reconnect_max_s)))
        c.on_connect = self._on_connect
        c.on_connect_fail = self._on_connect_fail
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_message = self._on_message
        self._set_will(c)
        return c

    def _set_will(self, client: mqtt.Client) -> None:
        """The NDEATH of the current ``bdSeq``, sent with the next CONNECT."""
        client.will_set(
            self.topic("NDEATH"), death_payload(self._bd_seq, _now_ms()), qos=1, retain=False
        )

    def start(self) -> None:
        self._started_s = time.monotonic()
        self.client.connect_async(self.broker.host, self.broker.port, self.cfg.keepalive_s)
        self.client.loop_start()
        self.commands.start()
        t = threading.Thread(target=self._run, name="mqtt-publish", daemon=True)
        self._threads.append(t)
        t.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        self._wake.set()
        self.commands.stop(timeout_s)
        for t in self._threads:
            t.join(timeout_s)
        if self._connected:  # a clean end says so itself (the will is for dying)
            info = self.client.publish(
                self.topic("NDEATH"), death_payload(self._bd_seq, _now_ms()), qos=1
            )
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                info.wait_for_publish(timeout_s)
        self.client.disconnect()
        self.client.loop_stop()

    # -------------------------------------------------- paho's callbacks
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            self._link_error = f"broker refused the connection: {rc}"
            return
        sock = client.socket()
        if isinstance(
            sock, socket.socket
        ):  # small messages go out at once (Nagle: +40 ms on delayed ACKs)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.subscribe(
            [(self.topic("NCMD"), 1), (f"{NAMESPACE}/{self.group}/DCMD/{self.node}/#", 1)]
        )
        with self._lock:
            self._connected = self._ever_connected = True
            self._outstanding = 0
            self._need_birth = True
            self.counters["connects"] += 1
        self._keep_bd_seq()  # the value this session uses: a restart takes the next
        log.info("MQTT connected to %s (bdSeq %d)", self.broker, self._bd_seq)
        self._wake.set()

    def _keep_bd_seq(self) -> None:
        """Write the bdSeq of the session just connected to its file (atomically;
        a failure is logged: the node goes on, a restart would reuse a value)."""
        if self._bd_seq_file is None:
            return
        try:
            atomic_write_text(self._bd_seq_file, f"{self._bd_seq}\n")
        except OSError as exc:
            log.warning("Sparkplug bdSeq not kept in %s: %s", self._bd_seq_file, exc)

    def _on_connect_fail(self, _c: mqtt.Client, _u: Any) -> None:
        self._link_error = "cannot connect"

    def _on_disconnect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        with self._lock:
            was = self._connected
            self._connected = False
            if was:  # the next CONNECT is a new session: a new bdSeq in its will
                self._bd_seq = (self._bd_seq + 1) % 256
                self._set_will(client)
        self._link_error = f"disconnected: {rc}"
        if was and not self._stop.is_set():
            log.warning("MQTT link to %s lost: %s", self.broker, rc)

    def _on_publish(self, _c: mqtt.Client, _u: Any, _mid: int, _rc: Any, _p: Any) -> None:
        with self._lock:
            self._outstanding = max(0, self._outstanding - 1)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic != self.topic("NCMD"):
            log.warning("MQTT: %s: device commands are not supported", msg.topic)
            return
        try:
            payload = Payload.FromString(msg.payload)
        except Exception as exc:  # a malformed command must not reach the line
            log.warning("MQTT: malformed NCMD (%s)", exc)
            return
        for m in payload.metrics:
            d = self._by_name.get(m.name) if m.name else self._by_alias.get(m.alias)
            name = d.name if d is not None else m.name or f"alias {m.alias}"
            value = read_value(m)
            if name == REBIRTH:
                if value is True:
                    self.rebirth()
            elif name in NODE_CONTROL or name == RECIPE:
                self.commands.offer(name, value)
            else:
                log.warning("MQTT: NCMD for unknown metric %r ignored", name)

    # ------------------------------------------------------- publishing
    def rebirth(self) -> None:
        """Births again at the next round (an NCMD Rebirth)."""
        self._need_birth = True
        self._wake.set()

    def _run(self) -> None:
        period = self.cfg.publish_s
        while not self._stop.is_set():
            self._wake.wait(period)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                reading = self.read()
            except Exception:
                self.counters["read_errors"] += 1
                log.exception("sparkplug: cannot read the line's status")
                continue
            t_ms = _now_ms()
            if not self._connected:
                self._collect_offline(reading, t_ms)
            elif self._need_birth:
                self._birth(reading, t_ms)
            else:
                self._data(reading, t_ms)

    def _next_seq(self) -> int:
        with self._lock:
            seq = self._seq
            self._seq = (seq + 1) % 256
            return seq

    def _send(self, topic: str, payload: Any) -> bool:
        data = payload.SerializeToString()
        with self._lock:
            if self._outstanding >= self.cfg.backlog:
                self.counters["dropped"] += 1
                return False
            info = self.client.publish(topic, data, qos=0)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                self.counters["dropped"] += 1
                return False
            self._outstanding += 1
            self.counters["sent"] += 1
            return True

    def _birth(self, r: LineReading, t_ms: int) -> None:
        self._need_birth = False
        with self._lock:
            self._seq = 0
        p = new_payload(t_ms, self._next_seq())
        p.metrics.add(
            name="bdSeq", timestamp=t_ms, datatype=int(DataType.UINT64), long_value=self._bd_seq
        )
        messages = [(self.topic("NBIRTH"), p, self.node_defs)]
        for device in DEVICES:
            p = new_payload(t_ms, self._next_seq())
            messages.append((self.topic("DBIRTH", device), p, self.device_defs[device]))
        for _, p, defs in messages:
            for d in defs:
                value = _read(d, r)
                birth_metric(p, d, value, t_ms)
                self._last[d.alias] = value
        if all(self._send(topic, p) for topic, p, _ in messages):
            self.counters["births"] += 1
        else:
            self._need_birth = True  # try again next round
            return
        while self._backlog and self._connected:
            pend = self._backlog.popleft()
            p = new_payload(pend.t_ms, self._next_seq())
            for d, value in pend.values:
                data_metric(p, d, value, pend.t_ms, historical=True)
            kind = "NDATA" if pend.device is None else "DDATA"
            if self._send(self.topic(kind, pend.device), p):
                self.counters["historical"] += 1

    def _changes(self, defs: list[MetricDef], r: LineReading) -> list[tuple[MetricDef, Value]]:
        out = []
        for d in defs:
            if d.name in NODE_CONTROL:
                continue  # command metrics stay false; they are written, not read
            value = _read(d, r)
            if d.alias not in self._last or changed(
                self._last[d.alias], value, d.kind, self.deadbands
            ):
                out.append((d, value))
                self._last[d.alias] = value
        return out

    def _by_device(self, r: LineReading) -> list[tuple[str | None, list[tuple[MetricDef, Value]]]]:
        groups: list[tuple[str | None, list[MetricDef]]] = [(None, self.node_defs)]
        groups += [(dev, self.device_defs[dev]) for dev in DEVICES]
        return [(dev, ch) for dev, defs in groups if (ch := self._changes(defs, r))]

    def _data(self, r: LineReading, t_ms: int) -> None:
        for device, changes in self._by_device(r):
            p = new_payload(t_ms, self._next_seq())
            for d, value in changes:
                data_metric(p, d, value, t_ms)
            self._send(self.topic("NDATA" if device is None else "DDATA", device), p)

    def _collect_offline(self, r: LineReading, t_ms: int) -> None:
        for device, changes in self._by_device(r):
            if len(self._backlog) >= self.cfg.backlog:
                self._backlog.popleft()
                self.counters["backlog_dropped"] += 1
            self._backlog.append(_Pending(device, t_ms, changes))

    # ----------------------------------------------------------- status
    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def bd_seq(self) -> int:
        return self._bd_seq

    def stats(self) -> dict[str, int | bool]:
        with self._lock:
            return {
                **self.counters, "connected": self._connected, "bd_seq": self._bd_seq,
                "commands_done": self.commands.accepted, "commands_refused": self.commands.refused,
                "backlog": len(self._backlog), "outstanding": self._outstanding,
            }  # fmt: skip

    def conditions(self) -> dict[str, Raised]:
        """The ``mqtt.link`` alarm while the broker is away (for the alarm book)."""
        if self._connected or self._stop.is_set():
            return {}
        if not self._ever_connected and time.monotonic() - self._started_s < LINK_GRACE_S:
            return {}
        s = self.stats()
        return {
            "mqtt.link": Raised(
                "warning",
                f"MQTT broker {self.broker} unreachable ({self._link_error}): Sparkplug data "
                f"held back ({s['backlog']} message(s) waiting, {s['backlog_dropped']} dropped)",
            )
        }


def _read(d: MetricDef, r: LineReading) -> Value:
    try:
        return d.read(r)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def _aliased(
    node: list[MetricDef], devices: dict[str, list[MetricDef]]
) -> tuple[list[MetricDef], dict[str, list[MetricDef]]]:
    """Aliases 1.. over the node's metrics, then each device's (unique per node)."""
    n = 0

    def number(defs: list[MetricDef]) -> list[MetricDef]:
        nonlocal n
        out = []
        for d in defs:
            n += 1
            out.append(MetricDef(d.name, d.datatype, d.unit, d.kind, d.read, n))
        return out

    return number(node), {dev: number(devices[dev]) for dev in DEVICES}


def _now_ms() -> int:
    return int(time.time() * 1000)


def _last_bd_seq(path: Path) -> int:
    """The bdSeq kept in ``path``; -1 when there is none (the next is 0). A
    file that does not hold 0..255 is named in a warning and ignored."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return -1
    except OSError as exc:
        log.warning("Sparkplug bdSeq file %s unreadable (%s): starting from 0", path, exc)
        return -1
    if text.isdigit() and 0 <= int(text) <= 255:
        return int(text)
    log.warning("Sparkplug bdSeq file %s holds %r, not 0..255: starting from 0", path, text[:20])
    return -1
