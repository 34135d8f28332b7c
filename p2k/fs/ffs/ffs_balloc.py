"""Logical → physical allocation for writes (NetBSD ``ffs_balloc.c``): holes filled, fragments
extended or moved, indirect blocks created, and the data written ahead of the pointers to it.

``write_range`` is the whole write path of a file or directory, in the order crash consistency
needs (reference: NetBSD's synchronous, non-softdep FFS):

1. blocks are allocated in the cg maps (delayed writes; fsck rebuilds maps),
2. the data — including the old contents of a fragment run that has to move — is written to its
   new home at once (write-through: data never waits behind a pointer to it),
3. a new indirect block is zeroed on disk before anything points at it,
4. only then are the pointers set (inode, indirect blocks: delayed writes),
5. fragments a moved tail used to occupy are freed last.

Full blocks are allocated as contiguous runs (``Allocator.alloc_blocks``) and a long physically
contiguous run is written with one host write that bypasses the buffer cache (and drops any
cached copy), so streaming a large file costs a few Python calls per megabyte.
"""

from __future__ import annotations

import errno
import struct

from p2k.fs.ffs.fs import UFS_NDADDR, sblksize
from p2k.hints import NamedTuple
from p2k.vfs.mount import MNT_ASYNC

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from p2k.fs.ffs.ffs_vfsops import FfsMount
    from p2k.fs.ffs.inode import Inode

STREAM_THRESHOLD = 256 * 1024  # a run at least this long is written around the buffer cache


def indir_path(m: FfsMount, lbn: int) -> tuple[int, list[int]]:
    """ufs_getlbns: indirection level (0 single, 1 double, 2 triple) and the pointer index at
    each level from the inode's indirect block down to the leaf."""
    rel = lbn - UFS_NDADDR
    nindir = m.fs.fs_nindir
    span = nindir
    for level in range(3):
        if rel < span:
            digits = []
            for _ in range(level + 1):
                digits.append(rel % nindir)
                rel //= nindir
            return level, digits[::-1]
        rel -= span
        span *= nindir
    raise OSError(errno.EFBIG, f"block {lbn} beyond the triple indirect range")


def _new_indirect(m: FfsMount, ip: Inode, pref: int, root: bool) -> int:
    """Allocate an indirect block and write it zeroed before anything points to it."""
    fs = m.fs
    addr, _ = m.alloc.alloc_blocks(pref, m.alloc.blkpref_cg(ip.ino, UFS_NDADDR), 1, root)
    m.reuse_check([addr])
    bp = m.bufcache.getblk(m.dev, addr << fs.fs_fshift, fs.fs_bsize)
    bp.data[:] = bytes(fs.fs_bsize)
    m.note_new(addr)  # zeroed on disk before the pointer to it
    m.bufcache.bwrite(bp)
    ip.blocks += fs.fs_bsize >> 9
    return addr


def _leaf(m: FfsMount, ip: Inode, lbn: int, pref: int, root: bool) -> tuple[int, int]:
    """(leaf indirect block address, index in it) for ``lbn``, creating missing indirect blocks."""
    fs = m.fs
    level, digits = indir_path(m, lbn)
    addr = ip.ib[level]
    if addr == 0:
        addr = _new_indirect(m, ip, pref, root)
        ip.ib[level] = addr
    psize = m.bmapper.ptrsize
    fmt = m.bmapper.ptrfmt
    for d in digits[:-1]:
        bp = m.bufcache.bread(m.dev, addr << fs.fs_fshift, fs.fs_bsize)
        child = struct.unpack_from(fmt, bp.data, d * psize)[0]
        if child == 0:
            child = _new_indirect(m, ip, addr + fs.fs_frag, root)
            bp = m.bufcache.bread(m.dev, addr << fs.fs_fshift, fs.fs_bsize)  # may have been evicted
            struct.pack_into(fmt, bp.data, d * psize, child)
            m.bufcache.bdwrite(bp)
        addr = child
    return addr, digits[-1]


def set_ptrs(m: FfsMount, ip: Inode, lbn0: int, addrs: list[int], root: bool) -> None:
    """Point logical blocks ``lbn0 ..`` at ``addrs`` (direct slots, then one pointer slice per
    leaf indirect block)."""
    fs = m.fs
    i = 0
    n = len(addrs)
    while i < n and lbn0 + i < UFS_NDADDR:
        ip.db[lbn0 + i] = addrs[i]
        i += 1
    psize = m.bmapper.ptrsize
    end = m.fs.endian
    code = m.bmapper.ptrfmt[1]
    while i < n:
        lbn = lbn0 + i
        nz = next((a for a in addrs[i:] if a), 0)
        leaf, idx = _leaf(m, ip, lbn, nz, root)
        k = min(fs.fs_nindir - idx, n - i)
        bp = m.bufcache.bread(m.dev, leaf << fs.fs_fshift, fs.fs_bsize)
        struct.pack_into(f"{end}{k}{code}", bp.data, idx * psize, *addrs[i:i + k])
        m.bufcache.bdwrite(bp)
        i += k


