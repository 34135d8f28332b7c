"""Building an FFS image from a host directory tree (NetBSD ``usr.sbin/makefs``, ``-t ffs``).

makefs = newfs + populate. The size, when not given, is computed from the tree the way makefs
does it — every file's blocks and fragments, indirect blocks, directory chunks, slow symlinks,
one inode per node — plus slack so that the image is usable afterwards (10 % more blocks and
inodes, the minfree reserve, cg metadata). Population goes through the kernel's syscalls on a
read-write mount of the new file system, so the image gets exactly the allocation policy,
accounting and ordering of the write path; hard links stay hard links, times (atime, mtime and
ctime) and owners are copied, directories get their times last.

Unlike newfs, makefs makes no ``lost+found`` (fsck creates it when needed), matching NetBSD.
"""

from __future__ import annotations

import errno
import os
import stat as st
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from p2k.fs.ffs.dir import DIRBLKSIZ
from p2k.fs.ffs.newfs import NewfsOptions, defaults, plan
from p2k.vfs.vattr import SetAttr


@dataclass
class MakefsOptions:
    size: int = 0  # bytes; 0 = computed from the tree
    version: int = 1
    endian: str = "<"
    bsize: int = 0
    fsize: int = 0
    density: int = 0
    minfree: int = 5
    free_pct: int = 10  # slack added to a computed size (blocks and inodes)
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class Node:
    """One file of the tree to build: its path inside the new file system and its attributes
    (``p2k.cli.makefs.scan`` makes these from a host directory)."""

    rel: str  # "" for the root
    st: os.stat_result
    target: bytes | None = None
    children: int = 0
    namebytes: int = 0  # sum of DIRSIZ of the entries (directories)


