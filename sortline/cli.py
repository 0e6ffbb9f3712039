"""``sortline`` command line. Each sub-command lives in ``sortline/commands/``
as a module with ``register(subparsers)``; modules import their heavy
dependencies inside the command, so ``sortline --help`` stays fast."""

from __future__ import annotations

import argparse
import importlib
import sys

from core.errors import InputFileError

# (module under sortline.commands); each adds its own parser(s)
COMMAND_MODULES = (
    "run",
    "sim",
    "replay",
    "calibrate",
    "model",
    "bench",
    "keys",
    "plant",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sortline",
        description="Open controller for camera-based scrap and e-waste sorting lines.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"sortline.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"sortline.commands.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except InputFileError as exc:
        print(f"sortline: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
