"""Objects of the controller's process used from another process: the
status API's (``sortline.api_proc``).

The API's routes read and command the line through its Python objects
(``SortingLine`` and what hangs off it: the alarm book, the recipe library,
the calibration and records stores). Served from a child process, they reach
the same objects through ``Remote`` proxies: an attribute read or a call on a
proxy is one request on a ``multiprocessing.connection`` (a Unix socket with
an authentication key) to an ``ObjectServer`` thread in the controller's
process, which does it on the real object and answers with

- **the value**, pickled, when it is data: ``None``, numbers, strings,
  bytes, paths, enums, dates, NumPy arrays and scalars, pydantic models,
  exceptions, and tuples, lists, sets and dicts of those; dataclasses of
  those too, but an attribute read returns a dataclass by value only when it
  is frozen (a mutable one is live state: it stays remote, so a change made
  through it is made on the real object);
- **a reference** otherwise (``Remote``): a service object (a store, a book,
  a bridge), whose own attributes and methods are reached the same way;
- **the exception** the real object raised, raised again in the caller
  (``AttributeError`` included, so ``getattr(line, "records", None)`` works).

A method call costs one round trip (the client remembers which names of a
type are methods). Each calling thread has its own connection, served by its
own thread in the controller's process: the API's worker threads call in
parallel as they did in-process. What the controller's process spends per
request is the call itself and the pickling of its answer, not HTTP,
routing, validation or JSON: that is the point (``sortline.api_proc``).

A reference to an object reached as an attribute from a root is kept by its
path (``line.parts.bridge``: one handle, always what that path read last,
for as long as the server runs); references to objects returned by calls
(and their attributes) are kept for the last ``MAX_RESULTS`` such results,
after which using one is an error naming it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import enum
import functools
import importlib
import itertools
import logging
import os
import pickle
import secrets
import socket
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from multiprocessing.connection import Client, Connection, Listener
from pathlib import PurePath
from typing import Any

import numpy as np
from pydantic import BaseModel

__all__ = ["MAX_RESULTS", "ObjectServer", "Remote", "RemoteClient", "RemoteError"]

log = logging.getLogger(__name__)

MAX_RESULTS = 4096
_ATOMS = (
    type(None), bool, int, float, complex, str, bytes, PurePath, enum.Enum,
    datetime.date, datetime.time, datetime.timedelta, np.ndarray, np.generic,
)  # fmt: skip


class RemoteError(RuntimeError):
    """The object server could not do what was asked (not the object's own
    exception: those are raised as they are)."""


@dataclasses.dataclass(frozen=True)
class _Ref:
    """On the wire: the object ``hid`` of the server (``type_name``, for
    the client's method cache)."""

    hid: int
    type_name: str


def is_data(x: Any, frozen_only: bool, depth: int = 0) -> bool:
    """True when ``x`` travels by value (module doc)."""
    if depth > 32:
        return False
    if isinstance(x, (_ATOMS, BaseModel, BaseException)):
        return True
    if isinstance(x, (tuple, list, set, frozenset)):
        return all(is_data(v, frozen_only, depth + 1) for v in x)
    if isinstance(x, dict):
        return all(
            is_data(k, frozen_only, depth + 1) and is_data(v, frozen_only, depth + 1)
            for k, v in x.items()
        )
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        if frozen_only and not type(x).__dataclass_params__.frozen:  # type: ignore[attr-defined]
            return False
        return all(
            is_data(getattr(x, f.name), frozen_only, depth + 1) for f in dataclasses.fields(x)
        )
    return False


@functools.lru_cache(maxsize=256)
def _real_type(type_name: str) -> type:
    """The class named ``module.qualname`` in this process, or ``Remote``
    when it cannot be imported here."""
    module, _, qualname = type_name.rpartition(".")
    while module:
        try:
            obj: Any = importlib.import_module(module)
        except ImportError:
            module, _, head = module.rpartition(".")
            qualname = f"{head}.{qualname}"
            continue
        try:
            for part in qualname.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            return Remote
        return obj if isinstance(obj, type) else Remote
    return Remote


def _type_name(x: Any) -> str:
    t = type(x)
    return f"{t.__module__}.{t.__qualname__}"


class ObjectServer:
    """Serves ``roots`` (name -> object) to ``RemoteClient``s on a Unix
    socket in a private temporary directory; one thread per connection."""

    def __init__(self, roots: dict[str, Any]) -> None:
        self.authkey = secrets.token_bytes(32)
        self._dir = tempfile.mkdtemp(prefix="sortline-rpc-")
        self.address = os.path.join(self._dir, "line.sock")
        self._listener = Listener(self.address, family="AF_UNIX", authkey=self.authkey)
        self._lock = threading.Lock()
        self._objects: dict[int, Any] = {}  # attribute-reached: live as long as the server
        self._by_path: dict[tuple[Any, ...], int] = {}  # (parent handle, name) -> handle
        self._results: OrderedDict[int, Any] = OrderedDict()  # call results, bounded
        self._next = itertools.count(1)
        self.roots = {name: self._ref(obj, True, ("root", name)) for name, obj in roots.items()}
        self._conns: list[Connection] = []
        self._closed = False
        self.requests = 0  # answered so far
        self.cpu_s = 0.0  # this process's CPU time spent answering them (unpickling excluded)
        self.cpu_by_request: dict[str, float] = {}  # ... by operation and name ("call snapshot")
        self._thread = threading.Thread(target=self._accept, name="api-rpc", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- handles
    def _ref(self, obj: Any, keep: bool, path: tuple[Any, ...] = ()) -> _Ref:
        """A handle for ``obj``: kept under its attribute ``path`` (one handle
        per path, holding whatever the path reads now: the number of handles
        is bounded by the code's attribute paths, however often a property
        hands out a fresh object), or among the bounded call results."""
        with self._lock:
            if keep:
                hid = self._by_path.get(path)
                if hid is None:
                    hid = next(self._next)
                    self._by_path[path] = hid
                self._objects[hid] = obj
            else:
                hid = next(self._next)
                self._results[hid] = obj
                while len(self._results) > MAX_RESULTS:
                    self._results.popitem(last=False)
        return _Ref(hid, _type_name(obj))

    def _obj(self, hid: int) -> Any:
        with self._lock:
            if hid in self._objects:
                return self._objects[hid]
            if hid in self._results:
                return self._results[hid]
        raise RemoteError(f"remote object #{hid} is no longer kept (more than {MAX_RESULTS} "
                          "call results since it was made)")  # fmt: skip

    def _arg(self, a: Any) -> Any:
        if isinstance(a, _Ref):
            return self._obj(a.hid)
        if isinstance(a, (list, tuple)):
            return type(a)(self._arg(v) for v in a)
        if isinstance(a, dict):
            return {k: self._arg(v) for k, v in a.items()}
        return a

    # ----------------------------------------------------------------- serving
    def _accept(self) -> None:
        while not self._closed:
            try:
                conn = self._listener.accept()
            except (OSError, EOFError):
                if self._closed:
                    return
                continue  # a client that failed the handshake
            except Exception as exc:  # AuthenticationError and kin: not ours, go on
                log.warning("refused an API connection: %s", exc)
                continue
            with self._lock:
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), name="api-rpc-conn",
                             daemon=True).start()  # fmt: skip

    def _serve(self, conn: Connection) -> None:
        try:
            while True:
                try:
                    op, hid, name, args, kwargs = conn.recv()
                except (EOFError, OSError, TypeError):  # TypeError: closed under us (close())
                    return
                t0 = time.thread_time()
                try:
                    reply = self._do(op, hid, name, args, kwargs)
                except BaseException as exc:  # the object's own error, for the caller
                    reply = _error_reply(exc)
                try:
                    conn.send(reply)
                except (pickle.PicklingError, TypeError, AttributeError) as exc:
                    conn.send(("err", RemoteError(f"{name or op}: answer not sendable: {exc}")))
                with self._lock:
                    dt = time.thread_time() - t0
                    self.requests += 1
                    self.cpu_s += dt
                    key = f"{op} {name or ''}".rstrip()
                    self.cpu_by_request[key] = self.cpu_by_request.get(key, 0.0) + dt
        except (EOFError, OSError):
            return
        finally:
            with self._lock:
                if conn in self._conns:
                    self._conns.remove(conn)
            conn.close()

    def _do(self, op: str, hid: int, name: str | None, args: Any, kwargs: Any) -> tuple[Any, ...]:
        obj = self._obj(hid)
        if op == "get":
            assert name is not None
            value = getattr(obj, name)
            if callable(value) and not isinstance(value, type) and hasattr(value, "__self__"):
                return ("method",)
            if is_data(value, frozen_only=True):
                return ("ok", value)
            with self._lock:
                kept = hid in self._objects  # reached from a root: kept by its path
            return ("ref", self._ref(value, kept, (hid, name)))
        if op == "call":
            fn = obj if name is None else getattr(obj, name)
            result = fn(*self._arg(args), **self._arg(kwargs))
            if is_data(result, frozen_only=False):
                return ("ok", result)
            return ("ref", self._ref(result, keep=False))
        if op == "iter":
            items = list(obj)
            if is_data(items, frozen_only=False):
                return ("ok", items)
            return ("ok", [self._ref(v, keep=False) for v in items])
        raise RemoteError(f"unknown operation {op!r}")

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:  # a serving thread closes its descriptor only once out of the list
            for c in self._conns:  # wake each one (EOF): shut the socket down through a dup
                try:
                    s = socket.fromfd(c.fileno(), socket.AF_UNIX, socket.SOCK_STREAM)
                except (OSError, ValueError):
                    continue
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()  # the duplicate only
            self._conns = []
        for p in (self.address, self._dir):
            with contextlib.suppress(OSError):
                os.unlink(p) if p == self.address else os.rmdir(p)


