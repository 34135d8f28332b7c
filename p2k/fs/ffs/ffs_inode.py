"""The on-disk side of an inode (NetBSD ``ffs_inode.c``): ``ffs_update`` writes the in-core inode
into its block, ``truncate`` (``ffs_truncate`` / ``ffs_indirtrunc``) shrinks or grows a file.

Shrinking frees every block past the new end — direct blocks, whole indirect subtrees, the tail of
a partially kept indirect block — and trims the last direct block to the fragments the new size
needs. The order is NetBSD's: the cleared pointers (inode and partially kept indirect blocks) are
written synchronously *before* any block is marked free, so a crash can leave leaked blocks
(fsck reclaims them) but never a block that is free in the map and still pointed to. The bytes of
the last kept block beyond the new size are zeroed on disk, so growing the file again later reads
zeros there, as POSIX requires.

Growing only moves the size (holes read as zeros), except that a fragment tail that stops being
the last block is first made a full block, as ``ffs_balloc`` does for writes.
"""

from __future__ import annotations

import errno
import struct

from p2k.fs.ffs.fs import UFS_NDADDR, ino_to_fsba, ino_to_fsbo, sblksize

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from p2k.fs.ffs.ffs_vfsops import FfsMount
    from p2k.fs.ffs.inode import Inode


def ffs_update(m: FfsMount, ip: Inode, sync: bool = False) -> None:
    """Encode the in-core inode into its block. ``sync`` marks the places where NetBSD's
    synchronous FFS writes at once (before a name points to the inode, before blocks it held
    are freed); with ordered write-back that order is kept by the epochs of the buffer cache and
    by ``barrier`` before reuse, so both are delayed writes here."""
    fs = m.fs
    bp = m.bufcache.bread(m.dev, ino_to_fsba(fs, ip.ino) << fs.fs_fshift, fs.fs_bsize)
    m.codec.encode_into(ip, bp.data, ino_to_fsbo(fs, ip.ino) * m.isize)
    m.bufcache.bdwrite(bp)
    ip.dirty = False
    m.dirty_inodes.pop(ip.ino, None)


def _ptrs(m: FfsMount, addr: int) -> tuple[int, ...]:
    """The pointers of an indirect block, each checked: freeing blocks on the word of a damaged
    indirect block (one pointing at a superblock, say) would hand metadata to the allocator."""
    fs = m.fs
    _check(m, addr, fs.fs_frag)
    bp = m.bufcache.bread(m.dev, addr << fs.fs_fshift, fs.fs_bsize)
    ptrs = struct.unpack_from(f"{fs.endian}{fs.fs_nindir}{m.bmapper.ptrfmt[1]}", bp.data, 0)
    for p in ptrs:
        if p:
            _check(m, p, fs.fs_frag)
    return ptrs


def _check(m: FfsMount, addr: int, nfrags: int) -> None:
    why = m.bmapper.bad_addr(addr, nfrags) or (addr % m.fs.fs_frag + nfrags > m.fs.fs_frag and "not in one block")
    if why:
        raise OSError(errno.EIO, f"truncate: block {addr} {why}; nothing freed")


def _collect(m: FfsMount, addr: int, level: int, data: list[int], meta: list[int]) -> None:
    """Every block of the subtree at ``addr`` (``level`` 0 = leaf indirect block)."""
    ptrs = _ptrs(m, addr)
    if level == 0:
        data.extend(p for p in ptrs if p)
    else:
        for p in ptrs:
            if p:
                _collect(m, p, level - 1, data, meta)
    meta.append(addr)


