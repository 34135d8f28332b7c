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

# Modules that contribute subcommands (each defines register(subparsers)), with the commands each
# registers: a command line builds only its command's parser (building all of them cost 30 ms of
# every command's start-up, most of it in argparse's gettext lookups). tests/cli checks the names.
SUBCOMMANDS: dict[str, tuple[str, ...]] = {
    "p2k.cli.demo": ("demo",),
    "p2k.cli.fsutils": ("cat", "cp", "df", "du", "find", "ls", "stat"),
    "p2k.cli.fsutils_write": ("chmod", "chown", "ln", "mkdir", "mv", "rm", "rmdir", "touch", "write"),
    "p2k.cli.mount": ("mount", "umount"),
    "p2k.cli.newfs": ("newfs",),
    "p2k.cli.makefs": ("makefs",),
    "p2k.cli.fsck": ("fsck",),
    "p2k.cli.dumpfs": ("dumpfs",),
    "p2k.cli.crashtest": ("crashtest",),
    "p2k.cli.parts": ("parts",),
    "p2k.cli.sysctl": ("sysctl",),
    "p2k.cli.xattr": ("getfattr", "setfattr"),
    "p2k.cli.completion": ("completion",),
    "p2k.cli.info": ("info",),
}
SUBCOMMAND_MODULES = tuple(SUBCOMMANDS)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message}\nusage: {self.format_usage().strip().removeprefix('usage: ')}", prog=self.prog)


def build_parser(command: str | None = None) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser and each command's subparser (by name). With ``command``, a known command
    name, only the module that provides it is registered; otherwise (help, a wrong name) all."""
    parser = _Parser(prog="p2k", description="NetBSD's rump file-system stack (FFS, tmpfs) in Python.")
    parser.add_argument("--version", action="version", version=f"p2k {p2k.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    only = [m for m, names in SUBCOMMANDS.items() if command in names]
    for modname in only or SUBCOMMAND_MODULES:
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
        words = sys.argv[1:] if argv is None else argv
        parser, commands = build_parser(words[0] if words and not words[0].startswith("-") else None)
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
