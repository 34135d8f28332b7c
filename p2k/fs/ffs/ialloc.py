"""Inode allocation and freeing (NetBSD ``ffs_alloc.c``: ffs_valloc, ffs_dirpref,
ffs_nodealloccg, ffs_vfree), as a mixin of ``Allocator`` — the same cg buffers and counters.

Directories are spread over cylinder groups (``dirpref``), other inodes go to their parent's cg;
a cg's first free inode is found with ``bytes.lstrip`` over its map. UFS2's lazy inode-table
initialisation is honoured: inode blocks past ``cg_initediblk`` are zeroed (with random
generation numbers) before the map says they exist.
"""

from __future__ import annotations

import errno

from p2k.fs.ffs.bitmap import get_bits, set_bits
from p2k.fs.ffs.dinode import Ufs2Dinode
from p2k.fs.ffs.fs import UFS_ROOTINO, ino_to_fsba
from p2k.hyper import random_u32

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from collections.abc import Callable

    from p2k.fs.ffs.cg import Cg
    from p2k.fs.ffs.fs import Superblock
    from p2k.vfs.bufcache import BlockDevice, Buf, BufCache


class InodeAlloc:
    fs: Superblock
    dev: BlockDevice
    bufcache: BufCache
    ncg: int
    csum: list[list[int]]
    contigdirs: list[int]
    note_new: Callable[[int], None]

    def cg(self, c: int) -> tuple[Buf, Cg]:  # provided by Allocator
        raise NotImplementedError

    def put(self, bp: Buf, cg: Cg) -> None:
        raise NotImplementedError

    def _cs(self, c: int, cg: Cg, ndir: int = 0, nbfree: int = 0, nifree: int = 0, nffree: int = 0) -> None:
        raise NotImplementedError

    def _cg_order(self, start: int) -> list[int]:
        raise NotImplementedError

    # ---- inodes ----------------------------------------------------------------------------------
    def dirpref(self, pino: int) -> int:
        """ffs_dirpref: the cg for a new directory. Top-level directories go to a cg with fewer
        directories than average and enough free inodes and blocks; deeper ones stay near their
        parent unless its cg already holds too many directories in a row."""
        fs = self.fs
        n = self.ncg
        avgifree = fs.fs_cs_nifree // n
        avgbfree = fs.fs_cs_nbfree // n
        avgndir = fs.fs_cs_ndir // n
        if pino == UFS_ROOTINO:
            prefcg = random_u32() % n
            mincg, minndir = prefcg, fs.fs_ipg
            for c in list(range(prefcg, n)) + list(range(prefcg)):
                cs = self.csum[c]
                if cs[0] < minndir and cs[2] >= avgifree and cs[1] >= avgbfree:
                    mincg, minndir = c, cs[0]
            return mincg
        maxndir = min(avgndir + fs.fs_ipg // 16, fs.fs_ipg)
        minifree = max(avgifree - avgifree // 4, 1)
        minbfree = max(avgbfree - avgbfree // 4, 1)
        cgsize = fs.fs_fsize * fs.fs_fpg
        dirsize = max(fs.fs_avgfilesize, 1) * max(fs.fs_avgfpdir, 1)
        if avgndir:
            dirsize = max(dirsize, (cgsize - avgbfree * fs.fs_bsize) // avgndir)
        maxcontigdirs = min(cgsize // max(dirsize, 1), 255)
        if fs.fs_avgfpdir > 0:
            maxcontigdirs = min(maxcontigdirs, fs.fs_ipg // fs.fs_avgfpdir)
        maxcontigdirs = max(maxcontigdirs, 1)
        prefcg = pino // fs.fs_ipg
        order = list(range(prefcg, n)) + list(range(prefcg))
        for c in order:
            cs = self.csum[c]
            if cs[0] < maxndir and cs[2] >= minifree and cs[1] >= minbfree \
                    and self.contigdirs[c] < maxcontigdirs:
                return c
        for c in order:
            if self.csum[c][2] >= avgifree:
                return c
        return prefcg

    def alloc_inode(self, pino: int, isdir: bool) -> int:
        """ffs_valloc: a free inode number (dirs by dirpref, others in the parent's cg)."""
        fs = self.fs
        if fs.fs_cs_nifree <= 0:
            raise OSError(errno.ENOSPC, "out of inodes")
        start = self.dirpref(pino) if isdir else pino // fs.fs_ipg
        ipg = fs.fs_ipg
        for c in self._cg_order(start):
            if self.csum[c][2] <= 0:
                continue
            bp, cg = self.cg(c)
            used = bytes(cg.inosused())
            hint = cg.cg_irotor if cg.cg_irotor < ipg else 0
            i = self._find_clear(used, hint // 8, ipg)
            if i < 0:
                i = self._find_clear(used, 0, ipg)
            if i < 0:
                raise OSError(errno.EIO, f"cg {c}: free inode count {cg.cg_cs_nifree} but none in map")
            if fs.ufs2:
                self._init_inode_blocks(cg, c, i)
            set_bits(bp.data, cg.cg_iusedoff, i, 1, True)
            cg.cg_irotor = i
            self._cs(c, cg, nifree=-1, ndir=1 if isdir else 0)
            if isdir:
                self.contigdirs[c] = min(self.contigdirs[c] + 1, 255)
            elif self.contigdirs[c] > 0:
                self.contigdirs[c] -= 1
            self.put(bp, cg)
            return c * ipg + i
        raise OSError(errno.ENOSPC, "out of inodes")

    @staticmethod
    def _find_clear(used: bytes, start_byte: int, nbits: int) -> int:
        """First clear bit at or after byte ``start_byte`` (bytes.lstrip skips full bytes in C)."""
        tail = used[start_byte:]
        k = len(tail) - len(tail.lstrip(b"\xff"))
        if k >= len(tail):
            return -1
        byte = tail[k]
        bit = (~byte & (byte + 1)).bit_length() - 1
        i = (start_byte + k) * 8 + bit
        return i if i < nbits else -1

    def _init_inode_blocks(self, cg: Cg, c: int, i: int) -> None:
        """UFS2 lazy inode initialisation: zero inode blocks (with random generations) until the
        one holding in-cg inode ``i`` and the next are initialised, as ffs_nodealloccg does."""
        fs = self.fs
        inopb = fs.fs_inopb
        while i + inopb > cg.cg_initediblk and cg.cg_initediblk < cg.cg_niblk:
            first = c * fs.fs_ipg + cg.cg_initediblk
            bp = self.bufcache.getblk(self.dev, ino_to_fsba(fs, first) << fs.fs_fshift, fs.fs_bsize)
            bp.data[:] = bytes(fs.fs_bsize)
            isize = fs.inode_size
            gen, at = Ufs2Dinode.field("gen", fs.endian), Ufs2Dinode.OFFSETS["gen"]
            for k in range(inopb):
                gen.pack_into(bp.data, k * isize + at, random_u32() or 1)
            self.note_new(ino_to_fsba(fs, first))  # initialised before cg_initediblk says so
            self.bufcache.bwrite(bp)
            cg.cg_initediblk += inopb

    def free_inode(self, ino: int, isdir: bool) -> None:
        """ffs_vfree: clear the inode's bit and count it free again."""
        fs = self.fs
        c = ino // fs.fs_ipg
        i = ino % fs.fs_ipg
        bp, cg = self.cg(c)
        if not get_bits(bp.data, cg.cg_iusedoff, i, 1):
            raise OSError(errno.EIO, f"freeing free inode {ino}")
        set_bits(bp.data, cg.cg_iusedoff, i, 1, False)
        if i < cg.cg_irotor:
            cg.cg_irotor = i
        self._cs(c, cg, nifree=1, ndir=-1 if isdir else 0)
        self.put(bp, cg)

    def claim_inode(self, ino: int, isdir: bool) -> None:
        """Mark a specific inode in use (newfs: the root at 2, lost+found at 3)."""
        fs = self.fs
        c, i = divmod(ino, fs.fs_ipg)
        bp, cg = self.cg(c)
        if get_bits(bp.data, cg.cg_iusedoff, i, 1):
            raise OSError(errno.EEXIST, f"inode {ino} already in use")
        set_bits(bp.data, cg.cg_iusedoff, i, 1, True)
        self._cs(c, cg, nifree=-1, ndir=1 if isdir else 0)
        self.put(bp, cg)
