"""``sortline bench NAME [args...]``: runs ``bench/NAME.py``'s ``main(argv)``.

Every benchmark writes JSON (``--json OUT``) with the command that reproduces
it; see ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil

import bench


def available() -> list[str]:
    return sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_")
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run a benchmark (writes JSON with --json OUT)")
    p.add_argument("name", help="benchmark: " + ", ".join(available()))
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments of that benchmark")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.name not in available():
        raise SystemExit(f"sortline bench: unknown benchmark {args.name!r}; have {available()}")
    module = importlib.import_module(f"bench.{args.name}")
    return int(module.main(list(args.args)) or 0)
