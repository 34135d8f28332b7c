"""The full command-line parser: argparse, for ``--help``, usage errors and every command line the
fast parser (p2k.cli.quickparse) is not sure of.

argparse is the one place each command's options are declared and documented, and its messages
and exit statuses are the ones users and tests see; but importing it brings re, enum, gettext and
locale, and building a parser and parsing add gettext look-ups: 6 ms of ``p2k find``'s 30 ms
start-up, against 0.3 ms for the fast parser. So ``p2k.cli.main`` imports this module only when
the fast parser declines (or for ``--help``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

import p2k
from p2k.cli.errors import UsageError
from p2k.cli.imagearg import hide_operand_defaults, settle_operands

TYPE_CHECKING = False  # typing's, without importing it: a command's --help never needs typing (p2k.lazy)
if TYPE_CHECKING:
    from typing import Any

_COLUMNS: list[int] = []


def _columns() -> int:
    """The terminal width as ``shutil.get_terminal_size`` finds it (COLUMNS, then the tty, else 80),
    which argparse imports ``shutil`` (with bz2, lzma, fnmatch: 2 ms) to ask, for every parser
    and argument, though only a help page uses it; asked once per process."""
    if _COLUMNS:
        return _COLUMNS[0]
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 80
    _COLUMNS.append(columns)
    return columns


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's layout, the epilog kept verbatim (the manual sections are laid out already)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position, _columns() - 2 if width is None else width)


class _Parser(argparse.ArgumentParser):
    manual: tuple[str | None] | None = None
    """(command,) whose ENVIRONMENT and EXIT STATUS sections (p2k.cli.manual) end the help page;
    added when a help page is made, as only ``--help`` needs them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def format_help(self) -> str:
        if self.manual is not None:
            from p2k.cli.manual import epilog

            self.epilog = epilog(self.manual[0], self.epilog)
            self.manual = None
        return super().format_help()

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message}\nusage: {self.format_usage().strip().removeprefix('usage: ')}", prog=self.prog)


class _Unused:
    """The parser of a command the command line does not name: what a module's ``register`` does
    to it (add_argument, set_defaults, groups...) is dropped."""

    def __getattr__(self, name: str) -> Any:
        return self._drop

    def _drop(self, *args: Any, **kwargs: Any) -> _Unused:
        return self


class _OneCommand:
    """The subparsers action as a module's ``register`` sees it when the command line names one of
    its commands: only that command's parser is made. A module registers up to nine commands, and
    each parser and argument costs argparse gettext look-ups (1 ms of a command's start-up)."""

    def __init__(self, sub: Any, command: str) -> None:
        self._sub = sub
        self._command = command

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if name == self._command or self._command in kwargs.get("aliases", ()):
            return self._sub.add_parser(name, **kwargs)
        return _Unused()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sub, name)


def build_parser(table: dict[str, tuple[str, ...]], command: str | None = None,
                 subcommands: bool = True) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser and each command's subparser (by name), from ``table`` (module → the commands
    it registers: p2k.cli.main.SUBCOMMANDS). With ``command``, a known command name, only that
    command's parser is made; otherwise (help, a wrong name) all; none without ``subcommands``
    (``p2k --version``, which needs no command's parser)."""
    parser = _Parser(prog="p2k", description="NetBSD's rump file-system stack (FFS, tmpfs) in Python.")
    parser.add_argument("--version", action="version", version=f"p2k {p2k.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    only = [m for m, names in table.items() if command in names]
    for modname in (only or table) if subcommands else ():
        importlib.import_module(modname).register(_OneCommand(sub, command) if only and command else sub)
    commands: dict[str, argparse.ArgumentParser] = dict(sub.choices)
    for name, p in commands.items():
        _document(p, name)
        if p.get_default("_image_operand") is not None:  # only where settle_operands deals them
            hide_operand_defaults(p)
    _document(parser, None)
    return parser, commands


def _document(parser: argparse.ArgumentParser, command: str | None) -> None:
    """Give ``parser`` its ENVIRONMENT and EXIT STATUS sections, added to its epilog when its help
    page is made (``_Parser.format_help``), and the layout that keeps them verbatim."""
    assert isinstance(parser, _Parser), parser  # every parser here is made with parser_class=_Parser
    parser.manual = (command,)
    parser.formatter_class = _Formatter


def parse_command_line(table: dict[str, tuple[str, ...]], words: list[str]) -> argparse.Namespace | None:
    """``words`` (the command line after ``p2k``) as argparse reads them, the operands dealt; None
    when no command was named (the help page is printed). Usage errors raise UsageError; ``--help``
    and ``--version`` exit."""
    first = words[0] if words else None
    parser, commands = build_parser(table, first if first and not first.startswith("-") else None,
                                    subcommands=first != "--version")
    return read_command_line(parser, commands, words)


def read_command_line(parser: argparse.ArgumentParser, commands: dict[str, argparse.ArgumentParser],
                      words: list[str]) -> argparse.Namespace | None:
    """``words`` read by ``parser`` (from build_parser), as parse_command_line does."""
    args, extra = parser.parse_known_args(words)
    if not getattr(args, "func", None):
        parser.print_help()
        return None
    sub = commands[args.command]
    if hasattr(args, "_image_operand"):
        settle_operands(sub, args, extra)
    elif extra:
        sub.error(f"unrecognized arguments: {' '.join(extra)}")
    return args
