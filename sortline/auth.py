"""API keys, roles and the audit log of the status API.

**Hash.** A key is never stored, only ``scrypt$n=16384,r=8,p=1$SALT$HASH``
(``hashlib.scrypt``, 16-byte random salt per key, 32-byte output, base64).
scrypt over PBKDF2 because it is memory-hard (16 MiB a try at these
parameters, about 40 ms of one core), so a stolen config costs an attacker
memory as well as time per guess on a GPU. Keys are 256-bit random tokens
(``sl_`` + 43 characters), so guessing is hopeless anyway: the slow hash is
defence in depth for a leaked config. The parameters travel in each entry,
so they can be raised later without invalidating older keys.

**Checks.** A presented key is looked up by its SHA-256 in a cache of keys
already verified, so a request pays the slow hash once per key and process;
otherwise it is hashed against each entry's salt and compared with
``hmac.compare_digest``. Slow checks run one at a time (a flood of wrong keys
costs one core, never the real-time loop's).

**Roles.** ``maintenance`` (read) < ``operator`` (commands, alarm
acknowledgement) < ``engineer`` (everything). Every route declares its role
with ``Depends(require(role))``; no key or a wrong one answers 401, a role too
low 403, and both are written to the audit log.

**Audit.** Every change and every refused key use: who (key name), role,
what, when, from where (client address as the socket sees it; a reverse
proxy's address if there is one), HTTP status and detail. Kept in memory
(bounded) and appended to ``<records dir>/<line>-audit.jsonl``, one
``os.write`` per entry on an ``O_APPEND`` descriptor, fsynced. A failed
write is logged and counted and never refuses the change (a full disk must
not keep an operator from stopping the line).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from core.files import append_fsync

__all__ = [
    "AUTH_RESPONSES",
    "ROLES",
    "AuditEntry",
    "AuditLog",
    "KeyBook",
    "KeyEntry",
    "Principal",
    "Role",
    "RoleGuard",
    "audit_router",
    "client_of",
    "hash_key",
    "new_key",
    "require",
]

log = logging.getLogger(__name__)

Role = Literal["maintenance", "operator", "engineer"]
ROLES: tuple[Role, ...] = ("maintenance", "operator", "engineer")
_RANK = {r: i for i, r in enumerate(ROLES)}

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_SALT_BYTES, _HASH_BYTES = 16, 32
HASH_RE = re.compile(
    r"^scrypt\$n=(?P<n>\d{1,8}),r=(?P<r>\d{1,2}),p=(?P<p>\d{1,2})"
    r"\$(?P<salt>[A-Za-z0-9+/]{22,}={0,2})\$(?P<hash>[A-Za-z0-9+/]{43}=)$"
)


def new_key() -> str:
    """A fresh API key: ``sl_`` + 32 random bytes, URL-safe base64."""
    return "sl_" + secrets.token_urlsafe(32)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _scrypt(key: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        key.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * r * n, dklen=_HASH_BYTES
    )


def hash_key(key: str, n: int = SCRYPT_N) -> str:
    """The stored form of ``key`` (see the module doc); a smaller ``n`` only
    for tests."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(key, salt, n, SCRYPT_R, SCRYPT_P)
    return check_hash(f"scrypt$n={n},r={SCRYPT_R},p={SCRYPT_P}${_b64(salt)}${_b64(digest)}")


def check_hash(text: str) -> str:
    """``text`` if it is a well-formed stored hash, else ``ValueError`` saying why."""
    m = HASH_RE.match(text)
    if m is None:
        raise ValueError(
            "not a sortline key hash (scrypt$n=N,r=R,p=P$SALT$HASH; make one with "
            "`sortline keys new`)"
        )
    n, r, p = int(m["n"]), int(m["r"]), int(m["p"])
    if n < 2**10 or n > 2**20 or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16:
        raise ValueError(
            "scrypt parameters out of range (n a power of 2 in 2^10..2^20, r 1..32, p 1..16)"
        )
    try:
        base64.b64decode(m["salt"], validate=True)
        base64.b64decode(m["hash"], validate=True)
    except ValueError:
        raise ValueError("salt or hash is not valid base64") from None
    return text


class KeyEntry(Protocol):
    """One ``[[api.keys]]`` entry (``sortline.config.ApiKeyEntry``)."""

    @property
    def name(self) -> str: ...
    @property
    def role(self) -> Role: ...
    @property
    def hash(self) -> str: ...


@dataclass(frozen=True)
class Principal:
    """Who a verified key belongs to."""

    name: str
    role: Role


@dataclass(frozen=True)
class _Stored:
    principal: Principal
    salt: bytes
    digest: bytes
    n: int
    r: int
    p: int


