"""``sortline.remote``: the line's objects reached over a Unix socket, as the
API's process reaches them. The client runs in this process (each test
thread its own connection) against a real ``ObjectServer``."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from multiprocessing import AuthenticationError
from pathlib import Path

import numpy as np
import pytest

from core.errors import InputFileError
from sortline.remote import MAX_RESULTS, ObjectServer, Remote, RemoteClient, RemoteError


@dataclasses.dataclass(frozen=True)
class Reading:
    name: str
    values: np.ndarray


@dataclasses.dataclass
class Counter:  # mutable: live state, stays remote when read as an attribute
    n: int = 0

    def bump(self, by: int = 1) -> int:
        self.n += by
        return self.n


class Service:  # not data: stays remote
    def __init__(self) -> None:
        self.lock = threading.Lock()

    def ping(self) -> str:
        return "pong"


class Store:
    @property
    def fresh(self) -> Service:  # a new service object at every read
        return Service()

    def __init__(self) -> None:
        self.counter = Counter()
        self.frozen = Reading("r", np.arange(3.0))
        self.items = ["a", "b"]
        self.path = Path("/tmp/x")

    def read(self, name: str) -> Reading:
        return Reading(name, np.ones(2))

    def make(self) -> Counter:
        return Counter(5)

    def fail(self) -> None:
        raise InputFileError("recipe.toml", "not TOML", field="prefer")

    def take(self, other: Counter) -> int:
        return other.n

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[str]:
        return iter(self.items)


@pytest.fixture
def served() -> Iterator[tuple[Store, Remote, ObjectServer]]:
    store = Store()
    server = ObjectServer({"store": store})
    client = RemoteClient(server.address, server.authkey, server.roots)
    try:
        yield store, client.root("store"), server
    finally:
        server.close()


def test_data_travels_by_value_and_services_stay_remote(
    served: tuple[Store, Remote, ObjectServer],
) -> None:
    store, remote, _ = served
    r = remote.read("x")  # a call's result: a frozen dataclass, by value
    assert type(r) is Reading and r.name == "x" and np.array_equal(r.values, [1.0, 1.0])
    assert type(remote.frozen) is Reading  # a frozen attribute: by value
    assert remote.items == ["a", "b"] and remote.path == Path("/tmp/x")
    c = remote.counter  # a mutable dataclass attribute: a reference
    assert type(c) is Remote and isinstance(c, Counter)  # isinstance sees the real class
    assert c.bump(2) == 2 and store.counter.n == 2  # the change is made on the real object
    assert c.n == 2


def test_len_iter_and_arguments_that_are_references(
    served: tuple[Store, Remote, ObjectServer],
) -> None:
    store, remote, _ = served
    assert len(remote) == 2 and list(remote) == ["a", "b"] and bool(remote)
    made = remote.make()  # a call's result that is data too: a mutable dataclass, by value
    assert type(made) is Counter and made.n == 5
    assert remote.take(remote.counter) == store.counter.n  # a reference goes back as the object


def test_errors_come_back_as_raised(served: tuple[Store, Remote, ObjectServer]) -> None:
    _, remote, _ = served
    with pytest.raises(InputFileError) as err:  # its __init__ differs from its args: rebuilt
        remote.fail()
    assert str(err.value) == "recipe.toml: prefer: not TOML" and err.value.field == "prefer"
    assert getattr(remote, "missing", None) is None  # AttributeError travels too
    with pytest.raises(AttributeError):
        _ = remote.missing
    with pytest.raises(RemoteError, match="cannot set"):
        remote.items = []


def test_results_are_kept_to_a_bound(served: tuple[Store, Remote, ObjectServer]) -> None:
    _, remote, server = served
    server_obj = server  # a service object returned by a call stays remote, within the bound
    first = server_obj._ref(object(), keep=False)
    for _ in range(MAX_RESULTS):
        server_obj._ref(object(), keep=False)
    with pytest.raises(RemoteError, match="no longer kept"):
        server_obj._obj(first.hid)
    assert remote.items == ["a", "b"]  # attribute-reached objects are not dropped


def test_threads_call_in_parallel_each_on_its_own_connection(
    served: tuple[Store, Remote, ObjectServer],
) -> None:
    store, remote, server = served
    counter = remote.counter
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(200):
                counter.bump()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors and store.counter.n == 800
    assert server.requests >= 800


def test_a_client_without_the_key_is_refused(served: tuple[Store, Remote, ObjectServer]) -> None:
    _, remote, server = served
    stranger = RemoteClient(server.address, b"not the key" * 3, server.roots)
    with pytest.raises(AuthenticationError):
        stranger.root("store").items  # noqa: B018 - the read is the test
    assert remote.items == ["a", "b"]  # the server goes on serving the others


def test_a_closed_server_is_an_error_naming_it(served: tuple[Store, Remote, ObjectServer]) -> None:
    _, remote, server = served
    assert remote.items == ["a", "b"]
    server.close()
    with pytest.raises(RemoteError, match="the line's process is gone"):
        remote.read("x")


def test_attribute_handles_are_one_per_path(served: tuple[Store, Remote, ObjectServer]) -> None:
    _, remote, server = served
    first = remote.fresh
    assert first.ping() == "pong"
    kept = len(server._objects)
    for _ in range(100):  # a property that hands out a fresh object: no growth
        assert remote.fresh.ping() == "pong"
    assert len(server._objects) == kept
    assert first.ping() == "pong"  # the old handle reads what the path reads now
