"""Modbus/TCP Security between the bridge and the virtual PLC: TLS with
mutual certificates (a throwaway CA made here with ``cryptography``), real
sockets on loopback. A client without a certificate, with one from another
CA, or without TLS at all gets no Modbus reply; the bridge with its
certificate connects and runs; no key material reaches a log."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from plc.bridge import BridgeConfig, PlcBridge
from plc.bridge_config import TlsFiles
from plc.link import LinkDownError, client_context
from sim.vplc.core import PlcCore
from sim.vplc.server import VirtualPlcServer

from .conftest import make_bridge

READ_IR0 = struct.pack(">HHHBBHH", 1, 0, 6, 1, 4, 0, 2)  # MBAP + FC 04 IR 0-1


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    cn: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey]
    | None, ca: bool = False, ip: str | None = None,
) -> x509.Certificate:  # fmt: skip
    now = dt.datetime.now(dt.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer[0] if issuer else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip is not None:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))])
        b = b.add_extension(san, critical=False)
    return b.sign(issuer[1] if issuer else key, hashes.SHA256())


@dataclass
class Pki:
    ca: Path
    server: TlsFiles
    client: TlsFiles
    rogue: TlsFiles  # a client certificate from another CA
    key_texts: list[str]  # the private keys' PEM bodies


def _write(
    tmp: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[str, str, str]:
    c, k = tmp / f"{name}.crt", tmp / f"{name}.key"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )  # fmt: skip
    k.write_bytes(pem)
    return str(c), str(k), pem.decode()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    tmp = tmp_path_factory.mktemp("pki")
    ca_key, other_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = _cert("sortline test CA", ca_key, None, ca=True)
    other = _cert("another CA", other_key, None, ca=True)
    ca_path = tmp / "ca.crt"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    texts = []
    files = {}
    for name, issuer, ip in (
        ("plc", (ca.subject, ca_key), "127.0.0.1"),
        ("controller", (ca.subject, ca_key), None),
        ("rogue", (other.subject, other_key), None),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        c, k, text = _write(tmp, name, _cert(name, key, issuer, ip=ip), key)
        files[name] = TlsFiles(str(ca_path), c, k)
        texts.append(text)
    return Pki(ca_path, files["plc"], files["controller"], files["rogue"], texts)


Served = tuple[PlcCore, VirtualPlcServer]


@pytest.fixture
def tls_plc(pki: Pki) -> Iterator[Served]:
    core = PlcCore(80, watchdog_ms=2000, clock=time.monotonic)
    core.advance(10_000, 2500.0, 0.0)
    server = VirtualPlcServer(core, tls=pki.server)
    server.start()
    yield core, server
    server.stop()


def _modbus_reply(sock: socket.socket) -> bytes:
    """The reply to one FC 04 request on ``sock`` (b"" when the peer closed or
    refused: an ssl or socket error counts as no reply)."""
    try:
        sock.sendall(READ_IR0)
        sock.settimeout(2.0)
        return sock.recv(64)
    except (OSError, ssl.SSLError):
        return b""


def _tls_client(port: int, ca: Path, cert: TlsFiles | None) -> bytes:
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(cert.cert, cert.key)
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=2.0) as raw,
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s,
        ):
            return _modbus_reply(s)
    except (OSError, ssl.SSLError):
        return b""


def test_a_client_with_a_certificate_from_the_ca_is_served(pki: Pki, tls_plc: Served) -> None:
    reply = _tls_client(tls_plc[1].port, pki.ca, pki.client)
    assert len(reply) == 13 and reply[7] == 4  # MBAP + FC 04 + 2 registers


@pytest.mark.parametrize("who", ["no certificate", "another CA's certificate", "plain TCP"])
def test_an_unauthenticated_client_gets_no_reply(pki: Pki, tls_plc: Served, who: str) -> None:
    port = tls_plc[1].port
    if who == "plain TCP":
        with socket.create_connection(("127.0.0.1", port), timeout=2.0) as s:
            reply = _modbus_reply(s)
    else:
        reply = _tls_client(port, pki.ca, None if who == "no certificate" else pki.rogue)
    assert reply == b""
    assert _tls_client(port, pki.ca, pki.client) != b""  # the server still serves


def test_the_bridge_with_its_certificate_connects_and_runs(
    pki: Pki,
    tls_plc: Served,
    bridges: list[PlcBridge],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    core, server = tls_plc
    bridge = make_bridge(server.port, tls=pki.client)
    bridges.append(bridge)
    assert bridge.wait_connected(10.0), bridge.snapshot().last_error
    deadline = time.monotonic() + 5
    while core.heartbeat_age_s() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    snap = bridge.snapshot()
    assert snap.connected and snap.encoder_tick is not None and snap.boot_id == core.boot_id
    assert core.heartbeat_age_s() is not None  # the bridge's heartbeat reached the PLC
    bad = make_bridge(server.port, tls=pki.rogue)  # the PLC refuses it: never connected
    bridges.append(bad)
    assert not bad.wait_connected(1.5)
    assert bad.snapshot().last_error  # TLS 1.3: the handshake ends, the first read gets no reply
    assert not bad.snapshot().connected and bad.snapshot().encoder_tick is None
    logged = caplog.text + bad.snapshot().last_error + bridge.snapshot().last_error
    for text in pki.key_texts:
        body = "".join(text.strip().splitlines()[1:-1])
        assert body[:40] not in logged.replace("\n", "")  # no key material in any log


def test_tls_files_missing_or_not_pem_are_one_line_errors(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(LinkDownError, match=r"tls: tls key file /nonexistent/k.pem not found"):
        client_context(TlsFiles(str(pki.ca), pki.client.cert, "/nonexistent/k.pem"))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(LinkDownError, match=r"^tls: "):
        client_context(TlsFiles(str(pki.ca), str(junk), pki.client.key))
    with pytest.raises(ValueError, match="tls needs transport 'tcp'"):
        BridgeConfig(transport="rtu", serial_port="/dev/null", tls=pki.client)
    with pytest.raises(ValueError, match="tls needs Modbus TCP"):
        VirtualPlcServer(PlcCore(8), serial_port="/dev/null", tls=pki.server)


def test_sim_plc_serves_tls_and_says_so(pki: Pki) -> None:
    tls = pki.server
    proc = subprocess.Popen(
        [sys.executable, "-m", "sortline.cli", "sim", "plc", "--port", "0", "--duration", "20",
         "--tls-ca", tls.ca, "--tls-cert", tls.cert, "--tls-key", tls.key],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert "Modbus TLS 127.0.0.1:" in banner, banner
        port = int(banner.split("127.0.0.1:")[1].split()[0])
        assert _tls_client(port, pki.ca, pki.client) != b""
        assert _tls_client(port, pki.ca, None) == b""
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert not any(t.strip().splitlines()[1][:30] in err for t in pki.key_texts)
    half = subprocess.run(
        [sys.executable, "-m", "sortline.cli", "sim", "plc", "--port", "0", "--tls-ca", tls.ca],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert half.returncode == 2
    assert half.stderr.strip() == (
        "sortline sim plc: error: TLS needs all of --tls-ca, --tls-cert and --tls-key"
    )


def test_the_bridge_refuses_a_plc_whose_certificate_is_not_from_its_ca(
    pki: Pki, bridges: list[PlcBridge]
) -> None:
    core = PlcCore(8, watchdog_ms=2000, clock=time.monotonic)
    with VirtualPlcServer(core, tls=TlsFiles(str(pki.ca), pki.rogue.cert, pki.rogue.key)) as rogue:
        bridge = make_bridge(rogue.port, tls=pki.client)
        bridges.append(bridge)
        assert not bridge.wait_connected(1.5)
        assert bridge.snapshot().last_error.startswith("connect tls 127.0.0.1:")  # no session
        assert core.heartbeat_age_s() is None  # nothing was written to it


def test_plc_tls_in_the_line_config(pki: Pki, tmp_path: Path) -> None:
    from core.errors import InputFileError
    from sortline.config import load_config

    cfg_file = tmp_path / "line.toml"
    c = pki.client
    cfg_file.write_text(
        f'[plc]\nport = 802\ntls = {{ ca = "{c.ca}", cert = "{c.cert}", key = "{c.key}" }}\n'
    )
    cfg = load_config(cfg_file)
    bridge_cfg = BridgeConfig.from_line_config(cfg.plc, 0.1, 8.0)
    assert bridge_cfg.tls == c and bridge_cfg.port == 802
    assert load_config().plc.tls.on is False
    assert BridgeConfig.from_line_config(load_config().plc, 0.1, 8.0).tls is None
    cfg_file.write_text('[plc]\ntls = { ca = "ca.pem", cert = "/x/c.pem", key = "/x/k.pem" }\n')
    with pytest.raises(InputFileError) as err:
        load_config(cfg_file)
    assert "plc.tls" in str(err.value) and "absolute path" in str(err.value)
    assert "\n" not in str(err.value)
