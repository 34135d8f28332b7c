"""Directories (NetBSD ``ufs_lookup.c`` + ``ufs_dirhash.c``, with ``ufs_readdir``): lookup,
readdir, and adding, removing and rewriting entries.

Reading: a directory is read a block at a time through the buffer cache and parsed chunk by chunk
(``dir.parse_dirblock``). A damaged chunk, an entry no sane directory holds ("/" in a name, an
inode number out of range, a "." or ".." out of place, an entry naming the directory itself) is
skipped with a console message, as NetBSD's ``ufs_dirbad`` does, so the rest stays readable and a
walker can never loop through a directory into itself. Readdir cookies are byte offsets of
entries, so they survive reclaim and stay meaningful while entries are added or removed.

Changing, with the rules kept from FFS: an entry never crosses a 512-byte chunk (DIRBLKSIZ); a new
entry takes the slack of an existing entry (or a free slot at the start of a chunk), and when a
chunk has the room only in scattered pieces its entries are squeezed together first (compaction);
a directory grows by one chunk at a time; removing an entry gives its space to the previous entry
in the chunk, or, for the first entry of a chunk, just zeroes its ``d_ino``. Changed directory
blocks go out where NetBSD's synchronous FFS would ``bwrite`` them, through ``meta_write``: on an
ordered mount the buffer cache's epochs keep them behind the data they depend on, and a reused
inode number waits for a full ordered sync (``FfsMount.barrier``), so an old name never shows a
new file.

``DirIndex`` is the dirhash: name → entry offset plus, per chunk, the largest free slot (in 4-byte
units, one byte per chunk). Finding room for a name is a single regular-expression character-class
search over that byte string, so create, lookup and remove cost the same in a 100,000-entry
directory as in an empty one. Lookup's ``ip.dircache`` (name → inode) is kept in step.
"""

from __future__ import annotations

import errno

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
from p2k.fs.ffs.fs import UFS_ROOTINO, sblksize
from p2k.fs.ffs.inode import IFDIR
from p2k.hyper.console import console
from p2k.vfs.vattr import DT_WHT, Dirent

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from p2k.fs.ffs.ffs_vfsops import FfsMount
    from p2k.fs.ffs.inode import Inode
    from p2k.vfs.bufcache import Buf
    from p2k.vfs.vnode import Vnode

log = console("p2k.ffs")
MAX_DIR_ERRORS = 100

# ---- reading -------------------------------------------------------------------------------------
_DOTS = (b".", b"..")
_new = tuple.__new__


def _dir_bad(m: FfsMount, ip: Inode) -> Callable[[int, str], None]:
    def bad(off: int, why: str) -> None:
        # NetBSD's ufs_dirbad prints and carries on with the next chunk; we keep the message.
        msg = f"bad dir ino {ip.ino} at offset {off}: {why}"
        if len(m.dir_errors) < MAX_DIR_ERRORS and msg not in m.dir_errors:
            m.dir_errors.append(msg)
            log.warning("%s: %s", m.mountpoint_path, msg)  # the console line, once
    return bad


def dir_blocks(m: FfsMount, ip: Inode, start: int = 0) -> Iterator[list[tuple[int, int, int, bytes, int]]]:
    """The parsed entries of each directory block from the one holding byte ``start`` on.

    Reads a block at a time through the buffer cache; entries are ``(offset, ino, type, name,
    reclen)`` with free slots (ino 0) included, exactly as ``dir.parse_dirblock`` returns them."""
    if ip.mode & 0o170000 != IFDIR:
        raise OSError(errno.ENOTDIR, f"inode {ip.ino} is not a directory")
    fs = m.fs
    bsize = fs.fs_bsize
    size = ip.size
    bad = _dir_bad(m, ip)
    endian = fs.endian
    oldfmt = m.oldfmt_dir
    if start >= size:
        return  # a reader's cookie at the end (getdents' last call): no block to parse again
    lbn = max(start, 0) >> fs.fs_bshift
    while (lbn << fs.fs_bshift) < size:
        base = lbn << fs.fs_bshift
        if m.bmapper.bmap(ip, lbn) == 0:
            # Directories have no holes (fsck: "DIRECTORY ... HAS A HOLE"); stopping here also
            # bounds the scan of a directory whose size field was corrupted upwards.
            raise OSError(errno.EIO, f"directory inode {ip.ino} has a hole at block {lbn}")
        data = m.read_range(ip, base, min(base + bsize, size))
        yield parse_dirblock(data, base, endian, oldfmt, bad)
        lbn += 1


