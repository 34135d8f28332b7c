"""A file-system view for the fs-utils style commands: a ``sys`` object plus a path mapping.

The commands are written against this, not against a kernel, so that the same code serves an image
mounted in a private kernel and (with RUMP_SERVER set) a remote server's namespace.
"""

from __future__ import annotations

import argparse
import os
import stat as st
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from p2k.cli.imagearg import MountedImage, open_image


@dataclass
class FsView:
    sys: Any  # p2k.vfs.syscalls.Syscalls or a remote client's equivalent
    root: str  # where image paths start in the sys namespace ("/mnt", or "" for a server)
    closer: Any = None

    def path(self, p: str) -> str:
        p = p or "/"
        if not p.startswith("/"):
            p = "/" + p
        return (self.root + p).rstrip("/") or "/" if self.root else p

    def close(self) -> None:
        if self.closer is not None:
            self.closer()

    def __enter__(self) -> FsView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- helpers shared by the commands ----------------------------------------------------------
    def walk(self, top: str, onerror: Callable[[str, OSError], None] | None = None,
             ) -> Iterator[tuple[str, os.stat_result]]:
        """Depth-first (path, lstat) of ``top`` and everything below it, image paths. With
        ``onerror``, a node that cannot be read is reported to it and the walk goes on (BSD find),
        and a directory met twice (a damaged image's cycle) is not entered again."""
        stack = [top]
        seen: set[tuple[int, int]] = set()
        while stack:
            p = stack.pop()
            try:
                s = self.sys.lstat(self.path(p))
                yield p, s
                if st.S_ISDIR(s.st_mode) and (s.st_dev, s.st_ino) not in seen:
                    seen.add((s.st_dev, s.st_ino))
                    names = sorted(self.sys.listdir(self.path(p)), reverse=True)
                    stack.extend(p.rstrip("/") + "/" + n for n in names)
            except OSError as e:
                if onerror is None:
                    raise
                onerror(p, e)

    def read_file(self, p: str, chunk: int = 1 << 20) -> Iterator[bytes]:
        fd = self.sys.open(self.path(p), os.O_RDONLY)
        try:
            while True:
                data = self.sys.read(fd, chunk)
                if not data:
                    return
                yield data
        finally:
            self.sys.close(fd)


def open_view(args: argparse.Namespace, *, write: bool = False) -> FsView:
    """The image named by ``args`` (or the server in RUMP_SERVER) as an FsView."""
    server = os.environ.get("RUMP_SERVER")
    if server and not getattr(args, "image", None) and not getattr(args, "drivespec", None):
        from p2k.client import connect  # issue 7

        c = connect(server)
        return FsView(c.sys, "", c.close)
    m: MountedImage = open_image(args, write=write)
    return FsView(m.kernel.sys, m.mountpoint, m.close)


def mode_string(mode: int) -> str:
    return st.filemode(mode)


def ls_line(name: str, s: os.stat_result, target: str | None = None) -> str:
    t = time.localtime(s.st_mtime)
    when = time.strftime("%b %e %H:%M" if abs(time.time() - s.st_mtime) < 15552000 else "%b %e  %Y", t)
    if st.S_ISCHR(s.st_mode) or st.S_ISBLK(s.st_mode):
        size = f"{os.major(s.st_rdev):3d}, {os.minor(s.st_rdev):3d}"
    else:
        size = str(s.st_size)
    line = f"{mode_string(s.st_mode)} {s.st_nlink:3d} {s.st_uid:<5d} {s.st_gid:<5d} {size:>9} {when} {name}"
    return line + (f" -> {target}" if target is not None else "")
