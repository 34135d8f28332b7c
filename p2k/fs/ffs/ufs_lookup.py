"""Directory entry changes (NetBSD ``ufs_lookup.c`` direnter/dirremove/dirrewrite + ``ufs_dirhash.c``).

Rules kept from FFS: an entry never crosses a 512-byte chunk (DIRBLKSIZ); a new entry takes the
slack of an existing entry (or a free slot at the start of a chunk), and when a chunk has the room
only in scattered pieces its entries are squeezed together first (compaction); a directory grows
by one chunk at a time; removing an entry gives its space to the previous entry in the chunk, or, for the first
entry of a chunk, just zeroes its ``d_ino``. Changed directory blocks go out where NetBSD's
synchronous FFS would ``bwrite`` them, through ``meta_write``: on an ordered mount the buffer
cache's epochs keep them behind the data they depend on, and a reused inode number waits for a
full ordered sync (``FfsMountRW.barrier``), so an old name never shows a new file.

``DirIndex`` is the dirhash: name → entry offset plus, per chunk, the largest free slot (in 4-byte
units, one byte per chunk). Finding room for a name is a single regular-expression character-class
search over that byte string, so create, lookup and remove cost the same in a 100,000-entry
directory as in an empty one. The read path's ``ip.dircache`` (name → inode) is kept in step.
"""

from __future__ import annotations

import errno
import re
from typing import TYPE_CHECKING

from p2k.fs.ffs.dir import (
    D_TYPE,
    DIRBLKSIZ,
    DIRECT,
    DIRSIZ,
    DirectHeader,
    pack_entry,
    parse_dirblock,
    set_d_ino,
    set_d_reclen,
)
from p2k.fs.ffs.ffs_balloc import write_range
from p2k.fs.ffs.fs import sblksize

if TYPE_CHECKING:
    from p2k.fs.ffs.inode import Inode
    from p2k.fs.ffs.vfsops_rw import FfsMountRW
    from p2k.vfs.bufcache import Buf

_FREE_RE: dict[int, re.Pattern[bytes]] = {}


def _free_re(units: int) -> re.Pattern[bytes]:
    """A byte class matching chunk-free values of at least ``units`` (compiled on first use)."""
    r = _FREE_RE.get(units)
    if r is None:
        r = _FREE_RE[units] = re.compile(b"[" + re.escape(bytes([units])) + b"-\xff]")
    return r


class DirIndex:
    """Dirhash of one directory: entry offsets and, per chunk, the largest free slot and the
    total free space (both in 4-byte units, one byte per chunk)."""

    __slots__ = ("offsets", "chunk_free", "chunk_total")

    def __init__(self) -> None:
        self.offsets: dict[bytes, int] = {}
        self.chunk_free = bytearray()
        self.chunk_total = bytearray()

    def find_chunk(self, need: int, total: bool = False) -> int:
        m = _free_re((need + 3) >> 2).search(self.chunk_total if total else self.chunk_free)
        return m.start() if m else -1


def _slack(ino: int, name: bytes, reclen: int) -> int:
    return reclen - DIRSIZ(len(name)) if ino else reclen


def dir_index(m: FfsMountRW, ip: Inode) -> DirIndex:
    """The directory's index, built by one scan on first use (with ``ip.dircache``)."""
    idx = m.dirindex.get(ip.ino)
    if idx is not None and ip.dircache is not None:
        return idx
    idx = DirIndex()
    cache: dict[bytes, int] = {}
    nchunks = ip.size // DIRBLKSIZ
    free = bytearray(nchunks)
    total = [0] * nchunks
    for off, ino, _dtype, name, reclen in m.dir_entries(ip, free_slots=True):
        c = off >> 9
        s = _slack(ino, name, reclen) >> 2
        if c < nchunks:
            total[c] += s
            if s > free[c]:
                free[c] = min(s, 255)
        if ino and name not in idx.offsets:
            idx.offsets[name] = off
            cache[name] = ino
    idx.chunk_free = free
    idx.chunk_total = bytearray(min(t, 255) for t in total)
    m.dirindex[ip.ino] = idx
    ip.dircache = cache
    return idx


