"""The Sparkplug B edge node against a real broker (Debian ``mosquitto`` on
loopback, a free port) and an independent subscriber: ``mosquitto_sub`` in a
subprocess printing topic and payload in hex (``-F '%t %x'``: binary payloads
survive, unlike ``-v``), decoded by a hand-written wire-format reader
(``sparkplug_decoder``), not by ``sortline``'s schema."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.errors import InputFileError
from sortline.config import LineConfig, load_config
from sortline.parts import free_port
from sortline.runtime import SortingLine
from sortline.sparkplug import DataType, Payload
from sortline.sparkplug.node import parse_broker_url

from .conftest import until
from .sparkplug_decoder import decode

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto") is None or shutil.which("mosquitto_sub") is None,
    reason="needs Debian mosquitto and mosquitto-clients",
)
GROUP = "hall-b"
SORTLINE = [sys.executable, "-m", "sortline.cli"]


# ------------------------------------------------------------- real parts
class Broker:
    """``mosquitto -p PORT`` in the foreground (loopback, no config file)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Broker:
        self.proc = subprocess.Popen(
            ["mosquitto", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        import socket

        def listening() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        assert until(listening, 10.0), "mosquitto did not listen"
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5.0)
        self.proc = None


class Subscriber:
    """``mosquitto_sub`` on ``spBv1.0/#``; ``messages``: (topic, decoded) in order."""

    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen(
            ["mosquitto_sub", "-p", str(port), "-t", "spBv1.0/#", "-F", "%t %x"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        time.sleep(0.3)  # subscribed (mosquitto_sub subscribes at connect)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            topic, _, hexed = line.strip().partition(" ")
            self.messages.append((topic, decode(bytes.fromhex(hexed))))

    def of(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        return [(t, m) for t, m in list(self.messages) if t.split("/")[2] == kind]

    def wait(self, cond: Callable[[], bool], timeout_s: float = 20.0) -> None:
        assert until(cond, timeout_s), f"not seen; got {[t for t, _ in self.messages][-10:]}"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(5.0)


def mqtt_config(tmp: Path, port: int, **mqtt: Any) -> LineConfig:
    data = load_config().model_dump()
    data["mqtt"].update(url=f"mqtt://127.0.0.1:{port}", group=GROUP, publish_s=0.03, **mqtt)
    data["records"]["dir"] = str(tmp)
    return LineConfig.model_validate(data)


@pytest.fixture
def broker() -> Iterator[Broker]:
    b = Broker().start()
    yield b
    b.stop()


@pytest.fixture
def sub(broker: Broker) -> Iterator[Subscriber]:
    s = Subscriber(broker.port)
    yield s
    s.close()


@pytest.fixture
def run_line(tmp_path: Path) -> Iterator[Callable[[LineConfig], SortingLine]]:
    lines: list[SortingLine] = []

    def make(cfg: LineConfig) -> SortingLine:
        line = SortingLine(cfg, stepped=True, plc_port=0, records=False)
        lines.append(line)
        line.start()
        return line

    yield make
    for line in lines:
        line.stop()


def ncmd(port: int, metrics: list[tuple[str, DataType, Any]], node: str = "virtual-plant") -> None:
    """An NCMD as a SCADA host sends it, through ``mosquitto_pub``."""
    p = Payload(timestamp=int(time.time() * 1000))
    for name, dt, value in metrics:
        m = p.metrics.add(name=name, datatype=int(dt))
        if dt is DataType.BOOLEAN:
            m.boolean_value = value
        else:
            m.string_value = value
    subprocess.run(
        ["mosquitto_pub", "-p", str(port), "-t", f"spBv1.0/{GROUP}/NCMD/{node}", "-s"],
        input=p.SerializeToString(), check=True, timeout=10,
    )  # fmt: skip


def by_name(msg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in msg["metrics"]}


# ------------------------------------------------------------------ tests
def test_births_carry_every_metric_with_type_unit_and_alias(
    broker: Broker, sub: Subscriber, run_line: Callable[[LineConfig], SortingLine], tmp_path: Path
) -> None:
    line = run_line(mqtt_config(tmp_path, broker.port))
    sub.wait(lambda: len(sub.of("DBIRTH")) == 3)
    ((topic, nbirth),) = sub.of("NBIRTH")
    assert topic == f"spBv1.0/{GROUP}/NBIRTH/virtual-plant" and nbirth["seq"] == 0
    metrics = by_name(nbirth)
    assert metrics["bdSeq"]["datatype"] == DataType.UINT64 and metrics["bdSeq"]["value"] == 0
    assert metrics["Node Control/Rebirth"]["datatype"] == DataType.BOOLEAN
    assert metrics["Line/line_state_code"]["value"] == line.snapshot().state_code
    assert metrics["Line/frames_processed"]["properties"] == {"engUnit": "frames"}
    assert metrics["Line/frame_latency_p99_seconds"]["datatype"] == DataType.DOUBLE
    devices = {t.rsplit("/", 1)[1]: (m["seq"], by_name(m)) for t, m in sub.of("DBIRTH")}
    assert sorted(devices) == ["camera", "plc", "valves"]
    assert sorted(seq for seq, _ in devices.values()) == [1, 2, 3]
    speed = devices["plc"][1]["belt_speed_meters_per_second"]
    assert speed["datatype"] == DataType.DOUBLE and speed["properties"] == {"engUnit": "m/s"}
    every = [m for _, msg in sub.of("NBIRTH") + sub.of("DBIRTH") for m in msg["metrics"]]
    aliases = [m["alias"] for m in every if m["name"] != "bdSeq"]
    assert len(aliases) == len(set(aliases)) == len(every) - 1 and None not in aliases
    assert all(m["name"] and m["datatype"] and m["timestamp"] for m in every)


def test_data_by_exception_with_seq_wrapping(
    broker: Broker, sub: Subscriber, run_line: Callable[[LineConfig], SortingLine], tmp_path: Path
) -> None:
    line = run_line(mqtt_config(tmp_path, broker.port))
    sub.wait(lambda: len(sub.of("DBIRTH")) == 3)
    for _ in range(1500):  # bounded: until the subscriber saw seq wrap past 255
        line.run_frames(1)
        if len(sub.messages) > 300:
            break
    sub.wait(lambda: len(sub.messages) > 300)
    seqs = [m["seq"] for _, m in sub.messages]
    assert seqs[:300] == [i % 256 for i in range(300)]  # one birth, then every message in order
    alias = next(
        m["alias"]
        for m in sub.of("NBIRTH")[0][1]["metrics"]
        if m["name"] == "Line/frames_processed"
    )
    frames = [
        m["value"] for _, msg in sub.of("NDATA") for m in msg["metrics"] if m["alias"] == alias
    ]
    assert len(frames) > 5 and frames == sorted(frames) and len(set(frames)) == len(frames)
    for _, msg in sub.of("NDATA") + sub.of("DDATA"):
        assert all(m["name"] is None and m["alias"] for m in msg["metrics"])  # by alias only
    assert line.links[0].stats()["dropped"] == 0


def test_unchanged_values_are_not_sent(
    broker: Broker, sub: Subscriber, run_line: Callable[[LineConfig], SortingLine], tmp_path: Path
) -> None:
    """Deadbands: no frames, nothing moves; a wide counter deadband holds frames back."""
    line = run_line(mqtt_config(tmp_path, broker.port, deadband={"count": 1e9}))
    sub.wait(lambda: len(sub.of("DBIRTH")) == 3)
    line.run_frames(5)
    time.sleep(0.5)
    n = len(sub.messages)
    time.sleep(0.5)  # ~15 publishing rounds with nothing new
    assert len(sub.messages) == n
    counters = {
        m["alias"] for _, msg in sub.of("NBIRTH") for m in msg["metrics"]
        if m["properties"].get("engUnit") == "frames"
    }  # fmt: skip
    sent = {m["alias"] for _, msg in sub.of("NDATA") for m in msg["metrics"]}
    assert counters and not counters & sent


def test_rebirth_on_ncmd(
    broker: Broker, sub: Subscriber, run_line: Callable[[LineConfig], SortingLine], tmp_path: Path
) -> None:
    run_line(mqtt_config(tmp_path, broker.port))
    sub.wait(lambda: len(sub.of("DBIRTH")) == 3)
    ncmd(broker.port, [("Node Control/Rebirth", DataType.BOOLEAN, True)])
    sub.wait(lambda: len(sub.of("NBIRTH")) == 2 and len(sub.of("DBIRTH")) == 6)
    second = sub.of("NBIRTH")[1][1]
    assert second["seq"] == 0 and by_name(second)["bdSeq"]["value"] == 0  # same session


def audit_entries(tmp: Path) -> list[dict[str, Any]]:
    p = tmp / "virtual-plant-audit.jsonl"
    return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []


@pytest.mark.parametrize(
    ("role", "stops"),
    [("", False), ("operator", True)],
    ids=["commands-off", "operator"],
)
def test_ncmd_commands_need_the_configured_role_and_are_audited(
    broker: Broker, sub: Subscriber, run_line: Callable[[LineConfig], SortingLine],
    tmp_path: Path, role: str, stops: bool,
) -> None:  # fmt: skip
    line = run_line(mqtt_config(tmp_path, broker.port, command_role=role, command_name="scada-1"))
    line.run_frames(5)
    assert line.snapshot().state == "EXECUTE"
    sub.wait(lambda: len(sub.of("DBIRTH")) == 3)
    ncmd(broker.port, [("Line Control/Stop", DataType.BOOLEAN, True)])
    assert until(lambda: len(audit_entries(tmp_path)) == 1, 10.0)
    (entry,) = audit_entries(tmp_path)
    assert entry["action"] == "NCMD Line Control/Stop" and entry["who"] == "scada-1"
    assert entry["status"] == (200 if stops else 403), entry
    assert entry["client"].startswith(f"mqtt://127.0.0.1:{broker.port}")
    assert line.snapshot().state == ("STOPPED" if stops else "EXECUTE")
    if stops:  # the new state reaches the subscriber; a recipe needs an engineer
        state_alias = by_name(sub.of("NBIRTH")[0][1])["Line/line_state"]["alias"]
        sub.wait(lambda: any(
            m["alias"] == state_alias and m["value"] == "STOPPED"
            for _, msg in sub.of("NDATA") for m in msg["metrics"]
        ))  # fmt: skip
        ncmd(broker.port, [("Line Control/Recipe", DataType.STRING, "name = 'x'\n")])
        assert until(lambda: len(audit_entries(tmp_path)) == 2, 10.0)
        assert audit_entries(tmp_path)[1]["status"] == 403
        assert "needs engineer" in audit_entries(tmp_path)[1]["detail"]


def test_broker_lost_raises_alarm_bounds_backlog_and_rebirths(
    tmp_path: Path, run_line: Callable[[LineConfig], SortingLine]
) -> None:
    broker = Broker().start()
    try:
        cfg = mqtt_config(tmp_path, broker.port, backlog=10, reconnect_max_s=1.0)
        line = run_line(cfg)
        node = line.links[0]
        assert until(lambda: node.stats()["births"] == 1, 10.0)
        broker.stop()
        assert until(lambda: line.alarms.get("mqtt.link") is not None, 10.0)
        alarm = line.alarms.get("mqtt.link")
        assert alarm is not None and alarm.state == "active"
        assert f"127.0.0.1:{broker.port}" in alarm.message
        for _ in range(400):  # the line sorts on; changes pile up, bounded
            line.run_frames(1)
            if node.stats()["backlog_dropped"] > 0:
                break
        s = node.stats()
        assert s["backlog"] == 10 and s["backlog_dropped"] > 0 and not s["connected"]
        broker.start()  # same port
        sub = Subscriber(broker.port)
        try:
            sub.wait(lambda: len(sub.of("DBIRTH")) == 3, 20.0)
            assert by_name(sub.of("NBIRTH")[0][1])["bdSeq"]["value"] == 1  # a new session
            sub.wait(lambda: sum(
                m["is_historical"] for _, msg in sub.messages for m in msg["metrics"]
            ) > 0)  # fmt: skip
            assert until(lambda: line.alarms.get("mqtt.link").state == "cleared", 10.0)  # type: ignore[union-attr]
        finally:
            sub.close()
    finally:
        broker.stop()


@pytest.mark.slow
def test_killed_line_process_leaves_its_ndeath(
    broker: Broker, sub: Subscriber, line_config_file: Path, tmp_path: Path
) -> None:
    with line_config_file.open("a") as f:
        f.write(
            f'[mqtt]\nurl = "mqtt://127.0.0.1:{broker.port}"\ngroup = "{GROUP}"\n'
            f'node = "line-7"\nkeepalive_s = 5\n[records]\ndir = "{tmp_path}"\n'
        )
    proc = subprocess.Popen(
        [*SORTLINE, "run", "--config", str(line_config_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        sub.wait(lambda: len(sub.of("DBIRTH")) == 3 and len(sub.of("NDATA")) > 2, 90.0)
        births = sub.of("NBIRTH")
        assert births[0][0] == f"spBv1.0/{GROUP}/NBIRTH/line-7"
        bd_seq = by_name(births[-1][1])["bdSeq"]["value"]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10.0)
        sub.wait(lambda: len(sub.of("NDEATH")) == 1, 15.0)  # the broker's will
        ((topic, death),) = sub.of("NDEATH")
        assert topic == f"spBv1.0/{GROUP}/NDEATH/line-7"
        assert [m["name"] for m in death["metrics"]] == ["bdSeq"]
        assert death["metrics"][0]["value"] == bd_seq and death["seq"] is None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10.0)


def test_clean_stop_publishes_ndeath(broker: Broker, sub: Subscriber, tmp_path: Path) -> None:
    line = SortingLine(mqtt_config(tmp_path, broker.port), stepped=True, plc_port=0, records=False)
    line.start()
    try:
        sub.wait(lambda: len(sub.of("DBIRTH")) == 3)
    finally:
        line.stop()
    sub.wait(lambda: len(sub.of("NDEATH")) == 1, 10.0)
    assert by_name(sub.of("NDEATH")[0][1])["bdSeq"]["value"] == 0


def test_a_restarted_line_connects_with_the_next_bdseq(
    broker: Broker, sub: Subscriber, tmp_path: Path
) -> None:
    """bdSeq is kept in the records folder: a line started again connects with
    the next value (a late will of the old session cannot kill the new one);
    a file that does not hold 0..255 is ignored (back to 0)."""
    cfg = mqtt_config(tmp_path, broker.port)
    kept = tmp_path / "virtual-plant.sparkplug-bdseq"

    def one_session(births: int) -> None:
        line = SortingLine(cfg, stepped=True, plc_port=0, records=False)
        line.start()
        try:
            sub.wait(lambda: len(sub.of("NBIRTH")) == births)
        finally:
            line.stop()
        sub.wait(lambda: len(sub.of("NDEATH")) == births, 10.0)

    one_session(1)
    one_session(2)
    assert kept.read_text() == "1\n"
    kept.write_text("banana\n")
    one_session(3)
    births = [by_name(m)["bdSeq"]["value"] for _, m in sub.of("NBIRTH")]
    deaths = [by_name(m)["bdSeq"]["value"] for _, m in sub.of("NDEATH")]
    assert births == deaths == [0, 1, 0]


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ('[mqtt]\nurl = "http://broker:1883"\n', "mqtt.url"),
        ('[mqtt]\ngroup = "a/b"\n', "mqtt.group"),
        ('[mqtt]\nurl = "mqtt://b:1883"\nca = "ca.pem"\n', "mqtt"),
        ('[mqtt]\ncommand_role = "maintenance"\n', "mqtt.command_role"),
        ("[mqtt.deadband]\nratio = -1\n", "mqtt.deadband.ratio"),
    ],
)
def test_bad_mqtt_config_is_one_line_naming_the_field(
    tmp_path: Path, toml: str, field: str
) -> None:
    p = tmp_path / "line.toml"
    p.write_text(toml)
    with pytest.raises(InputFileError) as err:
        load_config(p)
    assert "\n" not in str(err.value) and str(p) in str(err.value)
    assert err.value.field is not None and err.value.field.startswith(field)


@pytest.mark.parametrize(
    ("url", "tls", "port"),
    [("mqtt://h", False, 1883), ("mqtts://h", True, 8883), ("mqtt://10.0.0.5:1884", False, 1884)],
)
def test_broker_url(url: str, tls: bool, port: int) -> None:
    b = parse_broker_url(url)
    assert (b.tls, b.port) == (tls, port)


def test_independent_decoder_agrees_with_the_schema() -> None:
    """Both readings of one payload with every value kind the node sends."""
    p = Payload(timestamp=1, seq=255)
    for i, (dt, field, value) in enumerate(
        [
            (DataType.INT32, "int_value", -5 & 0xFFFFFFFF),
            (DataType.UINT64, "long_value", 2**40),
            (DataType.DOUBLE, "double_value", 0.25),
            (DataType.FLOAT, "float_value", 1.5),
            (DataType.BOOLEAN, "boolean_value", True),
            (DataType.STRING, "string_value", "Käse"),
        ]
    ):
        m = p.metrics.add(name=f"m{i}", alias=i + 1, datatype=int(dt))
        setattr(m, field, value)
    p.metrics.add(name="n", alias=9, datatype=int(DataType.DOUBLE), is_null=True)
    d = decode(p.SerializeToString())
    assert d["seq"] == 255 and d["timestamp"] == 1
    assert [m["value"] for m in d["metrics"]] == [-5, 2**40, 0.25, 1.5, True, "Käse", None]
    assert d["metrics"][-1]["is_null"]


def test_bench_plant_mqtt_quick(tmp_path: Path) -> None:
    """``sortline bench plant_mqtt --quick``: three recorded lines, every
    message received and matched to its publish stamp."""
    from bench import plant_mqtt

    out = tmp_path / "plant_mqtt.json"
    assert plant_mqtt.main(["--quick", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["results"]
    assert row["lines"] == 3 and row["messages_dropped"] == 0
    assert row["messages_received"] == row["messages_sent"] == row["latency_ms"]["matched"] > 12
    assert 0 < row["latency_ms"]["p50"] <= row["latency_ms"]["p99"]


# ------------------------------------------------------------------ mqtts
def _tls_files(folder: Path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1 it signed (PEM)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def cert(name: str, key: Any, issuer: Any, signer: Any, ca: bool) -> x509.Certificate:
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            b = b.add_extension(san, critical=False)
        return b.sign(signer, hashes.SHA256())

    ca_key, srv_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test plant CA")])
    ca = cert("test plant CA", ca_key, ca_name, ca_key, True)
    srv = cert("127.0.0.1", srv_key, ca_name, ca_key, False)
    pem = serialization.Encoding.PEM
    files = {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "server.key"}
    files["ca"].write_bytes(ca.public_bytes(pem))
    files["cert"].write_bytes(srv.public_bytes(pem))
    files["key"].write_bytes(
        srv_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files


def _tls_broker(tmp_path: Path, tls: dict[str, Path]) -> tuple[subprocess.Popen[bytes], int]:
    """mosquitto serving mqtts on a free loopback port with ``tls``'s certificate."""
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"user root\nlistener {port} 127.0.0.1\nallow_anonymous true\n"
        f"cafile {tls['ca']}\ncertfile {tls['cert']}\nkeyfile {tls['key']}\n"
    )
    broker = subprocess.Popen(
        ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return broker, port


def test_mqtts_with_the_plant_ca(
    tmp_path: Path, run_line: Callable[[LineConfig], SortingLine]
) -> None:
    tls = _tls_files(tmp_path)
    broker, port = _tls_broker(tmp_path, tls)
    try:
        time.sleep(0.5)
        sub = subprocess.Popen(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "--cafile", str(tls["ca"]),
             "-t", "spBv1.0/#", "-F", "%t", "-C", "1", "-W", "30"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(0.5)
        data = load_config().model_dump()
        data["mqtt"].update(url=f"mqtts://127.0.0.1:{port}", group=GROUP, ca=str(tls["ca"]))
        data["records"]["dir"] = str(tmp_path)
        line = run_line(LineConfig.model_validate(data))
        out, _ = sub.communicate(timeout=40)
        assert out.strip() == f"spBv1.0/{GROUP}/NBIRTH/virtual-plant"
        assert line.links[0].connected
    finally:
        broker.terminate()
        broker.wait(5)


def test_mqtts_refuses_a_broker_it_cannot_verify(
    tmp_path: Path, run_line: Callable[[LineConfig], SortingLine]
) -> None:
    """The broker's certificate is not signed by the configured CA: no
    connection, and the alarm says so."""
    tls = _tls_files(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    wrong_ca = _tls_files(other)["ca"]
    broker, port = _tls_broker(tmp_path, tls)
    try:
        time.sleep(0.5)
        data = load_config().model_dump()
        data["mqtt"].update(url=f"mqtts://127.0.0.1:{port}", group=GROUP, ca=str(wrong_ca))
        data["records"]["dir"] = str(tmp_path)
        line = run_line(LineConfig.model_validate(data))
        assert until(lambda: line.alarms.get("mqtt.link") is not None, 15.0)
        assert not line.links[0].connected and line.links[0].stats()["births"] == 0
    finally:
        broker.terminate()
        broker.wait(5)
