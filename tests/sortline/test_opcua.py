"""The OPC UA server against asyncua's client in another process
(``opcua_client_script.py`` run with this venv's python), over TCP on
loopback: reading PackML state and counters, a subscription seeing a state
change, writes refused when read-only, subscriptions capped per session, and
with ``writable = true``: no way in without Basic256Sha256 SignAndEncrypt and
a login, and an authenticated Stop that stops the line and is audited."""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from core.errors import InputFileError
from sortline.auth import hash_key
from sortline.config import LineConfig, load_config
from sortline.parts import free_port
from sortline.runtime import SortingLine
from sortline.state import Command

from .conftest import until

SCRIPT = Path(__file__).with_name("opcua_client_script.py")
LINE = "virtual-plant"
PASSWORD = "correct horse battery staple"


def client(*args: str, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    """Run the client script; its JSON lines."""
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout_s
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]


def opcua_config(tmp: Path, **opcua: Any) -> tuple[LineConfig, str]:
    url = f"opc.tcp://127.0.0.1:{free_port()}/sortline"
    data = load_config().model_dump()
    data["opcua"].update(endpoint=url, publish_s=0.05, **opcua)
    data["records"]["dir"] = str(tmp)
    return LineConfig.model_validate(data), url


@pytest.fixture(scope="module")
def read_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SortingLine, str]]:
    cfg, url = opcua_config(tmp_path_factory.mktemp("ro"), max_subscriptions_per_session=3)
    line = SortingLine(cfg, stepped=True, plc_port=0, records=False)
    line.start()
    try:
        line.run_frames(30)
        yield line, url
    finally:
        line.stop()


def test_reads_packml_state_and_counters(read_only: tuple[SortingLine, str]) -> None:
    line, url = read_only
    snap = line.snapshot()
    assert until(lambda: line.links[0].updates > 2, 10.0)
    (got,) = client("read", url, LINE)
    assert got["connected"] and got["Status.StateCurrent"] == snap.state_code == 6
    assert got["Status.StateCurrentName"] == "EXECUTE" and got["Status.UnitModeCurrent"] == 1
    assert got["Line.Frames"] == snap.frames >= 30
    assert got["Admin.ProdProcessedCount"] == snap.controller["objects_seen"] > 0
    assert got["Admin.ProdDefectiveCount"] == snap.deadline_misses
    purity = snap.quality.purity  # None until the plant's first score: NaN
    assert math.isnan(got["Line.Purity"]) if purity is None else got["Line.Purity"] == purity


def test_subscription_sees_the_state_change(read_only: tuple[SortingLine, str]) -> None:
    line, url = read_only
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "watch", url, LINE, "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first == {"subscribed": True}
        assert json.loads(proc.stdout.readline()) == {"state": 6}  # the initial value
        line.command(Command.STOP, "test")
        assert line.snapshot().state == "STOPPED"
        assert json.loads(proc.stdout.readline()) == {"state": 2}
    finally:
        proc.kill()
        proc.communicate(timeout=10)
        line.command(Command.RESET, "test")
        line.command(Command.START, "test")
        line.run_frames(2)


def test_read_only_refuses_writes_and_has_no_methods(read_only: tuple[SortingLine, str]) -> None:
    _, url = read_only
    (w,) = client("write", url, LINE)
    assert not w["written"] and w["error"] == "BadUserAccessDenied"
    (c,) = client("call", url, LINE, "--method", "Stop")
    assert not c["called"] and c["error"] == "BadUserAccessDenied"
    assert read_only[0].snapshot().state == "EXECUTE"


def test_subscriptions_are_capped_per_session(read_only: tuple[SortingLine, str]) -> None:
    _, url = read_only
    (got,) = client("subs", url, LINE, "5")
    assert got["created"] == 3 and got["errors"] == ["BadTooManySubscriptions"] * 2
    (again,) = client("subs", url, LINE, "3")  # the closed session took its own along
    assert again["created"] == 3


# ------------------------------------------------------------ writable
def _certificate(folder: Path, name: str, uri: str, use: Any) -> tuple[Path, Path]:
    from asyncua.crypto.cert_gen import setup_self_signed_certificate

    key, cert = folder / f"{name}.pem", folder / f"{name}.der"
    asyncio.run(
        setup_self_signed_certificate(key, cert, uri, "127.0.0.1", [use], {"commonName": name})
    )
    return cert, key