def _error_reply(exc: BaseException) -> tuple[Any, ...]:
    """The exception as it can travel: itself when it survives pickling
    (not every exception class does: one whose ``__init__`` takes other
    arguments than its ``args`` does not), else its class, ``args`` and
    attributes, rebuilt on the other side without calling ``__init__``."""
    try:
        pickle.loads(pickle.dumps(exc))
        return ("err", exc)
    except Exception:
        attrs = {k: v for k, v in vars(exc).items() if is_data(v, frozen_only=False)}
        args = tuple(a if is_data(a, frozen_only=False) else repr(a) for a in exc.args)
        return ("exc", _type_name(exc), args, attrs)


def _rebuilt(type_name: str, args: tuple[Any, ...], attrs: dict[str, Any]) -> BaseException:
    cls = _real_type(type_name)
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        return RemoteError(f"{type_name}: {args[0] if args else ''}")
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(attrs)
    return exc


class RemoteClient:
    """The API process's end: a connection per calling thread."""

    def __init__(self, address: str, authkey: bytes, roots: dict[str, _Ref]) -> None:
        self.address, self.authkey, self._roots = address, authkey, roots
        self._local = threading.local()
        self.methods: set[tuple[str, str]] = set()  # (type, name) pairs known to be methods

    def root(self, name: str) -> Remote:
        return Remote(self, self._roots[name])

    def _conn(self) -> Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = Client(self.address, family="AF_UNIX", authkey=self.authkey)
            self._local.conn = c
        return c

    def request(self, op: str, ref: _Ref, name: str | None, args: Any, kwargs: Any) -> Any:
        conn = self._conn()
        try:
            conn.send((op, ref.hid, name, _wire(args), _wire(kwargs)))
            reply = conn.recv()
        except (EOFError, OSError) as exc:
            self._local.conn = None
            raise RemoteError(f"the line's process is gone ({exc!r})") from None
        kind = reply[0]
        if kind == "ok":
            return _unwire(self, reply[1])
        if kind == "ref":
            return Remote(self, reply[1])
        if kind == "method":
            assert name is not None
            self.methods.add((ref.type_name, name))
            return _Method(self, ref, name)
        if kind == "exc":
            raise _rebuilt(*reply[1:])
        raise reply[1]


