"""Building an FFS image from a host directory tree (NetBSD ``usr.sbin/makefs``, ``-t ffs``).

makefs = newfs + populate. Without ``-s`` the size is computed from the tree exactly as makefs's
``ffs_validate`` does: every regular file and long symlink rounded up to fragments, every
directory's entries packed into 512-byte chunks, one inode per distinct node plus the two
reserved ones; then ``-b``/``-f`` slack (bytes or %, inodes or %), the boot area and superblock,
the inode table, the minfree percentage on top, ``-M`` as a floor, rounded to a block, and the
bytes per inode chosen so that the tree's inode count comes out. The cylinder groups are laid
out as makefs's mkfs does (see ``p2k.fs.ffs.newfs._Geometry``), and the superblock goes at
8192 for UFS2 too, as makefs puts it ("makefs is used for small filesystems"); ``sblockloc=65536``
puts it where newfs would (The Sleuth Kit looks for a UFS2 superblock only there).

makefs's estimate ignores indirect blocks and the inode table's rounding to whole groups; where
that would leave the tree without room (a small ``density``, ``minfree=0``), NetBSD's makefs
fails part-way with ENOSPC, and for a tree smaller than one group's metadata its mkfs exits. p2k
checks the planned file system against the tree's real needs first and grows the image by what
is missing, unless ``-s``/``-m`` forbid it.

Population goes through the kernel's vnode operations on a read-write mount of the new file
system, so the image gets exactly the allocation policy, accounting and ordering of the write
path; hard links stay hard links, times (atime, mtime and ctime) and owners are copied,
directories get their times last.

Unlike newfs, makefs makes no ``lost+found`` (fsck creates it when needed), matching NetBSD.
"""

from __future__ import annotations

import errno
import os
import stat as st
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from p2k.fs.ffs.dir import DIRBLKSIZ, DIRSIZ
from p2k.fs.ffs.fs import SBLOCK_UFS1, SBLOCKSIZE
from p2k.fs.ffs.newfs import AFPDIR, AVFILESIZ, FS_OPTTIME, MINFREE, NewfsOptions, plan
from p2k.vfs.vattr import SetAttr

DFL_FRAGSIZE = 1024  # makefs's defaults, whatever the size (newfs's depend on it)
DFL_BLKSIZE = 8192
ROOTINO = 2


@dataclass
class MakefsOptions:
    size: int = 0  # -s: bytes; the image is exactly this big (minimum and maximum at once)
    minsize: int = 0  # -M
    maxsize: int = 0  # -m
    version: int = 1
    endian: str = "<"
    bsize: int = 0
    fsize: int = 0
    density: int = 0  # bytes per inode; 0: from the computed size and the tree's inode count
    minfree: int = MINFREE
    optim: int = FS_OPTTIME
    maxbpg: int = 0  # maxbpf; 0: a UFS1 indirect block's worth (makefs: bsize / 4, any version)
    avgfilesize: int = AVFILESIZ
    avgfpdir: int = AFPDIR
    label: bytes = b""
    freeblocks: int = 0  # -b N: bytes of slack
    freeblockpc: int = 0  # -b N%
    freefiles: int = 0  # -f N: inodes of slack
    freefilepc: int = 0  # -f N%
    sblockloc: int = SBLOCK_UFS1


@dataclass
class Node:
    """One file of the tree to build: its path inside the new file system and its attributes
    (``p2k.cli.makefs.scan`` makes these from a host directory)."""

    rel: str  # "" for the root
    st: os.stat_result
    target: bytes | None = None
    children: int = 0
    dirsize: int = 0  # bytes of the directory's entries, packed into DIRBLKSIZ chunks (makefs)


@dataclass
class Sizing:
    size: int  # bytes
    inodes: int  # what the tree needs, slack included (makefs prints this)
    density: int  # bytes per inode given to mkfs


