"""How every command reports failure: one line on stderr naming what is wrong, and an exit code.

A traceback reaching a user is a bug, so ``run_main`` turns the errors p2k raises on bad input
(OSError from the kernel, ParamError, DriveSpecError, usage errors) into that one line.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable


class UsageError(Exception):
    """Bad command-line usage; exit code 1 like BSD tools' usage()."""


def describe(e: BaseException) -> str:
    if isinstance(e, OSError):
        name = errno.errorcode.get(e.errno or 0, "")
        msg = e.strerror or os.strerror(e.errno or 0)
        where = f"{e.filename}: " if e.filename else ""
        return f"{where}{msg}" + (f" ({name})" if name and name not in msg else "")
    return str(e)


def run_main(prog: str, fn: Callable[[], int | None]) -> int:
    try:
        rc = fn()
        return 0 if rc is None else rc
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except UsageError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:
        print(f"{prog}: {describe(e)}", file=sys.stderr)
        return 1
