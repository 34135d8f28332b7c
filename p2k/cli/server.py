"""``rump_server`` and ``rump_allserver`` (issue 7 builds them; until then they say so)."""

from __future__ import annotations

import sys


def _not_yet(prog: str) -> int:
    print(f"{prog}: not implemented yet", file=sys.stderr)
    return 2


def main_server() -> int:
    return _not_yet("rump_server")


def main_allserver() -> int:
    return _not_yet("rump_allserver")
