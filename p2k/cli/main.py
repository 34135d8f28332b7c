"""``p2k``: one command with subcommands, like fs-utils' ``fsu_*`` tools gathered under one name.

Each subcommand lives in its own module that exposes ``register(subparsers)``; a new command is one
more line in SUBCOMMAND_MODULES. The parser is built the same way whatever the command line and
the environment say, so ``--help`` documents what a command takes rather than what it would take
today; which operand is the IMAGE is settled after parsing (p2k.cli.imagearg.settle_operands).
"""

from __future__ import annotations

import argparse
import importlib
import sys

import p2k
from p2k.cli.errors import UsageError, run_main
from p2k.cli.imagearg import hide_operand_defaults, settle_operands
from p2k.cli.manual import document

# Modules that contribute subcommands; each defines register(subparsers).
SUBCOMMAND_MODULES = (
    "p2k.cli.demo",
    "p2k.cli.fsutils",
    "p2k.cli.fsutils_write",
    "p2k.cli.mount",
    "p2k.cli.newfs",
    "p2k.cli.makefs",
    "p2k.cli.fsck",
    "p2k.cli.dumpfs",
    "p2k.cli.crashtest",
    "p2k.cli.parts",
    "p2k.cli.sysctl",
    "p2k.cli.xattr",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message}\nusage: {self.format_usage().strip().removeprefix('usage: ')}", prog=self.prog)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser and each command's subparser (by name)."""
    parser = _Parser(prog="p2k", description="NetBSD's rump file-system stack (FFS, tmpfs) in Python.")
    parser.add_argument("--version", action="version", version=f"p2k {p2k.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for modname in SUBCOMMAND_MODULES:
        importlib.import_module(modname).register(sub)
    commands: dict[str, argparse.ArgumentParser] = dict(sub.choices)
    for name, p in commands.items():
        document(p, name)
        if p.get_default("_image_operand") is not None:  # only where settle_operands deals them
            hide_operand_defaults(p)
    document(parser, None)
    return parser, commands


def main(argv: list[str] | None = None) -> int:
    prog = ["p2k"]

    def run() -> int | None:
        parser, commands = build_parser()
        args, extra = parser.parse_known_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 1
        prog[0] = f"p2k {args.command}"
        sub = commands[args.command]
        if hasattr(args, "_image_operand"):
            settle_operands(sub, args, extra)
        elif extra:
            sub.error(f"unrecognized arguments: {' '.join(extra)}")
        rc: int | None = args.func(args)
        return rc

    return run_main(lambda: prog[0], run)


if __name__ == "__main__":
    sys.exit(main())