def _grow_partial(m: FfsMount, ip: Inode, lbn: int, addr: int, osz: int, nsz: int,
                  root: bool, to_free: list[tuple[int, int]]) -> tuple[int, bool]:
    """Make direct block ``lbn`` (``osz`` bytes at ``addr``) hold ``nsz`` bytes: extend in place
    (ffs_fragextend) or move to a new run (ffs_realloccg; the old run is freed by the caller
    after the data has moved). Returns (address, moved)."""
    fs = m.fs
    fshift = fs.fs_fshift
    ofr, nfr = osz >> fshift, nsz >> fshift
    if addr and m.alloc.extend_frags(addr, ofr, nfr):
        return addr, False
    prev = ip.db[lbn - 1] if lbn > 0 else 0
    pref = prev + fs.fs_frag if prev else 0
    cgp = m.alloc.blkpref_cg(ip.ino, lbn)
    if nfr == fs.fs_frag:
        new, _ = m.alloc.alloc_blocks(pref, cgp, 1, root)
    else:
        new = m.alloc.alloc_frags(pref, cgp, nfr, root)
    if addr:
        to_free.append((addr, ofr))
    return new, True


def write_range(m: FfsMount, ip: Inode, offset: int, data: bytes | memoryview, root: bool) -> None:
    """Write ``data`` at ``offset`` of ``ip`` (file, directory or slow symlink), allocating as
    needed; updates size and block count but not times (the caller's business). The steps of
    the module docstring, in that order: allocate (``_allocate``), write the data
    (``_write_blocks``), set the pointers, free what a moved tail used to hold."""
    fs = m.fs
    n = len(data)
    if n == 0:
        return
    bshift = fs.fs_bshift
    end = offset + n
    osize = ip.size
    nsize = max(osize, end)
    view = memoryview(data).cast("B") if not isinstance(data, memoryview) else data.cast("B")
    to_free: list[tuple[int, int]] = []
    l0, l1 = offset >> bshift, (end - 1) >> bshift
    _fill_old_tail(m, ip, l0, root, to_free)
    first = max(l0 - 1, 0)
    mapped = m.bmapper.map_range(ip, first, l1 - first + 1)
    prev_addr = mapped[0] if first < l0 else 0
    addrs = mapped[l0 - first:]
    _precheck(m, ip, l0, addrs, nsize, root)
    span = _Span(offset, end, osize, nsize, l0)
    newaddrs, contents = _allocate(m, ip, span, addrs, prev_addr, view, root, to_free)
    fresh = [a != b for a, b in zip(addrs, newaddrs, strict=True)]
    m.reuse_check([a for a, f in zip(newaddrs, fresh, strict=True) if f])  # freed: maybe still pointed to
    grown = [f or (a != 0 and l0 + q < UFS_NDADDR and sblksize(fs, nsize, l0 + q) > sblksize(fs, osize, l0 + q))
             for q, (a, f) in enumerate(zip(addrs, fresh, strict=True))]
    _write_blocks(m, newaddrs, contents, view, fresh, grown, not _regular(ip))
    changed = [q for q in range(len(addrs)) if newaddrs[q] != addrs[q]]
    if changed:
        lo, hi = changed[0], changed[-1] + 1
        set_ptrs(m, ip, l0 + lo, newaddrs[lo:hi], root)
    ip.size = nsize
    if to_free:
        # a tail that moved: its new address on disk (after its data) before the old run is free
        m.iupdate(ip, sync=True)
    for addr, nfr in to_free:
        m.bufcache.invalidate(m.dev, addr << fs.fs_fshift, nfr << fs.fs_fshift, fs.fs_fsize)
        m.alloc.free(addr, nfr)
        m.note_freed(addr, nfr)


class _Span(NamedTuple):
    """The byte range a write covers, the file's size before and after it, its first block."""

    offset: int
    end: int
    osize: int
    nsize: int
    l0: int


