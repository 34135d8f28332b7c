"""NetBSD's WAPBL journal (``log`` mounts): the on-disk format, finding the log, and replay.

Facts from NetBSD's sys/sys/wapbl_replay.h, sys/kern/vfs_wapbl.c (the replay half) and
sys/ufs/ffs/ffs_wapbl.c. The log is a run of ``count`` blocks of ``blksz`` bytes starting at
block ``addr`` of the device (both layouts: an in-file-system journal inode with ``SF_LOG``, or
the space after the file system). Its first two log-device blocks hold two commit headers,
written alternately (generation ``g`` goes to slot ``g % 2``); the newer generation describes the
log. Between ``wc_tail`` and ``wc_head`` of the circular area lie records, each starting on a
log-device block: a block list (followed by a copy of every listed block), a revocation list
(blocks freed since: their older copies must not be written home), and an inode list (inodes
allocated but unlinked — files unlinked while open — that the replaying mount frees).

Replay keeps, for every file-system device block (``1 << wc_fs_dev_bshift`` bytes) named by a
block list, the log position of its *last* copy, and drops blocks a later revocation names; the
result is laid over reads (a read-only mount, ``fsck -n``) or written home (read-write, ``fsck
-y``). NetBSD computes no checksum (``wc_checksum`` stays 0); what protects a replay is the
atomic commit header and the record framing, so this module checks every length, count and
address against the log and the device and refuses the log with a one-line reason otherwise.

Byte order: NetBSD writes the superblock's ``fs_journal_*`` fields and the whole log in the
writing CPU's order, not the file system's, so both orders are tried and the one giving a sane
journal wins. Where this is stricter than NetBSD: a commit header that does not pass the checks
is ignored (NetBSD takes the second slot's generation even from a torn header), and a full log
(``head == tail != 0``) is walked once round instead of being taken for empty.
"""

from __future__ import annotations

import bisect
import errno
import struct

from p2k.fs.ffs.fs import Superblock
from p2k.ondisk import I32, I64, U32, U64, Annotated, Fmt, Record
from p2k.slotted import Slotted

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from collections.abc import Callable

    from p2k.vfs.bufcache import BlockDevice

WAPBL_WC_HEADER = 0x5741424C  # "WABL"
WAPBL_WC_INODES = WAPBL_WC_HEADER + 1
WAPBL_WC_REVOCATIONS = WAPBL_WC_HEADER + 2
WAPBL_WC_BLOCKS = WAPBL_WC_HEADER + 3
UFS_WAPBL_VERSION = 1
JOURNALLOC_END_PARTITION = 1
JOURNALLOC_IN_FILESYSTEM = 2
SF_LOG = 0x00400000  # the journal inode's di_flags bit
DEV_BSIZE = 512
MAXBSIZE = 65536


class WcHeader(Record):
    """``struct wapbl_wc_header``: a commit header (one per slot, one log-device block each)."""

    wc_type: U32
    wc_len: I32
    wc_checksum: U32
    wc_generation: U32
    wc_fsid: Annotated[list[int], Fmt("2i")]
    wc_time: U64
    wc_timensec: U32
    wc_version: U32
    wc_log_dev_bshift: U32
    wc_fs_dev_bshift: U32
    wc_head: I64
    wc_tail: I64
    wc_circ_off: I64
    wc_circ_size: I64


class WcList(Record):
    """The head shared by ``wapbl_wc_blocklist`` (count, unused) and ``wapbl_wc_inodelist``
    (count, clear); the entries follow it."""

    wc_type: U32
    wc_len: I32
    wc_count: I32
    wc_flag: I32  # wc_unused in a block list, wc_clear in an inode list


class WcBlock(Record):
    """One entry of a block or revocation list: a run of ``wc_dlen`` bytes at DEV_BSIZE
    address ``wc_daddr``."""

    wc_daddr: I64
    wc_unused: I32
    wc_dlen: I32


class WcInode(Record):
    """One entry of an inode list."""

    wc_inumber: U32
    wc_imode: U32


class LogError(Exception):
    """The log cannot be replayed; the message is the one-line reason."""


class JournalLoc(Slotted):
    """Where the superblock says the log is, decoded in the order that made sense."""

    __slots__ = ("location", "addr", "count", "blksz", "ino", "flags", "endian")
    location: int
    addr: int
    count: int
    blksz: int
    ino: int
    flags: int
    endian: str

    def __init__(self, location: int, addr: int, count: int, blksz: int, ino: int, flags: int, endian: str) -> None:
        self.location = location
        self.addr = addr
        self.count = count
        self.blksz = blksz
        self.ino = ino
        self.flags = flags
        self.endian = endian

    @property
    def offset(self) -> int:
        return self.addr * self.blksz

    @property
    def size(self) -> int:
        return self.count * self.blksz


