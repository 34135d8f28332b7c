"""Copying between the host and an image, or inside an image, through one code path: what
``p2k cp``, ``p2k.open_image``'s ``copy_out`` and makefs's attribute copy share.

Both ends are "sides" with the same small interface (the ``os`` calls the copy needs), so a copy
out of an image, into one and within one are the same loop; only the host side calls ``os``.
"""

from __future__ import annotations

import errno
import os
import stat as st

from p2k.fsview import FsView
from p2k.hints import Protocol
from p2k.puffs.xattrnames import LinkPath, getxattr, listxattr, setxattr

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

CHUNK = 1 << 20


class Side(Protocol):
    def lstat(self, p: str) -> os.stat_result: ...
    def listdir(self, p: str) -> list[str]: ...
    def open(self, p: str, flags: int, mode: int = 0o777) -> int: ...
    def read(self, fd: int, n: int) -> bytes: ...
    def write(self, fd: int, data: bytes) -> int: ...
    def close(self, fd: int) -> None: ...
    def mkdir(self, p: str, mode: int = 0o777) -> None: ...
    def symlink(self, target: str, p: str) -> None: ...
    def readlink(self, p: str) -> str: ...
    def mknod(self, p: str, mode: int, device: int = 0) -> None: ...
    def chmod(self, p: str, mode: int) -> None: ...
    def utime(self, p: str, *, ns: tuple[int, int]) -> None: ...
    def listxattr(self, p: str) -> list[bytes]: ...
    def getxattr(self, p: str, name: bytes) -> bytes: ...
    def setxattr(self, p: str, name: bytes, value: bytes) -> None: ...


class ImageSide:
    """The image's paths, mapped under the view's root."""

    def __init__(self, v: FsView) -> None:
        self.v = v
        self.sys: Any = v.sys

    def lstat(self, p: str) -> os.stat_result:
        return self.sys.lstat(self.v.path(p))

    def listdir(self, p: str) -> list[str]:
        return self.sys.listdir(self.v.path(p))

    def open(self, p: str, flags: int, mode: int = 0o777) -> int:
        return self.sys.open(self.v.path(p), flags, mode)

    def read(self, fd: int, n: int) -> bytes:
        return self.sys.read(fd, n)

    def write(self, fd: int, data: bytes) -> int:
        return self.sys.write(fd, data)

    def close(self, fd: int) -> None:
        self.sys.close(fd)

    def mkdir(self, p: str, mode: int = 0o777) -> None:
        self.sys.mkdir(self.v.path(p), mode)

    def symlink(self, target: str, p: str) -> None:
        self.sys.symlink(target, self.v.path(p))

    def readlink(self, p: str) -> str:
        return self.sys.readlink(self.v.path(p))

    def mknod(self, p: str, mode: int, device: int = 0) -> None:
        self.sys.mknod(self.v.path(p), mode, device)

    def chmod(self, p: str, mode: int) -> None:
        self.sys.chmod(self.v.path(p), mode)

    def utime(self, p: str, *, ns: tuple[int, int]) -> None:
        self.sys.utimensat(self.v.path(p), ns[0], ns[1], follow_symlinks=False)

    # extended attributes under their Linux names (p2k/puffs/xattrnames.py), links not followed
    def listxattr(self, p: str) -> list[bytes]:
        return listxattr(self.sys, LinkPath(self.v.path(p)), True)

    def getxattr(self, p: str, name: bytes) -> bytes:
        return getxattr(self.sys, LinkPath(self.v.path(p)), name)

    def setxattr(self, p: str, name: bytes, value: bytes) -> None:
        setxattr(self.sys, LinkPath(self.v.path(p)), name, value)


def tree_bytes(side: Side, p: str) -> int:
    """Bytes of the regular files at and below ``p`` (0 where it cannot be read: the copy will
    say why)."""
    try:
        s = side.lstat(p)
        if st.S_ISREG(s.st_mode):
            return s.st_size
        if not st.S_ISDIR(s.st_mode):
            return 0
        names = side.listdir(p)
    except OSError:
        return 0
    return sum(tree_bytes(side, p.rstrip("/") + "/" + n) for n in names)


def copy_one(ss: Side, sp: str, ds: Side, dp: str, *, recursive: bool, preserve: bool,
             failed: list[OSError] | None = None, tally: Callable[[int], None] | None = None) -> None:
    s = ss.lstat(sp)
    mode = s.st_mode
    if st.S_ISDIR(mode):
        if not recursive:
            raise OSError(errno.EISDIR, "is a directory (use -R)", sp)
        try:
            ds.mkdir(dp, 0o700)
        except FileExistsError:
            pass
        for name in sorted(ss.listdir(sp)):
            child = sp.rstrip("/") + "/" + name
            try:
                copy_one(ss, child, ds, dp.rstrip("/") + "/" + name, recursive=True, preserve=preserve,
                         failed=failed, tally=tally)
            except OSError as e:
                if failed is None:
                    raise
                failed.append(e if e.filename else OSError(e.errno, e.strerror, child))
        ds.chmod(dp, st.S_IMODE(mode) if preserve else st.S_IMODE(mode) & 0o777)
    elif st.S_ISLNK(mode):
        ds.symlink(ss.readlink(sp), dp)
    elif st.S_ISREG(mode):
        _copy_data(ss, sp, ds, dp, st.S_IMODE(mode), tally)
    elif recursive:
        ds.mknod(dp, st.S_IFMT(mode) | st.S_IMODE(mode), s.st_rdev)
    else:
        raise OSError(errno.EINVAL, "not a regular file (use -R to copy special files)", sp)
    if preserve:
        copy_xattrs(ss, sp, ds, dp)
    if preserve and not st.S_ISLNK(mode):
        ds.chmod(dp, st.S_IMODE(mode))
    if preserve:
        try:
            ds.utime(dp, ns=(s.st_atime_ns, s.st_mtime_ns))
        except (NotImplementedError, OSError):
            if not st.S_ISLNK(mode):
                raise


def _copy_data(ss: Side, sp: str, ds: Side, dp: str, mode: int, tally: Callable[[int], None] | None) -> None:
    sfd = ss.open(sp, os.O_RDONLY)
    try:
        dfd = ds.open(dp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode & 0o777)
        try:
            while True:
                data = ss.read(sfd, CHUNK)
                if not data:
                    break
                ds.write(dfd, data)
                if tally is not None:
                    tally(len(data))
        finally:
            ds.close(dfd)
    finally:
        ss.close(sfd)


# What a destination may refuse without failing the copy (cp -a goes on too): a namespace it does
# not have (security.* into an image, system.* on a host file system), no attributes at all, or no
# right to write that name.
_SKIPPED = (errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM, errno.EACCES)


def copy_xattrs(ss: Side, sp: str, ds: Side, dp: str) -> None:
    """Every attribute of ``sp`` onto ``dp`` (the POSIX ACL names carry the ACLs), before the
    mode is set, since an access ACL sets the mode's group class and the mode then wins."""
    try:
        names = ss.listxattr(sp)
    except OSError as e:
        if e.errno in _SKIPPED:
            return
        raise
    for name in names:
        try:
            ds.setxattr(dp, name, ss.getxattr(sp, name))
        except OSError as e:
            if e.errno not in _SKIPPED and e.errno != errno.ENODATA:
                raise