def _chunk_buf(m: FfsMountRW, ip: Inode, off: int) -> tuple[Buf, int]:
    """The buffer holding the chunk at directory offset ``off`` and the chunk's offset in it."""
    fs = m.fs
    lbn = off >> fs.fs_bshift
    addr = m.bmapper.bmap(ip, lbn)
    if addr == 0:
        raise OSError(errno.EIO, f"directory {ip.ino}: hole at offset {off}")
    size = sblksize(fs, ip.size, lbn)
    bp = m.bufcache.bread(m.dev, addr << fs.fs_fshift, size)
    return bp, (off & fs.fs_qbmask) & ~(DIRBLKSIZ - 1)


def _chunk_entries(m: FfsMountRW, data: bytearray, coff: int) -> list[tuple[int, int, int, bytes, int]]:
    """Entries of one chunk as (offset in chunk, ino, type, name, reclen)."""
    return parse_dirblock(memoryview(data)[coff:coff + DIRBLKSIZ], 0, m.fs.endian, False)


def _chunk_slots(data: bytearray, coff: int, endian: str) -> list[tuple[int, int, int, int]]:
    """(offset in chunk, ino, reclen, slack) of each entry of one chunk, from the entry headers
    alone: what an insert needs, without slicing out every name (the create profile's largest
    item was parsing the chunk per insert)."""
    hdr = DIRECT[endian].unpack_from
    out = []
    pos, end = coff, coff + DIRBLKSIZ
    while pos < end:
        ino, reclen, _dtype, namlen = hdr(data, pos)
        if reclen & 3 or reclen > end - pos or reclen < 8 + ((namlen + 4) & ~3):
            break  # damaged: the insert finds no room and the index is rebuilt (EIO below)
        out.append((pos - coff, ino, reclen, reclen - 8 - ((namlen + 4) & ~3) if ino else reclen))
        pos += reclen
    return out


def _refresh_free(idx: DirIndex, chunk: int, ents: list[tuple[int, int, int, bytes, int]]) -> None:
    slacks = [_slack(ino, name, reclen) for _, ino, _, name, reclen in ents]
    idx.chunk_free[chunk] = min(max(slacks, default=0) >> 2, 255)
    idx.chunk_total[chunk] = min(sum(slacks) >> 2, 255)


def _compact(m: FfsMountRW, dip: Inode, idx: DirIndex, chunk: int) -> None:
    """Squeeze the live entries of a chunk together so its free space is one slot at the end
    (ufs_direnter's compaction when the space is there but scattered)."""
    endian = m.fs.endian
    base = chunk * DIRBLKSIZ
    bp, coff = _chunk_buf(m, dip, base)
    live = [(ino, dtype, name) for _, ino, dtype, name, _ in _chunk_entries(m, bp.data, coff) if ino]
    out = bytearray()
    for k, (ino, dtype, name) in enumerate(live):
        size = DIRSIZ(len(name))
        reclen = DIRBLKSIZ - len(out) if k == len(live) - 1 else size
        idx.offsets[name] = base + len(out)
        out += pack_entry(endian, ino, dtype, name, reclen)
    if not live:
        out += pack_entry(endian, 0, 0, b"", DIRBLKSIZ)
    bp.data[coff:coff + DIRBLKSIZ] = bytes(out).ljust(DIRBLKSIZ, b"\0")
    m.meta_write(bp, coff, coff + DIRBLKSIZ)
    _refresh_free(idx, chunk, _chunk_entries(m, bp.data, coff))