def dirsize(namelens: list[int]) -> int:
    """makefs's ADDDIRENT: entries never straddle a DIRBLKSIZ chunk."""
    cur = 0
    for n in namelens:
        this = DIRSIZ(n)
        if this + cur > -(-cur // DIRBLKSIZ) * DIRBLKSIZ:
            cur = -(-cur // DIRBLKSIZ) * DIRBLKSIZ
        cur += this
    return cur


def block_sizes(o: MakefsOptions) -> tuple[int, int]:
    fsize = o.fsize or DFL_FRAGSIZE
    return o.bsize or min(DFL_BLKSIZE, 8 * fsize), fsize


def _distinct(nodes: list[Node]) -> list[Node]:
    """One node per inode (the first name of a hard-linked file), the root left out."""
    seen: set[tuple[int, int]] = set()
    out = []
    for n in nodes[1:]:
        s = n.st
        if not st.S_ISDIR(s.st_mode) and s.st_nlink > 1:
            key = (s.st_dev, s.st_ino)
            if key in seen:
                continue
            seen.add(key)
        out.append(n)
    return out


def makefs_size(nodes: list[Node], o: MakefsOptions) -> Sizing:
    """makefs's ffs_validate: the image size and inode count for the tree, before any check."""
    bsize, fsize = block_sizes(o)
    msl = 120 if o.version == 2 else 60
    size = 0
    distinct = _distinct(nodes)
    for n in distinct:
        m = n.st.st_mode
        if st.S_ISREG(m):
            size += -(-n.st.st_size // fsize) * fsize
        elif st.S_ISLNK(m) and n.target is not None and len(n.target) + 1 >= msl:
            size += -(-(len(n.target) + 1) // fsize) * fsize
    size += sum(-(-n.dirsize // fsize) * fsize for n in nodes if st.S_ISDIR(n.st.st_mode))
    inodes = len(distinct) + ROOTINO
    size += o.freeblocks
    inodes += o.freefiles
    if o.freefilepc > 0:
        inodes = inodes * (100 + o.freefilepc) // 100
    if o.freeblockpc > 0:
        size = size * (100 + o.freeblockpc) // 100
    size += SBLOCK_UFS1 + SBLOCKSIZE  # boot area and superblock, one group's worth
    isize = 256 if o.version == 2 else 128
    size += isize * -(-inodes // (bsize // isize)) * (bsize // isize)
    if o.minfree > 0:
        size = size * (100 + o.minfree) // 100
    size = max(size, o.minsize, o.size)
    size = -(-size // bsize) * bsize
    return Sizing(size, inodes, o.density or size // inodes + 1)


def _file_frags(size: int, bsize: int, fsize: int, nindir: int) -> int:
    """Fragments a file of ``size`` bytes really takes, indirect blocks included."""
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


def needed_frags(nodes: list[Node], o: MakefsOptions) -> int:
    """Fragments the tree's data, directories and long symlinks really take."""
    bsize, fsize = block_sizes(o)
    nindir = bsize // (8 if o.version == 2 else 4)
    msl = 120 if o.version == 2 else 60
    frags = 0
    for n in _distinct(nodes) + nodes[:1]:
        m = n.st.st_mode
        if st.S_ISREG(m):
            frags += _file_frags(n.st.st_size, bsize, fsize, nindir)
        elif st.S_ISDIR(m):
            frags += _file_frags(-(-n.dirsize // DIRBLKSIZ) * DIRBLKSIZ, bsize, fsize, nindir)
        elif st.S_ISLNK(m) and n.target is not None and len(n.target) >= msl:
            frags += _file_frags(len(n.target), bsize, fsize, nindir)
    return frags


def newfs_options(o: MakefsOptions, sz: Sizing) -> NewfsOptions:
    bsize, fsize = block_sizes(o)
    return NewfsOptions(size=sz.size, version=o.version, bsize=bsize, fsize=fsize, density=sz.density,
                        minfree=o.minfree, optim=o.optim, endian=o.endian, maxbpg=o.maxbpg or bsize // 4,
                        avgfilesize=o.avgfilesize, avgfpdir=o.avgfpdir, sblockloc=o.sblockloc,
                        lost_found=False, volname=o.label, layout="makefs")


def grow_size(sz: Sizing, o: MakefsOptions, by: int) -> None:
    """Enlarge ``sz`` by at least ``by`` bytes (whole blocks, never less than 1/64 of the image);
    the inode density follows unless the user fixed it."""
    bsize = block_sizes(o)[0]
    sz.size = -(-(sz.size + max(by, sz.size // 64)) // bsize) * bsize
    if not o.density:
        sz.density = sz.size // sz.inodes + 1


def choose_size(nodes: list[Node], o: MakefsOptions) -> Sizing:
    """makefs's size, grown where the planned file system would not hold the tree (makefs
    itself would fail with ENOSPC there); an error naming the maxsize when it may not grow."""
    sz = makefs_size(nodes, o)
    need = needed_frags(nodes, o)
    maxsize = o.size or o.maxsize
    for _ in range(64):
        if maxsize and sz.size > maxsize:
            raise OSError(errno.EFBIG, f"size of {sz.size} is larger than the maxsize of {maxsize}")
        try:
            fs = plan(newfs_options(o, sz))
        except OSError as e:  # smaller than one group's metadata: makefs's mkfs exits here
            if e.errno != errno.ENOSPC or o.size:
                raise
            grow_size(sz, o, max(sz.size // 4, 16 * block_sizes(o)[0]))
            continue
        # root writes the image, so the minfree reserve is usable; one block per group kept spare
        short_frags = need + fs.fs_ncg * fs.fs_frag - fs.fs_dsize
        short_inodes = sz.inodes - fs.fs_ncg * fs.fs_ipg
        if short_frags <= 0 and short_inodes <= 0:
            return sz
        if o.size:
            raise OSError(errno.ENOSPC, f"the tree does not fit in {o.size} bytes")
        grow_size(sz, o, max(short_frags, 0) * fs.fs_fsize + max(short_inodes, 0) * sz.density)
    raise OSError(errno.EFBIG, "cannot size an image for this tree")


def populate(k: Any, mp: Any, nodes: list[Node], content: Callable[[Node], Iterable[bytes | memoryview]],
             progress: Callable[[str, int, int], None] | None = None) -> None:
    """Recreate ``nodes`` in the file system of mount ``mp`` of kernel ``k``, a regular file's
    bytes coming from ``content(node)`` in order (the caller walks and reads the host tree: the
    file system never sees a host path; each piece is written before the next is asked for, so
    the caller may hand them all out of one buffer). It goes through the vnode operations: the write path's
    allocation, accounting and ordering, without the path walks and permission checks of the
    syscall layer (makefs acts as root, and knows every parent directory's vnode already).
    Everything is made owned by root, so that its blocks may come out of the minfree reserve
    that makefs's size counts on (the write path lets only root-owned inodes dip into it);
    owners, modes and all three times are then set in one setattr per node; directories get
    theirs last, deepest first."""
    vc = k.vcache
    with k.lock:
        rootvp = vc.vget(mp, mp.vfs_root_ino())
        dirs: dict[str, Any] = {"": rootvp}
        links: dict[tuple[int, int], int] = {}
        try:
            for i, n in enumerate(nodes, 1):
                if progress is not None:
                    progress("files", i, len(nodes))
                if not n.rel:
                    continue
                parent, _, name = n.rel.rpartition("/")
                dvp = dirs[parent]
                bname = os.fsencode(name)
                s = n.st
                m = s.st_mode
                perm = st.S_IMODE(m)
                if st.S_ISDIR(m):
                    ino = mp.vop_mkdir(dvp, bname, perm, 0, 0)
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
                    ino = mp.vop_symlink(dvp, bname, n.target, 0o777, 0, 0)
                else:
                    ino = mp.vop_create(dvp, bname, m, 0, 0, s.st_rdev)
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