def _fill_old_tail(m: FfsMount, ip: Inode, l0: int, root: bool, to_free: list[tuple[int, int]]) -> None:
    """A write beyond the last block: the old fragment tail stops being the last block, so it
    must become a full block first (fsck and NetBSD require every block but the last to be
    full-sized) — grown in place or moved, its contents written before the pointer to them."""
    fs = m.fs
    fshift, bsize, osize = fs.fs_fshift, fs.fs_bsize, ip.size
    olast = (osize - 1) >> fs.fs_bshift if osize > 0 else -1
    if not (0 <= olast < l0 and olast < UFS_NDADDR and ip.db[olast]):
        return
    osz = sblksize(fs, osize, olast)
    if osz >= bsize:
        return
    tail = m.bufcache.read(m.dev, ip.db[olast] << fshift, osz)
    new, moved = _grow_partial(m, ip, olast, ip.db[olast], osz, bsize, root, to_free)
    if moved:
        m.reuse_check([new])
    bp = m.bufcache.getblk(m.dev, new << fshift, bsize, meta=not _regular(ip))
    bp.data[:osz] = tail
    bp.data[osz:] = bytes(bsize - osz)
    m.note_new(new)  # (moved or grown in place) its contents before the pointer
    m.bufcache.bwrite(bp)
    ip.db[olast] = new
    ip.blocks += (bsize - osz) >> 9


Content = tuple[int, bytes | bytearray | memoryview]


def _allocate(m: FfsMount, ip: Inode, span: _Span, addrs: list[int], prev_addr: int, view: memoryview,
              root: bool, to_free: list[tuple[int, int]]) -> tuple[list[int], list[Content]]:
    """The address of every block the write touches (new ones allocated, fragment runs extended
    or moved) and its new contents: ``(offset in view, slice)`` for a block taken whole from the
    caller's data, ``(-1, bytes)`` for one merged with what it held. Runs of holes that become
    full blocks are allocated as contiguous runs."""
    fs = m.fs
    bshift, fshift, bsize, frag = fs.fs_bshift, fs.fs_fshift, fs.fs_bsize, fs.fs_frag
    l0, nsize = span.l0, span.nsize
    count = len(addrs)
    newaddrs = list(addrs)
    contents: list[Content] = []
    i = 0
    while i < count:
        lbn = l0 + i
        nsz = sblksize(fs, nsize, lbn)
        a = addrs[i]
        if a == 0 and nsz == bsize:
            j = i
            while j < count and addrs[j] == 0 and sblksize(fs, nsize, l0 + j) == bsize:
                j += 1
            _alloc_run(m, ip, l0, i, j, newaddrs, prev_addr, root)
            first, last = (l0 + i) << bshift, ((l0 + j) << bshift) - bsize
            if span.offset <= first and last + bsize <= span.end:  # all whole slices of the data
                base = first - span.offset
                contents.extend((o, view[o:o + bsize]) for o in range(base, base + (j - i) * bsize, bsize))
            else:
                contents.extend(_content(view, span, (l0 + q) << bshift, bsize, bsize, None) for q in range(i, j))
            i = j
            continue
        boff = lbn << bshift
        osz = sblksize(fs, span.osize, lbn) if a else 0
        old: bytes | None = None
        if a and not (span.offset <= boff and span.end - boff >= nsz):
            old = m.bufcache.read(m.dev, a << fshift, osz)  # before a move: its bytes are kept
        if a == 0:
            pref = newaddrs[i - 1] + frag if i > 0 and newaddrs[i - 1] else (prev_addr + frag if prev_addr else 0)
            newaddrs[i] = m.alloc.alloc_frags(pref, m.alloc.blkpref_cg(ip.ino, lbn), nsz >> fshift, root)
            ip.blocks += nsz >> 9
        elif nsz > osz:
            newaddrs[i], _ = _grow_partial(m, ip, lbn, a, osz, nsz, root, to_free)
            ip.blocks += (nsz - osz) >> 9
        contents.append(_content(view, span, boff, bsize, nsz, old))
        i += 1
    return newaddrs, contents


def _alloc_run(m: FfsMount, ip: Inode, l0: int, i: int, j: int, newaddrs: list[int], prev_addr: int,
               root: bool) -> None:
    """Full blocks for the holes ``i .. j`` of the write, in as few contiguous runs as the maps
    give, each preferring to follow the block before it (none at the start of an indirect
    range every ``fs_maxbpg`` blocks, as ffs_blkpref spreads big files over the groups)."""
    fs = m.fs
    frag = fs.fs_frag
    k = i
    while k < j:
        lb = l0 + k
        if k > 0 and newaddrs[k - 1]:
            pref = newaddrs[k - 1] + frag
        elif k == 0 and prev_addr:
            pref = prev_addr + frag
        else:
            pref = 0
        if lb >= UFS_NDADDR and (lb - UFS_NDADDR) % max(fs.fs_maxbpg, 1) == 0:
            pref = 0
        got, cnt = m.alloc.alloc_blocks(pref, m.alloc.blkpref_cg(ip.ino, lb), j - k, root)
        for q in range(cnt):
            newaddrs[k + q] = got + q * frag
        ip.blocks += cnt * (fs.fs_bsize >> 9)
        k += cnt


