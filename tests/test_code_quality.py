"""ruff and mypy, as CI runs them: the code stays linted, formatted and typed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["core", "calibration", "vision", "control", "plc", "models", "sim", "sortline", "bench"]


def _tool(name: str) -> list[str]:
    exe = Path(sys.executable).with_name(name)
    if exe.exists():
        return [str(exe)]
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (it is in the test extra)")
    return [found]


def test_ruff_lint() -> None:
    res = subprocess.run([*_tool("ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-4000:]


def test_ruff_format() -> None:
    res = subprocess.run(
        [*_tool("ruff"), "format", "--check", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout[-4000:]


@pytest.mark.timeout(900)
def test_mypy() -> None:
    res = subprocess.run([*_tool("mypy"), *PACKAGES], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-4000:]
