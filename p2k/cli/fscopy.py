"""``p2k cp``'s operands: ``:PATH`` names a path in the image, anything else a host path; the copy
itself is ``p2k.fscopy``. A source that cannot be copied is reported and the rest copied, as BSD cp
does."""

from __future__ import annotations

import errno
import os
import stat as st
import sys

from p2k.fscopy import ImageSide, Side, copy_one, tree_bytes
from p2k.fsview import FsView
from p2k.hyper.hostio import HostSide

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from collections.abc import Callable


def _split(v: FsView, p: str) -> tuple[Side, str]:
    if p.startswith(":"):
        return ImageSide(v), p[1:] or "/"
    return HostSide(), p


def copy_paths(v: FsView, srcs: list[str], dst: str, *, recursive: bool, preserve: bool,
               progress: Callable[[str, int, int], None] | None = None) -> int:
    """Copy; like BSD cp, a source that cannot be copied is reported on stderr and the rest are
    copied all the same. Returns 1 if anything failed, else 0. ``progress("copied", bytes so far,
    total)`` follows the data; with a display to feed, the sources are walked first (metadata
    only) so that the total is known."""
    failed: list[OSError] = []
    tally = None
    if progress is not None:
        total = sum(tree_bytes(*_split(v, s)) for s in srcs) if recursive else 0
        copied = [0]

        def tally(n: int) -> None:
            copied[0] += n
            progress("copied", copied[0], max(total, copied[0]))

    _copy_paths(v, srcs, dst, recursive=recursive, preserve=preserve, failed=failed, tally=tally)
    for e in failed:
        print(f"p2k cp: {e.filename}: {e.strerror}" if e.filename else f"p2k cp: {e.strerror}", file=sys.stderr)
    return 1 if failed else 0


def _copy_paths(v: FsView, srcs: list[str], dst: str, *, recursive: bool, preserve: bool,
                failed: list[OSError], tally: Callable[[int], None] | None = None) -> None:
    dside, dpath = _split(v, dst)
    try:
        dst_is_dir = st.S_ISDIR(dside.lstat(dpath).st_mode)
    except FileNotFoundError:
        dst_is_dir = False
    if len(srcs) > 1 and not dst_is_dir:
        raise OSError(errno.ENOTDIR, "target is not a directory", dst)
    for src in srcs:
        sside, spath = _split(v, src)
        target = dpath.rstrip("/") + "/" + os.path.basename(spath.rstrip("/")) if dst_is_dir else dpath
        try:
            copy_one(sside, spath, dside, target, recursive=recursive, preserve=preserve, failed=failed,
                     tally=tally)
        except OSError as e:
            failed.append(e if e.filename else OSError(e.errno, e.strerror, src))
