"""Vnode attributes: what getattr returns and setattr changes, common to every file system."""

from __future__ import annotations

import os
import stat as stat_mod

from p2k.hints import NamedTuple, Protocol
from p2k.slotted import Frozen, Slotted

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from typing import Any

VNOVAL = None

# Vnode types are the S_IFMT bits themselves, so a driver's mode word needs no translation.
VREG = stat_mod.S_IFREG
VDIR = stat_mod.S_IFDIR
VLNK = stat_mod.S_IFLNK
VBLK = stat_mod.S_IFBLK
VCHR = stat_mod.S_IFCHR
VFIFO = stat_mod.S_IFIFO
VSOCK = stat_mod.S_IFSOCK

DT_FROM_IFMT = {VFIFO: 1, VCHR: 2, VDIR: 4, VBLK: 6, VREG: 8, VLNK: 10, VSOCK: 12}
"""d_type values (BSD and Linux agree) for each file type."""

UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2


class Vattr(Slotted):
    """A snapshot of a vnode's attributes; times are integer nanoseconds since the epoch.
    (A plain slotted class, not a dataclass: see ``p2k.slotted``.)"""

    __slots__ = ("mode", "nlink", "uid", "gid", "size", "ino", "rdev", "atime_ns", "mtime_ns", "ctime_ns",
                 "birthtime_ns", "blocks", "blksize", "flags", "gen", "fsid")
    mode: int
    nlink: int
    uid: int
    gid: int
    size: int
    ino: int
    rdev: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    birthtime_ns: int
    blocks: int  # 512-byte units actually allocated
    blksize: int
    flags: int
    gen: int
    fsid: int

    def __init__(self, mode: int, nlink: int, uid: int, gid: int, size: int, ino: int, rdev: int = 0,
                 atime_ns: int = 0, mtime_ns: int = 0, ctime_ns: int = 0, birthtime_ns: int = 0, blocks: int = 0,
                 blksize: int = 4096, flags: int = 0, gen: int = 0, fsid: int = 0) -> None:
        self.mode = mode
        self.nlink = nlink
        self.uid = uid
        self.gid = gid
        self.size = size
        self.ino = ino
        self.rdev = rdev
        self.atime_ns = atime_ns
        self.mtime_ns = mtime_ns
        self.ctime_ns = ctime_ns
        self.birthtime_ns = birthtime_ns
        self.blocks = blocks
        self.blksize = blksize
        self.flags = flags
        self.gen = gen
        self.fsid = fsid

    @property
    def type(self) -> int:
        return stat_mod.S_IFMT(self.mode)


def stat_result(va: Vattr, dev: int) -> os.stat_result:
    """``os.stat_result`` of a vnode's attributes, so callers of ``k.sys`` treat results as ``os``'s."""
    a, m, c = va.atime_ns, va.mtime_ns, va.ctime_ns
    return os.stat_result((
        va.mode, va.ino, dev, va.nlink, va.uid, va.gid, va.size,
        a // 1_000_000_000, m // 1_000_000_000, c // 1_000_000_000,
        a / 1e9, m / 1e9, c / 1e9, a, m, c, va.blksize, va.blocks, va.rdev,
    ))


class AclVattr(Vattr):
    """Attributes of a file whose access ACL the permission checks must apply (mount with ACLs
    enforced, ACL stored); ``acl`` has the mode merged in, ``(tag, id, perm)`` entries as in
    ``p2k.vfs.acl``. Declared here, beside ``Vattr``, so that the permission check can tell it
    apart without importing the ACL codecs (``p2k.vfs.acl`` builds it and re-exports it)."""

    __slots__ = ("acl",)
    acl: list[tuple[int, int, int]]

    def __init__(self, *args: Any, acl: list[tuple[int, int, int]] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acl = [] if acl is None else acl


class SetAttr(Slotted):
    """Changes asked of setattr; None means 'leave alone'. Times are ns, never UTIME_* here."""

    __slots__ = ("mode", "uid", "gid", "size", "atime_ns", "mtime_ns", "ctime_ns", "birthtime_ns", "flags", "extra")
    mode: int | None  # permission bits only (07777)
    uid: int | None
    gid: int | None
    size: int | None
    atime_ns: int | None
    mtime_ns: int | None
    ctime_ns: int | None
    birthtime_ns: int | None
    flags: int | None
    extra: dict[str, object]

    def __init__(self, mode: int | None = None, uid: int | None = None, gid: int | None = None,
                 size: int | None = None, atime_ns: int | None = None, mtime_ns: int | None = None,
                 ctime_ns: int | None = None, birthtime_ns: int | None = None, flags: int | None = None,
                 extra: dict[str, object] | None = None) -> None:
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.size = size
        self.atime_ns = atime_ns
        self.mtime_ns = mtime_ns
        self.ctime_ns = ctime_ns
        self.birthtime_ns = birthtime_ns
        self.flags = flags
        self.extra = {} if extra is None else extra


class _Owned(Protocol):
    mode: int
    uid: int
    gid: int
    flags: int


def apply_owner_mode(node: _Owned, sa: SetAttr) -> None:
    """The part of setattr every driver does alike on its in-core node: permission bits (the type
    bits stay), owner, group and chflags flags. Times and size are each driver's own."""
    if sa.mode is not None:
        node.mode = (node.mode & 0o170000) | (sa.mode & 0o7777)
    if sa.uid is not None:
        node.uid = sa.uid
    if sa.gid is not None:
        node.gid = sa.gid
    if sa.flags is not None:
        node.flags = sa.flags


class StatVFS(Frozen):
    """statvfs(2) figures; f_bavail already excludes the reserve that only root may use."""

    __slots__ = ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree", "f_favail",
                 "f_fsid", "f_flag", "f_namemax")
    f_bsize: int
    f_frsize: int
    f_blocks: int
    f_bfree: int
    f_bavail: int
    f_files: int
    f_ffree: int
    f_favail: int
    f_fsid: int
    f_flag: int
    f_namemax: int

    def __init__(self, f_bsize: int, f_frsize: int, f_blocks: int, f_bfree: int, f_bavail: int, f_files: int,
                 f_ffree: int, f_favail: int, f_fsid: int, f_flag: int, f_namemax: int) -> None:
        self._set(f_bsize=f_bsize, f_frsize=f_frsize, f_blocks=f_blocks, f_bfree=f_bfree, f_bavail=f_bavail,
                  f_files=f_files, f_ffree=f_ffree, f_favail=f_favail, f_fsid=f_fsid, f_flag=f_flag,
                  f_namemax=f_namemax)


DT_UNKNOWN, DT_DIR, DT_WHT = 0, 4, 14
"""dirent.h's d_type values the kernel itself tests (the rest are the mode's type bits >> 12):
unknown (a 4.2BSD directory records no types), directory, whiteout."""

class Dirent(NamedTuple):
    """One directory entry as readdir yields it: ``type`` a DT_* value; ``cookie`` resumes the
    listing after it.

    A named tuple rather than a frozen dataclass: one is made per entry of every listing, and a
    frozen dataclass's ``__init__`` (one ``object.__setattr__`` per field) costs twice as much.
    p2k.hints' NamedTuple, not typing's: typing's compiles each annotation string of the class
    form (``p2k.ondisk.define`` says what a first ``compile()`` costs)."""

    ino: int
    type: int
    name: bytes
    cookie: int
