"""Writing a WAPBL journal (``-o log``, MNT_LOG): metadata goes to the log before it goes home.

The record format is NetBSD's (``wapbl.py``); what a p2k transaction is, is simpler than
NetBSD's. At every sync the buffer cache, having written the data, hands the dirty metadata to
``commit`` before writing it home: the blocks go into the log as block lists
(``wapbl_write_blocks``), followed by an inode list naming the inodes that are open but unlinked
(``wapbl_write_inodes``), after the previous transaction's records; the device is flushed; the
commit header is written (generation ``g`` in slot ``g % 2``), its tail at the new records —
which drops the previous transaction — and flushed. Then the metadata is written home without a
flush of its own: the next commit's first flush makes it durable before the header that drops
it can be. Two device flushes per sync, as for an unjournaled ordered sync. Unmount (and a
transaction that needs the room) empties the log: flush, a header with head = tail = 0, flush.

No revocation records are needed: at most one transaction is ever replayable, frees are applied
only at a commit (``DeferredFrees``), and so no block that transaction logged can have been
freed and written again before a later header drops it. A sync whose metadata does not fit the
log is written the unjournaled, ordered way and counted (``overflows``); fsck still repairs what
a power cut then leaves.

Where the log is, and how a new one is made room for, is ``ffs_wapbl.py``'s business.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from p2k.fs.ffs.wapbl import (
    DEV_BSIZE,
    WAPBL_WC_BLOCKS,
    WAPBL_WC_HEADER,
    WAPBL_WC_INODES,
    JournalLoc,
    LogError,
    WcBlock,
    WcHeader,
    WcInode,
    WcList,
    read_header,
)
from p2k.hyper import now_ns
from p2k.hyper.console import console

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from p2k.fs.ffs.ffs_alloc import Allocator
    from p2k.fs.ffs.ffs_vfsops import FfsMount
    from p2k.vfs.bufcache import Buf

log = console("p2k.ffs")

MAXPHYS = 64 * 1024  # wapbl_start refuses a smaller log


class LogWriter:
    """The journal of one ``-o log`` mount."""

    def __init__(self, m: FfsMount, loc: JournalLoc) -> None:
        self.m = m
        self.loc = loc
        self.blk = self.loc.blksz
        if self.loc.size < MAXPHYS:
            raise OSError(errno.ENOSPC, f"-o log: journal of {self.loc.size} bytes is too small")
        self.circ_off = 2 * self.blk
        self.circ_size = (self.loc.size - self.circ_off) // self.blk * self.blk
        self.endian = "<"
        self.gen = 0
        self.commits = 0
        self.overflows = 0
        self.pending = False  # the last committed transaction is still in the log
        self.tail = self.head = 0
        try:
            h, self.endian = read_header(self.loc, m.dev.pread)
            self.gen = (h.wc_generation + 1) & 0xFFFFFFFF
        except (LogError, OSError):
            pass
        self._header(0, 0)
        if self.gen == 1:  # a new log: both slots hold a valid header (wapbl_write_commit)
            self._header(0, 0)
        m.dev.fsync()

    def _header(self, head: int, tail: int) -> None:
        now = now_ns()
        h = WcHeader(WAPBL_WC_HEADER, self.blk, 0, self.gen, [0, 0], now // 1_000_000_000,
                     now % 1_000_000_000, 1, self.blk.bit_length() - 1, 9, head, tail,
                     self.circ_off, self.circ_size)
        self.m.dev.pwrite(self.loc.offset + (self.gen % 2) * self.blk,
                          h.encode(self.endian).ljust(self.blk, b"\0"))
        self.gen = (self.gen + 1) & 0xFFFFFFFF

    def _records(self, bufs: list[Buf], inodes: list[tuple[int, int]]) -> bytes | None:
        e = self.endian
        blk = self.blk
        out: list[bytes] = []
        bph = (blk - WcList.SIZE) // WcBlock.SIZE
        for i in range(0, len(bufs), bph):
            chunk = bufs[i:i + bph]
            if any(bp.size % DEV_BSIZE or bp.offset % DEV_BSIZE for bp in chunk):
                return None
            body = b"".join(bytes(bp.data) for bp in chunk)
            pad = -len(body) % blk
            entries = b"".join(WcBlock(bp.offset // DEV_BSIZE, 0, bp.size).encode(e) for bp in chunk)
            out.append((WcList(WAPBL_WC_BLOCKS, blk + len(body) + pad, len(chunk), 0).encode(e)
                        + entries).ljust(blk, b"\0") + body + b"\0" * pad)
        iph = (blk - WcList.SIZE) // WcInode.SIZE
        for i in range(0, max(len(inodes), 1), iph):
            part = inodes[i:i + iph]
            entries = b"".join(WcInode(ino, mode).encode(e) for ino, mode in part)
            out.append((WcList(WAPBL_WC_INODES, blk, len(part), int(i == 0)).encode(e)
                        + entries).ljust(blk, b"\0"))
        return b"".join(out)

    def _room(self) -> int:
        """Bytes the next transaction may take: all of the circular area but the previous
        transaction, which must stay readable until the next commit header supersedes it."""
        used = (self.head - self.tail) % self.circ_size if self.pending else 0
        return self.circ_size - used - self.blk  # head must not catch up with tail

    def _put(self, start: int, recs: bytes) -> int:
        """Write ``recs`` at circular offset ``start`` (wrapping); the offset after them."""
        dev, end = self.m.dev, self.circ_off + self.circ_size
        first = recs[:end - start]
        dev.pwrite(self.loc.offset + start, first)
        if len(first) < len(recs):
            dev.pwrite(self.loc.offset + self.circ_off, recs[len(first):])
            return self.circ_off + len(recs) - len(first)
        return start + len(recs) if start + len(recs) < end else self.circ_off

    def commit(self, bufs: list[Buf]) -> bool:
        """Log ``bufs`` (the metadata about to go home) as one transaction, durable on return;
        False if it does not fit (the caller then writes home unjournaled).

        The records go after the previous transaction's, and the new commit header's tail skips
        that one: its home writes were issued before this flush, so they are durable once the
        header that drops it is — no separate truncation, two device flushes per sync."""
        recs = self._records(bufs, self.m.unlinked_open_inodes())
        if recs is not None and len(recs) > self._room() and self.pending:
            self.truncate()
        if recs is None or len(recs) > self._room():
            self.overflows += 1
            log.warning("%s: sync of %d metadata bytes does not fit the %d-byte journal; written "
                        "unjournaled", self.m.mountpoint_path, sum(bp.size for bp in bufs), self.circ_size)
            if self.pending:
                self.truncate()
            return False
        dev = self.m.dev
        start = self.head if self.pending else self.circ_off
        end = self._put(start, recs)
        dev.fsync()  # this sync's data, its records, and the previous sync's home writes
        self._header(end, start)
        dev.fsync()
        self.tail, self.head = start, end
        self.commits += 1
        self.pending = True
        return True

    def truncate(self) -> None:
        """Empty the log: the home writes of the last transaction made durable first, then a
        header with head = tail = 0, flushed (before unmount marks the file system clean, and
        when the next transaction needs the room)."""
        dev = self.m.dev
        dev.fsync()
        self._header(0, 0)
        dev.fsync()
        self.pending = False
        self.tail = self.head = 0


class DeferredFrees:
    """On a log mount, blocks and inodes freed by an operation stay allocated in the maps until
    the next commit, where the frees are applied first and so go into the same transaction as
    the changes that freed them (NetBSD registers deallocations and applies them at its flush,
    ``ffs_wapbl_sync_metadata``). Nothing freed can be reused before that commit is durable: a
    power cut can never leave the old tree pointing at a block that already holds new contents,
    and no commit has to be forced in the middle of an operation to make reuse safe."""

    def __init__(self, alloc: Allocator) -> None:
        self.pending: list[tuple[Callable[..., None], tuple[object, ...]]] = []
        for name in ("free", "free_blocks", "free_inode"):
            real = getattr(alloc, name)
            setattr(alloc, name, self._deferring(real))

    def _deferring(self, real: Callable[..., None]) -> Callable[..., None]:
        def defer(*args: object) -> None:
            self.pending.append((real, args))
        return defer

    def apply(self) -> None:
        pending, self.pending = self.pending, []
        for fn, args in pending:
            fn(*args)
