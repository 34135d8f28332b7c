"""Vnode attributes: what getattr returns and setattr changes, common to every file system."""

from __future__ import annotations

import os
import stat as stat_mod
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

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


@dataclass(slots=True)
class Vattr:
    """A snapshot of a vnode's attributes; times are integer nanoseconds since the epoch."""

    mode: int
    nlink: int
    uid: int
    gid: int
    size: int
    ino: int
    rdev: int = 0
    atime_ns: int = 0
    mtime_ns: int = 0
    ctime_ns: int = 0
    birthtime_ns: int = 0
    blocks: int = 0  # 512-byte units actually allocated
    blksize: int = 4096
    flags: int = 0
    gen: int = 0
    fsid: int = 0

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


@dataclass(slots=True)
class SetAttr:
    """Changes asked of setattr; None means 'leave alone'. Times are ns, never UTIME_* here."""

    mode: int | None = None  # permission bits only (07777)
    uid: int | None = None
    gid: int | None = None
    size: int | None = None
    atime_ns: int | None = None
    mtime_ns: int | None = None
    ctime_ns: int | None = None
    birthtime_ns: int | None = None
    flags: int | None = None
    extra: dict[str, object] = field(default_factory=dict)


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


@dataclass(frozen=True, slots=True)
class StatVFS:
    """statvfs(2) figures; f_bavail already excludes the reserve that only root may use."""

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


class Dirent(NamedTuple):
    """One directory entry as readdir yields it; ``cookie`` resumes the listing after it.

    A named tuple rather than a frozen dataclass: one is made per entry of every listing, and a
    frozen dataclass's ``__init__`` (one ``object.__setattr__`` per field) costs twice as much."""

    ino: int
    type: int  # DT_* value
    name: bytes
    cookie: int
