"""Directory helpers fsck needs to repair (fsck_ffs dir.c): entry scan, lookup, makeentry,
changeino, expanddir, allocdir, path names for messages.

Directory blocks are read and written as whole fragment runs at their device address; entries are
parsed with one ``struct`` per header. Every write goes through ``FsckIO.write`` and so can only
happen in a repairing run.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from p2k.fs.ffs.dir import D_INO, DIRBLKSIZ, DIRECT, DIRSIZ, DirectHeader
from p2k.fs.ffs.fs import UFS_NDADDR, UFS_ROOTINO
from p2k.fs.ffs.fsck.ctx import Ctx
from p2k.fs.ffs.fsck.inode import KEEPON, SKIP, ckinode
from p2k.fs.ffs.fsck.state import DFOUND, USTATE
from p2k.fs.ffs.inode import IFDIR, Inode
from p2k.hyper import now_ns
from p2k.vfs.vattr import DT_DIR


def hdr(ctx: Ctx) -> struct.Struct:
    return DIRECT[ctx.fs.endian]


def dir_blocks(ctx: Ctx, ip: Inode) -> list[tuple[int, int, int]]:
    """(lbn, device byte offset, bytes inside the directory's size) of each allocated block."""
    fs = ctx.fs
    out: list[tuple[int, int, int]] = []
    size = ip.size

    def take(frag: int, n: int, lbn: int, level: int) -> int:
        if frag <= 0 or frag + n > ctx.st.maxfsblock:
            return SKIP
        if level == -1:
            start = lbn * fs.fs_bsize
            if start < size:
                out.append((lbn, frag * fs.fs_fsize, min(n * fs.fs_fsize, size - start)))
        return KEEPON

    ckinode(ctx, ip, take)
    out.sort()
    return out


def _records(ctx: Ctx, ip: Inode) -> Iterator[tuple[int, bytearray, int, int, int, int, int, int]]:
    """Every well-formed record, live or free, of the directory's chunks, as (device offset of
    the block, the block's bytes, the chunk's offset in them, the record's offset, ino, reclen,
    type, name length); a chunk's walk stops at its first impossible record. The block's bytes
    are one buffer per block, so a caller may change a record in them and write the chunk back."""
    h = hdr(ctx)
    for _lbn, off, n in dir_blocks(ctx, ip):
        data = bytearray(ctx.io.bread(off, n))
        for chunk in range(0, n - n % DIRBLKSIZ, DIRBLKSIZ):
            pos = chunk
            while pos + 8 <= chunk + DIRBLKSIZ:
                ino, reclen, dtype, namlen = h.unpack_from(data, pos)
                if reclen < 8 or reclen & 3 or pos + reclen > chunk + DIRBLKSIZ:
                    break
                yield off, data, chunk, pos, ino, reclen, dtype, namlen
                pos += reclen


def iter_entries(ctx: Ctx, ip: Inode) -> Iterator[tuple[int, int, int, int, bytes]]:
    """(device offset of the entry, ino, reclen, type, name) of well-formed live entries."""
    for off, data, _chunk, pos, ino, reclen, dtype, namlen in _records(ctx, ip):
        if ino:
            yield off + pos, ino, reclen, dtype, bytes(data[pos + 8:pos + 8 + namlen])


def lookup(ctx: Ctx, dirino: int, name: bytes) -> int:
    ip = ctx.ginode(dirino)
    for _off, ino, _r, _t, n in iter_entries(ctx, ip):
        if n == name:
            return ino
    return 0


def find_name(ctx: Ctx, dirino: int, ino: int) -> tuple[int, bytes] | None:
    """(device offset, name) of the first entry after "." and ".." that names ``ino`` (fsck_ffs
    findname); entries are counted as fsck_ffs counts them, free records included."""
    for n, (off, data, _chunk, pos, eino, _reclen, _t, namlen) in enumerate(_records(ctx, ctx.ginode(dirino))):
        if n >= 2 and eino == ino:
            return off + pos, bytes(data[pos + 8:pos + 8 + namlen])
    return None


def clear_entry(ctx: Ctx, off: int) -> None:
    """Free the entry at device offset ``off`` by zeroing its inode number (fsck_ffs clearentry)."""
    ctx.io.write(off + D_INO, DirectHeader.field("d_ino", ctx.fs.endian).pack(0))


def pack_entry(ctx: Ctx, ino: int, reclen: int, dtype: int, name: bytes) -> bytes:
    body = hdr(ctx).pack(ino, reclen, dtype, len(name)) + name
    return body + bytes(DIRSIZ(len(name)) - len(body))


def changeino(ctx: Ctx, dirino: int, name: bytes, newino: int) -> bool:
    """Point the entry ``name`` of ``dirino`` at ``newino`` (its d_type follows the new inode)."""
    ip = ctx.ginode(dirino)
    st = ctx.st
    for off, _ino, _reclen, t, n in iter_entries(ctx, ip):
        if n == name:
            ctx.io.write(off + D_INO, DirectHeader.field("d_ino", ctx.fs.endian).pack(newino))
            want = st.typemap[newino] if newino < st.maxino else 0
            if want and want != t:
                ctx.io.write(off + DirectHeader.OFFSETS["d_type"], bytes([want]))
            return True
    return False


def fix_dotdot(ctx: Ctx, dirino: int, parent: int) -> bool:
    """Make the directory's second entry ".." → ``parent``: in the slot after ".", or carved out of
    a "." record with room to spare. Never elsewhere: a ".." further on is an extra entry to the
    next check, and the check would never come out clean."""
    ip = ctx.ginode(dirino)
    blocks = dir_blocks(ctx, ip)
    if not blocks or blocks[0][0] != 0 or blocks[0][2] < DIRBLKSIZ:
        return False
    h = hdr(ctx)
    off = blocks[0][1]
    data = bytearray(ctx.io.read(off, DIRBLKSIZ))
    ino0, rec0, t0, n0 = h.unpack_from(data, 0)
    if rec0 < 12 or rec0 & 3 or rec0 > DIRBLKSIZ:
        return False
    if rec0 >= 24:
        h.pack_into(data, 0, ino0, 12, t0, n0)
        data[12:24] = pack_entry(ctx, parent, rec0 - 12, DT_DIR, b"..")
    elif rec0 + 12 <= DIRBLKSIZ:
        ino1, rec1, _t1, n1 = h.unpack_from(data, rec0)
        name1 = bytes(data[rec0 + 8:rec0 + 8 + n1])
        if rec1 < 12 or rec1 & 3 or rec0 + rec1 > DIRBLKSIZ or (ino1 and name1 != b".."):
            return False
        data[rec0:rec0 + 12] = pack_entry(ctx, parent, rec1, DT_DIR, b"..")
    else:
        return False
    ctx.io.write(off, data)
    return True


def makeentry(ctx: Ctx, dirino: int, ino: int, name: bytes) -> bool:
    """Add ``name`` → ``ino`` to ``dirino`` in free space, growing the directory if needed."""
    if not _makeentry(ctx, dirino, ino, name):
        if not expanddir(ctx, dirino):
            return False
        return _makeentry(ctx, dirino, ino, name)
    return True


def _makeentry(ctx: Ctx, dirino: int, ino: int, name: bytes) -> bool:
    h = hdr(ctx)
    need = DIRSIZ(len(name))
    dtype = ctx.st.typemap[ino] if ino < ctx.st.maxino else 0
    for off, data, chunk, pos, eino, reclen, etype, namlen in _records(ctx, ctx.ginode(dirino)):
        used = DIRSIZ(namlen) if eino else 0
        if reclen - used < need:
            continue
        if eino:
            h.pack_into(data, pos, eino, used, etype, namlen)
            new = pos + used
            rec = pack_entry(ctx, ino, reclen - used, dtype, name)
        else:
            new = pos
            rec = pack_entry(ctx, ino, reclen, dtype, name)
        data[new:new + len(rec)] = rec
        ctx.io.write(off + chunk, data[chunk:chunk + DIRBLKSIZ])
        return True
    return False


def expanddir(ctx: Ctx, dirino: int) -> bool:
    """Give the directory one more full block of empty chunks (the old last fragment run, if
    any, is copied into the new block so that only the last block is ever partial)."""
    fs, st = ctx.fs, ctx.st
    ip = ctx.ginode(dirino)
    nblk = -(-ip.size // fs.fs_bsize)
    if nblk >= UFS_NDADDR:
        return False
    newblk = st.find_free_frags(fs.fs_frag)
    if not newblk:
        return False
    st.claim(newblk, fs.fs_frag)
    st.n_blks += fs.fs_frag
    data = bytearray(fs.fs_bsize)
    last = nblk - 1
    tail = ip.size - last * fs.fs_bsize if nblk else 0
    if nblk and tail < fs.fs_bsize and ip.db[last]:
        old = ip.db[last]
        oldfrags = -(-tail // fs.fs_fsize)
        data[:tail] = ctx.io.read(old * fs.fs_fsize, tail)
        st.release(old, oldfrags)
        st.n_blks -= oldfrags
        ip.db[last] = newblk
        ip.blocks += (fs.fs_frag - oldfrags) * (fs.fs_fsize // 512)
        start = tail
        ip.size = (last + 1) * fs.fs_bsize
    else:
        ip.db[nblk] = newblk
        ip.blocks += fs.fs_bsize // 512
        start = 0
        ip.size += fs.fs_bsize
    h = hdr(ctx)
    for c in range(start, fs.fs_bsize, DIRBLKSIZ):
        h.pack_into(data, c, 0, DIRBLKSIZ, 0, 0)
    ctx.io.write(newblk * fs.fs_fsize, data)
    ctx.inodirty(ip)
    return True


def allocdir(ctx: Ctx, parent: int, mode: int, ino: int = 0) -> int:
    """Allocate a directory inode holding "." and ".." (fsck_ffs allocdir); 0 if no room."""
    fs, st = ctx.fs, ctx.st
    if not ino:
        i = st.statemap.find(bytes([USTATE]), UFS_ROOTINO + 1)
        if i < 0:
            return 0
        ino = i
    frag = st.find_free_frags(1)
    if not frag:
        return 0
    st.claim(frag, 1)
    st.n_blks += 1
    st.n_files += 1
    data = bytearray(fs.fs_fsize)
    dot = pack_entry(ctx, ino, 12, DT_DIR, b".")
    dotdot = pack_entry(ctx, parent, DIRBLKSIZ - 12, DT_DIR, b"..")
    data[:12] = dot
    data[12:12 + len(dotdot)] = dotdot
    for c in range(DIRBLKSIZ, fs.fs_fsize, DIRBLKSIZ):
        hdr(ctx).pack_into(data, c, 0, DIRBLKSIZ, 0, 0)
    ctx.io.write(frag * fs.fs_fsize, data)
    ip = ctx.codec.decode(bytes(ctx.isize), 0, ino)
    now = now_ns() // 1_000_000_000
    ip.mode = IFDIR | mode
    ip.nlink = 2
    ip.size = fs.fs_fsize
    ip.blocks = fs.fs_fsize // 512
    ip.db[0] = frag
    ip.atime = ip.mtime = ip.ctime = now
    if fs.ufs2:
        ip.birthtime = now
        ip.blksize = fs.fs_bsize
    ip.gen = (now * 2654435761) & 0x7FFFFFFF
    ctx.inodirty(ip)
    st.statemap[ino] = DFOUND
    st.typemap[ino] = DT_DIR
    # A re-created root is scanned by phase 2 like any directory, which subtracts its "." and
    # ".." from the count (fsck_ffs allocdir sets ino_linkcnt = di_nlink for the root); a
    # directory made later (lost+found, phase 3) is never scanned: nothing left to count.
    st.lncnt[ino] = 2 if ino == parent else 0
    st.parent[ino] = st.dotdot[ino] = parent
    if ino not in st.dirs:
        st.dirs.append(ino)
    return ino


def getpathname(ctx: Ctx, ino: int, limit: int = 64) -> str:
    """The path of directory ``ino`` from the root, looked up through the parents known so far."""
    st = ctx.st
    parts: list[str] = []
    cur = ino
    for _ in range(limit):
        if cur == UFS_ROOTINO:
            return "/" + "/".join(reversed(parts))
        par = st.parent[cur] or st.dotdot[cur]
        if not par or par >= st.maxino or st.statemap[par] == USTATE:
            return "?/" + "/".join(reversed(parts))
        name = None
        for _o, e, _r, _t, n in iter_entries(ctx, ctx.ginode(par)):
            if e == cur and n not in (b".", b".."):
                name = n.decode("utf-8", "replace")
                break
        parts.append(name if name is not None else "?")
        cur = par
    return "..." + "/".join(reversed(parts))
