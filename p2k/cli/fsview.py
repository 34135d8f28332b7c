"""How the fs-utils style commands open their view (an image in a private kernel, or the server in
RUMP_SERVER) and how ``ls -l`` prints an entry; the view itself is ``p2k.fsview``."""

from __future__ import annotations

import argparse
import os
import stat as st
import time

from p2k.cli.imagearg import MountedImage, open_image
from p2k.fsview import FsView, NamingSys


def open_view(args: argparse.Namespace, *, write: bool = False) -> FsView:
    """The image named by ``args`` (or the server in RUMP_SERVER) as an FsView."""
    server = os.environ.get("RUMP_SERVER")
    if server and not getattr(args, "image", None) and not getattr(args, "drivespec", None):
        from p2k.client import connect  # issue 7

        try:
            c = connect(server)
        except OSError as e:
            if e.filename is not None or e.errno is None:
                raise
            raise OSError(e.errno, f"RUMP_SERVER: {os.strerror(e.errno)}", server) from None
        return FsView(NamingSys(c.sys, ""), "", c.close)
    m: MountedImage = open_image(args, write=write)
    # A process chrooted to the image's root, as fs-utils' tools see an image: its own absolute
    # symlinks (/etc/localtime -> /usr/share/zoneinfo/...) resolve inside it, and '..' cannot leave.
    sys = m.kernel.newproc()

    def close() -> None:
        m.kernel.release_proc(sys)
        m.close()

    try:
        sys.chdir(m.mountpoint)
        sys.chroot(m.mountpoint)
    except BaseException:
        close()
        raise
    return FsView(NamingSys(sys, ""), "", close)


_MODES: dict[int, str] = {}


def mode_string(mode: int) -> str:
    """``st.filemode``, once per distinct mode (a tree has a handful)."""
    text = _MODES.get(mode)
    if text is None:
        text = _MODES[mode] = st.filemode(mode)
    return text


_NOW = time.time()
_WHEN: dict[int, str] = {}


def _when(mtime: int) -> str:
    """ls's date column, once per distinct second: a tree's files share few mtimes, and
    localtime + strftime per entry was ls -lR's largest formatting cost."""
    when = _WHEN.get(mtime)
    if when is None:
        recent = abs(_NOW - mtime) < 15552000  # six months, as ls(1)
        when = _WHEN[mtime] = time.strftime("%b %e %H:%M" if recent else "%b %e  %Y", time.localtime(mtime))
    return when


def ls_line(name: str, s: os.stat_result, target: str | None = None) -> str:
    mode = s.st_mode
    when = _WHEN.get(s.st_mtime_ns // 1_000_000_000) or _when(s.st_mtime_ns // 1_000_000_000)
    size: str | int = s.st_size
    if mode & 0o170000 in (st.S_IFCHR, st.S_IFBLK):
        size = f"{os.major(s.st_rdev):3d}, {os.minor(s.st_rdev):3d}"
    kind = _MODES.get(mode) or mode_string(mode)
    line = f"{kind} {s.st_nlink:3d} {s.st_uid:<5d} {s.st_gid:<5d} {size:>9} {when} {name}"
    return line if target is None else f"{line} -> {target}"