def _file_frags(size: int, bsize: int, fsize: int, nindir: int) -> int:
    """Fragments a file of ``size`` bytes needs, indirect blocks included."""
    if size <= 0:
        return 0
    frag = bsize // fsize
    nblocks = -(-size // bsize)
    if nblocks <= 12:
        tail = size - (nblocks - 1) * bsize
        return (nblocks - 1) * frag + -(-tail // fsize)
    frags = nblocks * frag
    rest = nblocks - 12
    span = nindir
    ind = 0
    for _level in range(3):  # each level: its top block plus the blocks below it
        if rest <= 0:
            break
        ind += 1 + (-(-min(rest, span) // nindir) if span > nindir else 0)
        rest -= span
        span *= nindir
    return frags + ind * frag


def estimate(nodes: list[Node], o: MakefsOptions) -> tuple[int, int]:
    """(bytes, inodes) the tree needs on a file system with these options."""
    no = defaults(NewfsOptions(size=64 << 20, version=o.version, bsize=o.bsize, fsize=o.fsize))
    bsize, fsize = no.bsize, no.fsize
    nindir = bsize // (8 if o.version == 2 else 4)
    msl = 120 if o.version == 2 else 60
    frags = 0
    seen: set[tuple[int, int]] = set()
    for n in nodes:
        s = n.st
        if st.S_ISREG(s.st_mode):
            key = (s.st_dev, s.st_ino)
            if s.st_nlink > 1:
                if key in seen:
                    continue
                seen.add(key)
            frags += _file_frags(s.st_size, bsize, fsize, nindir)
        elif st.S_ISDIR(s.st_mode):
            frags += _file_frags(-(-n.namebytes // (DIRBLKSIZ - 16)) * DIRBLKSIZ, bsize, fsize, nindir)
        elif st.S_ISLNK(s.st_mode) and n.target is not None and len(n.target) >= msl:
            frags += _file_frags(len(n.target), bsize, fsize, nindir)
    return frags * fsize, len(nodes) + 2


def choose_size(nodes: list[Node], o: MakefsOptions) -> tuple[int, int]:
    """Image size and inode count: the tree's needs plus ``free_pct`` slack and the minfree
    reserve, grown until the planned file system really holds them."""
    need, inodes = estimate(nodes, o)
    inodes = inodes + inodes * o.free_pct // 100 + 16
    data = need + need * o.free_pct // 100
    size = int(data / (1 - max(o.minfree, 0) / 100)) + (1 << 20)
    for _ in range(64):
        no = NewfsOptions(size=size, version=o.version, bsize=o.bsize, fsize=o.fsize,
                          density=o.density, minfree=o.minfree, endian=o.endian)
        if not o.density:
            no.ninodes = inodes
        try:
            fs = plan(no)
        except OSError:
            size += size // 4 + (1 << 20)
            continue
        # every cg's inode table and metadata come out of the size; check what is left
        free_frags = fs.fs_dsize - fs.fs_dsize * fs.fs_minfree // 100
        ninodes = fs.fs_ncg * fs.fs_ipg
        if free_frags * fs.fs_fsize >= data + fs.fs_ncg * fs.fs_bsize and ninodes >= inodes:
            return -(-size // 65536) * 65536, (0 if o.density else inodes)
        size += size // 8 + (1 << 20)
    raise OSError(errno.EFBIG, "cannot size an image for this tree")


def populate(k: Any, mp: Any, nodes: list[Node], content: Callable[[Node], Iterable[bytes | memoryview]]) -> None:
    """Recreate ``nodes`` in the file system of mount ``mp`` of kernel ``k``, a regular file's
    bytes coming from ``content(node)`` in order (the caller walks and reads the host tree: the
    file system never sees a host path). It goes through the vnode operations: the write path's
    allocation, accounting and ordering, without the path walks and permission checks of the
    syscall layer (makefs acts as root, and knows every parent directory's vnode already). Owners,
    modes and all three times are set in one setattr per node; directories get theirs last, deepest first."""
    vc = k.vcache
    with k.lock:
        rootvp = vc.vget(mp, mp.vfs_root_ino())
        dirs: dict[str, Any] = {"": rootvp}
        links: dict[tuple[int, int], int] = {}
        try:
            for n in nodes:
                if not n.rel:
                    continue
                parent, _, name = n.rel.rpartition("/")
                dvp = dirs[parent]
                bname = os.fsencode(name)
                s = n.st
                m = s.st_mode
                perm = st.S_IMODE(m)
                if st.S_ISDIR(m):
                    ino = mp.vop_mkdir(dvp, bname, perm, s.st_uid, s.st_gid)
                    dirs[n.rel] = vc.vget(mp, ino)
                    continue
                if st.S_ISREG(m) and s.st_nlink > 1:
                    key = (s.st_dev, s.st_ino)
                    first = links.get(key)
                    if first is not None:
                        vp = vc.vget(mp, first)
                        try:
                            mp.vop_link(dvp, bname, vp)
                        finally:
                            vc.vrele(vp)
                        continue
                if st.S_ISLNK(m):
                    assert n.target is not None
                    ino = mp.vop_symlink(dvp, bname, n.target, 0o777, s.st_uid, s.st_gid)
                else:
                    ino = mp.vop_create(dvp, bname, m, s.st_uid, s.st_gid, s.st_rdev)
                if st.S_ISREG(m) and s.st_nlink > 1:
                    links[(s.st_dev, s.st_ino)] = ino
                vp = vc.vget(mp, ino)
                try:
                    if st.S_ISREG(m) and s.st_size:
                        off = 0
                        for piece in content(n):
                            mp.vop_write(vp, off, piece)
                            off += len(piece)
                    mp.vop_setattr(vp, _attrs(n))
                finally:
                    vc.vrele(vp)
            for n in reversed([n for n in nodes if st.S_ISDIR(n.st.st_mode)]):
                mp.vop_setattr(dirs[n.rel], _attrs(n))
        finally:
            for vp in dirs.values():
                vc.vrele(vp)


def _attrs(n: Node) -> SetAttr:
    mode = None if st.S_ISLNK(n.st.st_mode) else st.S_IMODE(n.st.st_mode)
    return SetAttr(mode=mode, uid=n.st.st_uid, gid=n.st.st_gid, atime_ns=n.st.st_atime_ns,
                   mtime_ns=n.st.st_mtime_ns, ctime_ns=n.st.st_ctime_ns)
