"""API keys for tests of the status API: one key per role, and HTTP clients
that send them."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from sortline.api import LineLike, create_app
from sortline.api_proc import ApiProcess
from sortline.auth import ROLES, AuditLog, KeyBook, Role, hash_key, new_key
from sortline.config import ApiKeyEntry, LineConfig, load_config
from sortline.runtime import SortingLine

KEY_NAMES: dict[Role, str] = {
    "maintenance": "maint-max",
    "operator": "op-ann",
    "engineer": "eng-eve",
}


@dataclass
class ApiKeys:
    """A maintenance, an operator and an engineer key, and their key book."""

    key: dict[Role, str]
    book: KeyBook
    clients: dict[Role | None, httpx.Client] = field(default_factory=dict)

    def headers(self, role: Role | None) -> dict[str, str]:
        return {} if role is None else {"Authorization": f"Bearer {self.key[role]}"}

    def client(self, role: Role | None) -> httpx.Client:
        """An HTTP client sending ``role``'s key (None: no key)."""
        if role not in self.clients:
            self.clients[role] = httpx.Client(headers=self.headers(role), timeout=30.0)
        return self.clients[role]

    def app(self, line: LineLike, audit: Path | None = None) -> FastAPI:
        """The status API over ``line`` with these keys (audit log at ``audit``)."""
        return create_app(line, self.book, AuditLog(audit))


@pytest.fixture(scope="session")
def api_keys() -> Iterator[ApiKeys]:
    key = {role: new_key() for role in ROLES}
    # the cheapest scrypt the config accepts (2^10): the fuzzer sends many wrong keys
    entries = [
        ApiKeyEntry(name=KEY_NAMES[r], role=r, hash=hash_key(k, n=2**10)) for r, k in key.items()
    ]
    keys = ApiKeys(key, KeyBook(entries))
    yield keys
    for c in keys.clients.values():
        c.close()


@pytest.fixture(scope="session")
def as_role(api_keys: ApiKeys) -> Callable[[Role | None], httpx.Client]:
    return api_keys.client


@contextlib.contextmanager
def served_line(
    keys: ApiKeys,
    frames: int,
    cfg: LineConfig | None = None,
    audit: Path | None = None,
    prepare: Callable[[SortingLine], None] | None = None,
    **line_kw: object,
) -> Iterator[tuple[SortingLine, str]]:
    """A stepped line on the virtual plant (real Modbus on loopback), its
    status API served over HTTP on a free port with ``keys``, after
    ``frames`` frames; ``prepare`` runs before the line starts (swap a
    camera, say). Yields the line and the API's base URL."""
    line = SortingLine(cfg or load_config(), stepped=True, plc_port=0, **line_kw)  # type: ignore[arg-type]
    if prepare is not None:
        prepare(line)
    line.start()
    api = ApiProcess(line, keys.book, AuditLog(audit), "127.0.0.1", 0)  # as `sortline run` serves
    api.start()
    try:
        line.run_frames(frames)
        yield line, f"http://127.0.0.1:{api.port}"
    finally:
        api.stop()
        line.stop()


@contextlib.contextmanager
def configured_line(tmp_path: Path, text: str) -> Iterator[SortingLine]:
    """A stepped line (not started) on the virtual plant from a config of ``text``
    plus records off and a recipes folder in ``tmp_path``; stopped afterwards."""
    p = tmp_path / "line.toml"
    p.write_text(text + f'[records]\nenabled = false\n[recipes]\ndir = "{tmp_path / "r"}"\n')
    line = SortingLine(load_config(p), stepped=True, plc_port=0, seed=3, records=False)
    try:
        yield line
    finally:
        line.stop()


def until(cond: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    """Poll ``cond`` every 20 ms until it holds (True) or ``timeout_s`` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False