class KeyBook:
    """The line's keys (hashed), with a cache of keys already verified."""

    def __init__(self, entries: Iterable[KeyEntry]) -> None:
        self._stored: list[_Stored] = []
        for e in entries:
            m = HASH_RE.match(check_hash(e.hash))
            assert m is not None
            self._stored.append(
                _Stored(
                    Principal(e.name, e.role),
                    base64.b64decode(m["salt"]),
                    base64.b64decode(m["hash"]),
                    int(m["n"]),
                    int(m["r"]),
                    int(m["p"]),
                )
            )
        self._verified: dict[bytes, Principal] = {}  # SHA-256 of a key -> its owner
        self._slow = threading.Lock()

    def __len__(self) -> int:
        return len(self._stored)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (for the API's process, ``sortline.api_proc``): the stored
        hashes only, never the cache of keys already verified."""
        return {"stored": self._stored}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._stored = list(state["stored"])
        self._verified = {}
        self._slow = threading.Lock()

    def verify(self, presented: str) -> Principal | None:
        """The owner of ``presented``, or None."""
        if not presented or len(presented) > 256:
            return None
        fast = hashlib.sha256(presented.encode("utf-8")).digest()
        hit = self._verified.get(fast)
        if hit is not None:
            return hit
        with self._slow:
            found: Principal | None = None
            for s in self._stored:  # no early exit: every entry costs the same
                digest = _scrypt(presented, s.salt, s.n, s.r, s.p)
                if hmac.compare_digest(digest, s.digest):
                    found = s.principal
            if found is not None:
                self._verified[fast] = found
            return found

    @classmethod
    def generated(cls, roles: Iterable[Role]) -> tuple[KeyBook, dict[Role, str]]:
        """A book of fresh keys, one per role (named after it), and the keys."""
        keys = {role: new_key() for role in roles}
        entries = [_Entry(role, role, hash_key(k)) for role, k in keys.items()]
        return cls(entries), keys


@dataclass(frozen=True)
class _Entry:
    name: str
    role: Role
    hash: str


# ---------------------------------------------------------------- audit log
class AuditEntry(BaseModel):
    t_unix_s: float
    who: str | None
    role: Role | None
    client: str | None
    action: str
    status: int
    detail: str = ""


class AuditLog:
    """Append-only: bounded in memory, every entry appended to ``path``."""

    def __init__(self, path: Path | None, keep: int = 1000) -> None:
        self.path = path
        self._recent: deque[AuditEntry] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self.write_failures = 0

    @classmethod
    def for_line(cls, records_dir: Path, line_name: str, keep: int = 1000) -> AuditLog:
        return cls(records_dir / f"{line_name}-audit.jsonl", keep)

    def append(self, entry: AuditEntry) -> None:
        with self._lock:
            self._recent.append(entry)
            if self.path is not None:
                self._write(entry)

    def recent(self, limit: int) -> list[AuditEntry]:
        with self._lock:
            return list(self._recent)[-limit:] if limit > 0 else []

    def _write(self, entry: AuditEntry) -> None:
        assert self.path is not None
        data = (json.dumps(entry.model_dump(), separators=(",", ":")) + "\n").encode("utf-8")
        try:
            append_fsync(self.path, data)
        except OSError as exc:
            self.write_failures += 1
            log.warning("audit log %s: cannot write (%s); entry kept in memory", self.path, exc)


# ------------------------------------------------------- the role dependency
class Detail(BaseModel):
    detail: str


AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Detail, "description": "no API key, or a wrong one"},
    403: {"model": Detail, "description": "the key's role may not do this"},
}

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <key>")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="the key itself")


def client_of(request: Request) -> str | None:
    return None if request.client is None else f"{request.client.host}:{request.client.port}"


def action_of(request: Request) -> str:
    return f"{request.method} {request.url.path}"


class RoleGuard:
    """The dependency ``require(role)`` returns; ``role`` is what the route needs."""

    def __init__(self, role: Role) -> None:
        self.role = role

    def __call__(
        self,
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        header_key: Annotated[str | None, Depends(_api_key)],
    ) -> Principal:
        keys: KeyBook = request.app.state.keys
        audit: AuditLog = request.app.state.audit
        presented = bearer.credentials if bearer is not None else header_key
        who = None if presented is None else keys.verify(presented)
        if who is None:
            detail = "no API key" if presented is None else "API key refused"
            audit.append(self._entry(request, None, 401, detail))
            raise HTTPException(401, detail=detail, headers={"WWW-Authenticate": "Bearer"})
        if _RANK[who.role] < _RANK[self.role]:
            detail = f"role {who.role} may not do this (needs {self.role})"
            audit.append(self._entry(request, who, 403, detail))
            raise HTTPException(403, detail=detail)
        return who

    @staticmethod
    def _entry(request: Request, who: Principal | None, status: int, detail: str) -> AuditEntry:
        return AuditEntry(
            t_unix_s=time.time(),
            who=None if who is None else who.name,
            role=None if who is None else who.role,
            client=client_of(request),
            action=action_of(request),
            status=status,
            detail=detail,
        )


def require(role: Role) -> RoleGuard:
    """``Depends(require("operator"))``: the route needs a key of this role or higher."""
    if role not in _RANK:
        raise ValueError(f"unknown role {role!r}")
    return RoleGuard(role)


def record(request: Request, who: Principal, status: int, detail: str = "") -> None:
    """Append a change made by ``who`` to the app's audit log."""
    audit: AuditLog = request.app.state.audit
    audit.append(
        AuditEntry(
            t_unix_s=time.time(),
            who=who.name,
            role=who.role,
            client=client_of(request),
            action=action_of(request),
            status=status,
            detail=detail,
        )
    )


# ------------------------------------------------------------------- routes
class WhoAmI(BaseModel):
    name: str
    role: Role


def audit_router() -> APIRouter:
    """``GET /whoami`` (any key) and ``GET /audit`` (engineer)."""
    router = APIRouter(tags=["auth"])

    @router.get("/whoami", response_model=WhoAmI, responses=AUTH_RESPONSES)
    def whoami(who: Annotated[Principal, Depends(require("maintenance"))]) -> WhoAmI:
        return WhoAmI(name=who.name, role=who.role)

    @router.get("/audit", response_model=list[AuditEntry], responses=AUTH_RESPONSES)
    def audit(
        request: Request,
        _: Annotated[Principal, Depends(require("engineer"))],
        limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
    ) -> list[AuditEntry]:
        """The most recent audit entries, oldest first (at most ``limit``)."""
        log_: AuditLog = request.app.state.audit
        return log_.recent(limit)

    return router
