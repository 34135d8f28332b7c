"""The in-core inode (NetBSD ``struct inode`` with its ``ufs1_dinode``/``ufs2_dinode`` folded in).

One class serves UFS1 and UFS2: the fields are the union of both dinodes, under the dinode names
without the ``di_`` prefix. UFS1 images leave the UFS2-only fields (``birthtime``, ``extsize``,
``extb``, ``kernflags``, ``blksize``) at zero; the codec in ``dinode.py`` writes back only what its
format has. The write path changes fields in place and sets ``dirty``; ``vop_reclaim``/``vfs_sync``
then encode the inode into its inode block (``dinode.DinodeCodec.encode_into``) and ``bdwrite`` it.

``dircache`` is the name → inode-number dict of a directory, built on the first lookup (what NetBSD's
dirhash gives big directories). Rule for the write path: **any change to a directory's entries sets
``ip.dircache = None``** (or updates the dict in step); nothing else ever invalidates it.
"""

from __future__ import annotations

import stat as stat_mod

IFMT = 0o170000
IFIFO = 0o010000
IFCHR = 0o020000
IFDIR = 0o040000
IFBLK = 0o060000
IFREG = 0o100000
IFLNK = 0o120000
IFSOCK = 0o140000
IFWHT = 0o160000

VALID_TYPES = frozenset((IFIFO, IFCHR, IFDIR, IFBLK, IFREG, IFLNK, IFSOCK))


class Inode:
    """In-core inode; times are seconds + nanoseconds as on disk, converted only in getattr."""

    __slots__ = (
        "ino", "mode", "nlink", "uid", "gid", "size", "blocks",
        "atime", "atimensec", "mtime", "mtimensec", "ctime", "ctimensec", "birthtime", "birthnsec",
        "flags", "gen", "db", "ib", "extsize", "extb", "kernflags", "blksize", "modrev",
        "oldids", "spare", "dirty", "dircache", "ea", "ea_clean",
    )

    ino: int
    mode: int
    nlink: int
    uid: int
    gid: int
    size: int
    blocks: int  # 512-byte sectors held, indirect blocks (and UFS2 ext area) included
    atime: int
    atimensec: int
    mtime: int
    mtimensec: int
    ctime: int
    ctimensec: int
    birthtime: int
    birthnsec: int
    flags: int
    gen: int
    db: list[int]  # 12 direct fragment addresses (db[0] is the dev_t of a device node)
    ib: list[int]  # single, double, triple indirect fragment addresses
    extsize: int
    extb: list[int]
    kernflags: int
    blksize: int
    modrev: int
    oldids: tuple[int, int]  # UFS1 di_oldids (16-bit uid, gid of the 4.2 inode format)
    spare: bytes  # UFS2 di_spare (FreeBSD keeps freelink/ckhash here); written back untouched
    dirty: bool
    dircache: dict[bytes, int] | None
    ea: dict[tuple[int, bytes], bytes] | None  # parsed UFS2 ext area (extattr.py), None = not read
    ea_clean: bool  # with ea: the area on disk is exactly build_area(ea), so a new name may be appended

    def __repr__(self) -> str:
        return f"<Inode {self.ino} mode={self.mode:o} size={self.size}>"

    @property
    def type(self) -> int:
        return self.mode & IFMT

    @property
    def rdev(self) -> int:
        """dev_t of a device node: UFS keeps it in di_db[0] (64-bit dev_t, unsigned)."""
        return self.db[0] & 0xFFFFFFFFFFFFFFFF if self.type in (IFCHR, IFBLK) else 0

    def is_dir(self) -> bool:
        return stat_mod.S_ISDIR(self.mode)

    def times_ns(self) -> tuple[int, int, int, int]:
        """(atime, mtime, ctime, birthtime) in nanoseconds since the epoch."""
        g = 1_000_000_000
        return (self.atime * g + self.atimensec, self.mtime * g + self.mtimensec,
                self.ctime * g + self.ctimensec, self.birthtime * g + self.birthnsec)
