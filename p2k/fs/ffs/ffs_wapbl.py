"""Where a ``-o log`` mount's journal goes (NetBSD ``ffs_wapbl.c``: wapbl_log_position,
wapbl_create_infs_log, wapbl_find_log_start).

A file system whose superblock already names a journal keeps it. Otherwise NetBSD's rule: the
space after the file system if the device has room for a journal of the desired size (1 MiB per
GiB of file system, between 1 and 64 MiB), else a journal *inside* the file system. That second
case is the common one — a disk made by newfs or makefs ends where its partition ends — so it
must work for ``-o log`` to be any use on real disks.

An in-file-system journal is an inode that no directory names: a regular file with mode 0, flag
``SF_LOG`` and one link, whose data blocks are one contiguous run (the log is addressed as a
device range, never through the inode's block map) and whose indirect blocks sit just before
that run. The superblock records the run (in 512-byte units) and the inode number; fsck knows
the inode by both and does not call it unreferenced. The run is looked for as NetBSD does:
whole free blocks, cylinder groups from the middle outwards, the first extent long enough, else
the longest one if it holds at least a quarter of the desired size.
"""

from __future__ import annotations

import errno
import struct

from p2k.fs.ffs.fs import UFS_NDADDR, UFS_ROOTINO, cgbase
from p2k.fs.ffs.inode import IFREG
from p2k.fs.ffs.ufs_vnops import new_inode
from p2k.fs.ffs.wapbl import (
    DEV_BSIZE,
    JOURNALLOC_END_PARTITION,
    JOURNALLOC_IN_FILESYSTEM,
    SF_LOG,
    UFS_WAPBL_VERSION,
    JournalLoc,
    LogError,
    find_log,
)
from p2k.hints import NamedTuple

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from p2k.fs.ffs.ffs_vfsops import FfsMount
    from p2k.fs.ffs.fs import Superblock
    from p2k.fs.ffs.inode import Inode

JOURNAL_SCALE = 1024  # UFS_WAPBL_JOURNAL_SCALE: 1 MiB of log per GiB of file system
MIN_JOURNAL = 1 << 20
MAX_JOURNAL = 64 << 20
MIN_LOG_BYTES = 64 * 1024  # MAXPHYS: wapbl_start refuses a smaller log