def dir_entries(m: FfsMount, ip: Inode, start: int = 0, *, free_slots: bool = False,
                ) -> Iterator[tuple[int, int, int, bytes, int]]:
    """``(offset, ino, type, name, reclen)`` of every entry at or after byte ``start``;
    free slots only with ``free_slots``."""
    for ents in dir_blocks(m, ip, start):
        for ent in ents:
            if ent[0] >= start and (ent[1] or free_slots):
                yield ent


def sane_blocks(m: FfsMount, ip: Inode, start: int = 0) -> Iterator[list[tuple[int, int, int, bytes, int]]]:
    """The live entries a reader may act on, a directory block's worth at a time: what
    ``dir_entries`` gives, less the records no sane directory holds — an empty name or one with
    "/", an inode number out of range, an entry naming the directory itself other than ".", a "."
    or ".." anywhere but first and second. Each is skipped with a console message (ufs_dirbad),
    so a walker can never loop through a directory into itself. A list per block, not a
    generator per entry: a tree walk reads every entry of every directory, and each generator
    layer was a tenth of a microsecond per entry."""
    bad = _dir_bad(m, ip)
    second = -1
    me = ip.ino
    maxino = m.maxino
    for ents in dir_blocks(m, ip, start):
        if not ents:
            continue
        if ents[0][0] == 0:
            second = ents[0][4]  # ".." is the record right after "."
        if ents[0][0] >= start and _block_sane(ents, me, maxino, second):
            yield ents  # the common case: every record live and sane, checked a block at a time
            continue
        # free slots (ino 0), whiteouts (ino 1) or records before the cookie: left out, then the
        # rest checked a block at a time again
        live = [e for e in ents if e[1] and e[2] != DT_WHT and e[0] >= start]
        if _block_sane(live, me, maxino, second):
            yield live
            continue
        live = []
        append = live.append
        for ent in ents:
            off, ino, dtype, name, reclen = ent
            if not ino or off < start or dtype == DT_WHT:
                continue
            why = None
            if not name or b"/" in name:
                why = f"bad name {name!r}"
            elif ino >= maxino or ino < UFS_ROOTINO:
                why = f"inode number {ino} out of range"
            elif name == b".":
                why = None if off == 0 and ino == me else "'.' that is not the first entry or not itself"
            elif name == b"..":
                why = None if off == second else "'..' that is not the second entry"
            elif ino == me:
                why = f"entry {name!r} names the directory itself"
            if why is not None:
                bad(off, why)
                continue
            append(ent)
        yield live


def _block_sane(live: list[tuple[int, int, int, bytes, int]], me: int, maxino: int, second: int) -> bool:
    """Whether every record of a block passes ``sane_blocks``' tests, asked of whole lists and
    one joined string (C loops) rather than record by record: a walk over a tree spends most of
    its time here. A "." and ".." in their places open the first block; nothing after them may
    name the directory or be a dot entry. Free slots and whiteouts (inode 0 and 1) fail it too.
    False sends the block through the record-by-record checks, which say what is wrong."""
    if not live:
        return True
    inos = [e[1] for e in live]
    if min(inos) < UFS_ROOTINO or max(inos) >= maxino:
        return False
    # Names hold no NUL (parse_dirblock), so in the names joined by NULs and wrapped in them an
    # empty name is "\0\0" and a dot entry "\0.\0" or "\0..\0": three scans of one string.
    joined = b"\0" + b"\0".join([e[3] for e in live]) + b"\0"
    if b"/" in joined or b"\0\0" in joined:
        return False
    rest = 0
    if live[0][0] == 0:  # the first block: "." then ".."
        if not (joined.startswith(b"\0.\0..\0") and inos[0] == me and len(live) > 1 and live[1][0] == second):
            return False
        rest = 2
        joined = joined[5:]  # from the NUL after ".."
    return b"\0.\0" not in joined and b"\0..\0" not in joined and me not in (inos[2:] if rest else inos)


def sane_entries(m: FfsMount, ip: Inode, start: int = 0) -> Iterator[tuple[int, int, int, bytes, int]]:
    """``sane_blocks``, an entry at a time."""
    for live in sane_blocks(m, ip, start):
        yield from live


def ufs_readdir(m: FfsMount, vp: Vnode, cookie: int) -> Iterator[list[Dirent]]:
    """Entries at byte offsets ≥ ``cookie``, a directory block's at a time; each Dirent's cookie
    is the next entry's offset."""
    ip: Inode = vp.data  # type: ignore[assignment]
    for live in sane_blocks(m, ip, cookie):
        # tuple.__new__ straight: a NamedTuple's own __new__ is a Python function, 0.25 us more
        yield [_new(Dirent, (ino, dtype, name, off + reclen)) for off, ino, dtype, name, reclen in live]


