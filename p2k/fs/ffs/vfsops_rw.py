"""Read-write FFS mounts (NetBSD ``ffs_vfsops.c``: ffs_mountfs for rw, ffs_sync, ffs_unmount,
ffs_sbupdate, ffs_cgupdate) on top of the read-only ``FfsMount``.

The clean-flag protocol (docs/ffs-format.md §8): a read-write mount first clears what p2k does not
maintain — an *empty* WAPBL log's ``FS_DOWAPBL`` (a busy one is refused by ``rw_refusal``),
``FS_DOSOFTDEP``/``FS_SUJ`` — then shifts ``fs_clean`` (ISCLEAN becomes WASCLEAN) and writes the
superblock synchronously *before any other metadata write*, so a crash leaves an unclean file
system that fsck will check. A clean unmount writes inodes, buffers, cgs and the summary area,
then sets ``FS_ISCLEAN`` again and writes the superblock last. UFS1's 32-bit ``fs_old_*`` twins
are kept in step with the 64-bit fields on every superblock write.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from p2k.fs.ffs.ffs_alloc import Allocator
from p2k.fs.ffs.ffs_vfsops import FfsMount
from p2k.fs.ffs.fs import (
    FS_DOQUOTA2,
    FS_DOSOFTDEP,
    FS_DOWAPBL,
    FS_FLAGS_UPDATED,
    FS_ISCLEAN,
    FS_SUJ,
    FS_WASCLEAN,
    ino_to_fsba,
    ino_to_fsbo,
)
from p2k.fs.ffs.suj import release_sujournal
from p2k.fs.ffs.ufs_lookup import DirIndex
from p2k.fs.ffs.ufs_vnops import FfsWriteVnops
from p2k.fs.ffs.wapbl_finish import replay_finish
from p2k.fs.ffs.wapbl_log import DeferredFrees, LogWriter
from p2k.hyper import now_ns
from p2k.vfs.mount import MNT_ASYNC, MNT_LOG

if TYPE_CHECKING:
    from p2k.fs.ffs.inode import Inode
    from p2k.kernel import Kernel
    from p2k.vfs.bufcache import Buf
    from p2k.vfs.vnode import Vnode


class FfsMountRW(FfsWriteVnops, FfsMount):
    """FFS mount that is read-write unless mounted MNT_RDONLY."""

    def __init__(self, kernel: Kernel, flags: int, data: dict[str, Any]) -> None:
        super().__init__(kernel, flags, data)
        self.alloc: Allocator | None = None  # type: ignore[assignment]
        self.dirindex: dict[int, DirIndex] = {}
        self.dirty_inodes: dict[int, Inode] = {}
        self.ordered = False  # ordered write-back through the buffer cache (not on MNT_ASYNC)
        # blocks (block numbers) and inodes freed since the last barrier: their last pointer or
        # name may not be on disk yet, so they are not written again before a barrier
        self.freed_blocks: set[int] = set()
        self.freed_inos: set[int] = set()
        self._in_checkpoint = False
        self.wapbl: LogWriter | None = None  # the journal of a -o log mount
        self.deferred: DeferredFrees | None = None  # its frees, applied at the next commit

    def vfs_start(self) -> None:
        super().vfs_start()
        if self.readonly:
            return
        fs = self.fs
        if self.oldfmt_dir:
            raise OSError(errno.EROFS, "read-write mount refused: 4.2BSD directory/inode format "
                          "(fs_maxsymlinklen <= 0) is not maintained")
        if not fs.ufs2 and not fs.fs_old_flags & FS_FLAGS_UPDATED:
            raise OSError(errno.EROFS, "read-write mount refused: 4.4BSD-layout UFS1 superblock "
                          "(no FS_FLAGS_UPDATED) is not maintained")
        bounds = (fs.fs_ncg * fs.fs_ipg, fs.fs_size // max(fs.fs_frag, 1), fs.fs_ncg * fs.fs_ipg, fs.fs_size)
        if any(not 0 <= v <= b for v, b in zip(fs.cstotal, bounds, strict=True)):
            # ndir, nbfree, nifree, nffree beyond what the geometry holds: the counts the write
            # path keeps up to date (and writes back, in 32 bits on UFS1) are nonsense
            raise OSError(errno.EROFS, f"read-write mount refused: superblock free counts {list(fs.cstotal)} "
                          "impossible for the geometry; run fsck")
        self.replay_to_disk()
        self.alloc = Allocator(fs, self.dev, self.bufcache, self.codec)
        self.alloc.note_new = self.note_new
        if self.flags & MNT_LOG or "log" in self.data:
            self.flags = (self.flags | MNT_LOG) & ~MNT_ASYNC  # NetBSD ignores async on a log mount
            self.wapbl = LogWriter(self)
            self.deferred = DeferredFrees(self.alloc)
        # Before the first metadata write: drop what we do not maintain, mark unclean on disk.
        had_suj = fs.fs_flags & FS_SUJ
        fs.fs_flags &= ~(FS_DOWAPBL | FS_DOSOFTDEP | FS_SUJ)
        if self.wapbl is not None:
            fs.fs_flags |= FS_DOWAPBL
        if fs.fs_metackhash:  # FreeBSD check-hashes (0x200 = FS_METACKHASH there): not maintained
            fs.fs_flags &= ~FS_DOQUOTA2
            fs.fs_metackhash = 0
        fs.fs_clean = (fs.fs_clean << 1) & 0xFF
        # "Last mounted on", as ffs_mount records it (fsck and dumpfs print it)
        fs.fs_fsmnt = self.mountpoint_path.encode("utf-8", "surrogateescape")[:467].ljust(468, b"\0")
        fs.fs_fmod = 0
        fs.fs_ronly = 0
        self.write_superblock()
        self.host_fsync()
        if not self.flags & MNT_ASYNC:
            # Ordered write-back from here on: the buffer cache defers every write and flushes
            # data (and blocks nothing points to yet) before metadata, with a device flush
            # between; memory pressure goes through our full sync.
            self.ordered = True
            self.bufcache.set_checkpoint(self.dev, self._checkpoint)
        if not isinstance(self.journal, str) and self.journal is not None:
            replay_finish(self, self.journal.inodes)
        if had_suj:
            release_sujournal(self)
        if self.wapbl is not None:
            self.kernel.op_end_hooks.append(self._log_op_end)  # last: the mount is complete

    def _checkpoint(self) -> None:
        """A full, ordered sync on behalf of the buffer cache (memory pressure) or of ``barrier``;
        once at a time — the sync's own buffer reads must not recurse into another one."""
        if self._in_checkpoint:
            return
        self._in_checkpoint = True
        try:
            self.vfs_sync(wait=False)
        finally:
            self._in_checkpoint = False

    def _log_op_end(self) -> None:
        """Between system calls: commit before the dirty buffers could outgrow the log (NetBSD
        flushes when a transaction nears the log's free space), so that a sync never has to
        write metadata unjournaled. Dirty data counts too: an early commit costs only time."""
        wapbl = self.wapbl
        if wapbl is not None and self.bufcache.dirty_bytes > wapbl.circ_size // 2:
            self._checkpoint()

    def barrier(self) -> None:
        """Everything so far on disk, in order, before the next write: used before a block or an
        inode freed since the last one is written again, because the last pointer to it (or the
        name of it) may still be waiting in the cache behind the new contents. A log mount needs
        none (its frees wait for the commit) and must not commit in mid-operation."""
        if self.ordered and self.wapbl is None:
            self._checkpoint()
        self.freed_blocks.clear()
        self.freed_inos.clear()

    def note_freed(self, addr: int, nfrags: int) -> None:
        shift = self.fs.fs_fragshift
        self.freed_blocks.update(range(addr >> shift, ((addr + nfrags - 1) >> shift) + 1))

    def reuse_check(self, addrs: list[int]) -> None:
        """Barrier first if any of these newly allocated fragment addresses lies in a block freed
        since the last barrier."""
        if self.freed_blocks:
            shift = self.fs.fs_fragshift
            if any(a >> shift in self.freed_blocks for a in addrs):
                self.barrier()

    def note_new(self, addr: int) -> None:
        """The block at ``addr`` was allocated in this epoch: nothing on disk points to it, so
        its buffer goes out with the data, before the metadata that will point to it."""
        if self.ordered:
            self.bufcache.mark_new(self.dev, addr << self.fs.fs_fshift)

    def host_fsync(self) -> None:
        """Sync the host file — except on an MNT_ASYNC mount, which, as in NetBSD, trades crash
        safety for speed (makefs uses it: an image being built has nothing to protect)."""
        if not self.flags & MNT_ASYNC:
            self.dev.fsync()

    # ---- inode write-back ------------------------------------------------------------------------
    def iupdate(self, ip: Inode, sync: bool = False) -> None:
        """ffs_update: encode the in-core inode into its block. ``sync`` marks the places where
        NetBSD's synchronous FFS writes at once (before a name points to the inode, before
        blocks it held are freed); with ordered write-back that order is kept by the epochs of
        the buffer cache and by ``barrier`` before reuse, so both are delayed writes here."""
        fs = self.fs
        bp = self.bufcache.bread(self.dev, ino_to_fsba(fs, ip.ino) << fs.fs_fshift, fs.fs_bsize)
        self.codec.encode_into(ip, bp.data, ino_to_fsbo(fs, ip.ino) * self.isize)
        self.bufcache.bdwrite(bp)
        ip.dirty = False
        self.dirty_inodes.pop(ip.ino, None)

    def meta_write(self, bp: Buf, lo: int = 0, hi: int | None = None) -> None:
        """A metadata write where NetBSD would bwrite (directory entries): delayed, ordered by
        the buffer cache's epochs (``lo``/``hi`` name the changed bytes, for the record)."""
        self.bufcache.bdwrite(bp)

    def unlinked_open_inodes(self) -> list[tuple[int, int]]:
        """(inode, mode) of the inodes still open with no name left: a journal lists them, so
        that a replay completes their deletion."""
        out = []
        for vp in self.kernel.vcache.vnodes_of(self):
            ip: Inode | None = vp.data  # type: ignore[assignment]
            if ip is not None and ip.nlink == 0 and ip.mode != 0:
                out.append((ip.ino, ip.mode))
        return out

    def mark_dirty(self, ip: Inode) -> None:
        ip.dirty = True
        self.dirty_inodes[ip.ino] = ip

    # ---- superblock and summary ------------------------------------------------------------------
    def write_superblock(self, barrier: bool = False) -> None:
        fs = self.fs
        fs.fs_time = now_ns() // 1_000_000_000
        if not fs.ufs2:
            fs.fs_old_time = fs.fs_time & 0x7FFFFFFF
            fs.fs_old_size = fs.fs_size
            fs.fs_old_dsize = fs.fs_dsize
            fs.fs_old_csaddr = fs.fs_csaddr
            fs.fs_old_cs_ndir = fs.fs_cs_ndir
            fs.fs_old_cs_nbfree = fs.fs_cs_nbfree
            fs.fs_old_cs_nifree = fs.fs_cs_nifree
            fs.fs_old_cs_nffree = fs.fs_cs_nffree
        raw = fs.encode()
        bp = self.bufcache.getblk(self.dev, fs.loc, len(raw))
        bp.data[:] = raw
        self.bufcache.bwrite(bp, barrier=barrier and not self.flags & MNT_ASYNC)
        fs.dirty = False

    def _write_summary(self) -> None:
        fs = self.fs
        assert self.alloc is not None
        raw = self.alloc.csum_bytes()
        bp = self.bufcache.getblk(self.dev, fs.fs_csaddr << fs.fs_fshift, len(raw))
        bp.data[:] = raw
        self.bufcache.bwrite(bp)
        self.alloc.csum_dirty = False

    def vfs_sync(self, wait: bool = True) -> None:
        """ffs_sync: dirty inodes into their blocks, every delayed buffer (indirect blocks, inode
        blocks, cgs) to the device, then the summary area and the superblock."""
        if self.readonly or self.alloc is None:
            super().vfs_sync(wait)
            return
        if self.deferred is not None:
            self.deferred.apply()
        for ip in list(self.dirty_inodes.values()):
            self.iupdate(ip)
        if self.alloc.csum_dirty or self.fs.dirty:
            self._write_summary()
            self.write_superblock()
        # data first, a device flush, then metadata and another flush (the cache's epochs); on a
        # log mount the metadata is committed to the journal in between, emptied after
        wapbl = self.wapbl
        self.bufcache.flush_dev(self.dev, barrier=not self.flags & MNT_ASYNC,
                                journal=wapbl.commit if wapbl is not None else None)
        self.freed_blocks.clear()
        self.freed_inos.clear()

    def vfs_unmount(self, force: bool = False) -> None:
        if self.readonly or self.alloc is None:
            super().vfs_unmount(force)
            return
        self.vfs_sync()
        if self.wapbl is not None and self.wapbl.pending:
            self.wapbl.truncate()
        fs = self.fs
        if fs.fs_clean & FS_WASCLEAN:
            fs.fs_clean = FS_ISCLEAN
        fs.fs_flags &= ~FS_DOWAPBL  # ffs_wapbl_stop: the log is empty, the mount ends
        if self._log_op_end in self.kernel.op_end_hooks:
            self.kernel.op_end_hooks.remove(self._log_op_end)
        self.bufcache.set_checkpoint(self.dev, None)  # (writes anything still deferred)
        self.ordered = False
        self._write_summary()
        self.write_superblock(barrier=True)  # the clean flag last, once all else is durable
        self.bufcache.invalidate_dev(self.dev)

    def vop_reclaim(self, vp: Vnode) -> None:
        ip: Inode | None = vp.data  # type: ignore[assignment]
        if ip is not None and not self.readonly:
            if ip.dirty and ip.mode != 0:
                self.iupdate(ip)
            self.dirindex.pop(ip.ino, None)
        vp.data = None