def direnter(m: FfsMountRW, dip: Inode, name: bytes, ino: int, dtype: int, root: bool) -> None:
    """Add ``name`` → ``ino`` to directory ``dip`` (the caller has checked it is absent)."""
    idx = dir_index(m, dip)
    need = DIRSIZ(len(name))
    endian = m.fs.endian
    chunk = idx.find_chunk(need)
    if chunk < 0:
        scattered = idx.find_chunk(need, total=True)
        if scattered >= 0:
            _compact(m, dip, idx, scattered)
            chunk = scattered
    if chunk < 0:
        # grow by one chunk: a single entry spanning it
        off = dip.size
        write_range(m, dip, off, pack_entry(endian, ino, dtype, name, DIRBLKSIZ).ljust(DIRBLKSIZ, b"\0"), root)
        idx.chunk_free.append(min((DIRBLKSIZ - need) >> 2, 255))
        idx.chunk_total.append(min((DIRBLKSIZ - need) >> 2, 255))
        idx.offsets[name] = off
        assert dip.dircache is not None
        dip.dircache[name] = ino
        return
    base = chunk * DIRBLKSIZ
    bp, coff = _chunk_buf(m, dip, base)
    ents = _chunk_slots(bp.data, coff, endian)
    slacks = [e[3] for e in ents]
    for k, (eoff, eino, reclen, slack) in enumerate(ents):
        if slack < need:
            continue
        pos = coff + eoff
        if eino == 0:
            bp.data[pos:pos + need] = pack_entry(endian, ino, dtype, name, reclen)
            newoff = eoff
            slacks[k] = reclen - need
        else:
            keep = reclen - slack
            set_d_reclen(bp.data, pos, endian, keep)
            bp.data[pos + keep:pos + keep + need] = pack_entry(endian, ino, dtype, name, reclen - keep)
            newoff = eoff + keep
            slacks[k] = 0
            slacks.append(reclen - keep - need)
        m.meta_write(bp, coff, coff + DIRBLKSIZ)
        idx.offsets[name] = base + newoff
        assert dip.dircache is not None
        dip.dircache[name] = ino
        idx.chunk_free[chunk] = min(max(slacks) >> 2, 255)
        idx.chunk_total[chunk] = min(sum(slacks) >> 2, 255)
        return
    # the index promised room that the chunk does not have: rebuild it and retry once
    m.dirindex.pop(dip.ino, None)
    dip.dircache = None
    raise OSError(errno.EIO, f"directory {dip.ino}: index out of step at chunk {chunk}")


def dirremove(m: FfsMountRW, dip: Inode, name: bytes) -> int:
    """Remove ``name`` from ``dip``; returns the inode number it named."""
    idx = dir_index(m, dip)
    off = idx.offsets.get(name)
    if off is None:
        raise OSError(errno.ENOENT, "no such entry")
    chunk = off >> 9
    bp, coff = _chunk_buf(m, dip, off)
    ents = _chunk_entries(m, bp.data, coff)
    rel = off & (DIRBLKSIZ - 1)
    endian = m.fs.endian
    prev = None
    target = None
    for e in ents:
        if e[0] == rel:
            target = e
            break
        prev = e
    if target is None or target[3] != name:
        m.dirindex.pop(dip.ino, None)
        dip.dircache = None
        raise OSError(errno.EIO, f"directory {dip.ino}: entry {name!r} not at offset {off}")
    if prev is None:
        set_d_ino(bp.data, coff + rel, endian, 0)
    else:
        set_d_reclen(bp.data, coff + prev[0], endian, prev[4] + target[4])
    m.meta_write(bp, coff, coff + DIRBLKSIZ)
    del idx.offsets[name]
    assert dip.dircache is not None
    dip.dircache.pop(name, None)
    _refresh_free(idx, chunk, _chunk_entries(m, bp.data, coff))
    return target[1]


def dirrewrite(m: FfsMountRW, dip: Inode, name: bytes, ino: int, dtype: int) -> None:
    """Point the existing entry ``name`` at ``ino`` (rename over a target, ``..`` of a moved dir)."""
    idx = dir_index(m, dip)
    off = idx.offsets.get(name)
    if off is None:
        raise OSError(errno.ENOENT, "no such entry")
    bp, coff = _chunk_buf(m, dip, off)
    pos = coff + (off & (DIRBLKSIZ - 1))
    set_d_ino(bp.data, pos, m.fs.endian, ino)
    bp.data[pos + D_TYPE] = dtype
    m.meta_write(bp, pos, pos + DirectHeader.SIZE)
    assert dip.dircache is not None
    dip.dircache[name] = ino


def dir_isempty(m: FfsMountRW, ip: Inode) -> bool:
    idx = dir_index(m, ip)
    return all(n in (b".", b"..") for n in idx.offsets)
