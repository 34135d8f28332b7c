"""Walking an inode's blocks and clearing inodes (fsck_ffs inode.c: ckinode, iblock, clri).

``ckinode`` calls ``func(frag, nfrags, lbn, level)`` for every block an inode holds — data blocks
with their logical block number and ``level == -1``, indirect blocks with ``level`` 0..2 before
their pointers are read. ``func`` returns KEEPON, SKIP (do not descend into this indirect block:
its address is bad) or STOP. An indirect block is unpacked with one ``struct`` call and only its
non-zero pointers are visited, so a sparse or small file costs a few C calls.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable

from p2k.fs.ffs.fs import UFS_NDADDR, UFS_NIADDR, blkoff, fragroundup, numfrags
from p2k.fs.ffs.fsck.ctx import Ctx
from p2k.fs.ffs.fsck.extattr import ext_blocks
from p2k.fs.ffs.fsck.state import USTATE
from p2k.fs.ffs.inode import IFBLK, IFCHR, IFDIR, IFLNK, IFMT, Inode

KEEPON = 0
SKIP = 1
STOP = 2

BlockFunc = Callable[[int, int, int, int], int]


def has_blocks(ctx: Ctx, ip: Inode) -> bool:
    """False for inodes whose address fields hold no block addresses (devices, fast symlinks)."""
    t = ip.mode & IFMT
    if t in (IFBLK, IFCHR):
        return False
    if t == IFLNK:
        msl = ctx.fs.fs_maxsymlinklen
        if ip.size < msl or (msl == 0 and ip.blocks == 0):
            return False
    return True


def ckinode(ctx: Ctx, ip: Inode, func: BlockFunc) -> int:
    """Visit every block of ``ip`` (see the module docstring); returns STOP if ``func`` stopped."""
    if not has_blocks(ctx, ip):
        return KEEPON
    fs = ctx.fs
    frag = fs.fs_frag
    size = ip.size
    ndb = -(-size // fs.fs_bsize)
    tail = blkoff(fs, size)
    for lbn in range(UFS_NDADDR):
        addr = ip.db[lbn]
        if addr == 0:
            continue
        n = numfrags(fs, fragroundup(fs, tail)) if lbn == ndb - 1 and tail else frag
        if func(addr, n, lbn, -1) == STOP:
            return STOP
    if not any(ip.ib):
        return KEEPON  # most files: no indirect blocks, nothing more to set up
    ptr = _ptr_struct(fs.endian, fs.fs_nindir, fs.ufs2)
    span = 1
    base = UFS_NDADDR
    for level in range(UFS_NIADDR):
        span *= fs.fs_nindir
        addr = ip.ib[level]
        if addr and _iblock(ctx, ptr, addr, level, base, func) == STOP:
            return STOP
        base += span
    return KEEPON


@functools.lru_cache(maxsize=8)
def _ptr_struct(endian: str, nindir: int, ufs2: bool) -> struct.Struct:
    """One unpacker for a whole indirect block, built once per geometry."""
    return struct.Struct(f"{endian}{nindir}{'q' if ufs2 else 'i'}")


def _iblock(ctx: Ctx, ptr: struct.Struct, addr: int, level: int, lbase: int, func: BlockFunc) -> int:
    fs = ctx.fs
    r = func(addr, fs.fs_frag, lbase, level)
    if r != KEEPON:
        return r
    ptrs = ptr.unpack(ctx.io.bread(addr * fs.fs_fsize, fs.fs_bsize))
    per = fs.fs_nindir ** level
    for i, a in enumerate(ptrs):
        if not a:
            continue
        if level == 0:
            if func(a, fs.fs_frag, lbase + i, -1) == STOP:
                return STOP
        elif _iblock(ctx, ptr, a, level - 1, lbase + i * per, func) == STOP:
            return STOP
    return KEEPON


def clri(ctx: Ctx, ino: int, kind: str, announce: bool) -> bool:
    """Clear inode ``ino`` (fsck_ffs clri): "UNREF FILE", "BAD/DUP DIR", ... then CLEAR.

    Its blocks go back to the in-core map, except those another inode also claims (a duplicate
    keeps one owner fewer instead), so phase 5 frees exactly what nobody holds."""
    st = ctx.st
    ip = ctx.ginode(ino)
    what = "DIR" if ip.mode & IFMT == IFDIR else "FILE"
    if announce:
        ok = ctx.rep.ask(f"{kind} {what} {pinode(ctx, ip)}", "CLEAR", preen_action="CLEARED",
                         ino=ino, kind=f"{kind} {what}")
    else:
        ok = ctx.rep.preen or ctx.rep.reply("CLEAR")
    if not ok:
        return False
    st.n_files -= 1
    limit = st.stopped.get(ino, -1)
    visited = 0

    def free(frag: int, n: int, lbn: int, level: int) -> int:
        nonlocal visited
        visited += 1
        if visited > limit >= 0:
            return STOP  # phase 1 stopped here (EXCESSIVE BAD/DUP): the rest was never claimed
        if frag <= 0 or frag + n > st.maxfsblock or frag % ctx.fs.fs_frag + n > ctx.fs.fs_frag:
            return SKIP  # a bad address was never claimed: nothing of it is ours to free
        for f in range(frag, frag + n):
            extra = st.dups.get(f)
            if extra:
                if extra == 1:
                    del st.dups[f]
                else:
                    st.dups[f] = extra - 1
            elif st.testbmap(f):
                st.release(f, 1)
                st.n_blks -= 1
        return KEEPON

    ckinode(ctx, ip, free)
    ext_blocks(ctx, ip, free)
    clearinode(ctx, ip)
    st.statemap[ino] = USTATE
    return True


def clearinode(ctx: Ctx, ip: Inode) -> None:
    """Zero the inode on disk (keeping nothing, as fsck_ffs's clearinode does)."""
    if ctx.io.readonly:
        return
    ctx.io.write(ctx.inode_offset(ip.ino), bytes(ctx.isize))


def pinode(ctx: Ctx, ip: Inode) -> str:
    """fsck_ffs pinode: " I=12  OWNER=0 MODE=100644\nSIZE=5 MTIME=Jul 14 02:40 2017 "."""
    import pwd
    import time

    try:
        owner = pwd.getpwuid(ip.uid).pw_name
    except (KeyError, OverflowError):
        owner = str(ip.uid)
    t = time.ctime(ip.mtime) if -(2**40) < ip.mtime < 2**40 else "?"
    mtime = f"{t[4:16]} {t[20:24]}" if len(t) >= 24 else t
    return f"I={ip.ino}  OWNER={owner} MODE={ip.mode:o}\nSIZE={ip.size} MTIME={mtime} "
