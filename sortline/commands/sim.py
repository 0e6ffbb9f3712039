"""``sortline sim plc|record``: the virtual plant's parts on their own.

Each sub-command lives in its own module (``sim_plc``, ``sim_record``) with
``register(sim_subparsers)``."""

from __future__ import annotations

import argparse
import importlib

SIM_COMMAND_MODULES = ("sim_plc", "sim_plant", "sim_record")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sim", help="the virtual plant's parts on their own")
    sim_sub = p.add_subparsers(dest="sim_command", required=True, metavar="SIM_COMMAND")
    for name in SIM_COMMAND_MODULES:
        try:
            module = importlib.import_module(f"sortline.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"sortline.commands.{name}":
                continue
            raise
        module.register(sim_sub)
