"""lstat of many inodes at once, straight from the inode blocks: FFS's ``vfs_stat_inodes``.

A stat walk (``scandir``) asks for every inode a directory names in one call. makefs and
``ffs_valloc`` put a directory's files in its cylinder group, mostly in consecutive inodes, so
most of them share an inode block: each block is fetched once (``bread``, through the buffer cache,
so what is there is what the kernel last wrote) and only the fields a stat reports are unpacked
(``DinodeCodec.stat_fields``), with no in-core inode and no vnode. Callers ask only for inodes that
are not in the vnode cache; an in-core inode with changes not yet in its block always is (a vnode
is reclaimed only after ``ufs_reclaim`` writes its inode back).

The answer must be what ``ufs_getattr`` of the loaded inode gives (an access ACL rides along in
its Vattr for the permission checks but changes nothing a stat shows), and a bad inode must fail as
``vfs_loadvnode`` fails it. So this path answers only plain inodes: anything else — a device (its
rdev lives in the block pointers), one ``vfs_loadvnode`` would refuse (free, unknown type, absurd
size), a UFS2 inode beyond its group's initialised ones — goes the general way
(``Mount.vfs_stat_inodes``: load, getattr), which also raises the right error for that entry alone.
"""

from __future__ import annotations

import os

from p2k.fs.ffs.cg import cg_initediblk, cg_magic_ok
from p2k.fs.ffs.fs import DEV_BSIZE, UFS_ROOTINO, cgtod
from p2k.fs.ffs.inode import IFBLK, IFCHR, IFDIR, VALID_TYPES
from p2k.vfs.mount import Mount

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from p2k.fs.ffs.ffs_vfsops import FfsMount

_PLAIN_TYPES = VALID_TYPES - {IFCHR, IFBLK}
_G = 1_000_000_000
_STAT = os.stat_result


def ffs_stat_inodes(m: FfsMount, inos: Sequence[int]) -> list[os.stat_result | OSError]:
    fs = m.fs
    ipg, inopb, bsize, isize = fs.fs_ipg, fs.fs_inopb, fs.fs_bsize, m.isize
    itable = m._itable  # noqa: SLF001 - the mount's own inode-table addresses
    bread, dev, fields = m.bufcache.bread, m.dev, m.codec.stat_fields
    maxino, maxfilesize, maxsectors, fsid = m.maxino, m.maxfilesize, m.maxsectors, m.fsid
    inited = _inited_counts(m) if fs.ufs2 else None
    out: list[os.stat_result | OSError] = []
    append = out.append
    last = -1
    data: bytes | bytearray = b""
    for ino in inos:
        if ino < UFS_ROOTINO or ino >= maxino:
            append(_general(m, ino))
            continue
        cg, idx = divmod(ino, ipg)
        if inited is not None and idx >= inited(cg):
            append(_general(m, ino))
            continue
        blk = itable[cg] + idx // inopb * bsize
        if blk != last:
            data = bread(dev, blk, bsize).data
            last = blk
        mode, nlink, uid, gid, size, blocks, at, atn, mt, mtn, ct, ctn = fields(data, idx % inopb * isize)
        vtype = mode & 0o170000
        # vfs_loadvnode's acceptance test, less the devices (see the module docstring)
        if (vtype not in _PLAIN_TYPES or size > maxfilesize or blocks > maxsectors
                or (vtype == IFDIR and size > blocks * DEV_BSIZE)):
            append(_general(m, ino))
            continue
        a = at * _G + atn
        mt = mt * _G + mtn
        c = ct * _G + ctn
        append(_STAT((mode, ino, fsid, nlink, uid, gid, size, a // _G, mt // _G, c // _G,
                      a / 1e9, mt / 1e9, c / 1e9, a, mt, c, bsize, blocks, 0)))
    return out


def _general(m: FfsMount, ino: int) -> os.stat_result | OSError:
    """One inode the general way: the driver's own load and getattr (see the module docstring)."""
    return Mount.vfs_stat_inodes(m, (ino,))[0]


def _inited_counts(m: FfsMount) -> Callable[[int], int]:
    """UFS2 initialises inode blocks lazily: an inode past its group's ``cg_initediblk`` is free
    whatever its block holds. Per group, that count (-1 for a group whose header is bad, so that
    its inodes go the general way and fail there), read once per call."""
    fs = m.fs
    counts: dict[int, int] = {}

    def inited(cg: int) -> int:
        n = counts.get(cg)
        if n is None:
            bp = m.bufcache.bread(m.dev, cgtod(fs, cg) << fs.fs_fshift, fs.fs_cgsize)
            n = counts[cg] = cg_initediblk(bp.data, fs.endian) if cg_magic_ok(bp.data, fs.endian) else -1
        return n

    return inited
