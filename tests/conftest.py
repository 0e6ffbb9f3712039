"""Shared fixtures: free loopback ports and a line config for tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from core.net import free_port as _free_port
from sortline.plantctl.postgres import PG_PACKAGE, PgServer, PgStartError, pg_bin


@pytest.fixture(scope="session", autouse=True)
def _state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Sort records and other state of lines run by tests go to a temp folder,
    never to the user's home."""
    state = tmp_path_factory.mktemp("state")
    old = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(state)
    yield state
    if old is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = old


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    """A PostgreSQL server from the Debian binaries on a free loopback port,
    for a module's tests (``sortline.plantctl.postgres``, as ``sortline plant
    up`` runs it); skipped when the binaries are missing."""
    bin_ = pg_bin()
    if bin_ is None:
        pytest.skip(f"PostgreSQL server binaries missing (apt-get install {PG_PACKAGE})")
    folder = Path(tempfile.mkdtemp(prefix="sortline-pg-"))
    server = PgServer(folder, _free_port(), bin_)
    try:
        server.init().start()
        yield server
    finally:
        with contextlib.suppress(PgStartError):
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    return _free_port()


NoJit = Callable[[Sequence[Path], "str | None", float], str]


@pytest.fixture
def without_jit() -> NoJit:
    """``run(files, select, timeout_s)``: pytest on the test ``files`` (``-k
    select``, None: all) in a child process with ``NUMBA_DISABLE_JIT=1``, from the
    repository's root, so the kernels' Python bodies run against their twins
    (coverage and tracebacks see inside them); asserts it passed with no failure
    and returns its stdout for the caller's own checks."""

    def run(files: Sequence[Path], select: str | None, timeout_s: float) -> str:
        env = dict(os.environ, NUMBA_DISABLE_JIT="1")
        k = ["-k", select] if select else []
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
             *(str(f) for f in files), *k],
            cwd=Path(__file__).resolve().parent.parent, env=env, capture_output=True,
            text=True, timeout=timeout_s,
        )  # fmt: skip
        tail = (proc.stdout + proc.stderr)[-3000:]
        assert proc.returncode == 0, tail
        assert " passed" in proc.stdout and "failed" not in proc.stdout, tail
        return proc.stdout

    return run


@pytest.fixture
def line_config_file(tmp_path: Path) -> Path:
    """The embedded default line on free loopback ports (virtual PLC and API)."""
    p = tmp_path / "line.toml"
    p.write_text(f"[plc]\nport = {_free_port()}\n[api]\nport = {_free_port()}\n")
    return p
