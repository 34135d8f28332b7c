"""tmpfs in-core nodes: file data in sparse pages, directories as hashed, ordered name tables.

NetBSD's tmpfs keeps a directory as a linked list, which is why 20,000 creates in one directory
take seconds there. Here a directory is a dict (name → entry) for lookup plus an append-only list
of sequence numbers for readdir, so create, lookup and remove are O(1) and a readdir cookie (the
sequence number) stays valid however the directory changes.
"""

from __future__ import annotations

PAGE_SHIFT = 16
PAGE_SIZE = 1 << PAGE_SHIFT
NODE_OVERHEAD = 256  # bytes charged per node, so that nodes= and memlimit bound metadata too
DIRENT_OVERHEAD = 64


class TmpNode:
    __slots__ = (
        "ino", "mode", "nlink", "uid", "gid", "size", "rdev", "flags", "gen",
        "atime_ns", "mtime_ns", "ctime_ns", "birthtime_ns",
        "pages", "dir", "target", "parent", "xattrs",
    )

    def __init__(self, ino: int, mode: int, uid: int, gid: int, now: int, gen: int) -> None:
        self.ino = ino
        self.mode = mode
        self.nlink = 0
        self.uid = uid
        self.gid = gid
        self.size = 0
        self.rdev = 0
        self.flags = 0
        self.gen = gen
        self.atime_ns = self.mtime_ns = self.ctime_ns = self.birthtime_ns = now
        self.pages: dict[int, bytearray] | None = None
        self.dir: TmpDir | None = None
        self.target = b""
        self.parent = 0
        self.xattrs: dict[tuple[int, bytes], bytes] | None = None


class TmpDir:
    """Name table of one directory; sequence numbers start at 2 (0 and 1 are '.' and '..')."""

    __slots__ = ("names", "byseq", "seqs", "nextseq")

    def __init__(self) -> None:
        self.names: dict[bytes, tuple[int, int]] = {}  # name -> (ino, seq)
        self.byseq: dict[int, bytes] = {}
        self.seqs: list[int] = []
        self.nextseq = 2

    def add(self, name: bytes, ino: int) -> None:
        seq = self.nextseq
        self.nextseq += 1
        self.names[name] = (ino, seq)
        self.byseq[seq] = name
        self.seqs.append(seq)

    def remove(self, name: bytes) -> int:
        ino, seq = self.names.pop(name)
        del self.byseq[seq]
        if len(self.seqs) > 64 and len(self.seqs) > 2 * len(self.byseq):
            self.seqs = list(self.byseq)  # dict order is insertion order = ascending seq
        return ino

    def replace(self, name: bytes, ino: int) -> None:
        """Point an existing name at another inode, keeping its place in the listing."""
        _, seq = self.names[name]
        self.names[name] = (ino, seq)

    def after(self, cookie: int) -> list[tuple[int, bytes, int]]:
        """(seq, name, ino) of entries with seq >= cookie, in order. A listing from its start
        needs no search; one resumed part-way (a directory read in several calls) finds its
        place by bisection, imported then: tmpfs is the kernel's root, loaded by every command,
        and bisect at import was 0.25 ms of each one's start-up."""
        seqs = self.seqs
        i = 0
        if seqs and cookie > seqs[0]:
            from bisect import bisect_left

            i = bisect_left(seqs, cookie)
        out = []
        byseq = self.byseq
        names = self.names
        for seq in seqs[i:]:
            name = byseq.get(seq)
            if name is not None:
                out.append((seq, name, names[name][0]))
        return out


def read_pages(pages: dict[int, bytearray], size: int, offset: int, n: int) -> bytes:
    """``n`` bytes at ``offset`` of a file of ``size`` bytes held in sparse pages."""
    if offset >= size or n <= 0:
        return b""
    end = min(size, offset + n)
    first = offset >> PAGE_SHIFT
    last = (end - 1) >> PAGE_SHIFT
    if first == last:
        page = pages.get(first)
        lo = offset - (first << PAGE_SHIFT)
        want = end - offset
        if page is None:
            return bytes(want)
        chunk = page[lo:lo + want]
        return bytes(chunk) + bytes(want - len(chunk)) if len(chunk) < want else bytes(chunk)
    parts: list[bytes | bytearray] = []
    pos = offset
    for pno in range(first, last + 1):
        pstart = pno << PAGE_SHIFT
        lo = pos - pstart
        hi = min(end - pstart, PAGE_SIZE)
        page = pages.get(pno)
        if page is None:
            parts.append(bytes(hi - lo))
        else:
            chunk = page[lo:hi]
            parts.append(chunk)
            if len(chunk) < hi - lo:
                parts.append(bytes(hi - lo - len(chunk)))
        pos = pstart + hi
    return b"".join(parts)


def read_pages_into(pages: dict[int, bytearray], size: int, offset: int, buf: memoryview) -> int:
    """``read_pages`` into ``buf``: each page is copied once, straight to where it belongs, where
    ``read_pages`` slices then joins (two copies and a new object per read)."""
    if offset >= size or not len(buf):
        return 0
    end = min(size, offset + len(buf))
    pos = offset
    while pos < end:
        pno = pos >> PAGE_SHIFT
        lo = pos & (PAGE_SIZE - 1)
        n = min(PAGE_SIZE - lo, end - pos)
        at = pos - offset
        page = pages.get(pno)
        have = 0
        if page is not None:
            if n == PAGE_SIZE and len(page) == PAGE_SIZE:  # the bulk of a big read: a whole page
                buf[at:at + PAGE_SIZE] = page
                pos += n
                continue
            have = max(min(len(page) - lo, n), 0)
            if have:
                buf[at:at + have] = memoryview(page)[lo:lo + have]
        if have < n:
            buf[at + have:at + n] = bytes(n - have)
        pos += n
    return end - offset


def write_pages(pages: dict[int, bytearray], offset: int, data: memoryview) -> int:
    """Copy ``data`` in at ``offset``; returns the bytes of page memory newly allocated."""
    grown = 0
    pos = offset
    end = offset + len(data)
    src = 0
    while pos < end:
        pno = pos >> PAGE_SHIFT
        lo = pos & (PAGE_SIZE - 1)
        n = min(PAGE_SIZE - lo, end - pos)
        page = pages.get(pno)
        if page is None:
            page = pages[pno] = bytearray()
        if len(page) < lo + n:
            grown += lo + n - len(page)
            page.extend(bytes(lo + n - len(page)))
        page[lo:lo + n] = data[src:src + n]
        pos += n
        src += n
    return grown


def truncate_pages(pages: dict[int, bytearray], size: int) -> int:
    """Drop the data past ``size``; returns the bytes of page memory freed."""
    freed = 0
    keep = (size + PAGE_SIZE - 1) >> PAGE_SHIFT
    for pno in [p for p in pages if p >= keep]:
        freed += len(pages.pop(pno))
    if size & (PAGE_SIZE - 1):
        pno = size >> PAGE_SHIFT
        page = pages.get(pno)
        lo = size & (PAGE_SIZE - 1)
        if page is not None and len(page) > lo:
            freed += len(page) - lo
            del page[lo:]
    return freed
