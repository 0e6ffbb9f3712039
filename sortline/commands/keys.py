"""``sortline keys new --name NAME --role ROLE``: a new API key, printed once,
and the ``[[api.keys]]`` entry (its scrypt hash, never the key) to paste into
the line config."""

from __future__ import annotations

import argparse
import re
import sys

_ROLES = ("maintenance", "operator", "engineer")
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="API keys for the status API")
    keys = p.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    new = keys.add_parser(
        "new",
        help="make a key: prints it once, and the config entry holding its hash",
        description="Make an API key. The key is printed once (give it to its owner); "
        "the [[api.keys]] entry printed after it holds only the key's scrypt hash: paste it "
        "into the line config.",
    )
    new.add_argument("--name", required=True, help="who the key belongs to (audit log name)")
    new.add_argument("--role", required=True, choices=_ROLES)
    new.set_defaults(func=run_new)


def run_new(args: argparse.Namespace) -> int:
    if not _NAME.match(args.name):
        print(
            "sortline keys new: error: --name: 1 to 64 of letters, digits and _ . @ -",
            file=sys.stderr,
        )
        return 2
    from sortline.auth import hash_key, new_key

    key = new_key()
    print(f"API key for {args.name} ({args.role}), shown once: {key}")
    print("Paste into the line config:\n")
    print("[[api.keys]]")
    print(f'name = "{args.name}"')
    print(f'role = "{args.role}"')
    print(f'hash = "{hash_key(key)}"')
    return 0