def _wire(x: Any) -> Any:
    if isinstance(x, Remote):
        return object.__getattribute__(x, "_ref")
    if isinstance(x, (list, tuple)):
        return type(x)(_wire(v) for v in x)
    if isinstance(x, dict):
        return {k: _wire(v) for k, v in x.items()}
    return x


def _unwire(client: RemoteClient, x: Any) -> Any:
    if isinstance(x, _Ref):
        return Remote(client, x)
    if isinstance(x, list) and x and all(isinstance(v, _Ref) for v in x):
        return [Remote(client, v) for v in x]
    return x


class _Method:
    """A bound method of a remote object: calling it is one round trip."""

    __slots__ = ("_client", "_name", "_ref")

    def __init__(self, client: RemoteClient, ref: _Ref, name: str) -> None:
        self._client, self._ref, self._name = client, ref, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._client.request("call", self._ref, self._name, args, kwargs)

    def __repr__(self) -> str:
        return f"<remote method {self._ref.type_name}.{self._name}>"


class Remote:
    """A proxy for an object of the controller's process (module doc)."""

    __slots__ = ("_client", "_ref")

    def __init__(self, client: RemoteClient, ref: _Ref) -> None:
        object.__setattr__(self, "_client", client)
        object.__setattr__(self, "_ref", ref)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)  # copy, pickle and friends probe these
        client: RemoteClient = object.__getattribute__(self, "_client")
        ref: _Ref = object.__getattribute__(self, "_ref")
        if (ref.type_name, name) in client.methods:
            return _Method(client, ref, name)
        return client.request("get", ref, name, (), {})

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # isinstance() reads it: checks see the real type
        return _real_type(object.__getattribute__(self, "_ref").type_name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise RemoteError(f"cannot set {name!r} on a remote object: call a method of the line")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        client: RemoteClient = object.__getattribute__(self, "_client")
        return client.request("call", object.__getattribute__(self, "_ref"), None, args, kwargs)

    def _method(self, name: str, *args: Any) -> Any:
        client: RemoteClient = object.__getattribute__(self, "_client")
        return client.request("call", object.__getattribute__(self, "_ref"), name, args, {})

    def __len__(self) -> int:
        return int(self._method("__len__"))

    def __bool__(self) -> bool:
        try:
            return bool(self._method("__bool__"))
        except AttributeError:
            try:
                return len(self) > 0
            except (AttributeError, TypeError):
                return True

    def __getitem__(self, key: Any) -> Any:
        return self._method("__getitem__", key)

    def __contains__(self, key: Any) -> bool:
        return bool(self._method("__contains__", key))

    def __iter__(self) -> Iterator[Any]:
        client: RemoteClient = object.__getattribute__(self, "_client")
        items = client.request("iter", object.__getattribute__(self, "_ref"), None, (), {})
        return iter(items)

    def __repr__(self) -> str:
        ref: _Ref = object.__getattribute__(self, "_ref")
        return f"<remote {ref.type_name} #{ref.hid}>"