def _trunc_tree(m: FfsMount, addr: int, level: int, cut: int, data: list[int], meta: list[int]) -> None:
    """Free the data blocks with relative index ≥ ``cut`` under the indirect block at ``addr``
    (which is kept: cut > 0), clearing their pointers and writing the block synchronously."""
    fs = m.fs
    nindir = fs.fs_nindir
    per = nindir ** level
    first = cut // per
    ptrs = list(_ptrs(m, addr))
    partial = -1
    if level > 0 and cut % per:
        partial = first if ptrs[first] else -1
        first += 1
    # everything this block loses is read (and checked) before anything below it is written
    for i in range(first, nindir):
        p = ptrs[i]
        if not p:
            continue
        if level == 0:
            data.append(p)
        else:
            _collect(m, p, level - 1, data, meta)
        ptrs[i] = 0
    if partial >= 0:
        _trunc_tree(m, ptrs[partial], level - 1, cut % per, data, meta)
    bp = m.bufcache.bread(m.dev, addr << fs.fs_fshift, fs.fs_bsize)
    struct.pack_into(f"{fs.endian}{nindir}{m.bmapper.ptrfmt[1]}", bp.data, 0, *ptrs)
    m.bufcache.bwrite(bp)


def truncate(m: FfsMount, ip: Inode, length: int, root: bool) -> None:
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
            from p2k.fs.ffs.ffs_balloc import write_range  # the allocator: only a write loads it
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
    saved = (list(ip.db), list(ip.ib))
    try:
        data, meta, partial = _cut(m, ip, osize, length)
    except OSError:
        ip.db[:], ip.ib[:] = saved  # a damaged pointer: the inode stays as it was
        raise
    ip.size = length
    _release(m, ip, data, meta, partial)


def _cut(m: FfsMount, ip: Inode, osize: int, length: int) -> tuple[list[int], list[int], list[tuple[int, int]]]:
    """Detach the blocks past the new end: (full blocks, indirect blocks, fragment runs) to free.
    Everything is read and checked before the one indirect block that is only cut is written;
    EIO leaves the caller to restore the pointers."""
    fs = m.fs
    fshift, bsize = fs.fs_fshift, fs.fs_bsize
    nlast = (length - 1) >> fs.fs_bshift if length > 0 else -1
    data: list[int] = []  # full blocks to free
    meta: list[int] = []  # indirect blocks to free (full blocks too; invalidated first)
    partial: list[tuple[int, int]] = []  # (addr, nfrags) fragment runs to free
    for lbn in range(max(nlast + 1, 0), UFS_NDADDR):
        a = ip.db[lbn]
        if a:
            sz = sblksize(fs, osize, lbn)
            _check(m, a, sz >> fshift)
            if sz == bsize:
                data.append(a)
            else:
                partial.append((a, sz >> fshift))
            ip.db[lbn] = 0
    if 0 <= nlast < UFS_NDADDR and ip.db[nlast]:
        osz, nsz = sblksize(fs, osize, nlast), sblksize(fs, length, nlast)
        if nsz < osz:
            _check(m, ip.db[nlast], osz >> fshift)
            partial.append((ip.db[nlast] + (nsz >> fshift), (osz - nsz) >> fshift))
    bases = [UFS_NDADDR]
    spans = [fs.fs_nindir]
    for _ in range(2):
        bases.append(bases[-1] + spans[-1])
        spans.append(spans[-1] * fs.fs_nindir)
    for level in (2, 1, 0):  # whole trees (read only) before the one that is cut (written)
        top = ip.ib[level]
        keep = nlast + 1 - bases[level]  # data blocks of this tree that stay
        if top and keep <= 0:
            _collect(m, top, level, data, meta)
            ip.ib[level] = 0
        elif top and keep < spans[level]:
            _trunc_tree(m, top, level, keep, data, meta)
    return data, meta, partial


def _release(m: FfsMount, ip: Inode, data: list[int], meta: list[int], partial: list[tuple[int, int]]) -> None:
    """Write the inode without the pointers, then give the blocks back."""
    fs = m.fs
    fshift, bsize = fs.fs_fshift, fs.fs_bsize
    freed_frags = (len(data) + len(meta)) * fs.fs_frag + sum(n for _, n in partial)
    ip.blocks = max(ip.blocks - (freed_frags << (fshift - 9)), 0)
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
