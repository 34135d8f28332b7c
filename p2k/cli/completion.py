"""``p2k completion bash|zsh``: shell completion generated from the one argparse parser.

Generated, not written by hand, so a new subcommand or option completes the moment it is
registered. shtab walks the parser; positional arguments (images, trees, host paths) complete as
file names.

    p2k completion bash > /etc/bash_completion.d/p2k
    p2k completion zsh > "${fpath[1]}/_p2k"
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("completion", help="print a bash or zsh completion script for p2k",
                       description="Print a shell completion script generated from p2k's own parser.")
    p.add_argument("shell", choices=["bash", "zsh"], help="shell to complete for")
    p.set_defaults(func=cmd_completion)


def _files_for_positionals(parser: argparse.ArgumentParser, shtab: Any) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                _files_for_positionals(child, shtab)
        elif not action.option_strings and action.choices is None:
            action.complete = shtab.FILE  # type: ignore[attr-defined]


def completion_script(shell: str) -> str:
    import shtab  # imported here, not at the top: ``p2k`` imports every command module

    from p2k.cli.main import build_parser

    parser, _ = build_parser()
    _files_for_positionals(parser, shtab)
    return shtab.complete(parser, shell=shell)


def cmd_completion(args: argparse.Namespace) -> int:
    sys.stdout.write(completion_script(args.shell))
    return 0
