"""What the container libraries keep in memory, the knobs that bound it, and the estimate charged.

A container decoded by a library (``p2k.hyper.containers``) holds memory the kernel never sees:
an index, decoder states, caches of allocation tables. Under RUMP_MEMLIMIT that memory must count,
so each opener sets the library's own knobs to keep it small and states, as ``FileObjBackend.
resident``, what stays resident while the image is open; the kernel's account is charged that much
when the image is registered (``Backend.attach_mem``). None of it can be handed back on demand
(the libraries have no such call), so it is charged once, not reclaimed.

The per-entry costs below were measured, not derived: the Python heap held (``tracemalloc``) after
reading one sector per table or block across large sparse images made by ``qemu-img`` (an 8 GiB
VMDK and VHD with every table allocated, a 128 GiB VHDX). For the C libraries, the RSS a process
kept after opening and reading a 290 MiB disk once glibc had handed back what was free
(``malloc_trim``): gzip 3.2 MiB against 4.3 estimated, xz with four 1 MiB-dictionary decoders
4.2 against 4.3.

Not counted, because it does not stay or is not the reader's: the C allocator's slack after
large transient buffers (glibc kept 2-12 MiB in those runs); indexed_gzip's scratch buffer of
four times the spacing (16 MiB), allocated and freed by each index extension and seek, which sets
a gzip image's peak RSS (bench/bench_containers.py ``--memory``: 33 MiB for the 256 MiB file,
47 MiB before the read buffer was bounded); python-xz's output of a read that starts deep in a
block (up to the block's size, freed at once); fsspec's read-ahead block for an image behind a URL
(256 KiB, ``p2k.urls``).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, BinaryIO

READER_SHARE = 4
"""What a reader may trade memory for speed with (xz's decoders) is sized to this fraction of the
kernel's limit when the image is registered; the buffer cache keeps the rest."""

# ---- gzip (indexed_gzip) -------------------------------------------------------------------------
GZIP_SPACING = 4 << 20
"""Bytes between restart points: each point keeps a 32 KiB window, so 8 MiB of index per GiB of
disk; a read decompresses 2 MiB on average to reach its offset. A wider spacing would shrink the
index but slow every seek, and the spacing must be chosen before the size is known."""
GZIP_WINDOW = 32 << 10
"""zlib's window, stored with each restart point (indexed_gzip's ``window_size`` default)."""
GZIP_READBUF = 1 << 20
"""Compressed bytes read from the file at once (indexed_gzip's ``readbuf_size``, its default)."""
GZIP_BUFFER = 1 << 20
"""The ``io.BufferedReader`` over the decoder. indexed_gzip's default is four times the spacing,
16 MiB; 1 MiB read a 256 MiB file through p2k as fast (2.1-2.4 GB/s against 1.6 at 16 MiB)."""
GZIP_INFLATE = 48 << 10
"""zlib's inflate state and its own 32 KiB window while a read is decompressing."""


def gzip_options() -> dict[str, int]:
    """The ``IndexedGzipFile`` arguments that bound what it holds."""
    return {"spacing": GZIP_SPACING, "window_size": GZIP_WINDOW, "readbuf_size": GZIP_READBUF,
            "buffer_size": GZIP_BUFFER}


def gzip_resident(stream: Any) -> int:
    """The index (one window per restart point, counted once the stream has been indexed) and the
    two read buffers."""
    points = sum(1 for _ in stream.seek_points())
    return points * (GZIP_WINDOW + 64) + GZIP_READBUF + GZIP_BUFFER + GZIP_INFLATE


# ---- xz (python-xz) ------------------------------------------------------------------------------
XZ_DECODERS = 8
"""Blocks decoded at once, at most: python-xz keeps a decoder per block it has read (8 by default)
so that reads alternating between blocks do not restart one. Sequential reads use one; the file
system's metadata reads elsewhere need a few more: the bench's 256 MiB file read 5% slower with 4
(690-705 MB/s against 730-760) and a third slower with 1. Under a limit, as many as fit in
``1 / READER_SHARE`` of it (``xz_fit``)."""
XZ_STATE = 64 << 10
"""A decoder's fixed part: LZMA probability tables, and python-xz's 8 KiB input reads."""
LZMA2_DICT_MAX = 1536 << 20
"""The largest dictionary LZMA2 allows, taken when the first block's header cannot be read."""


def xz_strategy() -> Any:
    """python-xz's block-read strategy, keeping ``XZ_DECODERS`` decoders at most."""
    from xz.strategy import RollingBlockReadStrategy

    return RollingBlockReadStrategy(max_block_read_nb=XZ_DECODERS)


def xz_decoder_bytes(fh: BinaryIO, stream: Any) -> tuple[int, int]:
    """How many decoders can be live (one per block, ``XZ_DECODERS`` at most) and what each holds:
    its dictionary holds at most what it has decoded, the smaller of the dictionary size (from the
    first block's header) and the largest block."""
    bounds = list(stream.block_boundaries) + [len(stream)]
    largest = max((b - a for a, b in zip(bounds, bounds[1:], strict=False)), default=0)
    return min(XZ_DECODERS, len(bounds) - 1), min(lzma2_dict_size(fh), largest) + XZ_STATE


def xz_fit(strategy: Any, most: int, each: int) -> Callable[[int], int]:
    """``FileObjBackend.fit`` for an xz image: keep as many decoders as ``budget`` holds (one at
    least, ``most`` at most), ending the oldest at once if more are live, and say what they hold."""
    def fit(budget: int) -> int:
        keep = max(1, min(most, budget // each))
        strategy.max_block_read_nb = keep
        reads = strategy.block_reads
        for block in sorted(reads, key=reads.__getitem__)[:max(0, len(reads) - keep)]:
            block.clear()  # python-xz's own call: drops the decoder, and on_delete forgets it
        return keep * each
    return fit


def lzma2_dict_size(fh: BinaryIO) -> int:
    """The LZMA2 dictionary size of the first block of the xz file ``fh`` (.xz file format 1.1.0,
    3.1 block header and 5.3.1 LZMA2). The header's fields are variable-length integers, so this
    is read field by field rather than declared as a fixed record."""
    where = fh.tell()
    try:
        fh.seek(12)  # after the stream header
        head = fh.read(1024)
    finally:
        fh.seek(where)
    if not head or head[0] == 0:  # no block: the index follows at once
        return 0
    header = head[:(head[0] + 1) * 4]
    if len(header) < 2:
        return LZMA2_DICT_MAX
    flags = header[1]
    pos = 2
    for present in (0x40, 0x80):  # compressed size, uncompressed size
        if flags & present:
            _, pos = _varint(header, pos)
    for _ in range((flags & 3) + 1):
        fid, pos = _varint(header, pos)
        nprops, pos = _varint(header, pos)
        props = header[pos:pos + nprops]
        pos += nprops
        if fid == 0x21 and len(props) == 1 and (props[0] & 0x3F) <= 40:
            bits = props[0] & 0x3F
            return 0xFFFFFFFF if bits == 40 else (2 | (bits & 1)) << (bits // 2 + 11)
    return LZMA2_DICT_MAX


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data) and shift < 63:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return value, pos


# ---- dissect.hypervisor --------------------------------------------------------------------------
TABLE_ENTRY_BYTES = 70
"""Python heap per cached table entry in dissect.hypervisor (a list of ints from dissect.cstruct):
128 VMDK grain tables of 512 entries held 4.4 MiB."""
VMDK_TABLES = 128
"""Grain tables dissect.hypervisor caches per sparse extent (fixed in its code: no knob)."""
BAT_CACHE = 4096
"""Block-table entries dissect.hypervisor's VHD and VHDX readers cache (fixed in its code: no knob)."""
VHD_ENTRY_BYTES = 152
"""Per cached VHD entry: 4096 held 608 KiB."""
VHDX_ENTRY_BYTES = 460
"""Per cached VHDX entry (a dissect.cstruct object): 4096 held 1.8 MiB."""
QCOW2_TABLE_CACHE = 4 << 20
"""Bytes of L2 tables dissect's qcow2 reader may keep: it caches 128 tables, 70 MiB with 64 KiB
clusters, so its cache is made anew with room for this much (what p2k's own reader keeps)."""


def vmdk_resident(disk: Any) -> int:
    """Each sparse extent's grain directory (read whole at open) and its table cache; a snapshot's
    parent disk counts too."""
    total = 0
    while disk is not None:
        for extent in getattr(disk, "disks", ()):
            gd = getattr(extent, "_grain_directory_size", 0)
            gt = getattr(extent, "_grain_table_size", 0)
            total += (gd + min(VMDK_TABLES, gd) * gt) * TABLE_ENTRY_BYTES
        disk = getattr(disk, "parent", None)
    return total


def vhd_resident(disk: Any) -> int:
    """The block-table cache when full, or the whole table if smaller (a fixed VHD has none)."""
    bat = getattr(getattr(disk, "disk", None), "bat", None)
    entries = int(getattr(bat, "max_entries", 0)) if bat is not None else 0
    return min(BAT_CACHE, entries) * VHD_ENTRY_BYTES


def vhdx_resident(disk: Any) -> int:
    """The block-table cache when full, or the whole table if smaller."""
    entries = int(getattr(getattr(disk, "bat", None), "entry_count", BAT_CACHE))
    return min(BAT_CACHE, entries) * VHDX_ENTRY_BYTES


def bound_dissect_qcow2(disk: Any) -> int:
    """Shrink dissect's qcow2 L2-table cache to ``QCOW2_TABLE_CACHE`` (``functools.lru_cache``'s
    ``__wrapped__`` gives the uncached method back) and return what it may then hold."""
    from functools import lru_cache

    entries = max(1, int(disk.l2_size) * (int(getattr(disk, "_l2_entry_size", 8)) // 8))
    table = entries * TABLE_ENTRY_BYTES
    tables = max(1, QCOW2_TABLE_CACHE // table)
    method = getattr(disk.l2_table, "__wrapped__", None)
    if method is not None:
        disk.l2_table = lru_cache(tables)(method)
    return tables * table
