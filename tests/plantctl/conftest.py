"""A PostgreSQL server for the plant tests (``sortline.plantctl.postgres``:
the same helper ``sortline plant up`` and the records tests use)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sortline.plantctl.plant import free_port
from sortline.plantctl.postgres import PG_PACKAGE, PgServer, PgStartError, pg_bin


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    bin_ = pg_bin()
    if bin_ is None:
        pytest.skip(f"PostgreSQL server binaries missing (apt-get install {PG_PACKAGE})")
    folder = Path(tempfile.mkdtemp(prefix="sortline-pg-"))
    server = PgServer(folder, free_port(), bin_)
    try:
        server.init().start()
        yield server
    finally:
        with contextlib.suppress(PgStartError):
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