def ufs_lookup(m: FfsMount, dvp: Vnode, name: bytes) -> int:
    ip: Inode = dvp.data  # type: ignore[assignment]
    cache = ip.dircache
    if cache is None:
        cache = {}
        for live in sane_blocks(m, ip):
            for _, ino, _dtype, ename, _ in live:
                if ename not in cache:
                    cache[ename] = ino
        ip.dircache = cache
    found = cache.get(name)
    if found is None:
        raise OSError(errno.ENOENT, f"{name.decode(errors='replace')}: no such entry")
    return found


def ufs_isempty(m: FfsMount, vp: Vnode) -> bool:
    ip: Inode = vp.data  # type: ignore[assignment]
    return dir_isempty(m, ip)


# ---- changing ------------------------------------------------------------------------------------

_AT_LEAST: dict[int, bytes] = {}


def _at_least(units: int) -> bytes:
    """A ``bytes.translate`` table marking (1) the chunk-free values of at least ``units``: the
    first 1 of a translated index is the first chunk with room. Not a regular expression: re
    (with enum) is 2.5 ms of a command's start-up."""
    t = _AT_LEAST.get(units)
    if t is None:
        t = _AT_LEAST[units] = bytes(i >= units for i in range(256))
    return t


class DirIndex:
    """Dirhash of one directory: entry offsets and, per chunk, the largest free slot and the
    total free space (both in 4-byte units, one byte per chunk)."""

    __slots__ = ("offsets", "chunk_free", "chunk_total")

    def __init__(self) -> None:
        self.offsets: dict[bytes, int] = {}
        self.chunk_free = bytearray()
        self.chunk_total = bytearray()

    def find_chunk(self, need: int, total: bool = False) -> int:
        return (self.chunk_total if total else self.chunk_free).translate(_at_least((need + 3) >> 2)).find(1)


def _slack(ino: int, name: bytes, reclen: int) -> int:
    return reclen - DIRSIZ(len(name)) if ino else reclen


def dir_index(m: FfsMount, ip: Inode) -> DirIndex:
    """The directory's index, built by one scan on first use (with ``ip.dircache``)."""
    idx = m.dirindex.get(ip.ino)
    if idx is not None and ip.dircache is not None:
        return idx
    idx = DirIndex()
    cache: dict[bytes, int] = {}
    nchunks = ip.size // DIRBLKSIZ
    free = bytearray(nchunks)
    total = [0] * nchunks
    for off, ino, _dtype, name, reclen in dir_entries(m, ip, free_slots=True):
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


def _chunk_buf(m: FfsMount, ip: Inode, off: int) -> tuple[Buf, int]:
    """The buffer holding the chunk at directory offset ``off`` and the chunk's offset in it."""
    fs = m.fs
    lbn = off >> fs.fs_bshift
    addr = m.bmapper.bmap(ip, lbn)
    if addr == 0:
        raise OSError(errno.EIO, f"directory {ip.ino}: hole at offset {off}")
    size = sblksize(fs, ip.size, lbn)
    bp = m.bufcache.bread(m.dev, addr << fs.fs_fshift, size)
    return bp, (off & fs.fs_qbmask) & ~(DIRBLKSIZ - 1)


def _chunk_entries(m: FfsMount, data: bytearray, coff: int) -> list[tuple[int, int, int, bytes, int]]:
    """Entries of one chunk as (offset in chunk, ino, type, name, reclen)."""
    return parse_dirblock(memoryview(data)[coff:coff + DIRBLKSIZ], 0, m.fs.endian, False)


def _chunk_slots(data: bytearray, coff: int, endian: str) -> list[tuple[int, int, int, int]]:
    """(offset in chunk, ino, reclen, slack) of each entry of one chunk, from the entry headers
    alone: what an insert needs, without slicing out every name (the create profile's largest
    item was parsing the chunk per insert)."""
    hdr = DIRECT[endian].unpack_from
    out = []
    pos, end = coff, coff + DIRBLKSIZ
    while pos + 8 <= end:
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


def _compact(m: FfsMount, dip: Inode, idx: DirIndex, chunk: int) -> None:
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


def direnter(m: FfsMount, dip: Inode, name: bytes, ino: int, dtype: int, root: bool) -> None:
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
        from p2k.fs.ffs.ffs_balloc import write_range  # the allocator: only a write loads it
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


def dirremove(m: FfsMount, dip: Inode, name: bytes) -> int:
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


def dirrewrite(m: FfsMount, dip: Inode, name: bytes, ino: int, dtype: int) -> None:
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


def dir_isempty(m: FfsMount, ip: Inode) -> bool:
    idx = dir_index(m, ip)
    return all(n in (b".", b"..") for n in idx.offsets)
