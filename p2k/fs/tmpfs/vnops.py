"""tmpfs vnode operations (NetBSD ``tmpfs_vnops.c``): every change is a dict update and the timestamp
rules of p2k.vfs.times. Each is a function of the mount, bound into ``TmpfsMount`` by its VOP table
(as FFS does), so mypy checks each against the class that declares the mount's state."""

from __future__ import annotations

import errno
import os
import stat as stat_mod

from p2k.fs.tmpfs.extattr import acl_vattr
from p2k.fs.tmpfs.node import (
    DIRENT_OVERHEAD,
    TmpDir,
    TmpNode,
    read_pages,
    read_pages_into,
    truncate_pages,
    write_pages,
)
from p2k.hyper import now_ns
from p2k.vfs.mount import MNT_NOATIME, Mount
from p2k.vfs.times import mark_changed, mark_modified
from p2k.vfs.vattr import DT_FROM_IFMT, VDIR, VLNK, VREG, Dirent, SetAttr, Vattr, apply_owner_mode, stat_result

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from p2k.fs.tmpfs.vfsops import TmpfsMount
    from p2k.vfs.vnode import Vnode


def _node(vp: Vnode) -> TmpNode:
    return vp.data  # type: ignore[return-value]


def tmpfs_getattr(m: TmpfsMount, vp: Vnode) -> Vattr:
    return node_vattr(m, vp.data)  # type: ignore[arg-type]


def tmpfs_stat_inodes(m: TmpfsMount, inos: Sequence[int]) -> list[os.stat_result | OSError]:
    """Every node is in memory: each lstat comes straight from it, with no vnode made for it
    (a number with no node fails as ``vfs_loadvnode`` fails it)."""
    nodes, fsid = m.nodes, m.fsid
    out: list[os.stat_result | OSError] = []
    for ino in inos:
        n = nodes.get(ino)
        out.append(stat_result(node_vattr(m, n), fsid) if n is not None else Mount.vfs_stat_inodes(m, (ino,))[0])
    return out


def node_vattr(m: TmpfsMount, n: TmpNode) -> Vattr:
    """A node's attributes: getattr's answer, and a stat walk's without a vnode."""
    if n.pages is not None:
        blocks = sum(map(len, n.pages.values()))
    elif n.dir is not None:
        blocks = len(n.dir.names) * DIRENT_OVERHEAD
    else:
        blocks = len(n.target)
    # Positional, in Vattr's field order (mode, nlink, uid, gid, size, ino, rdev, atime,
    # mtime, ctime, birthtime, blocks, blksize, flags, gen, fsid): stat is a hot path.
    va = Vattr(n.mode, n.nlink, n.uid, n.gid, n.size, n.ino, n.rdev, n.atime_ns, n.mtime_ns,
               n.ctime_ns, n.birthtime_ns, (blocks + 511) >> 9, 4096, n.flags, n.gen, m.fsid)
    if n.xattrs and m.acls:
        return acl_vattr(m, n, va)
    return va


def tmpfs_setattr(m: TmpfsMount, vp: Vnode, sa: SetAttr) -> None:
    n = _node(vp)
    if sa.size is not None:
        if n.pages is None:
            raise OSError(errno.EISDIR if n.dir is not None else errno.EINVAL, "not a regular file")
        _truncate(m, n, sa.size)
    apply_owner_mode(n, sa)
    if sa.atime_ns is not None:
        n.atime_ns = sa.atime_ns
    if sa.mtime_ns is not None:
        n.mtime_ns = sa.mtime_ns
    if sa.birthtime_ns is not None:
        n.birthtime_ns = sa.birthtime_ns
    mark_changed(n)
    if sa.ctime_ns is not None:
        n.ctime_ns = sa.ctime_ns


def _truncate(m: TmpfsMount, n: TmpNode, size: int) -> None:
    if size > m.maxfilesize:
        raise OSError(errno.EFBIG, "file too large")
    assert n.pages is not None
    if size < n.size:
        m.uncharge(truncate_pages(n.pages, size))
    elif size > n.size:
        m.check_space(0)
    if size != n.size:
        n.size = size
        mark_modified(n)