@pytest.fixture(scope="module")
def secured(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[SortingLine, str, dict[str, str], Path]]:
    tmp = tmp_path_factory.mktemp("rw")
    server_cert, server_key = _certificate(
        tmp, "server", f"urn:sortline:{LINE}", ExtendedKeyUsageOID.SERVER_AUTH
    )
    client_cert, client_key = _certificate(
        tmp, "client", "urn:sortline:test-client", ExtendedKeyUsageOID.CLIENT_AUTH
    )
    stranger = tmp / "stranger"
    stranger.mkdir()
    _certificate(stranger, "client", "urn:sortline:test-client", ExtendedKeyUsageOID.CLIENT_AUTH)
    trusted = tmp / "trusted"
    trusted.mkdir()
    shutil.copy(client_cert, trusted / "scada-7.der")
    users = [{"name": "ann", "role": "operator", "hash": hash_key(PASSWORD, n=2**10)}]
    cfg, url = opcua_config(
        tmp, writable=True, certificate=str(server_cert), private_key=str(server_key),
        users=users, trusted_clients=str(trusted),
    )  # fmt: skip
    line = SortingLine(cfg, stepped=True, plc_port=0, records=False)
    line.start()
    files = {
        "--cert": str(client_cert),
        "--key": str(client_key),
        "--server-cert": str(server_cert),
    }
    try:
        line.run_frames(10)
        yield line, url, files, tmp
    finally:
        line.stop()


def _flags(files: dict[str, str]) -> list[str]:
    return [x for kv in files.items() for x in kv]


def test_writable_refuses_anonymous_and_unencrypted_clients(
    secured: tuple[SortingLine, str, dict[str, str], Path],
) -> None:
    line, url, files, _ = secured
    (plain,) = client("call", url, LINE, "--method", "Stop")  # no security, anonymous
    assert plain.get("connected") is False or plain.get("called") is False, plain
    (plain_user,) = client("call", url, LINE, "--method", "Stop", "--user", "ann",
                           "--password", PASSWORD)  # fmt: skip
    assert plain_user.get("connected") is False or plain_user.get("called") is False
    (anon,) = client("call", url, LINE, "--method", "Stop", *_flags(files))  # encrypted, no login
    assert anon["connected"] is False, anon
    (wrong,) = client("call", url, LINE, "--method", "Stop", *_flags(files), "--user", "ann",
                      "--password", "nope")  # fmt: skip
    assert wrong["connected"] is False and wrong["error"] == "BadUserAccessDenied", wrong
    (forced,) = client("call", url, LINE, "--method", "Stop", "--force-no-security",
                       "--user", "ann", "--password", PASSWORD)  # fmt: skip
    assert forced["connected"] is False and forced["error"] == "BadSecurityModeRejected", forced
    assert line.snapshot().state == "EXECUTE"
    assert line.snapshot().state == "EXECUTE"


def test_authenticated_client_stops_the_line_and_is_audited(
    secured: tuple[SortingLine, str, dict[str, str], Path],
) -> None:
    line, url, files, tmp = secured
    (got,) = client("call", url, LINE, "--method", "Stop", *_flags(files), "--user", "ann",
                    "--password", PASSWORD)  # fmt: skip
    assert got == {"called": True, "result": "STOPPED"}, got
    assert line.snapshot().state == "STOPPED"
    (again,) = client("call", url, LINE, "--method", "Stop", *_flags(files), "--user", "ann",
                      "--password", PASSWORD)  # fmt: skip
    assert again["called"] is False and again["error"] == "BadInvalidState"
    entries = [json.loads(x) for x in (tmp / f"{LINE}-audit.jsonl").read_text().splitlines()]
    assert [(e["who"], e["action"], e["status"]) for e in entries if e["who"] == "ann"] == [
        ("ann", "OPC UA Stop", 200), ("ann", "OPC UA Stop", 409),
    ]  # fmt: skip


def test_trusted_client_certificate_logs_in_a_stranger_does_not(
    secured: tuple[SortingLine, str, dict[str, str], Path],
) -> None:
    _, url, files, tmp = secured
    (got,) = client("call", url, LINE, "--method", "Start", *_flags(files), "--cert-login")
    assert got["called"] is False and got["error"] == "BadInvalidState", got  # in, refused by state
    stranger = {**files, "--cert": str(tmp / "stranger" / "client.der"),
                "--key": str(tmp / "stranger" / "client.pem")}  # fmt: skip
    (refused,) = client("call", url, LINE, "--method", "Start", *_flags(stranger), "--cert-login")
    assert refused["connected"] is False and refused["error"] == "BadUserAccessDenied", refused
    entries = [json.loads(x) for x in (tmp / f"{LINE}-audit.jsonl").read_text().splitlines()]
    assert [(e["who"], e["action"], e["status"]) for e in entries if e["who"] != "ann"] == [
        ("cert:scada-7", "OPC UA Start", 409),
    ]


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ('[opcua]\nendpoint = "http://x:4840"\n', "opcua.endpoint"),
        ('[opcua]\nendpoint = "opc.tcp://0.0.0.0:4840"\nwritable = true\n', "opcua"),
        ("[opcua]\nmax_subscriptions_per_session = 0\n", "opcua.max_subscriptions_per_session"),
    ],
)
def test_bad_opcua_config_is_one_line_naming_the_field(
    tmp_path: Path, toml: str, field: str
) -> None:
    p = tmp_path / "line.toml"
    p.write_text(toml)
    with pytest.raises(InputFileError) as err:
        load_config(p)
    assert "\n" not in str(err.value) and err.value.field is not None
    assert err.value.field.startswith(field)
