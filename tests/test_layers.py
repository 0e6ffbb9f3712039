"""DESIGN.md's layering, checked on every module's imports (module level and
inside functions): imports run one way, and the hot path never imports
fastapi or pymodbus."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"core", "calibration", "vision", "control", "plc", "models", "sim", "sortline", "bench"}

# package -> packages of ours it may import (besides itself)
ALLOWED = {
    "core": set(),
    "calibration": {"core"},
    "vision": {"core", "calibration"},
    "control": {"core", "calibration"},
    "plc": {"core"},
    "models": {"core", "calibration", "vision"},
    "sim": {"core", "calibration", "plc"},
    "sortline": OURS - {"bench"},
    "bench": OURS,
}
# the one crossing by design: `sortline bench NAME` runs bench/NAME.py (issue 7's CLI)
EXCEPTIONS = {("sortline/commands/bench.py", "bench")}
HOT_PATH = {"core", "vision", "control"}
NOT_ON_HOT_PATH = {"fastapi", "pymodbus", "uvicorn", "starlette"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_run_one_way(package: str) -> None:
    bad = []
    for path in _modules(package):
        rel = path.relative_to(ROOT).as_posix()
        for name in _imports(path) & OURS - {package} - ALLOWED[package]:
            if (rel, name) not in EXCEPTIONS:
                bad.append(f"{rel} imports {name}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("package", sorted(HOT_PATH))
def test_hot_path_has_no_network_stack(package: str) -> None:
    bad = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _modules(package)
        for name in _imports(path) & NOT_ON_HOT_PATH
    ]
    assert not bad, "\n".join(bad)


def test_every_package_is_checked() -> None:
    found = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert found <= set(ALLOWED), found - set(ALLOWED)