# ---- names -----------------------------------------------------------------------------------
def tmpfs_lookup(m: TmpfsMount, dvp: Vnode, name: bytes) -> int:
    d: TmpNode = dvp.data  # type: ignore[assignment]
    assert d.dir is not None
    ent = d.dir.names.get(name)  # first: the hot path of every lookup ("." and ".." are never names)
    if ent is not None:
        return ent[0]
    if name == b"..":
        return d.parent
    if name == b".":
        return d.ino
    raise OSError(errno.ENOENT, "no such entry")


def _enter(m: TmpfsMount, d: TmpNode, name: bytes, n: TmpNode) -> None:
    assert d.dir is not None
    if name in d.dir.names:
        raise OSError(errno.EEXIST, "entry exists")
    m.charge(DIRENT_OVERHEAD)
    d.dir.add(name, n.ino)
    n.nlink += 1
    mark_modified(d)


def tmpfs_create(m: TmpfsMount, dvp: Vnode, name: bytes, mode: int, uid: int, gid: int,
                 rdev: int = 0) -> int:
    d = _node(dvp)
    if d.dir is not None and name in d.dir.names:
        raise OSError(errno.EEXIST, "entry exists")
    n = m.new_node(mode, uid, gid)
    if stat_mod.S_IFMT(mode) == VREG:
        n.pages = {}
    n.rdev = rdev
    _enter(m, d, name, n)
    return n.ino


def tmpfs_mkdir(m: TmpfsMount, dvp: Vnode, name: bytes, mode: int, uid: int, gid: int) -> int:
    d = _node(dvp)
    if d.dir is not None and name in d.dir.names:
        raise OSError(errno.EEXIST, "entry exists")
    n = m.new_node(VDIR | (mode & 0o7777), uid, gid)
    n.dir = TmpDir()
    n.parent = d.ino
    n.nlink = 1  # its own "."
    _enter(m, d, name, n)
    d.nlink += 1  # the new ".."
    return n.ino


def tmpfs_symlink(m: TmpfsMount, dvp: Vnode, name: bytes, target: bytes, mode: int, uid: int,
                  gid: int) -> int:
    d = _node(dvp)
    if d.dir is not None and name in d.dir.names:
        raise OSError(errno.EEXIST, "entry exists")
    n = m.new_node(VLNK | (mode & 0o7777), uid, gid)
    m.charge(len(target))
    n.target = bytes(target)
    n.size = len(target)
    _enter(m, d, name, n)
    return n.ino


def tmpfs_link(m: TmpfsMount, dvp: Vnode, name: bytes, vp: Vnode) -> None:
    n = _node(vp)
    _enter(m, _node(dvp), name, n)
    mark_changed(n)


def _unname(m: TmpfsMount, d: TmpNode, name: bytes) -> None:
    """Drop ``name`` from directory ``d`` and give its charge back."""
    assert d.dir is not None
    d.dir.remove(name)
    m.uncharge(DIRENT_OVERHEAD)


def tmpfs_remove(m: TmpfsMount, dvp: Vnode, name: bytes, vp: Vnode) -> None:
    d, n = _node(dvp), _node(vp)
    _unname(m, d, name)
    n.nlink -= 1
    mark_modified(d)
    mark_changed(n)


def tmpfs_rmdir(m: TmpfsMount, dvp: Vnode, name: bytes, vp: Vnode) -> None:
    d, n = _node(dvp), _node(vp)
    _unname(m, d, name)
    n.nlink = 0
    d.nlink -= 1
    mark_modified(d)
    mark_changed(n)


def tmpfs_isempty(m: TmpfsMount, vp: Vnode) -> bool:
    d = _node(vp).dir
    return d is not None and not d.names


def tmpfs_rename(m: TmpfsMount, fdvp: Vnode, fname: bytes, fvp: Vnode, tdvp: Vnode, tname: bytes,
                 tvp: Vnode | None) -> None:
    fd, td, n = _node(fdvp), _node(tdvp), _node(fvp)
    assert fd.dir is not None and td.dir is not None
    isdir = n.dir is not None
    if tvp is not None:
        t = _node(tvp)
        td.dir.replace(tname, n.ino)
        if t.dir is not None:
            t.nlink = 0
            td.nlink -= 1
        else:
            t.nlink -= 1
        mark_changed(t)
    else:
        m.charge(DIRENT_OVERHEAD)
        td.dir.add(tname, n.ino)
    fd.dir.remove(fname)
    m.uncharge(DIRENT_OVERHEAD)
    if isdir and fd is not td:
        n.parent = td.ino
        fd.nlink -= 1
        td.nlink += 1
    mark_modified(fd)
    mark_modified(td)
    mark_changed(n)