def _content(view: memoryview, span: _Span, boff: int, bsize: int, nsz: int, old: bytes | None) -> Content:
    """The ``nsz`` new bytes of the block at file offset ``boff``: a slice of the caller's data
    when the write covers it whole, else the old bytes (or zeros) with the written part laid in."""
    offset = span.offset
    s = max(offset, boff) - boff
    e = min(span.end, boff + bsize) - boff
    if s == 0 and e >= nsz:
        return boff - offset, view[boff - offset:boff - offset + nsz]
    buf = bytearray(nsz)
    if old is not None:
        buf[:len(old)] = old[:nsz]
    buf[s:e] = view[boff + s - offset:boff + e - offset]
    return -1, buf


def _missing_indirect(m: FfsMount, ip: Inode, lb0: int, lb1: int) -> int:
    """How many indirect blocks writing logical blocks ``lb0 .. lb1`` would have to create."""
    fs = m.fs
    lbn = max(lb0, UFS_NDADDR)
    missing = 0
    seen: set[tuple[int, ...]] = set()
    fmt, psize = m.bmapper.ptrfmt, m.bmapper.ptrsize
    while lbn <= lb1:
        level, digits = indir_path(m, lbn)
        addr = ip.ib[level]
        key: tuple[int, ...] = (level,)
        for depth in range(level + 1):
            if addr == 0:
                if key not in seen:
                    seen.add(key)
                    missing += 1
            elif depth < level:
                bp = m.bufcache.bread(m.dev, addr << fs.fs_fshift, fs.fs_bsize)
                addr = struct.unpack_from(fmt, bp.data, digits[depth] * psize)[0]
            key = (*key, digits[depth])
        lbn += fs.fs_nindir - digits[-1]
    return missing


def _precheck(m: FfsMount, ip: Inode, l0: int, addrs: list[int], nsize: int, root: bool) -> None:
    """ENOSPC before anything is allocated, so a write never fails half-way with blocks
    allocated that nothing points to."""
    holes = addrs.count(0)
    l1 = l0 + len(addrs) - 1
    if l1 >= UFS_NDADDR and holes:
        holes += _missing_indirect(m, ip, l0, l1)
    if l0 < UFS_NDADDR:
        holes += 1  # a fragment tail that may have to move into a full block
    if not holes:
        return
    fs = m.fs
    m.alloc.check_space(holes * fs.fs_frag, root)
    if fs.fs_cs_nbfree < holes - 1 and fs.fs_cs_nffree < fs.fs_frag:
        raise OSError(errno.ENOSPC, "file system full")


def _regular(ip: Inode) -> bool:
    return ip.mode & 0o170000 == 0o100000


def _write_blocks(m: FfsMount, addrs: list[int], contents: list[tuple[int, bytes | bytearray | memoryview]],
                  view: memoryview, fresh: list[bool], grown: list[bool], meta: bool) -> None:
    """Write each block's content at its address. Physically contiguous full blocks go out as one
    host write when long enough — straight from the caller's buffer when they are consecutive
    pieces of it — others through the buffer cache (getblk + bwrite, deferred and ordered on an
    ordered mount: file data as data, fresh directory or symlink blocks ahead of the metadata).
    Only blocks that were already allocated can have cached copies to drop (freed blocks are
    invalidated when freed)."""
    fs = m.fs
    fshift, frag, bsize = fs.fs_fshift, fs.fs_frag, fs.fs_bsize
    bc = m.bufcache
    dev = m.dev
    async_ = bool(m.flags & MNT_ASYNC)
    i = 0
    n = len(addrs)
    while i < n:
        j = i + 1
        while j < n and addrs[j] == addrs[j - 1] + frag and len(contents[j - 1][1]) == bsize:
            j += 1
        total = sum(len(c) for _, c in contents[i:j])
        if total >= STREAM_THRESHOLD:
            off = addrs[i] << fshift
            if not all(fresh[i:j]):
                bc.invalidate(dev, off, total, bsize)
            # the longest run of blocks that are consecutive pieces of the caller's buffer goes
            # out without a copy; only the rest (typically a padded last block) is joined
            src0 = contents[i][0]
            k = i
            if src0 >= 0:
                k = i + 1
                while k < j and contents[k][0] == src0 + (k - i) * bsize:
                    k += 1
                head = sum(len(c) for _, c in contents[i:k])
                dev.pwrite(off, view[src0:src0 + head])
                off += head
            if k < j:
                dev.pwrite(off, b"".join(c for _, c in contents[k:j]))
        else:
            for q in range(i, j):
                c = contents[q][1]
                bp = bc.getblk(dev, addrs[q] << fshift, len(c), meta=meta)
                bp.data[:] = c
                if grown[q]:
                    m.note_new(addrs[q])  # nothing on disk points to (this much of) it yet
                if async_:
                    bc.bdwrite(bp)  # DOINGASYNC: delayed, and written back in runs at the sync
                else:
                    bc.bwrite(bp)
        i = j
