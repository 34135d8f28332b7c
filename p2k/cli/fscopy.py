"""``p2k cp``: copying between the host and an image, or inside an image (the loop is
``p2k.treecopy``'s; this maps ``:path`` arguments to the image side)."""

from __future__ import annotations

import errno
import os
import stat as st
from collections.abc import Callable

from p2k.cli.fsview import FsView
from p2k.treecopy import HostSide, KernelSide, Side, copy_one, tree_bytes


def _split(v: FsView, p: str) -> tuple[Side, str]:
    if p.startswith(":"):
        return KernelSide(v.sys, v.path), p[1:] or "/"  # the image's paths, under the view's root
    return HostSide(), p


def copy_paths(v: FsView, srcs: list[str], dst: str, *, recursive: bool, preserve: bool,
               progress: Callable[[str, int, int], None] | None = None) -> None:
    """``progress("copied", bytes so far, total)`` after each chunk; with a display to feed, the
    sources are walked first (metadata only) so that the total is known."""
    copied = [0]
    total = sum(tree_bytes(*_split(v, s)) for s in srcs) if progress is not None and recursive else 0

    def tally(n: int) -> None:
        copied[0] += n
        if progress is not None:
            progress("copied", copied[0], max(total, copied[0]))

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
        copy_one(sside, spath, dside, target, recursive=recursive, preserve=preserve, tally=tally)