_JFIELDS = ("fs_journal_flags", "fs_journal_addr", "fs_journal_count", "fs_journal_blksz", "fs_journal_ino")


def _swapped(value: int, width: int) -> int:
    return int.from_bytes(value.to_bytes(width, "little"), "big")


def journal_locations(fs: Superblock) -> list[JournalLoc]:
    """The superblock's journal fields read in both byte orders, the file system's first."""
    vals = {n: getattr(fs, n) for n in _JFIELDS}
    endian = fs.endian
    loc = fs.fs_journal_location
    mine = JournalLoc(loc, vals["fs_journal_addr"], vals["fs_journal_count"], vals["fs_journal_blksz"],
                      vals["fs_journal_ino"], vals["fs_journal_flags"], endian)
    addr, count, blksz, ino = (_swapped(vals[n], 8) for n in _JFIELDS[1:])
    other = JournalLoc(loc, addr, count, blksz, ino, _swapped(vals["fs_journal_flags"], 4),
                       ">" if endian == "<" else "<")
    return [mine, other]


def _sane(j: JournalLoc, devsize: int) -> bool:
    b = j.blksz
    return (j.location in (JOURNALLOC_END_PARTITION, JOURNALLOC_IN_FILESYSTEM)
            and DEV_BSIZE <= b <= MAXBSIZE and not b & (b - 1)
            and j.offset + max(j.size, 2 * b) <= devsize)


def find_log(fs: Superblock, devsize: int) -> JournalLoc:
    """The log the superblock describes (``wapbl_log_position`` for an existing log)."""
    if fs.fs_journal_version != UFS_WAPBL_VERSION:
        raise LogError(f"journal version {fs.fs_journal_version} unknown")
    for j in journal_locations(fs):
        if _sane(j, devsize):
            return j
    raise LogError(f"journal location {fs.fs_journal_location} with no sane address, size "
                   "and block size in either byte order")


class Replay(Slotted):
    """A parsed log: the newer commit header, and what replaying it means."""

    __slots__ = ("loc", "endian", "header", "pread", "blocks", "inodes", "transactions", "records", "_keys")
    loc: JournalLoc
    endian: str
    header: WcHeader
    pread: Callable[[int, int], bytes]
    blocks: dict[int, int]  # device byte offset -> circ offset
    inodes: list[tuple[int, int]]  # (ino, mode) to free
    transactions: int
    records: int
    _keys: list[int]

    def __init__(self, loc: JournalLoc, endian: str, header: WcHeader, pread: Callable[[int, int], bytes]) -> None:
        self.loc = loc
        self.endian = endian
        self.header = header
        self.pread = pread
        self.blocks = {}
        self.inodes = []
        self.transactions = 0
        self.records = 0
        self._keys = []

    @property
    def empty(self) -> bool:
        return self.header.wc_head == 0 and self.header.wc_tail == 0

    @property
    def fsblklen(self) -> int:
        return 1 << self.header.wc_fs_dev_bshift

    @property
    def used(self) -> int:
        h = self.header
        if h.wc_head == 0 and h.wc_tail == 0:
            return 0
        d = h.wc_head - h.wc_tail
        return d if d > 0 else d + h.wc_circ_size

    # ---- the circular area -------------------------------------------------------------------
    def circ_read(self, off: int, n: int) -> tuple[bytes, int]:
        """``n`` bytes from circular offset ``off`` (wrapping), and the offset after them."""
        h = self.header
        end = h.wc_circ_off + h.wc_circ_size
        base = self.loc.offset
        first = min(n, end - off)
        data = self.pread(base + off, first)
        if first < n:
            data += self.pread(base + h.wc_circ_off, n - first)
            off = h.wc_circ_off + n - first
        else:
            off += n
        if off >= end:
            off = h.wc_circ_off
        return data, off

    def advance(self, off: int, n: int) -> int:
        h = self.header
        end = h.wc_circ_off + h.wc_circ_size
        off += n
        while off >= end:
            off -= h.wc_circ_size
        return off

    # ---- what replay gives ---------------------------------------------------------------------
    def block(self, devoff: int) -> bytes:
        return self.circ_read(self.blocks[devoff], self.fsblklen)[0]

    def patch(self, off: int, buf: bytearray) -> None:
        """Lay the replayed blocks over ``buf``, which holds the device's bytes at ``off``."""
        if not self._keys:
            return
        step = self.fsblklen
        i = bisect.bisect_left(self._keys, off - step + 1)
        end = off + len(buf)
        keys = self._keys
        while i < len(keys) and keys[i] < end:
            k = keys[i]
            data = self.block(k)
            lo, hi = max(k, off), min(k + step, end)
            buf[lo - off:hi - off] = data[lo - k:hi - k]
            i += 1

    def write_home(self, pwrite: Callable[[int, bytes], None]) -> None:
        """``wapbl_replay_write``: every replayed block to its place, in device order, runs of
        adjacent blocks in one write each."""
        step = self.fsblklen
        run: list[bytes] = []
        start = -1
        for k in self._keys:
            if run and k != start + step * len(run):
                pwrite(start, b"".join(run))
                run = []
            if not run:
                start = k
            run.append(self.block(k))
        if run:
            pwrite(start, b"".join(run))

    def empty_header(self) -> tuple[int, bytes]:
        """(device offset, bytes) of the commit header that empties the log: the next
        generation, in its slot, with head = tail = 0 (what a log mount's clean stop leaves)."""
        h = self.header
        gen = (h.wc_generation + 1) & 0xFFFFFFFF
        new = WcHeader(**{**h.__dict__, "wc_generation": gen, "wc_head": 0, "wc_tail": 0})
        logblk = 1 << h.wc_log_dev_bshift
        raw = new.encode(self.endian).ljust(logblk, b"\0")
        return self.loc.offset + (gen % 2) * logblk, raw


