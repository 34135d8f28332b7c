"""The buffer cache (NetBSD ``vfs_bio.c``): device blocks cached in memory, written back later.

Buffers are keyed by (device, byte offset). A driver reads with ``bread``, changes ``bp.data``
in place and then either ``bwrite``s it (synchronous: used where on-disk ordering matters for
crash consistency), ``bdwrite``s it (delayed: written on sync, fsync, unmount or memory pressure)
or ``brelse``s it unchanged. Every cached byte is charged to the kernel's ``MemAccount``; when a
charge would pass ``RUMP_MEMLIMIT``, clean buffers are dropped least-recently-used first, then
dirty ones are written back and dropped. File data read sequentially comes in through
``read_extent``, which fetches a whole physically contiguous run with a single host read.

Crash consistency rests on one ordering rule, kept here so every driver gets it: a buffer is
either *data* (file contents, ``meta=False``, or any block allocated since the last checkpoint,
``mark_new``) or *metadata* (the default). ``flush_dev`` writes all dirty data, flushes the device,
then writes all dirty metadata and flushes again, so no metadata that points at a block can reach
the disk before the block's contents — under a disk that reorders anything it has not been told to
flush. Memory pressure may push out dirty data buffers alone (nothing on disk points at them yet),
but dirty metadata only through the device's checkpoint hook, which a driver sets to its own full
sync. On such a device ``bwrite`` defers too; a driver that needs one write on stable storage
before anything else (the clean flag) asks for ``bwrite(bp, barrier=True)``. The driver's half of
the bargain: a block freed since the last checkpoint is not reused before the next one, so no
write of this epoch lands on a block the disk still shows as someone else's.

There is one kernel lock, so buffers need no busy-locking of their own.
"""

from __future__ import annotations

import errno

from p2k.hints import Protocol
from p2k.hyper import MemAccount

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from collections.abc import Callable


class BlockDevice(Protocol):
    """What the buffer cache needs of a device (``p2k.etfs.Device`` provides it)."""

    dev_id: int
    size: int
    readonly: bool

    def pread(self, off: int, n: int) -> bytes: ...
    def pwrite(self, off: int, data: bytes | bytearray | memoryview) -> None: ...
    def fsync(self) -> None: ...


class Buf:
    __slots__ = ("dev", "offset", "size", "data", "dirty", "meta")

    def __init__(self, dev: BlockDevice, offset: int, data: bytearray, meta: bool = True) -> None:
        self.dev = dev
        self.offset = offset
        self.size = len(data)
        self.data = data
        self.dirty = False
        self.meta = meta


_RUN_MAX = 1 << 20  # the most one coalesced write-back carries


