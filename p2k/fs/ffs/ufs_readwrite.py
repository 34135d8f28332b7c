"""File data: read and write (NetBSD ``ufs_readwrite.c``, which ffs compiles as ffs_read and
ffs_write).

Reads map the requested block range in one go and fetch each physically contiguous run with one
``BufCache.read_extent`` call, so a sequential read is one host read per run, not per block. A
read on a read-write mount without ``noatime`` sets the access time POSIX asks for (ufs_read's
IN_ACCESS); the inode goes out with the next sync.

Writes go through ``ffs_balloc.write_range`` a piece at a time, so that a write that runs out of
space returns the short count of what did fit instead of failing whole. Whether a caller may dip
into the minfree reserve is decided by the *owner* of the inode being written (root-owned files
may), since the VOP interface carries no credentials; for the usual case — a process writing its
own files — this is the same answer NetBSD gives.
"""

from __future__ import annotations

import errno

from p2k.fs.ffs.inode import IFDIR, IFMT, IFREG
from p2k.fs.ffs.ufs_inode import modified, set_times
from p2k.hyper import now_ns
from p2k.vfs.mount import MNT_NOATIME, MNT_RDONLY

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from p2k.fs.ffs.ffs_vfsops import FfsMount
    from p2k.fs.ffs.inode import Inode
    from p2k.vfs.vnode import Vnode

# A run at least this long bypasses the buffer cache on a miss: streaming a big file must not
# evict the metadata the cache is for (NetBSD keeps file data in the page cache, not in buffers).
# 128 KiB is what the FUSE bridge asks for per request; caching each such run block by block cost
# three times the host read itself (85 vs 28 us a request), and the host's page cache already keeps
# what a FUSE reader reads again.
STREAM_THRESHOLD = 128 * 1024
CHUNK = 1 << 20  # writes are cut into pieces so that ENOSPC can return a short count


def read_range(m: FfsMount, ip: Inode, offset: int, end: int) -> bytes:
    """Bytes ``[offset, end)`` of the file (``end`` ≤ size); holes read as zeros."""
    if end <= offset:
        return b""
    fs = m.fs
    bshift = fs.fs_bshift
    lbn0 = offset >> bshift
    lbn1 = (end - 1) >> bshift
    runs = m.bmapper.extents(ip, lbn0, lbn1 - lbn0 + 1)
    bsize = fs.fs_bsize
    read_extent = m.bufcache.read_extent
    dev = m.dev
    if len(runs) == 1:
        off, n = runs[0]
        data: bytes = bytes(n) if off < 0 else read_extent(dev, off, n, bsize, n < STREAM_THRESHOLD)
    else:
        parts = [bytes(n) if off < 0 else read_extent(dev, off, n, bsize, n < STREAM_THRESHOLD)
                 for off, n in runs]
        data = b"".join(parts)
    start = offset - (lbn0 << bshift)
    if start == 0 and len(data) == end - offset:
        return data
    return data[start:start + end - offset]


def read_range_into(m: FfsMount, ip: Inode, offset: int, end: int, buf: memoryview) -> int:
    """``read_range`` into ``buf`` (the server's shared arena): each run lands in its place, the
    whole runs of a big read straight from the host file (``BufCache.read_extent_into``)."""
    if end <= offset:
        return 0
    fs = m.fs
    bshift = fs.fs_bshift
    lbn0 = offset >> bshift
    lbn1 = (end - 1) >> bshift
    bsize = fs.fs_bsize
    bufcache = m.bufcache
    dev = m.dev
    pos = lbn0 << bshift  # the file offset where the current run starts
    for off, n in m.bmapper.extents(ip, lbn0, lbn1 - lbn0 + 1):
        lo, hi = max(pos, offset), min(pos + n, end)
        if lo < hi:
            dst = buf[lo - offset:hi - offset]
            if off < 0:
                dst[:] = bytes(hi - lo)
            elif lo == pos and hi == pos + n:
                bufcache.read_extent_into(dev, off, bsize, dst, n < STREAM_THRESHOLD)
            else:
                dst[:] = memoryview(bufcache.read_extent(dev, off, n, bsize, n < STREAM_THRESHOLD))[lo - pos:hi - pos]
        pos += n
    return end - offset


def ffs_readinto(m: FfsMount, vp: Vnode, offset: int, buf: memoryview) -> int:
    ip: Inode = vp.data  # type: ignore[assignment]
    if offset < 0:
        raise OSError(errno.EINVAL, "negative offset")
    n = 0
    if len(buf) and offset < ip.size:
        n = read_range_into(m, ip, offset, min(offset + len(buf), ip.size), buf)
    if not m.flags & (MNT_RDONLY | MNT_NOATIME):
        set_times(ip, a=now_ns())
        m.mark_dirty(ip)
    return n


def ffs_read(m: FfsMount, vp: Vnode, offset: int, size: int) -> bytes:
    ip: Inode = vp.data  # type: ignore[assignment]
    if offset < 0:
        raise OSError(errno.EINVAL, "negative offset")
    if size <= 0 or offset >= ip.size:
        data = b""
    else:
        data = m.read_range(ip, offset, min(offset + size, ip.size))
    if not m.flags & (MNT_RDONLY | MNT_NOATIME):
        set_times(ip, a=now_ns())
        m.mark_dirty(ip)
    return data


def ffs_write(m: FfsMount, vp: Vnode, offset: int, data: bytes | bytearray | memoryview) -> int:
    if m.readonly:
        raise OSError(errno.EROFS, "read-only file system")
    ip: Inode = vp.data  # type: ignore[assignment]
    kind = ip.mode & IFMT
    if kind == IFDIR:
        raise OSError(errno.EISDIR, "is a directory")
    if kind != IFREG:
        raise OSError(errno.EINVAL, "not a regular file")
    n = len(data)
    if n == 0:
        return 0
    if offset + n > m.maxfilesize:
        raise OSError(errno.EFBIG, "file too large")
    view = memoryview(data).cast("B")
    root = ip.uid == 0
    done = 0
    bsize = m.fs.fs_bsize
    step = CHUNK
    try:
        while done < n:
            piece = min(step, n - done)
            try:
                from p2k.fs.ffs.ffs_balloc import write_range  # the allocator: only a write loads it
                write_range(m, ip, offset + done, view[done:done + piece], root)
            except OSError as e:
                if e.errno != errno.ENOSPC or step <= bsize:
                    raise
                step = bsize  # retry in single blocks to fill up to the last free one
                continue
            done += piece
    except OSError as e:
        if done == 0 or e.errno != errno.ENOSPC:
            raise
    modified(ip)
    m.mark_dirty(ip)
    return done
