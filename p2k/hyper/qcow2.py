"""A qcow2 reader on p2k's fast path: guest ranges become host runs read straight into the caller's
buffer.

Measured first (bench/bench_containers.py): through ``dissect.hypervisor``'s stream, a sequential
file read from a qcow2 disk ran at about a quarter of the raw image's speed — every 64 KiB cluster
is a Python-level read, and the bytes are joined and copied twice. This reader maps each request
through the L1/L2 tables, merges clusters that are adjacent in the host file into one
``os.preadv`` into the destination buffer, and copies nothing for them; compressed clusters are
inflated (raw deflate), zero and unallocated clusters come from the backing image or are zeros.

It covers qcow2 v2 and v3 with zlib compression and a backing image, which is what ``qemu-img``
makes by default. Anything else — extended L2 entries (subclusters), an external data file, zstd,
encryption — makes ``open_qcow2`` return None, and the caller uses ``dissect.hypervisor`` instead.
Every offset read from the image is checked against the file before use; a hostile table gives
EIO, never a read elsewhere or an unbounded allocation.

Memory: the L2 tables read are cached (one cluster each), at most ``L2_CACHE_BYTES`` per image in
a backing chain. Once a kernel registers the image (``attach_mem``), every cached table is charged
to the kernel's ``MemAccount`` and the cache is one of its reclaimers: under RUMP_MEMLIMIT the
buffer cache and the L2 tables compete for one budget, and the L2 cache gives its oldest tables
back when asked, down to the newest one (the one a read in progress is using).
"""

from __future__ import annotations

import errno
import os
import sys
import threading
import zlib
from array import array

from p2k.hyper.backend import Backend
from p2k.ondisk import U32, U64, Record

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from p2k.hyper.mem import MemAccount

QCOW2_MAGIC = 0x514649FB
INCOMPAT_DIRTY = 1 << 0
INCOMPAT_CORRUPT = 1 << 1
SUPPORTED_INCOMPAT = INCOMPAT_DIRTY  # a dirty bit only means refcounts may be stale: reads are fine
OFFSET_MASK = 0x00FFFFFFFFFFFE00
L2_COMPRESSED = 1 << 62
L2_ZERO = 1
MAX_L1_BYTES = 32 << 20
L2_CACHE_BYTES = 4 << 20
"""Cached L2 tables, at most this many bytes per image (a table is one cluster: 64 KiB by default,
up to 2 MiB, so at least one table); under a kernel's account, less when the account asks."""


class Qcow2Header(Record):
    """The big-endian qcow2 header: the 72 bytes of version 2 (version 3 adds feature words)."""

    magic: U32
    version: U32
    backing_file_offset: U64
    backing_file_size: U32
    cluster_bits: U32
    size: U64
    crypt_method: U32
    l1_size: U32
    l1_table_offset: U64
    refcount_table_offset: U64
    refcount_table_clusters: U32
    nb_snapshots: U32
    snapshots_offset: U64


class Qcow2Features(Record):
    """Version 3's additions after the version 2 header."""

    incompatible_features: U64
    compatible_features: U64
    autoclear_features: U64
    refcount_order: U32
    header_length: U32


def read_header(raw: Backend) -> tuple[Qcow2Header, int] | None:
    """The header and its incompatible-feature word, or None if this reader cannot take the image."""
    head = raw.pread(0, Qcow2Header.SIZE + Qcow2Features.SIZE + 1)
    if len(head) < Qcow2Header.SIZE:
        return None
    hdr = Qcow2Header.decode(head, 0, ">")
    incompat = 0
    if hdr.version >= 3:
        if len(head) < Qcow2Header.SIZE + Qcow2Features.SIZE:
            return None
        feats = Qcow2Features.decode(head, Qcow2Header.SIZE, ">")
        incompat = feats.incompatible_features
        ext = Qcow2Header.SIZE + Qcow2Features.SIZE  # the compression-type byte follows, when the header has it
        if feats.header_length > ext and len(head) > ext and head[ext] != 0:  # zlib (0) only
            return None
    if hdr.magic != QCOW2_MAGIC or hdr.version not in (2, 3) or hdr.crypt_method != 0:
        return None
    if incompat & ~SUPPORTED_INCOMPAT or not 9 <= hdr.cluster_bits <= 21:
        return None
    return hdr, incompat


