"""``p2k``: one command with subcommands, like fs-utils' ``fsu_*`` tools gathered under one name.

Each subcommand lives in its own module that exposes ``register(subparsers)``; the module is only
imported when listed here, so a broken or slow module cannot make ``p2k --help`` fail.
"""

from __future__ import annotations

import argparse
import importlib
import sys

import p2k
from p2k.cli.errors import UsageError, run_main
from p2k.cli.imagearg import set_argv

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
    "p2k.cli.xattr",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message}\nusage: {self.format_usage().strip().removeprefix('usage: ')}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="p2k", description="NetBSD's rump file-system stack (FFS, tmpfs) in Python.")
    parser.add_argument("--version", action="version", version=f"p2k {p2k.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for modname in SUBCOMMAND_MODULES:
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name == modname:
                continue  # that subcommand is not written yet
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    def run() -> int | None:
        set_argv(sys.argv[1:] if argv is None else list(argv))
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 1
        return args.func(args)

    return run_main("p2k", run)


if __name__ == "__main__":
    sys.exit(main())
