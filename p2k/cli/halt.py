"""``rump.halt`` (issue 7 builds it; until then it says so)."""

from __future__ import annotations

import sys


def main() -> int:
    print("rump.halt: not implemented yet", file=sys.stderr)
    return 2
