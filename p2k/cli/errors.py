"""How every command reports failure: one line on stderr naming what is wrong, and an exit code.

A traceback reaching a user is a bug, so ``run_main`` turns the errors p2k raises on bad input
(OSError from the kernel, ParamError, DriveSpecError, usage errors) into that one line, in the
shape BSD tools use: ``p2k CMD: PATH: strerror (ENAME)``.
"""

from __future__ import annotations

import errno
import os
import sys

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from collections.abc import Callable


class UsageError(Exception):
    """Bad command-line usage; exit code 1 like BSD tools' usage()."""

    def __init__(self, message: str, prog: str | None = None) -> None:
        super().__init__(message)
        self.prog = prog


def describe(e: BaseException) -> str:
    """``PATH: message (ENAME)`` for an OSError (the kernel's own message when it says more than
    strerror would), the message otherwise."""
    if isinstance(e, OSError):
        code = e.errno if e.errno is not None else (e.args[0] if len(e.args) == 1 and isinstance(e.args[0], int)
                                                     else 0)
        name = errno.errorcode.get(code, "")
        msg = e.strerror or (os.strerror(code) if code else str(e))
        where = f"{e.filename}: " if e.filename else ""
        return f"{where}{msg}" + (f" ({name})" if name and name not in msg else "")
    return str(e)


def run_main(prog: str | Callable[[], str], fn: Callable[[], int | None]) -> int:
    """Run ``fn``; ``prog`` (or what it returns once ``fn`` has failed) starts every error line."""
    def name() -> str:
        return prog if isinstance(prog, str) else prog()

    try:
        rc = fn()
        return 0 if rc is None else rc
    except KeyboardInterrupt:
        print(f"{name()}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except UsageError as e:
        print(f"{e.prog or name()}: {e}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:
        print(f"{name()}: {describe(e)}", file=sys.stderr)
        return 1