def desired_size(fs_bytes: int) -> int:
    return min(max(fs_bytes // JOURNAL_SCALE, MIN_JOURNAL), MAX_JOURNAL)


def log_position(m: FfsMount) -> JournalLoc | None:
    """The existing journal, or a new one after the file system (recorded in the in-core
    superblock); None when neither exists and one must be created inside (``create_infs_log``,
    which needs the mount already marked unclean on disk)."""
    fs = m.fs
    devsize = m.dev.size
    if fs.fs_journal_version == UFS_WAPBL_VERSION:
        try:
            return find_log(fs, devsize)
        except LogError:
            pass
    start = fs.fs_size * fs.fs_fsize
    if devsize - start < desired_size(start):
        return None
    record(fs, JournalLoc(JOURNALLOC_END_PARTITION, start // DEV_BSIZE, (devsize - start) // DEV_BSIZE,
                          DEV_BSIZE, 0, 0, fs.endian))
    return find_log(fs, devsize)


def record(fs: Superblock, loc: JournalLoc) -> None:
    """Name the journal ``loc`` in the in-core superblock."""
    fs.fs_journal_version = UFS_WAPBL_VERSION
    fs.fs_journal_location = loc.location
    fs.fs_journal_flags = loc.flags
    fs.fs_journal_addr = loc.addr
    fs.fs_journal_count = loc.count
    fs.fs_journal_blksz = loc.blksz
    fs.fs_journal_ino = loc.ino


def _indirect_blocks(nindir: int, nblocks: int) -> int:
    """The indirect blocks a file of ``nblocks`` needs, counted as NetBSD counts them (from the
    block index ``nblocks`` itself, so a file of exactly 12 blocks is given one)."""
    if nblocks < UFS_NDADDR:
        return 0
    rel = nblocks - UFS_NDADDR
    if rel < nindir:
        return 1
    rel -= nindir
    if rel >= nindir * nindir:
        raise OSError(errno.EFBIG, "-o log: journal would need a triple indirect block")
    return 1 + 1 + rel // nindir + 1


def _find_run(m: FfsMount, want: int, least: int) -> tuple[int, int]:
    """(fragment address, blocks) of the first run of ``want`` free whole blocks, else of the
    longest run of at least ``least`` (0 blocks if none), cylinder groups middle-out."""
    import re  # here: only a new in-file-system journal needs it, not every read-write mount (2.5 ms with enum)

    free_run = re.compile(rb"\x01+")
    fs, alloc = m.fs, m.alloc
    frag = fs.fs_frag
    best_addr = best = 0
    ncg = fs.fs_ncg
    order = [ncg // 2]
    for s in range(1, ncg):
        order += [c for c in (ncg // 2 + s, ncg // 2 - s) if 0 <= c < ncg]
    for c in order[:ncg]:
        _bp, cg = alloc.cg(c)
        nblk = -(-cg.cg_ndblk // frag)
        free = alloc.t.patterns(cg.blksfree(fs.fs_fpg), nblk).translate(alloc.t.is_full)
        for run in free_run.finditer(free):
            n = run.end() - run.start()
            if n > best:
                best, best_addr = n, cgbase(fs, c) + run.start() * frag
                if n >= want:
                    return best_addr, min(n, want)
    return (best_addr, best) if best >= least else (0, 0)


def _needed_indirects(nindir: int, ndata: int) -> int:
    """The indirect blocks a file of exactly ``ndata`` blocks uses."""
    rest = max(ndata - UFS_NDADDR, 0)
    if rest <= nindir:
        return int(rest > 0)
    return 2 + -(-(rest - nindir) // nindir)


class LogPlan(NamedTuple):
    """Where an in-file-system journal will go: ``reserve`` blocks for indirect blocks from
    fragment ``start``, then ``ndata`` blocks of log."""

    start: int
    reserve: int
    ndata: int


def plan_infs_log(m: FfsMount) -> LogPlan:
    """wapbl_find_log_start: the run for a new in-file-system journal, or ENOSPC in one line.
    Nothing is written: a mount that cannot journal is refused before it marks the file system
    unclean."""
    fs = m.fs
    bsize, frag = fs.fs_bsize, fs.fs_frag
    want_data = desired_size(fs.fs_dsize * fs.fs_fsize) // bsize
    reserve = _indirect_blocks(fs.fs_nindir, want_data)
    want = want_data + reserve
    least = want // 4
    if least > fs.fs_fpg // frag:
        raise OSError(errno.ENOSPC, f"-o log: cylinder group size of {fs.fs_fpg * fs.fs_fsize >> 20} MB is "
                      "not big enough for journal")
    start, got = _find_run(m, want, least)
    ndata = got - reserve
    if ndata * bsize < MIN_LOG_BYTES:
        raise OSError(errno.ENOSPC, f"-o log: no free run of {max(least * bsize, MIN_LOG_BYTES) >> 10} KiB for "
                      "an in-file-system journal, and no room after the file system")
    return LogPlan(start, reserve, ndata)


def create_infs_log(m: FfsMount, plan: LogPlan) -> JournalLoc:
    """wapbl_create_infs_log: allocate the planned run and the journal inode. The superblock is
    not told yet: the caller writes the allocation home first (a sync, which writes the
    superblock too), then names the journal in it (``record``) and writes it again."""
    fs, alloc = m.fs, m.alloc
    bsize, frag = fs.fs_bsize, fs.fs_frag
    start, reserve, ndata = plan
    nind = _needed_indirects(fs.fs_nindir, ndata)
    data = start + reserve * frag  # the indirect blocks first, the log's run after them
    cgno = start // fs.fs_fpg
    claimed: list[tuple[int, int]] = []
    try:
        for first, count in ((start, nind), (data, ndata)):
            if count:
                addr, n = alloc.alloc_blocks(first, cgno, count, root=True)
                claimed.append((addr, n))
                if (addr, n) != (first, count):
                    raise OSError(errno.EIO, f"-o log: the free run at fragment {first} changed under the allocation")
        ip = new_inode(m, m.read_dinode(UFS_ROOTINO), IFREG, 0, 0)
    except OSError:
        for addr, n in claimed:
            alloc.free(addr, n * frag)
        raise
    ip.flags = SF_LOG
    ip.nlink = 1
    _map_blocks(m, ip, start, data, ndata)
    ip.size = ndata * bsize
    ip.blocks = (ndata + nind) * bsize // DEV_BSIZE
    m.mark_dirty(ip)
    return JournalLoc(JOURNALLOC_IN_FILESYSTEM, data * fs.fs_fsize // DEV_BSIZE, ndata * bsize // DEV_BSIZE,
                      DEV_BSIZE, ip.ino, 0, fs.endian)


def _map_blocks(m: FfsMount, ip: Inode, ind: int, data: int, ndata: int) -> None:
    """The journal inode's block map: direct pointers, then the single indirect block, then
    the double indirect one and its children (taken in that order from ``ind`` on), all pointing
    into the contiguous run."""
    fs = m.fs
    frag = fs.fs_frag
    nindir = fs.fs_nindir
    ptrs = [data + i * frag for i in range(ndata)]
    ip.db = ptrs[:UFS_NDADDR] + [0] * max(UFS_NDADDR - ndata, 0)
    rest = ptrs[UFS_NDADDR:]
    ib = [0, 0, 0]
    next_ind = ind
    if rest:
        ib[0] = next_ind
        next_ind += frag
        _write_ptrs(m, ib[0], rest[:nindir])
        rest = rest[nindir:]
    if rest:
        ib[1] = next_ind
        next_ind += frag
        children = []
        while rest:
            _write_ptrs(m, next_ind, rest[:nindir])
            children.append(next_ind)
            next_ind += frag
            rest = rest[nindir:]
        _write_ptrs(m, ib[1], children)
    ip.ib = ib


def _write_ptrs(m: FfsMount, addr: int, ptrs: list[int]) -> None:
    fs = m.fs
    bp = m.bufcache.getblk(m.dev, addr << fs.fs_fshift, fs.fs_bsize)
    bp.data[:] = bytes(fs.fs_bsize)
    struct.pack_into(f"{fs.endian}{len(ptrs)}{'q' if fs.ufs2 else 'i'}", bp.data, 0, *ptrs)
    m.meta_write(bp)
