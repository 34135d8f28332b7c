"""Logical → physical block map (NetBSD ``ufs_bmap.c``), for reading.

``map_range`` translates a run of logical blocks at once: direct blocks come from the inode,
indirect blocks are read through the buffer cache and only the pointer slice that is needed is
decoded (one ``struct.unpack_from``), so a sequential read costs a few C calls per indirect block,
not a Python loop per pointer. ``extents`` then merges physically contiguous blocks into runs that
``BufCache.read_extent`` fetches with one host read each.

Every address is checked before it is used: inside ``fs_size`` and not in any cylinder group's
metadata (boot area and superblock copy, cg header, inode table, the summary area). A corrupt
pointer yields EIO naming the inode and the logical block, with a console message, never a read
outside the file system and never a write (or a free) of metadata through a file. The tree depth is fixed (3 levels), so
an indirect block that points at itself or at an ancestor cannot make the walk loop.
"""

from __future__ import annotations

import errno
import struct

from p2k.fs.ffs.fs import UFS_NDADDR, UFS_NIADDR, Superblock, cgdmin, cgsblock
from p2k.hyper.console import console

log = console("p2k.ffs")

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from p2k.fs.ffs.inode import Inode
    from p2k.vfs.bufcache import BlockDevice, BufCache


class BlockMap:
    """The block-mapping context of one mount: superblock, device, buffer cache."""

    def __init__(self, fs: Superblock, dev: BlockDevice, bufcache: BufCache) -> None:
        self.fs = fs
        self.dev = dev
        self.bufcache = bufcache
        self.nindir = fs.fs_nindir
        self.ptrfmt = fs.endian + ("q" if fs.ufs2 else "i")
        self.ptrsize = 8 if fs.ufs2 else 4
        self._structs: dict[int, struct.Struct] = {}
        # data blocks reachable through each level of indirection
        self.spans = [self.nindir ** (k + 1) for k in range(UFS_NIADDR)]
        self.meta: list[tuple[int, int]] | None = None  # per cg, the fragments that are metadata
        self.csum_span = (0, 0)
        self.reported: set[tuple[int, int]] = set()

    def _metadata(self) -> list[tuple[int, int]]:
        """Per cg, the fragments [lo, hi) that are never file data (cg 0 from fragment 0: the boot
        area and the primary superblock)."""
        fs = self.fs
        if not hasattr(fs, "fs_ncg"):
            return []  # a bare geometry (unit tests of the mapping alone): no cg layout to keep out
        spans = [(cgsblock(fs, c) if c else 0, cgdmin(fs, c)) for c in range(fs.fs_ncg)]
        self.csum_span = (fs.fs_csaddr, fs.fs_csaddr + -(-fs.fs_cssize // fs.fs_fsize))
        return spans

    def bad_addr(self, addr: int, nfrags: int) -> str | None:
        """Why ``addr .. addr+nfrags-1`` cannot be a file's block, or None."""
        fs = self.fs
        if addr < 0 or addr + nfrags > fs.fs_size:
            return "outside the file system"
        meta = self.meta
        if meta is None:
            meta = self.meta = self._metadata()
        if meta:
            lo, hi = meta[min(addr // fs.fs_fpg, len(meta) - 1)]
            if addr < hi and addr + nfrags > lo:
                return "in cylinder-group metadata"
        clo, chi = self.csum_span
        if addr < chi and addr + nfrags > clo:
            return "in the summary area"
        return None

    def check_addr(self, ip: Inode, addr: int, nfrags: int, lbn: int | None = None) -> None:
        why = self.bad_addr(addr, nfrags)
        if why is not None:
            where = f"logical block {lbn}" if lbn is not None else "an indirect block"
            msg = f"inode {ip.ino}: {where} at {addr} {why}"
            if (ip.ino, addr) not in self.reported and len(self.reported) < 1000:
                self.reported.add((ip.ino, addr))
                log.warning("ffs: %s", msg)  # the console line, once per bad pointer
            raise OSError(errno.EIO, msg)

    def check_all(self, ip: Inode, lbn: int, addrs: list[int]) -> None:
        """Check every non-hole address of a mapped run (``addrs[i]`` is block ``lbn + i``). The
        first fragment decides: a block or fragment run never crosses a block boundary and every
        metadata area starts and ends on one."""
        bad = self.bad_addr
        for i, a in enumerate(addrs):
            if a and bad(a, 1):
                self.check_addr(ip, a, 1, lbn + i)

    def _ptrs(self, ip: Inode, addr: int, first: int, n: int) -> tuple[int, ...]:
        """Pointers ``first .. first+n-1`` of the indirect block at fragment ``addr``."""
        fs = self.fs
        if addr % fs.fs_frag:
            raise OSError(errno.EIO, f"inode {ip.ino}: indirect block {addr} not block-aligned")
        self.check_addr(ip, addr, fs.fs_frag)
        bp = self.bufcache.bread(self.dev, addr << fs.fs_fshift, fs.fs_bsize)
        st = self._structs.get(n)
        if st is None:
            st = self._structs[n] = struct.Struct(f"{self.ptrfmt[0]}{n}{self.ptrfmt[1]}")
        return st.unpack_from(bp.data, first * self.ptrsize)

    def _walk(self, ip: Inode, addr: int, level: int, lo: int, hi: int, out: list[int]) -> None:
        """Append the data-block addresses for relative indices [lo, hi) of the subtree at ``addr``
        (``level`` 0 = a single indirect block whose pointers are data blocks)."""
        if addr == 0:
            out.extend([0] * (hi - lo))
            return
        per = self.nindir ** level
        first = lo // per
        last = (hi - 1) // per
        ptrs = self._ptrs(ip, addr, first, last - first + 1)
        if level == 0:
            out.extend(ptrs)
            return
        for i, sub in enumerate(ptrs, first):
            base = i * per
            self._walk(ip, sub, level - 1, max(lo, base) - base, min(hi, base + per) - base, out)

    def map_range(self, ip: Inode, lbn: int, count: int) -> list[int]:
        """Fragment addresses of logical blocks ``lbn .. lbn+count-1`` (0 = hole)."""
        out: list[int] = []
        end = lbn + count
        if lbn < UFS_NDADDR:
            hi = min(end, UFS_NDADDR)
            out.extend(ip.db[lbn:hi])
            lbn = hi
        base = UFS_NDADDR
        for level in range(UFS_NIADDR):
            if lbn >= end:
                break
            span = self.spans[level]
            if lbn < base + span:
                hi = min(end, base + span)
                self._walk(ip, ip.ib[level], level, lbn - base, hi - base, out)
                lbn = hi
            base += span
        if lbn < end:
            raise OSError(errno.EFBIG, f"inode {ip.ino}: block {lbn} beyond the triple indirect range")
        self.check_all(ip, end - count, out)
        return out

    def bmap(self, ip: Inode, lbn: int) -> int:
        """ufs_bmap for one block: its fragment address, 0 for a hole."""
        return self.map_range(ip, lbn, 1)[0]

    def extents(self, ip: Inode, lbn: int, count: int) -> list[tuple[int, int]]:
        """Runs covering blocks ``lbn ..`` as ``(byte offset on device or -1 for a hole, length)``.

        Lengths follow ``blksize`` (the last block of a small file is a fragment run); a run grows
        while the next block starts right after the previous full block on the device."""
        fs = self.fs
        addrs = self.map_range(ip, lbn, count)
        bsize, fshift, frag = fs.fs_bsize, fs.fs_fshift, fs.fs_frag
        size = ip.size
        last_lbn = (size - 1) >> fs.fs_bshift if size > 0 else -1
        fssize = fs.fs_size
        runs: list[tuple[int, int]] = []
        run_off = -2
        run_len = 0
        next_addr = -1
        for i, addr in enumerate(addrs):
            b = lbn + i
            if b == last_lbn and b < UFS_NDADDR:
                n = ((size & fs.fs_qbmask) + fs.fs_qfmask) & ~fs.fs_qfmask or bsize
            else:
                n = bsize
            if addr == 0:
                if run_off == -1:
                    run_len += n
                else:
                    if run_len:
                        runs.append((run_off, run_len))
                    run_off, run_len = -1, n
                next_addr = -1
                continue
            if addr < 0 or addr + ((n + fs.fs_qfmask) >> fshift) > fssize:
                raise OSError(errno.EIO, f"inode {ip.ino}: block address {addr} outside the file system")
            if addr == next_addr and run_off >= 0:
                run_len += n
            else:
                if run_len:
                    runs.append((run_off, run_len))
                run_off, run_len = addr << fshift, n
            next_addr = addr + frag if n == bsize else -1
        if run_len:
            runs.append((run_off, run_len))
        return runs
