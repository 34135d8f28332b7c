"""Truncation (NetBSD ``ffs_truncate`` / ``ffs_indirtrunc``): shrink or grow a file's size.

Shrinking frees every block past the new end — direct blocks, whole indirect subtrees, the tail of
a partially kept indirect block — and trims the last direct block to the fragments the new size
needs. The order is NetBSD's: the cleared pointers (inode and partially kept indirect blocks) are
written synchronously *before* any block is marked free, so a crash can leave leaked blocks
(fsck reclaims them) but never a block that is free in the map and still pointed to. The bytes of
the last kept block beyond the new size are zeroed on disk, so growing the file again later reads
zeros there, as POSIX requires.

Growing only moves the size (holes read as zeros), except that a fragment tail that stops being
the last block is first made a full block, as ``balloc`` does for writes.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from p2k.fs.ffs.balloc import write_range
from p2k.fs.ffs.fs import UFS_NDADDR, sblksize

if TYPE_CHECKING:
    from p2k.fs.ffs.inode import Inode
    from p2k.fs.ffs.vfsops_rw import FfsMountRW


def _ptrs(m: FfsMountRW, addr: int) -> tuple[int, ...]:
    fs = m.fs
    bp = m.bufcache.bread(m.dev, addr << fs.fs_fshift, fs.fs_bsize)
    return struct.unpack_from(f"{fs.endian}{fs.fs_nindir}{m.bmapper.ptrfmt[1]}", bp.data, 0)


def _collect(m: FfsMountRW, addr: int, level: int, data: list[int], meta: list[int]) -> None:
    """Every block of the subtree at ``addr`` (``level`` 0 = leaf indirect block)."""
    ptrs = _ptrs(m, addr)
    if level == 0:
        data.extend(p for p in ptrs if p)
    else:
        for p in ptrs:
            if p:
                _collect(m, p, level - 1, data, meta)
    meta.append(addr)


def _trunc_tree(m: FfsMountRW, addr: int, level: int, cut: int, data: list[int], meta: list[int]) -> None:
    """Free the data blocks with relative index ≥ ``cut`` under the indirect block at ``addr``
    (which is kept: cut > 0), clearing their pointers and writing the block synchronously."""
    fs = m.fs
    nindir = fs.fs_nindir
    per = nindir ** level
    first = cut // per
    ptrs = list(_ptrs(m, addr))
    if level > 0 and cut % per and ptrs[first]:
        _trunc_tree(m, ptrs[first], level - 1, cut % per, data, meta)
        first += 1
    elif level > 0 and cut % per:
        first += 1
    for i in range(first, nindir):
        p = ptrs[i]
        if not p:
            continue
        if level == 0:
            data.append(p)
        else:
            _collect(m, p, level - 1, data, meta)
        ptrs[i] = 0
    bp = m.bufcache.bread(m.dev, addr << fs.fs_fshift, fs.fs_bsize)
    struct.pack_into(f"{fs.endian}{nindir}{m.bmapper.ptrfmt[1]}", bp.data, 0, *ptrs)
    m.bufcache.bwrite(bp)


def truncate(m: FfsMountRW, ip: Inode, length: int, root: bool) -> None:
    fs = m.fs
    osize = ip.size
    if length == osize:
        return
    bshift, fshift, bsize = fs.fs_bshift, fs.fs_fshift, fs.fs_bsize
    if length > osize:
        olast = (osize - 1) >> bshift if osize > 0 else -1
        if 0 <= olast < UFS_NDADDR and ip.db[olast] and sblksize(fs, osize, olast) < bsize:
            # The fragment tail must grow with the size (its allocation is implied by the size):
            # to a full block if the file now extends past it, else to the new tail's fragments.
            # Writing a zero byte at the new end of that block does exactly that (the bytes past
            # the old end are zeros already), as NetBSD's ufs_balloc_range of the last byte does.
            last = min(length, (olast + 1) << bshift) - 1
            write_range(m, ip, last, b"\0", root)
        ip.size = length
        return
    nlast = (length - 1) >> bshift if length > 0 else -1
    # zero the kept part of the last block beyond the new end
    if length & fs.fs_qbmask:
        addr = m.bmapper.bmap(ip, nlast)
        if addr:
            osz, nsz = sblksize(fs, osize, nlast), sblksize(fs, length, nlast)
            bp = m.bufcache.bread(m.dev, addr << fshift, osz)
            cut = length & fs.fs_qbmask
            if nsz < osz:
                # The block shrinks to a shorter fragment run: its buffer must have the new size,
                # or a reader of nsz bytes would not see a dirty buffer of osz bytes.
                kept = bytes(bp.data[:cut]).ljust(nsz, b"\0")
                m.bufcache.invalidate(m.dev, addr << fshift, fs.fs_fsize, fs.fs_fsize)
                bp = m.bufcache.getblk(m.dev, addr << fshift, nsz, meta=ip.mode & 0o170000 != 0o100000)
                bp.data[:] = kept
            else:
                bp.data[cut:] = bytes(osz - cut)
            m.bufcache.bwrite(bp)
    data: list[int] = []  # full blocks to free
    meta: list[int] = []  # indirect blocks to free (full blocks too; invalidated first)
    partial: list[tuple[int, int]] = []  # (addr, nfrags) fragment runs to free
    for lbn in range(max(nlast + 1, 0), UFS_NDADDR):
        a = ip.db[lbn]
        if a:
            sz = sblksize(fs, osize, lbn)
            if sz == bsize:
                data.append(a)
            else:
                partial.append((a, sz >> fshift))
            ip.db[lbn] = 0
    if 0 <= nlast < UFS_NDADDR and ip.db[nlast]:
        osz, nsz = sblksize(fs, osize, nlast), sblksize(fs, length, nlast)
        if nsz < osz:
            partial.append((ip.db[nlast] + (nsz >> fshift), (osz - nsz) >> fshift))
    base = UFS_NDADDR
    span = fs.fs_nindir
    for level in range(3):
        top = ip.ib[level]
        keep = nlast + 1 - base  # data blocks of this tree that stay
        if top and keep <= 0:
            _collect(m, top, level, data, meta)
            ip.ib[level] = 0
        elif top and keep < span:
            _trunc_tree(m, top, level, keep, data, meta)
        base += span
        span *= fs.fs_nindir
    ip.size = length
    freed_frags = (len(data) + len(meta)) * fs.fs_frag + sum(n for _, n in partial)
    ip.blocks -= freed_frags << (fshift - 9)
    m.iupdate(ip, sync=True)  # pointers gone on disk before the blocks are free
    for a in data + meta:  # and no new data into them before a barrier
        m.note_freed(a, fs.fs_frag)
    for a, n in partial:
        m.note_freed(a, n)
    bc = m.bufcache
    for a in meta:
        bc.invalidate(m.dev, a << fshift, bsize, fs.fs_fsize)
    for a, n in partial:
        bc.invalidate(m.dev, a << fshift, n << fshift, fs.fs_fsize)
        m.alloc.free(a, n)
    if data or meta:
        for a in data:
            bc.invalidate(m.dev, a << fshift, bsize, fs.fs_fsize)
        m.alloc.free_blocks(data + meta)