class BufCache:
    def __init__(self, mem: MemAccount) -> None:
        self.mem = mem
        # LRU, oldest first: a plain dict keeps insertion order, and a hit moves its buffer to the
        # end by taking it out and putting it back. Against an OrderedDict (which imports the
        # collections package into every command, 1.1 ms) a hit's look-up is 18 ns faster and the
        # move 8 ns slower; reclaiming goes through a list of the keys either way.
        self._bufs: dict[tuple[int, int], Buf] = {}
        self.bytes = 0
        self.dirty_bytes = 0
        self.hits = 0
        self.misses = 0
        self.writes = 0
        self.lost_writes = 0
        self._new: dict[int, set[int]] = {}
        self._checkpoint: dict[int, Callable[[], None]] = {}
        mem.add_reclaimer(self._reclaim)

    def set_checkpoint(self, dev: BlockDevice, fn: Callable[[], None] | None) -> None:
        """``fn`` brings ``dev``'s file system to a consistent state on disk (its full sync); memory
        pressure calls it instead of writing dirty metadata out of order."""
        if fn is None:
            # Leaving ordered mode must not strand the writes it deferred.
            if self._checkpoint.pop(dev.dev_id, None) is not None:
                self.flush_dev(dev)
            self._new.pop(dev.dev_id, None)
        else:
            self._checkpoint[dev.dev_id] = fn

    # ---- lookup ----------------------------------------------------------------------------------
    def _take(self, dev: BlockDevice, offset: int, size: int) -> Buf | None:
        """The cached buffer at ``offset`` if it has ``size`` bytes; a differently sized one is
        written back (if dirty) and dropped, since FFS reads a fragment run and later the full
        block at the same address."""
        key = (dev.dev_id, offset)
        bp = self._bufs.get(key)
        if bp is None:
            return None
        if bp.size != size:
            self._evict(key, bp)
            return None
        self._bufs[key] = self._bufs.pop(key)
        return bp

    def _insert(self, dev: BlockDevice, offset: int, data: bytearray, meta: bool = True) -> Buf:
        n = len(data)
        limit = self.mem.limit
        if limit is not None and self.bytes + n > limit - (limit >> 3):
            # Buffers keep to 7/8 of the limit: the rest is for what RUMP_MEMLIMIT must also cover
            # and the account does not see byte for byte (vnodes, requests in flight, allocator slack).
            self._reclaim(self.bytes + n - (limit - (limit >> 3)))
        if not self.mem.try_charge(n):
            # Nothing left to reclaim: hand out an uncached buffer; bdwrite writes it through.
            return Buf(dev, offset, data, meta)
        bp = Buf(dev, offset, data, meta)
        self._bufs[(dev.dev_id, offset)] = bp
        self.bytes += n
        return bp

    def _evict(self, key: tuple[int, int], bp: Buf) -> None:
        if bp.dirty:
            self._write(bp)
        del self._bufs[key]
        self.bytes -= bp.size
        self.mem.uncharge(bp.size)

    def _write(self, bp: Buf) -> None:
        bp.dev.pwrite(bp.offset, bp.data)
        self.writes += 1
        if bp.dirty:
            bp.dirty = False
            self.dirty_bytes -= bp.size

    # ---- the bio interface -----------------------------------------------------------------------
    def bread(self, dev: BlockDevice, offset: int, size: int, meta: bool = True) -> Buf:
        bp = self._take(dev, offset, size)
        if bp is not None:
            self.hits += 1
            return bp
        self.misses += 1
        return self._insert(dev, offset, bytearray(dev.pread(offset, size)), meta)

    def getblk(self, dev: BlockDevice, offset: int, size: int, meta: bool = True) -> Buf:
        """A buffer for a block about to be overwritten whole: no read, zero-filled if new."""
        bp = self._take(dev, offset, size)
        if bp is not None:
            bp.meta = meta
            return bp
        return self._insert(dev, offset, bytearray(size), meta)

    def brelse(self, bp: Buf) -> None:
        """Done with ``bp`` unchanged (kept cached)."""

    def bwrite(self, bp: Buf, *, barrier: bool = False) -> None:
        """Write ``bp`` now. With ``barrier`` it is also on stable storage when this returns (the
        superblock's clean flag, which must be down before any other metadata moves). On a device
        whose driver keeps the checkpoint order (see ``set_checkpoint``) a plain bwrite is a
        bdwrite: an early write would be an unordered one."""
        if bp.dev.dev_id in self._checkpoint and not barrier:
            self.bdwrite(bp)
            return
        if not bp.dirty:
            bp.dirty = True
            self.dirty_bytes += bp.size
        self._write(bp)
        if barrier:
            bp.dev.fsync()

    def bdwrite(self, bp: Buf) -> None:
        """Mark ``bp`` dirty; it reaches the host on sync or when memory is needed."""
        if (bp.dev.dev_id, bp.offset) not in self._bufs:
            # Not cached (no memory left): write it now, after a checkpoint has put everything it
            # may depend on in place.
            fn = self._checkpoint.get(bp.dev.dev_id)
            if fn is not None:
                fn()
            bp.dirty = True
            self.dirty_bytes += bp.size
            self._write(bp)
            return
        if not bp.dirty:
            bp.dirty = True
            self.dirty_bytes += bp.size

    def mark_new(self, dev: BlockDevice, offset: int) -> None:
        """The buffer at ``offset`` covers blocks allocated since the last checkpoint: nothing on
        disk points at them yet, so it is written with the data, before the metadata barrier."""
        self._new.setdefault(dev.dev_id, set()).add(offset)

    def read(self, dev: BlockDevice, offset: int, size: int) -> bytes:
        bp = self.bread(dev, offset, size)
        return bytes(bp.data)

    def read_extent(self, dev: BlockDevice, offset: int, length: int, unit: int,
                    cache: bool = True) -> bytes:
        """``length`` bytes of a physically contiguous run of ``unit``-sized blocks.

        Cached blocks (dirty ones above all) are used as they are; each gap between them is
        fetched with one host read. With ``cache`` the fetched blocks enter the cache too.
        """
        if length <= unit:
            return self.read(dev, offset, length)
        parts: list[bytes | bytearray] = []
        gap_start = -1
        pos = offset
        end = offset + length
        bufs = self._bufs
        dev_id = dev.dev_id
        while pos < end:
            bp = bufs.get((dev_id, pos))
            n = min(unit, end - pos)
            if bp is not None and bp.size == n:
                data = bytes(bp.data)  # before _fetch: its inserts may reclaim this very buffer
                if gap_start >= 0:
                    parts.append(self._fetch(dev, gap_start, pos - gap_start, unit, cache))
                    gap_start = -1
                if (dev_id, pos) in bufs:
                    bufs[dev_id, pos] = bufs.pop((dev_id, pos))
                self.hits += 1
                parts.append(data)
            elif gap_start < 0:
                gap_start = pos
            pos += n
        if gap_start >= 0:
            parts.append(self._fetch(dev, gap_start, end - gap_start, unit, cache))
        return b"".join(parts)

    def read_extent_into(self, dev: BlockDevice, offset: int, unit: int, dst: memoryview,
                         cache: bool = True) -> None:
        """``read_extent`` of ``len(dst)`` bytes into ``dst``: cached blocks are copied in, and
        each gap between them read straight into its place when it is not to be cached (one copy
        instead of a host read, a join and a copy into the caller's buffer)."""
        length = len(dst)
        if length <= unit or cache:
            dst[:] = self.read_extent(dev, offset, length, unit, cache)
            return
        preadinto = getattr(dev, "preadinto", None)  # a journal-replay overlay has only pread
        gap_start = -1
        pos = offset
        end = offset + length
        bufs = self._bufs
        dev_id = dev.dev_id
        while pos <= end:
            bp = bufs.get((dev_id, pos)) if pos < end else None
            n = min(unit, end - pos)
            if pos == end or (bp is not None and bp.size == n):
                if gap_start >= 0:
                    gap = dst[gap_start - offset:pos - offset]
                    if preadinto is not None:
                        preadinto(gap_start, gap)
                    else:
                        gap[:] = dev.pread(gap_start, len(gap))
                    self.misses += (len(gap) + unit - 1) // unit
                    gap_start = -1
                if pos == end:
                    break
                dst[pos - offset:pos - offset + n] = bp.data  # type: ignore[union-attr]
                bufs[dev_id, pos] = bufs.pop((dev_id, pos))
                self.hits += 1
            elif gap_start < 0:
                gap_start = pos
            pos += n

    def _fetch(self, dev: BlockDevice, offset: int, length: int, unit: int, cache: bool) -> bytes:
        data = dev.pread(offset, length)
        nblocks = (length + unit - 1) // unit
        self.misses += nblocks
        if cache:
            view = memoryview(data)
            for i in range(0, length, unit):
                key = (dev.dev_id, offset + i)
                old = self._bufs.get(key)
                if old is not None:
                    self._evict(key, old)
                self._insert(dev, offset + i, bytearray(view[i:i + unit]), meta=False)
        return data

    # ---- write-back and invalidation -------------------------------------------------------------
    def flush_dev(self, dev: BlockDevice, *, barrier: bool = True,
                  journal: Callable[[list[Buf]], bool] | None = None) -> None:
        """Write every dirty buffer of ``dev``: data, flush, metadata, flush (each in address order,
        one sweep of the disk). Without ``barrier`` the device is not flushed (read-only checks).

        A journaling driver passes ``journal``: it gets the metadata after the data is written and
        makes it durable in its log (its own flush covers the data too) before any of it goes
        home; it returns False when it could not, and the data barrier is then done here. What
        was logged is written home without a final flush: the journal flushes before it lets a
        transaction go (at its next commit or when it empties the log)."""
        new = self._new.pop(dev.dev_id, set())
        mine = [bp for bp in self._bufs.values() if bp.dirty and bp.dev is dev]
        if not mine:
            return
        early = [bp for bp in mine if not bp.meta or bp.offset in new]
        data = sorted(early, key=lambda b: b.offset)
        meta = sorted((bp for bp in mine if bp.meta and bp.offset not in new), key=lambda b: b.offset)
        failed: list[Buf] = []
        self._write_runs(data, failed)
        logged = bool(meta) and journal is not None and journal(meta)
        # Before metadata: a barrier, also for data the driver wrote straight through (ordered
        # devices), so that no pointer reaches the disk before what it points at.
        if meta and barrier and not logged and (data or dev.dev_id in self._checkpoint):
            dev.fsync()
        self._write_runs(meta, failed)
        if barrier and not dev.readonly and not logged:  # a journal's next commit flushes them
            dev.fsync()
        if failed:
            raise OSError(errno.EIO, f"{len(failed)} delayed write(s) lost: the device failed them")

    def _write_runs(self, bufs: list[Buf], failed: list[Buf]) -> None:
        """Write ``bufs`` (sorted by offset), each run of adjacent small buffers as one host write:
        a sync after many small files (makefs, an untar) would otherwise pay a system call per
        fragment. A run stops at ``_RUN_MAX`` bytes. A run the device fails is written again buffer
        by buffer, so that a bad sector costs the buffers on it, not its neighbours; each buffer is
        then lost or written as it would have been had it gone alone."""
        i, n = 0, len(bufs)
        while i < n:
            j, end, size = i + 1, bufs[i].offset + bufs[i].size, bufs[i].size
            while j < n and bufs[j].offset == end and size + bufs[j].size <= _RUN_MAX:
                end += bufs[j].size
                size += bufs[j].size
                j += 1
            if j - i == 1:
                self._write_or_lose(bufs[i], failed)
            else:
                run = bufs[i:j]
                try:
                    run[0].dev.pwrite(run[0].offset, b"".join(bp.data for bp in run))
                except OSError:
                    for bp in run:  # one by one: only what the device refuses alone is lost
                        self._write_or_lose(bp, failed)
                else:
                    for bp in run:
                        self.writes += 1
                        if bp.dirty:
                            bp.dirty = False
                            self.dirty_bytes -= bp.size
            i = j

    def _write_or_lose(self, bp: Buf, failed: list[Buf]) -> None:
        """Write back one buffer; on a device error the write is lost (as NetBSD's biodone with
        B_ERROR): the buffer leaves the cache, the loss is counted and reported by the caller."""
        try:
            self._write(bp)
        except OSError:
            self._lose(bp, failed)

    def _lose(self, bp: Buf, failed: list[Buf]) -> None:
        failed.append(bp)
        self.lost_writes += 1
        self.invalidate(bp.dev, bp.offset, 1, 1)

    def sync_all(self) -> None:
        devs = {id(bp.dev): bp.dev for bp in self._bufs.values() if bp.dirty}
        for dev in devs.values():
            self.flush_dev(dev)

    def invalidate_dev(self, dev: BlockDevice) -> None:
        """Drop every buffer of ``dev`` (after flush, or to forget a detached device)."""
        for key in [k for k, bp in self._bufs.items() if bp.dev is dev]:
            bp = self._bufs.pop(key)
            if bp.dirty:
                self.dirty_bytes -= bp.size
            self.bytes -= bp.size
            self.mem.uncharge(bp.size)

    def invalidate(self, dev: BlockDevice, offset: int, size: int, step: int = 512) -> None:
        """Forget the buffers that start inside ``[offset, offset+size)`` (at multiples of
        ``step``, the driver's fragment size) without writing them: freed blocks must not be
        written back over their next owner."""
        bufs = self._bufs
        for off in range(offset, offset + size, step):
            bp = bufs.pop((dev.dev_id, off), None)
            if bp is None:
                continue
            if bp.dirty:
                self.dirty_bytes -= bp.size
            self.bytes -= bp.size
            self.mem.uncharge(bp.size)

    def _reclaim(self, need: int) -> int:
        """MemAccount's reclaimer: clean buffers first (oldest first), then dirty data, then — through
        each device's checkpoint, so that order on disk is kept — dirty metadata."""
        freed = 0
        for dirty_ok in (False, True):
            for key in list(self._bufs):
                if freed >= need:
                    return freed
                bp = self._bufs[key]
                if (bp.dirty and not dirty_ok) or (bp.dirty and bp.meta):
                    continue
                self._evict(key, bp)
                freed += bp.size
        for dev_id in {bp.dev.dev_id for bp in self._bufs.values() if bp.dirty}:
            if freed >= need:
                break
            fn = self._checkpoint.get(dev_id)
            if fn is not None:
                fn()
            else:
                for bp in [b for b in self._bufs.values() if b.dirty and b.dev.dev_id == dev_id]:
                    self._write(bp)
            for key in [k for k, b in self._bufs.items() if k[0] == dev_id and not b.dirty]:
                if freed >= need:
                    break
                bp = self._bufs[key]
                self._evict(key, bp)
                freed += bp.size
        return freed