class Qcow2Backend(Backend):
    """Read-only guest view of a qcow2 image (see the module docstring)."""

    kind = "qcow2"
    readonly = True

    def __init__(self, raw: Backend, hdr: Qcow2Header, backing: Backend | None) -> None:
        self.raw = raw
        self.name = raw.name
        self.backing = backing
        self.hdr = hdr
        self.cbits = hdr.cluster_bits
        self.csize = 1 << hdr.cluster_bits
        self.l2_entries = self.csize // 8
        self.file_size = raw.size()
        self._size = hdr.size
        self._lock = threading.Lock()
        self._l2: dict[int, array[int]] = {}  # oldest first: a plain dict keeps insertion order
        self._l2_max = max(1, L2_CACHE_BYTES // self.csize)
        self._mem: MemAccount | None = None
        self.l2_loads = 0
        """L2 tables read from the image so far (a table read again after eviction counts again)."""
        self.l1 = self._table(hdr.l1_table_offset, hdr.l1_size, MAX_L1_BYTES)
        self.compressed_shift = 62 - (hdr.cluster_bits - 8)

    def _table(self, offset: int, count: int, limit: int) -> array[int]:
        nbytes = count * 8
        if nbytes > limit or offset % 8 or offset + nbytes > self.file_size:
            raise OSError(errno.EINVAL, f"{self.name}: qcow2 table at {offset} ({count} entries) is not in the file")
        table = array("Q")
        table.frombytes(self.raw.pread(offset, nbytes))
        if sys.byteorder == "little":
            table.byteswap()
        return table

    def size(self) -> int:
        return self._size

    def _l2_entry(self, cluster: int) -> int:
        l1_index, l2_index = divmod(cluster, self.l2_entries)
        if l1_index >= len(self.l1):
            return 0
        l2_off = self.l1[l1_index] & OFFSET_MASK
        if not l2_off:
            return 0
        with self._lock:
            table = self._l2.get(l2_off)
        if table is None:
            table = self._load_l2(l2_off)
        return int(table[l2_index])

    def _load_l2(self, l2_off: int) -> array[int]:
        """Read an L2 table and cache it. Without an account, the oldest table makes room once the
        fixed cap is reached. With one, a new table is charged first, outside the lock: the charge
        may run the reclaimers, and this cache's own takes the lock (the buffer cache's may write
        another device back, which must not wait on this image either). When the account has no
        room even after reclaiming, the new table takes the place of this cache's oldest; with none
        to trade it serves this lookup only (correct, slower: the table is read again next time)."""
        table = self._table(l2_off, self.l2_entries, self.csize)
        self.l2_loads += 1
        mem = self._mem
        grow = len(self._l2) < self._l2_max and (mem is None or mem.try_charge(self.csize))
        with self._lock:
            cached = self._l2.get(l2_off)
            if cached is not None or (grow and len(self._l2) >= self._l2_max):  # another thread was quicker
                if grow and mem is not None:
                    mem.uncharge(self.csize)
                if cached is not None:
                    return cached
                grow = False
            if not grow:
                if not self._l2:
                    return table
                self._l2.pop(next(iter(self._l2)))
            self._l2[l2_off] = table
        return table

    @property
    def l2_cached_bytes(self) -> int:
        """Bytes of L2 tables held now (what this image has charged, once attached)."""
        return len(self._l2) * self.csize

    def attach_mem(self, mem: MemAccount) -> None:
        """Charge the L2 cache to ``mem`` from now on, and offer it as a reclaimer; the tables read
        before (while the image was being resolved) are dropped rather than charged after the fact,
        so that the cache and the charge agree from the first table. A backing image is attached
        too: each image of a chain has its own cache."""
        if self._mem is not None:
            return
        with self._lock:
            self._l2.clear()
            self._mem = mem
        mem.add_reclaimer(self._reclaim)
        if self.backing is not None:
            self.backing.attach_mem(mem)

    def _reclaim(self, need: int) -> int:
        """The account's reclaimer: oldest tables first, never the newest (a read in progress
        looks it up cluster by cluster; without it every lookup would read the table again)."""
        freed = 0
        with self._lock:
            while freed < need and len(self._l2) > 1:
                self._l2.pop(next(iter(self._l2)))
                freed += self.csize
        if freed and self._mem is not None:
            self._mem.uncharge(freed)
        return freed

    def pread(self, off: int, n: int) -> bytes:
        n = max(0, min(n, self._size - off))
        host = self._contiguous(off, n)
        if host is not None:  # the common case: one host run, one os.pread, no extra copy
            data = self.raw.pread(host, n)
            return data if len(data) == n else data + bytes(n - len(data))
        buf = bytearray(n)
        self.preadinto(off, memoryview(buf))
        return bytes(buf)

    def _contiguous(self, off: int, n: int) -> int | None:
        """Where ``n`` guest bytes from ``off`` start in the file, if they are one run of plain
        clusters inside it; None otherwise (compressed, zero or unallocated clusters, or a gap)."""
        start = None
        pos = 0
        while pos < n:
            cluster, within = divmod(off + pos, self.csize)
            entry = self._l2_entry(cluster)
            host = entry & OFFSET_MASK
            if entry & (L2_COMPRESSED | L2_ZERO) or not host:
                return None
            if start is None:
                start = host + within
            elif start + pos != host + within:
                return None
            pos += self.csize - within
        if start is None or start + n > self.file_size:
            return None
        return start

    def preadinto(self, off: int, buf: memoryview) -> int:
        n = max(0, min(len(buf), self._size - off))
        pos = 0
        run_host = run_start = run_len = 0  # a pending run of host-contiguous clusters
        while pos < n:
            guest = off + pos
            cluster, within = divmod(guest, self.csize)
            take = min(self.csize - within, n - pos)
            entry = self._l2_entry(cluster)
            host = entry & OFFSET_MASK
            if not entry & L2_COMPRESSED and host and not entry & L2_ZERO:
                if run_len and run_host + run_len == host + within:
                    run_len += take
                else:
                    self._flush_run(buf, run_start, run_host, run_len)
                    run_host, run_start, run_len = host + within, pos, take
            else:
                self._flush_run(buf, run_start, run_host, run_len)
                run_len = 0
                self._other(entry, guest, within, buf[pos:pos + take])
            pos += take
        self._flush_run(buf, run_start, run_host, run_len)
        return n

    def _flush_run(self, buf: memoryview, start: int, host: int, length: int) -> None:
        if not length:
            return
        if host + length > self.file_size:
            raise OSError(errno.EIO, f"{self.name}: qcow2 cluster at {host} lies past the end of the file")
        got = self.raw.preadinto(host, buf[start:start + length])
        if got < length:
            buf[start + got:start + length] = bytes(length - got)

    def _other(self, entry: int, guest: int, within: int, out: memoryview) -> None:
        """A compressed, zero or unallocated cluster's bytes."""
        if entry & L2_COMPRESSED:
            out[:] = self._inflate(entry)[within:within + len(out)]
        elif entry & L2_ZERO or self.backing is None or guest >= self.backing.size():
            out[:] = bytes(len(out))
        else:
            got = self.backing.preadinto(guest, out)
            if got < len(out):
                out[got:] = bytes(len(out) - got)

    def _inflate(self, entry: int) -> bytes:
        desc = entry & ~(3 << 62)
        host = desc & ((1 << self.compressed_shift) - 1)
        nbytes = ((desc >> self.compressed_shift) + 1) * 512 - (host & 511)
        if host + nbytes > self.file_size:
            nbytes = self.file_size - host
        if nbytes <= 0:
            raise OSError(errno.EIO, f"{self.name}: compressed qcow2 cluster at {host} lies past the end")
        d = zlib.decompressobj(-12)
        try:
            data = d.decompress(self.raw.pread(host, nbytes), self.csize)
        except zlib.error as e:
            raise OSError(errno.EIO, f"{self.name}: bad compressed qcow2 cluster at {host}: {e}") from None
        return data + bytes(self.csize - len(data))

    def close(self) -> None:
        with self._lock:
            mem, self._mem = self._mem, None
            held = self.l2_cached_bytes
            self._l2.clear()
        if mem is not None:
            mem.remove_reclaimer(self._reclaim)
            mem.uncharge(held)
        self.raw.close()
        if self.backing is not None:
            self.backing.close()
            self.backing = None


def backing_name(raw: Backend, hdr: Qcow2Header) -> str | None:
    """The backing file's name as stored in the image, or None."""
    if not hdr.backing_file_offset:
        return None
    if hdr.backing_file_size > 1023 or hdr.backing_file_offset + hdr.backing_file_size > raw.size():
        raise OSError(errno.EINVAL, f"{raw.name}: qcow2 backing-file name is not in the file")
    return raw.pread(hdr.backing_file_offset, hdr.backing_file_size).decode("utf-8", "replace")


def backing_path(image: str, name: str) -> str:
    return name if os.path.isabs(name) else os.path.join(os.path.dirname(image) or ".", name)