# ---- reading the log -------------------------------------------------------------------------------
def _header_problem(h: WcHeader, loc: JournalLoc) -> str | None:
    logblk = 1 << h.wc_log_dev_bshift if h.wc_log_dev_bshift < 17 else 0
    if h.wc_type != WAPBL_WC_HEADER:
        return "bad magic"
    if h.wc_head == 0 and h.wc_tail == 0:
        return None  # an empty log: nothing else of it is used
    if h.wc_version != 1:
        return f"version {h.wc_version}"
    if logblk != loc.blksz or not 9 <= h.wc_fs_dev_bshift <= 16:
        return f"block shifts {h.wc_log_dev_bshift}/{h.wc_fs_dev_bshift}"
    if h.wc_len != logblk:
        return f"length {h.wc_len}"
    end = h.wc_circ_off + h.wc_circ_size
    if (h.wc_circ_off != 2 * logblk or h.wc_circ_size <= 0 or end > loc.size
            or h.wc_circ_size % logblk):
        return f"circular area {h.wc_circ_off}+{h.wc_circ_size} outside the log"
    for name, v in (("head", h.wc_head), ("tail", h.wc_tail)):
        if v and not (h.wc_circ_off <= v < end and v % logblk == 0):
            return f"{name} {v} outside the circular area"
    if (h.wc_head == 0) != (h.wc_tail == 0):
        return "only one of head and tail is zero"
    return None


def read_header(loc: JournalLoc, pread: Callable[[int, int], bytes]) -> tuple[WcHeader, str]:
    """The newer of the two commit headers that pass the checks, and the log's byte order."""
    raw = pread(loc.offset, 2 * loc.blksz)
    best: tuple[WcHeader, str] | None = None
    problems = []
    for slot in (0, 1):
        off = slot * loc.blksz
        endian = "<" if struct.unpack_from("<I", raw, off)[0] == WAPBL_WC_HEADER else ">"
        h = WcHeader.decode(raw, off, endian)
        why = _header_problem(h, loc)
        if why is not None:
            problems.append(f"header {slot}: {why}")
            continue
        if best is None or h.wc_generation > best[0].wc_generation:
            best = (h, endian)
    if best is None:
        raise LogError("no valid commit header (" + "; ".join(problems) + ")")
    return best


def open_log(fs: Superblock, pread: Callable[[int, int], bytes], devsize: int, maxino: int) -> Replay:
    """``wapbl_replay_start``: find the log, pick the commit header, walk tail to head."""
    loc = find_log(fs, devsize)
    header, endian = read_header(loc, pread)
    rp = Replay(loc, endian, header, pread)
    if not rp.empty:
        _walk(rp, devsize, maxino)
    rp._keys = sorted(rp.blocks)
    return rp


