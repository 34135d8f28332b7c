"""``p2k``: one command with subcommands, like fs-utils' ``fsu_*`` tools gathered under one name.

Each subcommand lives in its own module that exposes ``register(subparsers)``; a new command is one
more line in SUBCOMMAND_MODULES. The parser is built the same way whatever the command line and
the environment say, so ``--help`` documents what a command takes rather than what it would take
today; which operand is the IMAGE is settled after parsing (p2k.cli.imagearg.settle_operands).

A command line is first offered to p2k.cli.quickparse, which reads the same declarations with
getopt's rules and answers only when it is sure argparse would read the line the same way; for
``--help``, usage errors and anything unusual it declines, and argparse (p2k.cli.argparser) reads
the line as it always has. argparse's reading of ``p2k find IMG /`` (importing it with re, enum,
gettext and locale, building the parser, parsing) took 6 ms of the 30 ms ``p2k find`` spent before
its walk, the fast one 0.3 ms; NetBSD's fs-utils pay nothing (getopt).
"""

from __future__ import annotations

import sys

from p2k.cli.errors import run_main

TYPE_CHECKING = False  # typing's, without importing it: a command's --help never needs typing (p2k.lazy)
if TYPE_CHECKING:
    import argparse

    from p2k.cli.quickparse import Namespace

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


def build_parser(command: str | None = None,
                 subcommands: bool = True) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """argparse's parser and each command's subparser (p2k.cli.argparser.build_parser)."""
    from p2k.cli.argparser import build_parser as build

    return build(SUBCOMMANDS, command, subcommands)


def parse(words: list[str]) -> argparse.Namespace | Namespace | None:
    """The command line after ``p2k``, its operands dealt: by the fast parser when it is sure, else
    by argparse (None: no command named, the help page printed)."""
    first = words[0] if words else ""
    module = next((m for m, names in SUBCOMMANDS.items() if first in names), None)
    if module is not None and "--help" not in words:  # a help page is argparse's: straight to it
        from p2k.cli.quickparse import parse_quickly

        args = parse_quickly(module, first, words[1:])
        if args is not None:
            return args
    from p2k.cli.argparser import parse_command_line

    return parse_command_line(SUBCOMMANDS, words)


def main(argv: list[str] | None = None) -> int:
    prog = ["p2k"]

    def run() -> int | None:
        args = parse(sys.argv[1:] if argv is None else argv)
        if args is None:
            return 1
        prog[0] = f"p2k {args.command}"
        rc: int | None = args.func(args)
        return rc

    return run_main(lambda: prog[0], run)


if __name__ == "__main__":
    sys.exit(main())
