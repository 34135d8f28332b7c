"""Open files and fd tables (NetBSD ``kern_descrip.c``).

An open file holds a reference on its vnode, its access mode and its offset; fds are indices into
a per-process table, and ``dup`` makes two fds share one open file (and one offset), as POSIX
wants.
"""

from __future__ import annotations

import errno
import os

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from p2k.vfs.vnode import Vnode, VnodeCache

OPEN_MAX = 1 << 16


class File:
    __slots__ = ("vp", "flags", "offset", "refs", "dir_cookie", "on_close")

    def __init__(self, vp: Vnode, flags: int) -> None:
        self.vp = vp
        self.flags = flags
        self.offset = 0
        self.refs = 1
        self.dir_cookie = 0
        self.on_close: object = None  # device release hook for etfs vnodes

    @property
    def readable(self) -> bool:
        return (self.flags & os.O_ACCMODE) in (os.O_RDONLY, os.O_RDWR)

    @property
    def writable(self) -> bool:
        return (self.flags & os.O_ACCMODE) in (os.O_WRONLY, os.O_RDWR)


class FdTable:
    """fd → open file. New descriptors are the lowest free number, as POSIX wants, found without
    a scan: ``_used`` has bit ``fd`` set for each open descriptor, and its lowest clear bit is
    ``((used + 1) & ~used)``'s, two big-int operations in C (NetBSD's ``fd_alloc`` searches a
    bitmap of used descriptors too, ``fd_next_zero``, a word at a time). The FUSE daemon's
    table holds one descriptor per file the host has open, so a scan from 0 made each open cost
    more the more were open (140 µs each with 10,000 open). A heap of freed numbers did it in
    0.5 µs a close and open at any count, but imports heapq into every command's start-up
    (0.3 ms); the bitmap takes 0.4 µs with five open, 1.8 µs with 10,000 (the bits are
    copied), next to a FUSE request's tens."""

    def __init__(self, vcache: VnodeCache, limit: int = OPEN_MAX) -> None:
        self.vcache = vcache
        self.limit = limit
        self.files: dict[int, File] = {}
        self.users = 0
        self._used = 0

    def alloc(self, fp: File, minfd: int = 0) -> int:
        used = self._used | ((1 << minfd) - 1)  # F_DUPFD's floor: the numbers below it taken
        fd = ((used + 1) & ~used).bit_length() - 1
        if fd >= self.limit:
            raise OSError(errno.EMFILE, "too many open files")
        self.files[fd] = fp
        self._used |= 1 << fd
        return fd

    def get(self, fd: int) -> File:
        fp = self.files.get(fd)
        if fp is None:
            raise OSError(errno.EBADF, f"bad file descriptor {fd}")
        return fp

    def release(self, fp: File) -> None:
        fp.refs -= 1
        if fp.refs == 0:
            hook = fp.on_close
            if callable(hook):
                hook()
            self.vcache.vrele(fp.vp)

    def close(self, fd: int) -> None:
        fp = self.files.pop(fd, None)
        if fp is None:
            raise OSError(errno.EBADF, f"bad file descriptor {fd}")
        self._used &= ~(1 << fd)
        self.release(fp)

    def dup(self, fd: int, minfd: int = 0) -> int:
        fp = self.get(fd)
        new = self.alloc(fp, minfd)
        fp.refs += 1
        return new

    def dup2(self, fd: int, fd2: int) -> int:
        fp = self.get(fd)
        if fd == fd2:
            return fd2
        if fd2 < 0 or fd2 >= self.limit:
            raise OSError(errno.EBADF, f"bad file descriptor {fd2}")
        if fd2 in self.files:
            self.close(fd2)
        self.files[fd2] = fp
        self._used |= 1 << fd2
        fp.refs += 1
        return fd2

    def copy(self) -> FdTable:
        t = FdTable(self.vcache, self.limit)
        for fd, fp in self.files.items():
            fp.refs += 1
            t.files[fd] = fp
        t._used = self._used
        return t

    def close_all(self) -> None:
        for fd in sorted(self.files):
            self.close(fd)