def _walk(rp: Replay, devsize: int, maxino: int) -> None:
    """``wapbl_replay_process``: every record from tail to head, checked as it is read."""
    h = rp.header
    logblk = 1 << h.wc_log_dev_bshift
    fsblk = rp.fsblklen
    off = h.wc_tail
    left = rp.used or h.wc_circ_size  # head == tail != 0: a full log, once round
    bph = (logblk - WcList.SIZE) // WcBlock.SIZE
    iph = (logblk - WcList.SIZE) // WcInode.SIZE
    while left > 0:
        start = off
        raw, off = rp.circ_read(off, logblk)
        endian = rp.endian
        rec = WcList.decode(raw, 0, endian)
        where = f"record at log offset {start}"
        if rec.wc_len <= 0 or rec.wc_len % logblk or rec.wc_len > left:
            raise LogError(f"{where}: length {rec.wc_len} does not fit the log")
        if rec.wc_type in (WAPBL_WC_BLOCKS, WAPBL_WC_REVOCATIONS):
            if not 0 <= rec.wc_count <= bph:
                raise LogError(f"{where}: {rec.wc_count} blocks listed")
            entries = [WcBlock.decode(raw, WcList.SIZE + i * WcBlock.SIZE, endian) for i in range(rec.wc_count)]
            for e in entries:
                if e.wc_dlen < 0 or e.wc_dlen % fsblk or e.wc_daddr < 0 \
                        or e.wc_daddr * DEV_BSIZE + e.wc_dlen > devsize:
                    raise LogError(f"{where}: block {e.wc_daddr}+{e.wc_dlen} outside the device")
            if rec.wc_type == WAPBL_WC_BLOCKS:
                total = logblk + sum(e.wc_dlen for e in entries)
                if rec.wc_len != -(-total // logblk) * logblk:
                    raise LogError(f"{where}: length {rec.wc_len} disagrees with its {rec.wc_count} blocks")
                for e in entries:
                    for j in range(e.wc_dlen // fsblk):
                        rp.blocks[e.wc_daddr * DEV_BSIZE + j * fsblk] = off
                        off = rp.advance(off, fsblk)
            else:
                for e in entries:
                    for j in range(e.wc_dlen // fsblk):
                        rp.blocks.pop(e.wc_daddr * DEV_BSIZE + j * fsblk, None)
        elif rec.wc_type == WAPBL_WC_INODES:
            if not 0 <= rec.wc_count <= iph:
                raise LogError(f"{where}: {rec.wc_count} inodes listed")
            if rec.wc_flag:
                rp.inodes.clear()
                rp.transactions += 1
            for i in range(rec.wc_count):
                ie = WcInode.decode(raw, WcList.SIZE + i * WcInode.SIZE, endian)
                if not 2 <= ie.wc_inumber < maxino:
                    raise LogError(f"{where}: inode {ie.wc_inumber} out of range")
                rp.inodes.append((ie.wc_inumber, ie.wc_imode))
        else:
            raise LogError(f"{where}: unknown record type {rec.wc_type:#x}")
        off = rp.advance(start, rec.wc_len)
        left -= rec.wc_len
        rp.records += 1
    if off != h.wc_head:
        raise LogError(f"records end at {off}, not at the head {h.wc_head}")


def log_state(fs: Superblock, pread: Callable[[int, int], bytes], devsize: int, maxino: int) -> Replay:
    """``open_log`` with I/O errors turned into LogError (a short or failing read of the log)."""
    try:
        return open_log(fs, pread, devsize, maxino)
    except OSError as e:
        raise LogError(f"journal unreadable ({e.strerror or e})") from e
    except struct.error as e:
        raise LogError(f"journal truncated ({e})") from e


class ReplayedDevice:
    """A read-only view of a device with a replayed log laid over it: what NetBSD's read-only
    mount ("replaying log to memory") and ``fsck -n`` read, while the image stays untouched."""

    readonly = True

    def __init__(self, dev: BlockDevice, replay: Replay) -> None:
        self.dev = dev
        self.replay = replay
        self.dev_id = dev.dev_id
        self.size = dev.size

    def pread(self, off: int, n: int) -> bytes:
        buf = bytearray(self.dev.pread(off, n))
        self.replay.patch(off, buf)
        return bytes(buf)

    def pwrite(self, off: int, data: bytes | bytearray | memoryview) -> None:
        raise OSError(errno.EROFS, "device is read-only (journal replayed in memory)")

    def fsync(self) -> None:
        pass


def has_log(fs: Superblock) -> bool:
    """FS_DOWAPBL in NetBSD's sense: the flag with a journal described (FreeBSD gives 0x100 to
    NFSv4 ACLs and leaves the journal fields zero), on a superblock layout that can have one."""
    flags = fs.fs_flags
    if not flags & 0x100:
        return False
    if not (fs.fs_journal_version or fs.fs_journal_location):
        return False
    return bool(fs.ufs2 or fs.fs_old_flags & 0x80)


def journal_inode(fs: Superblock, devsize: int) -> int:
    """The in-file-system journal's inode number, or 0 (fsck_ffs ``is_journal_inode``; the
    caller also checks the inode's SF_LOG flag)."""
    if fs.fs_journal_version != UFS_WAPBL_VERSION:
        return 0
    for j in journal_locations(fs):
        if j.location == JOURNALLOC_IN_FILESYSTEM and _sane(j, devsize):
            return j.ino
    return 0