def tmpfs_exchange(m: TmpfsMount, fdvp: Vnode, fname: bytes, fvp: Vnode, tdvp: Vnode, tname: bytes,
                   tvp: Vnode) -> None:
    fd, td, a, b = _node(fdvp), _node(tdvp), _node(fvp), _node(tvp)
    assert fd.dir is not None and td.dir is not None
    fd.dir.replace(fname, b.ino)
    td.dir.replace(tname, a.ino)
    if fd is not td:
        adir, bdir = a.dir is not None, b.dir is not None
        if adir:
            a.parent = td.ino
        if bdir:
            b.parent = fd.ino
        fd.nlink += bdir - adir
        td.nlink += adir - bdir
    for x in (fd, td):
        mark_modified(x)
    mark_changed(a)
    mark_changed(b)


_READDIR_BATCH = 512  # entries per list vop_readdir yields (getdents asks for a few hundred)


def tmpfs_readdir(m: TmpfsMount, vp: Vnode, cookie: int) -> Iterator[list[Dirent]]:
    n = _node(vp)
    if n.dir is None:
        raise OSError(errno.ENOTDIR, "not a directory")
    out: list[Dirent] = []
    if cookie <= 0:
        out.append(Dirent(n.ino, DT_FROM_IFMT[VDIR], b".", 1))
    if cookie <= 1:
        out.append(Dirent(n.parent, DT_FROM_IFMT[VDIR], b"..", 2))
    nodes = m.nodes
    for seq, name, ino in n.dir.after(max(cookie, 2)):
        child = nodes.get(ino)
        dt = DT_FROM_IFMT.get(stat_mod.S_IFMT(child.mode), 0) if child else 0
        out.append(Dirent(ino, dt, name, seq + 1))
        if len(out) >= _READDIR_BATCH:
            yield out
            out = []
    if out:
        yield out


def tmpfs_readlink(m: TmpfsMount, vp: Vnode) -> bytes:
    n = _node(vp)
    if stat_mod.S_IFMT(n.mode) != VLNK:
        raise OSError(errno.EINVAL, "not a symbolic link")
    return n.target


# ---- data ------------------------------------------------------------------------------------
def _read_node(m: TmpfsMount, vp: Vnode) -> TmpNode:
    """The node a read is about to copy from: a regular file, its access time updated first."""
    n = _node(vp)
    if n.pages is None:
        raise OSError(errno.EISDIR if n.dir is not None else errno.EINVAL, "not a regular file")
    if not m.flags & MNT_NOATIME:
        n.atime_ns = now_ns()
    return n


def tmpfs_read(m: TmpfsMount, vp: Vnode, offset: int, size: int) -> bytes:
    n = _read_node(m, vp)
    return read_pages(n.pages, n.size, offset, size)  # type: ignore[arg-type]


def tmpfs_readinto(m: TmpfsMount, vp: Vnode, offset: int, buf: memoryview) -> int:
    n = _read_node(m, vp)
    return read_pages_into(n.pages, n.size, offset, buf)  # type: ignore[arg-type]


def tmpfs_write(m: TmpfsMount, vp: Vnode, offset: int, data: bytes | bytearray | memoryview) -> int:
    n = _node(vp)
    if n.pages is None:
        raise OSError(errno.EISDIR if n.dir is not None else errno.EINVAL, "not a regular file")
    count = len(data)
    if count == 0:
        return 0
    end = offset + count
    if end > m.maxfilesize:
        raise OSError(errno.EFBIG, "file too large")
    m.check_space(count)
    grown = write_pages(n.pages, offset, memoryview(data))
    if grown:
        try:
            m.charge(grown)
        except OSError:
            truncate_pages(n.pages, n.size)
            raise
    if end > n.size:
        n.size = end
    mark_modified(n)
    return count
