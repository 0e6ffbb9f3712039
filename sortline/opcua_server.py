"""The line as an OPC UA server (asyncua), in PackML terms.

Address space (namespace ``urn:sortline:packml``, string node ids
``<line>.<folder>.<name>``), under ``Objects/<line>``:

- ``Status``: ``StateCurrent`` (PackML state code, ISA-TR88), ``StateCurrentName``,
  ``UnitModeCurrent`` (1 = Production: the only mode sortline runs),
  ``CurMachSpeed`` (objects/min), ``Causes``, ``Recipe``;
- ``Admin``: ``ProdProcessedCount`` (objects decided), ``ProdDefectiveCount``
  (actuations that missed their deadline: fragments left unsorted);
- ``Line``: ``Frames``, ``FramesDropped``, ``FragmentsPerSecond``, ``Purity``,
  ``Recovery`` (NaN without a virtual plant's ground truth), ``AlarmsActive``,
  ``LatencyP99Ms``, ``BeltSpeed`` (m/s), ``PlcConnected``, ``CameraConnected``;
- with ``writable = true`` only: methods ``Start``, ``Stop``, ``Reset`` on
  the line object (output: the state reached).

Updated from the line's snapshot every ``publish_s`` on the server's own
event loop thread (``core.aio.LoopThread``), a value written only when it
changed; the real-time loop never waits for it.

**Security.** Read-only (the default): endpoint without security, anonymous
sessions, and a permission ruleset that refuses Write and Call requests
outright. Writable: the only endpoint is Basic256Sha256 SignAndEncrypt, the
only identity tokens user name (scrypt hashes from ``[[opcua.users]]``,
checked like API keys) and X.509 (client certificates found in
``trusted_clients``); every method call is written to the audit log with the
user's name, whatever its outcome.

**Subscriptions (asyncua issue 1982).** asyncua deletes a session's
subscriptions when it closes it, and clamps their lifetime count
(``max_lifetime_count``), so a subscription orphaned by a vanished client
dies after lifetime x publishing interval. On top of that each session is
capped at ``max_subscriptions_per_session`` (our session class counts that
session's subscriptions before creating one and answers
``BadTooManySubscriptions``), the server at ``max_sessions`` sessions and
``max_sessions x max_subscriptions_per_session`` subscriptions in all.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from asyncua import Server, ua
from asyncua.common.utils import ServiceError
from asyncua.crypto import uacrypto
from asyncua.crypto.permission_rules import USER_TYPES, PermissionRuleset, User, UserRole
from asyncua.server.internal_server import InternalServer
from asyncua.server.internal_session import InternalSession
from asyncua.server.user_managers import UserManager

from core.aio import LoopThread
from sortline.auth import AuditEntry, AuditLog, KeyBook
from sortline.config import OpcuaSection
from sortline.state import Command, TransitionError
from sortline.status import StatusSnapshot

if TYPE_CHECKING:
    from sortline.runtime import SortingLine
    from sortline.sparkplug.commands import CommandTarget

__all__ = ["NODES", "NS_URI", "OpcuaReading", "OpcuaServer", "attach_opcua"]

log = logging.getLogger("sortline.opcua")

NS_URI = "urn:sortline:packml"
_caller: contextvars.ContextVar[User | None] = contextvars.ContextVar("opcua_caller", default=None)
V = ua.VariantType


@dataclasses.dataclass(frozen=True, slots=True)
class OpcuaReading:
    snap: StatusSnapshot
    alarms_active: int


def _nid(ident: str, ns: int) -> ua.NodeId:
    return ua.NodeId(ua.String(ident), ua.Int16(ns))


def _code(code: int) -> ua.UInt32:
    return ua.UInt32(code)


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def _c(key: str) -> Callable[[OpcuaReading], Any]:
    return lambda r: int(r.snap.controller.get(key, 0))


# folder, name, type, read
NODES: list[tuple[str, str, ua.VariantType, Callable[[OpcuaReading], Any]]] = [
    ("Status", "StateCurrent", V.Int32, lambda r: r.snap.state_code),
    ("Status", "StateCurrentName", V.String, lambda r: r.snap.state),
    ("Status", "UnitModeCurrent", V.Int32, lambda r: 1),
    ("Status", "CurMachSpeed", V.Double, lambda r: _nan(r.snap.throughput_per_min)),
    ("Status", "Causes", V.String, lambda r: "; ".join(r.snap.causes)),
    ("Status", "Recipe", V.String, lambda r: r.snap.recipe),
    ("Admin", "ProdProcessedCount", V.Int64, _c("objects_seen")),
    ("Admin", "ProdDefectiveCount", V.Int64, lambda r: r.snap.deadline_misses),
    ("Line", "Frames", V.UInt64, lambda r: r.snap.frames),
    ("Line", "FramesDropped", V.UInt64, lambda r: r.snap.frames_dropped),
    ("Line", "FragmentsPerSecond", V.Double,
     lambda r: _nan(None if r.snap.throughput_per_min is None else r.snap.throughput_per_min / 60)),
    ("Line", "Purity", V.Double, lambda r: _nan(r.snap.quality.purity)),
    ("Line", "Recovery", V.Double, lambda r: _nan(r.snap.quality.recovery)),
    ("Line", "AlarmsActive", V.UInt32, lambda r: r.alarms_active),
    ("Line", "LatencyP99Ms", V.Double, lambda r: _nan(r.snap.latency_ms.p99)),
    ("Line", "BeltSpeed", V.Double, lambda r: r.snap.plc.speed_mm_s * 1e-3),
    ("Line", "PlcConnected", V.Boolean, lambda r: r.snap.plc.connected),
    ("Line", "CameraConnected", V.Boolean, lambda r: r.snap.camera.connected),
]  # fmt: skip
_METHODS = {"Start": Command.START, "Stop": Command.STOP, "Reset": Command.RESET}


# ------------------------------------------------------ asyncua plumbing
class _ReadOnly(PermissionRuleset):
    """Everything a client reads with; Write and Call refused for everyone."""

    _refused: ClassVar[set[ua.NodeId]] = {
        ua.NodeId(ua.Int32(ua.ObjectIds.WriteRequest_Encoding_DefaultBinary)),
        ua.NodeId(ua.Int32(ua.ObjectIds.CallRequest_Encoding_DefaultBinary)),
    }
    _allowed: ClassVar[set[ua.NodeId]] = {ua.NodeId(ua.Int32(t)) for t in USER_TYPES} - _refused

    def check_validity(self, user: Any, action_type_id: Any, body: Any) -> bool:
        return action_type_id in self._allowed


class _Users(UserManager):
    """Read-only: everyone (a reader). Writable: a configured user with its
    password, or a client certificate found in ``trusted_clients``."""

    def __init__(self, cfg: OpcuaSection, trusted: dict[bytes, str]) -> None:
        self.writable = cfg.writable
        self.books = {u.name: KeyBook([u]) for u in cfg.users}
        self.trusted = trusted

    def get_user(
        self, iserver: Any, username: str | None = None, password: str | None = None,
        certificate: Any = None,
    ) -> User | None:  # fmt: skip
        if not self.writable:
            return User(role=UserRole.User, name=username or "anonymous")
        if username is not None:
            book = self.books.get(username)
            if book is not None and book.verify(password or "") is not None:
                return User(role=UserRole.User, name=username)
            return None
        if certificate is not None:
            name = self.trusted.get(bytes(certificate))
            return None if name is None else User(role=UserRole.User, name=f"cert:{name}")
        return None


class _Session(InternalSession):
    """Caps its subscriptions; tells method callbacks who calls; writable:
    activates only over an encrypted channel. OPC UA servers must accept a
    channel without security for GetEndpoints, and asyncua would let a
    session be activated over it; the channel's client certificate is there
    only when the channel is secured, and Basic256Sha256 SignAndEncrypt is
    then the only secured policy offered."""

    cap = 8
    secure_only = False

    def activate_session(self, params: Any, peer_certificate: bytes | None) -> Any:
        if self.secure_only and not peer_certificate:  # None, or b"" on a None channel
            log.warning("OPC UA session %s refused: channel without security", self.name)
            raise ServiceError(ua.StatusCodes.BadSecurityModeRejected)
        return super().activate_session(params, peer_certificate)

    async def create_subscription(
        self, params: Any, callback: Any, request_callback: Any = None
    ) -> Any:
        mine = [
            s for s in self.subscription_service.subscriptions.values()
            if s.session_id == self.session_id
        ]  # fmt: skip
        if len(mine) >= self.cap:
            log.warning("OPC UA session %s: subscription refused (cap %d)", self.name, self.cap)
            raise ServiceError(ua.StatusCodes.BadTooManySubscriptions)
        return await super().create_subscription(params, callback, request_callback)

    async def call(self, params: list[ua.CallMethodRequest]) -> list[ua.CallMethodResult]:
        token = _caller.set(self.user)
        try:
            return await super().call(params)
        finally:
            _caller.reset(token)


_ANONYMOUS = User(role=UserRole.Anonymous)


class _InternalServer(InternalServer):
    session_cap = 8
    secure_only = False

    def create_session(
        self,
        name: str,
        user: User = _ANONYMOUS,
        external: bool = False,
    ) -> InternalSession:
        s = _Session(
            self, self.aspace, self.subscription_service, name, user=user, external=external
        )
        s.cap = self.session_cap
        s.secure_only = self.secure_only
        return s


# ----------------------------------------------------------------- server
class OpcuaServer:
    """``start()`` serves (blocks until listening); ``stop()``."""

    def __init__(
        self,
        cfg: OpcuaSection,
        line_name: str,
        read: Callable[[], OpcuaReading],
        target: CommandTarget | None = None,
        audit: AuditLog | None = None,
        resolve: Callable[[str], Path] = Path,
    ) -> None:
        self.cfg, self.line_name, self.read = cfg, line_name, read
        self.target, self.audit, self.resolve = target, audit, resolve
        self.thread = LoopThread(f"opcua-{line_name}")
        self.server: Server | None = None
        self._nodes: dict[str, tuple[Any, ua.VariantType, Callable[[OpcuaReading], Any]]] = {}
        self._last: dict[str, Any] = {}
        self.updates = 0
        self.update_errors = 0

    def start(self, timeout_s: float = 30.0) -> None:
        self.thread.start()
        try:
            self.thread.run(self._start(), timeout_s)
        except OSError as exc:  # the port taken, a certificate unreadable
            self.thread.stop()
            raise RuntimeError(f"opcua.endpoint {self.cfg.endpoint}: {exc}") from None
        self.thread.submit(self._update_forever())

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.server is not None and self.thread.running:
            try:
                self.thread.run(self.server.stop(), timeout_s)
            except Exception as exc:  # stopping anyway
                log.warning("OPC UA server stop: %s", exc)
        self.thread.stop()

    async def _start(self) -> None:
        cfg = self.cfg
        internal = _InternalServer(user_manager=_Users(cfg, await self._trusted()))
        internal.session_cap = cfg.max_subscriptions_per_session
        internal.secure_only = cfg.writable
        internal.max_connections = cfg.max_sessions
        internal.max_subscriptions = cfg.max_sessions * cfg.max_subscriptions_per_session
        internal.max_lifetime_count = 600  # orphans: at most 600 publishing intervals
        server = Server(iserver=internal)
        await server.init()
        server.set_endpoint(cfg.endpoint)
        server.set_server_name(f"sortline {self.line_name}")
        await server.set_application_uri(f"urn:sortline:{self.line_name}")
        if cfg.writable:
            await server.load_certificate(str(self.resolve(cfg.certificate)))
            await server.load_private_key(str(self.resolve(cfg.private_key)))
            server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
            tokens: list[type] = [ua.UserNameIdentityToken]
            if cfg.trusted_clients:
                tokens.append(ua.X509IdentityToken)
            server.set_identity_tokens(tokens)
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity], _ReadOnly())  # type: ignore[arg-type]
            server.set_identity_tokens([ua.AnonymousIdentityToken, ua.UserNameIdentityToken])
        await self._build(server)
        await server.start()
        self.server = server
        mode = "writable, Basic256Sha256 SignAndEncrypt" if cfg.writable else "read-only"
        log.warning("OPC UA server on %s (%s)", cfg.endpoint, mode)

    async def _trusted(self) -> dict[bytes, str]:
        """DER of each certificate in ``trusted_clients`` -> its file name."""
        out: dict[bytes, str] = {}
        if self.cfg.trusted_clients:
            folder = self.resolve(self.cfg.trusted_clients)
            for p in sorted(folder.iterdir()):
                if p.suffix.lower() in (".der", ".pem", ".crt"):
                    cert = await uacrypto.load_certificate(p)
                    out[uacrypto.der_from_x509(cert)] = p.stem
        return out

    async def _build(self, server: Server) -> None:
        ns = await server.register_namespace(NS_URI)
        line = await server.nodes.objects.add_object(
            _nid(self.line_name, ns), ua.QualifiedName(self.line_name, ns)
        )
        folders: dict[str, Any] = {}
        first = self.read()
        for folder, name, vtype, read in NODES:
            if folder not in folders:
                folders[folder] = await line.add_object(
                    _nid(f"{self.line_name}.{folder}", ns), ua.QualifiedName(folder, ns)
                )
            key = f"{self.line_name}.{folder}.{name}"
            value = read(first)
            node = await folders[folder].add_variable(
                _nid(key, ns), ua.QualifiedName(name, ns), ua.Variant(value, vtype)
            )
            self._nodes[key] = (node, vtype, read)
            self._last[key] = value
        if self.cfg.writable:
            for name, cmd in _METHODS.items():
                await line.add_method(
                    _nid(f"{self.line_name}.{name}", ns), ua.QualifiedName(name, ns),
                    self._method(cmd), [], [ua.VariantType.String],
                )  # fmt: skip

    def _method(self, cmd: Command) -> Callable[..., Any]:
        async def call(_parent: ua.NodeId) -> Any:
            user = _caller.get()
            who = (user.name if user is not None else None) or "unknown"
            if self.target is None:
                return ua.StatusCode(_code(ua.StatusCodes.BadNotSupported))
            loop = asyncio.get_running_loop()
            try:  # line.command waits (bounded) for the PLC: not on this loop
                state = await loop.run_in_executor(None, self.target.command, cmd, who)
            except TransitionError as exc:
                self._audit(who, cmd, 409, f"refused: {exc}")
                return ua.StatusCode(_code(ua.StatusCodes.BadInvalidState))
            self._audit(who, cmd, 200, f"state {state.name}")
            await self._update_once()
            return [ua.Variant(state.name, ua.VariantType.String)]

        return call

    def _audit(self, who: str, cmd: Command, status: int, detail: str) -> None:
        log.warning("OPC UA %s by %s: %d %s", cmd.value, who, status, detail)
        if self.audit is not None:
            self.audit.append(
                AuditEntry(
                    t_unix_s=time.time(),
                    who=who,
                    role="operator",
                    client=self.cfg.endpoint,
                    action=f"OPC UA {cmd.value.title()}",
                    status=status,
                    detail=detail,
                )
            )

    async def _update_once(self) -> None:
        r = self.read()
        for key, (node, vtype, read) in self._nodes.items():
            value = read(r)
            old = self._last.get(key)
            same = value == old or (
                isinstance(value, float) and isinstance(old, float)
                and math.isnan(value) and math.isnan(old)
            )  # fmt: skip
            if not same:
                await node.write_value(ua.Variant(value, vtype))
                self._last[key] = value
        self.updates += 1

    async def _update_forever(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.publish_s)
            try:
                await self._update_once()
            except Exception:  # the server outlives a bad reading, and says so
                self.update_errors += 1
                if self.update_errors in (1, 100) or self.update_errors % 10000 == 0:
                    log.exception("OPC UA update failed (%d)", self.update_errors)


def attach_opcua(line: SortingLine) -> OpcuaServer:
    """The line's OPC UA server (``[opcua]``), started and stopped by the line."""
    from core.errors import InputFileError

    cfg = line.cfg
    for field in ("certificate", "private_key", "trusted_clients"):
        value = getattr(cfg.opcua, field)
        if value and not Path(cfg.resolve_path(value)).exists():
            raise InputFileError(Path(cfg.source), f"{value}: no such file", field=f"opcua.{field}")

    def read() -> OpcuaReading:
        return OpcuaReading(line.snapshot(), len(line.alarms.view().active))

    return OpcuaServer(
        cfg.opcua, cfg.line.name, read, line,
        line.audit, lambda v: Path(cfg.resolve_path(v)),
    )  # fmt: skip
