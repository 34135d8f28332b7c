"""The in-core inode's life (NetBSD ``ufs_inode.c``): what happens when its last reference goes
(``ufs_inactive``) and when it leaves the vnode cache (``ufs_reclaim``), and its timestamps.

An inode with no name left is freed only at its last close, as in NetBSD: its blocks first
(``truncate``, which writes the inode without its pointers before a block is marked free), then
the inode itself, with the inode number remembered until the next full sync so that it is not
handed out again while its old name may still be on disk.
"""

from __future__ import annotations

from p2k.fs.ffs.extattr import free_area
from p2k.fs.ffs.ffs_inode import truncate
from p2k.fs.ffs.fs import UFS_NDADDR
from p2k.fs.ffs.inode import IFDIR, IFLNK, IFMT, IFREG
from p2k.hyper import now_ns

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from p2k.fs.ffs.ffs_vfsops import FfsMount
    from p2k.fs.ffs.inode import Inode
    from p2k.vfs.vnode import Vnode


def set_times(ip: Inode, *, a: int | None = None, m: int | None = None, c: int | None = None,
              b: int | None = None) -> None:
    """Store nanosecond times as the dinode's seconds + nanoseconds fields."""
    g = 1_000_000_000
    if a is not None:
        ip.atime, ip.atimensec = divmod(a, g)
    if m is not None:
        ip.mtime, ip.mtimensec = divmod(m, g)
    if c is not None:
        ip.ctime, ip.ctimensec = divmod(c, g)
    if b is not None:
        ip.birthtime, ip.birthnsec = divmod(b, g)


def modified(ip: Inode) -> None:
    t = now_ns()
    set_times(ip, m=t, c=t)


def changed(ip: Inode) -> None:
    set_times(ip, c=now_ns())


def ufs_inactive(m: FfsMount, vp: Vnode) -> bool:
    """The last reference to an unlinked inode frees its blocks, then the inode."""
    ip: Inode | None = vp.data  # type: ignore[assignment]
    if ip is None or m.readonly or ip.nlink > 0 or ip.mode == 0:
        return False
    kind = ip.mode & IFMT
    isdir = kind == IFDIR
    free_area(m, ip)  # first: a fast symlink's blocks must read 0 below
    fast_link = kind == IFLNK and ip.size < m.fs.fs_maxsymlinklen and ip.blocks == 0
    if kind in (IFREG, IFDIR, IFLNK) and not fast_link and (ip.size or ip.blocks):
        truncate(m, ip, 0, True)
    ip.size = 0
    ip.db = [0] * UFS_NDADDR
    ip.ib = [0, 0, 0]
    ip.mode = 0
    changed(ip)
    m.iupdate(ip, sync=True)
    m.alloc.free_inode(ip.ino, isdir)
    m.freed_inos.add(ip.ino)
    m.dirindex.pop(ip.ino, None)
    return True


def ufs_reclaim(m: FfsMount, ip: Inode) -> None:
    """The inode leaves the cache: a dirty one is written back, its directory index dropped."""
    if not m.readonly:
        if ip.dirty and ip.mode != 0:
            m.iupdate(ip)
        m.dirindex.pop(ip.ino, None)
