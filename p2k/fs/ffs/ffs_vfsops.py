"""FFS VFS operations (NetBSD ``ffs_vfsops.c``): mount, vget, statvfs, sync, unmount, and the
superblock and summary writes (ffs_sbupdate, ffs_cgupdate).

One mount class, ``FfsMount``, read-write unless mounted MNT_RDONLY: the read-only case is a flag
the write operations test (EROFS), as NetBSD's ufs operations test MNT_RDONLY, not a class of its
own. Its vnode operations live in modules named after NetBSD's files and are bound into the class
in one table at its end (NetBSD's ``ffs_vnodeop_entries``); each is a function of the mount, so
mypy checks every one of them against this class.

``vfs_start`` finds and validates the superblock, builds the per-mount codecs, and decides
``rw_refusal``: a one-line reason why this file system may only be mounted read-only (a feature
p2k does not maintain, or a state NetBSD itself refuses to mount read-write), or None. A read-write
mount of such a file system fails with EROFS and that reason.

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

from p2k.fs.ffs.bmap import BlockMap
from p2k.fs.ffs.cg import cg_initediblk, cg_magic_ok
from p2k.fs.ffs.dinode import DinodeCodec
from p2k.fs.ffs.ffs_inode import ffs_update
from p2k.fs.ffs.ffs_stat import ffs_stat_inodes
from p2k.fs.ffs.ffs_vnops import (
    ffs_deleteextattr,
    ffs_fsync,
    ffs_getextattr,
    ffs_listextattr,
    ffs_reclaim,
    ffs_setextattr,
)
from p2k.fs.ffs.fs import (
    DEV_BSIZE,
    FS_44INODEFMT,
    FS_DOQUOTA2,
    FS_DOSOFTDEP,
    FS_DOWAPBL,
    FS_FLAGS_UPDATED,
    FS_GJOURNAL,
    FS_ISCLEAN,
    FS_MULTILABEL,
    FS_NEEDSFSCK,
    FS_NFS4ACLS,
    FS_POSIX1EACLS,
    FS_SUJ,
    FS_TRIM,
    FS_UNCLEAN,
    FS_WASCLEAN,
    UFS_ROOTINO,
    Superblock,
    blkstofrags,
    cgimin,
    cgtod,
    find_superblock,
    ino_to_fsba,
    maxfilesize,
)
from p2k.fs.ffs.inode import IFDIR, VALID_TYPES, Inode
from p2k.fs.ffs.ufs_inode import ufs_inactive
from p2k.fs.ffs.ufs_lookup import DirIndex, dir_entries, ufs_isempty, ufs_lookup, ufs_readdir
from p2k.fs.ffs.ufs_readwrite import ffs_read, ffs_readinto, ffs_write, read_range
from p2k.fs.ffs.ufs_vnops import (
    ufs_create,
    ufs_getattr,
    ufs_link,
    ufs_mkdir,
    ufs_readlink,
    ufs_remove,
    ufs_rename,
    ufs_rmdir,
    ufs_setattr,
    ufs_symlink,
)
from p2k.hyper import now_ns
from p2k.hyper.console import console
from p2k.vfs.mount import MNT_ASYNC, MNT_LOG, Mount
from p2k.vfs.vattr import StatVFS

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from typing import Any

    from p2k.fs.ffs.ffs_alloc import Allocator
    from p2k.fs.ffs.ffs_wapbl import LogPlan
    from p2k.fs.ffs.wapbl import JournalLoc, Replay
    from p2k.fs.ffs.wapbl_log import DeferredFrees, LogWriter
    from p2k.kernel import Kernel
    from p2k.vfs.bufcache import BlockDevice, Buf

ST_RDONLY = 1
log = console("p2k.ffs")
_KNOWN_FLAGS = (FS_UNCLEAN | FS_DOSOFTDEP | FS_NEEDSFSCK | FS_SUJ | FS_POSIX1EACLS | FS_MULTILABEL
                | FS_GJOURNAL | FS_FLAGS_UPDATED | FS_DOWAPBL | FS_DOQUOTA2 | FS_TRIM | FS_NFS4ACLS)


def compute_rw_refusal(fs: Superblock, journal: Replay | str | None) -> str | None:
    """Why p2k must not mount this file system read-write, in one line, or None.

    ``journal`` is the WAPBL log when the superblock has one (parsed, so replayable), or the
    reason it cannot be replayed."""
    flags = fs.fs_flags
    # FreeBSD's FS_METACKHASH shares 0x200 with NetBSD's FS_DOQUOTA2; a non-zero fs_metackhash
    # tells them apart. Check-hashes are not a refusal: FreeBSD's own rule is that a kernel that
    # does not maintain them clears the flag (the write path does so before its first write).
    freebsd_ckhash = bool(flags & FS_DOQUOTA2) and fs.fs_metackhash != 0
    if flags & FS_DOQUOTA2 and not freebsd_ckhash:
        return "in-file-system quotas (FS_DOQUOTA2) are not maintained"
    if flags & FS_DOWAPBL:
        if isinstance(journal, str):
            return f"WAPBL journal cannot be replayed ({journal}); run fsck -y"
        from p2k.fs.ffs.wapbl import has_log

        if journal is None and not has_log(fs):  # FreeBSD's meaning of 0x100
            return "NFSv4 ACLs (FreeBSD FS_NFS4ACLS) are not maintained"
    if flags & FS_NFS4ACLS:  # POSIX.1e ACLs on UFS2 are (ffs_vnops, p2k.vfs.acl); NFSv4 ones not
        return "NFSv4 ACLs (FS_NFS4ACLS) are not maintained"
    if flags & FS_POSIX1EACLS and not fs.ufs2:
        return "ACLs on UFS1 (kept in backing-file extended attributes) are not maintained"
    if flags & FS_SUJ and not fs.fs_clean & FS_ISCLEAN:
        return "unclean file system with a soft-updates journal, which p2k does not replay; run fsck -y"
    if flags & FS_GJOURNAL:
        return "gjournal (FS_GJOURNAL) is not supported"
    if flags & ~_KNOWN_FLAGS:
        return f"unknown flags {flags & ~_KNOWN_FLAGS:#x} in superblock"
    if flags & FS_NEEDSFSCK:
        return "file system is marked as needing fsck"
    if any(fs.fs_snapinum):
        return "file system has snapshots, which are not maintained"
    if not fs.fs_clean & FS_ISCLEAN:
        return "file system is not clean; run fsck_ffs first"
    return None


class FfsMount(Mount):
    """A mounted FFS (UFS1, UFS2, UFS2EA; either byte order), read-write unless MNT_RDONLY.
    ``data["device"]`` is the device."""

    fstype = "ffs"
    namemax = 255
    acls = False  # POSIX.1e ACLs enforced (FS_POSIX1EACLS or -o acls): see ffs_vnops
    # The allocator of a read-write mount, made by ``vfs_start`` once nothing refuses the mount.
    # A read-only mount has none: every path that allocates or frees is a write operation, and
    # those refuse a read-only mount before they get here.
    alloc: Allocator

    def __init__(self, kernel: Kernel, flags: int, data: dict[str, Any]) -> None:
        super().__init__(kernel, flags, data)
        self.dev: BlockDevice = data["device"]
        self.bufcache = kernel.bufcache
        self.rw_refusal: str | None = None
        self.dir_errors: list[str] = []
        self.notes: list[str] = []  # one-line remarks of the mount (a journal replayed or not)
        self.dirindex: dict[int, DirIndex] = {}
        self.dirty_inodes: dict[int, Inode] = {}
        self.ea_lru: dict[int, Inode] = {}  # big parsed xattr areas (ffs_vnops), oldest first
        self.ordered = False  # ordered write-back through the buffer cache (not on MNT_ASYNC)
        # blocks (block numbers) and inodes freed since the last barrier: their last pointer or
        # name may not be on disk yet, so they are not written again before a barrier
        self.freed_blocks: set[int] = set()
        self.freed_inos: set[int] = set()
        self._in_checkpoint = False
        self.wapbl: LogWriter | None = None  # the journal of a -o log mount
        self.deferred: DeferredFrees | None = None  # its frees, applied at the next commit

    def _pread(self, off: int, n: int) -> bytes:
        return self.bufcache.read(self.dev, off, n)

    # ---- VFS operations --------------------------------------------------------------------------
    def vfs_start(self) -> None:
        devsize = self.dev.size
        fs = self._open_journal(find_superblock(self._pread, devsize))
        self.fs = fs
        self.codec = DinodeCodec(fs.ufs2, fs.endian, not fs.ufs2 and fs.fs_old_inodefmt < FS_44INODEFMT)
        self.bmapper = BlockMap(fs, self.dev, self.bufcache)
        self.oldfmt_dir = fs.fs_maxsymlinklen <= 0
        self.acls = fs.ufs2 and (bool(fs.fs_flags & FS_POSIX1EACLS) or bool({"acls", "posix1eacls"} & set(self.data)))
        self.maxfilesize = maxfilesize(fs)
        self.maxino = fs.fs_ncg * fs.fs_ipg
        self.isize = fs.inode_size
        self.maxsectors = fs.fs_size << fs.fs_fsbtodb
        self._itable = [cgimin(fs, c) << fs.fs_fshift for c in range(fs.fs_ncg)]
        assert all(ino_to_fsba(fs, c * fs.fs_ipg) << fs.fs_fshift == self._itable[c] for c in (0, fs.fs_ncg - 1))
        self.rw_refusal = compute_rw_refusal(fs, self.journal)
        if fs.fs_flags & FS_SUJ and not fs.fs_clean & FS_ISCLEAN and self.readonly:
            self.notes.append("file system is unclean; its soft-updates journal is not replayed")
            log.warning("%s: file system is unclean; its soft-updates journal is not replayed",
                        self.mountpoint_path)
        if self.readonly:
            return
        if self.rw_refusal is not None:
            raise OSError(errno.EROFS, f"read-write mount refused: {self.rw_refusal}")
        self._start_rw()

    def _start_rw(self) -> None:
        """ffs_mountfs for a read-write mount, after the checks both kinds share: the refusals
        only a writer has, the journal written home, the allocator, then the clean-flag shift.
        The journal and allocator modules are imported here: a read-only mount of an image
        without a log (every fs-utils command) needs none of them."""
        from p2k.fs.ffs.ffs_alloc import Allocator
        from p2k.fs.ffs.ffs_wapbl import log_position, plan_infs_log
        from p2k.fs.ffs.suj import release_sujournal
        from p2k.fs.ffs.wapbl import ReplayedDevice
        from p2k.fs.ffs.wapbl_finish import replay_finish

        if self.dev.readonly and not isinstance(self.dev, ReplayedDevice):
            raise OSError(errno.EROFS, "device is read-only")
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
        log_plan = None
        if self.flags & MNT_LOG or "log" in self.data:
            self.flags = (self.flags | MNT_LOG) & ~MNT_ASYNC  # NetBSD ignores async on a log mount
            if not fs.ufs2 and not fs.fs_old_flags & FS_FLAGS_UPDATED:
                raise OSError(errno.EINVAL, "-o log: superblock in the old format, not journaling")
            loc = log_position(self)
            if loc is None:  # inside the file system, made once it is marked unclean on disk
                log_plan = plan_infs_log(self)
            else:
                self._start_log(loc)
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
        if log_plan is not None:
            self._create_log(log_plan)
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

    def _start_log(self, loc: JournalLoc) -> None:
        from p2k.fs.ffs.wapbl_log import DeferredFrees, LogWriter

        self.wapbl = LogWriter(self, loc)
        self.deferred = DeferredFrees(self.alloc)

    def _create_log(self, plan: LogPlan) -> None:
        """wapbl_create_infs_log's order: the journal inode and its blocks written home (a plain
        ordered sync, not journaled: there is no journal yet), then the superblock that names
        them, so a power cut leaves either no journal or a whole one on an unclean file system."""
        from p2k.fs.ffs.ffs_wapbl import create_infs_log, record

        loc = create_infs_log(self, plan)
        self.vfs_sync()
        record(self.fs, loc)
        self.fs.fs_flags |= FS_DOWAPBL
        self.write_superblock()
        self.host_fsync()
        self._start_log(loc)

    def _open_journal(self, fs: Superblock) -> Superblock:
        """ffs_mountfs's WAPBL step: a superblock with a journal gets it parsed; a non-empty one
        is laid over every read from here on (``ReplayedDevice``) and the superblock read again
        through it, as NetBSD re-reads it after starting replay. A read-write mount writes it
        home later (``replay_to_disk``), once nothing else refuses the mount. A log that cannot
        be replayed is noted in one line and the file system is read without it."""
        self.journal: Replay | str | None = None
        if not fs.fs_flags & FS_DOWAPBL:  # has_log's first test, without importing the log reader
            return fs
        from p2k.fs.ffs.wapbl import LogError, ReplayedDevice, has_log, log_state

        if not has_log(fs):
            return fs
        try:
            rp = log_state(fs, self.dev.pread, self.dev.size, fs.fs_ncg * fs.fs_ipg)
        except LogError as e:
            self.journal = str(e)
            self.notes.append(f"WAPBL journal not replayed: {e}")
            log.warning("%s: WAPBL journal not replayed: %s", self.mountpoint_path, e)
            return fs
        self.journal = rp
        if not rp.empty:
            self.bufcache.invalidate_dev(self.dev)
            overlay = ReplayedDevice(self.dev, rp)
            try:
                replayed = find_superblock(lambda off, n: overlay.pread(off, n), overlay.size)
            except OSError as e:
                self.journal = f"the replayed superblock is not valid: {e.strerror}"
                self.notes.append(f"WAPBL journal not replayed: {self.journal}")
                log.warning("%s: WAPBL journal not replayed: %s", self.mountpoint_path, self.journal)
                return fs
            self.dev, fs = overlay, replayed
            if self.readonly:
                self.notes.append(f"replaying log to memory ({len(rp.blocks)} blocks)")
                log.info("%s: replaying log to memory", self.mountpoint_path)
        if fs.fs_clean & FS_WASCLEAN:
            # The log made the file system consistent: it was clean when the log mount began.
            fs.fs_clean = FS_ISCLEAN
        return fs

    def replay_to_disk(self) -> None:
        """``wapbl_replay_write``, then the log emptied (a new commit header, head = tail = 0), each
        step synced before the next: a crash in between leaves a log that replays again."""
        from p2k.fs.ffs.wapbl import ReplayedDevice

        overlay = self.dev
        if not isinstance(overlay, ReplayedDevice):
            return
        rp = overlay.replay
        real = overlay.dev
        self.bufcache.invalidate_dev(overlay)
        rp.write_home(real.pwrite)
        real.fsync()
        off, raw = rp.empty_header()
        real.pwrite(off, raw)
        real.fsync()
        self.dev = real
        self.bmapper = BlockMap(self.fs, real, self.bufcache)
        self.notes.append(f"replaying log to disk ({len(rp.blocks)} blocks)")
        log.info("%s: replaying log to disk", self.mountpoint_path)

    def vfs_root_ino(self) -> int:
        return UFS_ROOTINO

    def inode_location(self, ino: int) -> tuple[int, int]:
        """(byte offset of the inode block holding ``ino``, byte offset of the dinode in it):
        ``ino_to_fsba``/``ino_to_fsbo`` with the per-group table starts precomputed, since every
        vget of a stat walk goes through here."""
        cg, idx = divmod(ino, self.fs.fs_ipg)
        blk, slot = divmod(idx, self.fs.fs_inopb)
        return self._itable[cg] + blk * self.fs.fs_bsize, slot * self.isize

    def read_dinode(self, ino: int) -> Inode:
        """Decode inode ``ino`` from its (cached) inode block, with no validity checks."""
        boff, off = self.inode_location(ino)
        bp = self.bufcache.bread(self.dev, boff, self.fs.fs_bsize)
        return self.codec.decode(bp.data, off, ino)

    def vfs_loadvnode(self, ino: int) -> tuple[object, int]:
        """The in-core inode of ``ino`` and its type.

        EINVAL for a number that is not an inode of this file system (0, 1, or ≥ ncg × ipg);
        ENOENT for a free inode (mode 0, or on UFS2 beyond the group's ``cg_initediblk``);
        EIO for an allocated inode whose contents are impossible (unknown type, absurd size)."""
        fs = self.fs
        if ino < UFS_ROOTINO or ino >= self.maxino:
            raise OSError(errno.EINVAL, f"inode {ino} out of range")
        if fs.ufs2:
            cg = ino // fs.fs_ipg
            bp = self.bufcache.bread(self.dev, cgtod(fs, cg) << fs.fs_fshift, fs.fs_cgsize)
            if not cg_magic_ok(bp.data, fs.endian):
                raise OSError(errno.EIO, f"cg {cg}: bad magic number (inode {ino})")
            if ino % fs.fs_ipg >= cg_initediblk(bp.data, fs.endian):
                raise OSError(errno.ENOENT, f"inode {ino} is not allocated")
        # read_dinode inlined: this is the per-entry cost of every stat walk
        cg, idx = divmod(ino, fs.fs_ipg)
        blk, slot = divmod(idx, fs.fs_inopb)
        bp = self.bufcache.bread(self.dev, self._itable[cg] + blk * fs.fs_bsize, fs.fs_bsize)
        ip = self.codec.decode(bp.data, slot * self.isize, ino)
        mode = ip.mode
        vtype = mode & 0o170000
        if vtype not in VALID_TYPES or ip.size > self.maxfilesize or ip.blocks > self.maxsectors:
            if mode == 0:
                raise OSError(errno.ENOENT, f"inode {ino} is not allocated")
            if vtype not in VALID_TYPES:
                raise OSError(errno.EIO, f"inode {ino}: unknown file type {mode:#o}")
            if ip.size > self.maxfilesize:
                raise OSError(errno.EIO, f"inode {ino}: size {ip.size} beyond the largest possible file")
            raise OSError(errno.EIO, f"inode {ino}: holds {ip.blocks} sectors, more than the file system")
        if vtype == IFDIR and ip.size > ip.blocks * DEV_BSIZE:
            raise OSError(errno.EIO, f"inode {ino}: directory size {ip.size} exceeds its blocks")
        return ip, vtype

    def vfs_statvfs(self) -> StatVFS:
        """ffs_statvfs: free space counts every free fragment; ``f_bavail`` subtracts the minfree
        reserve (``dsize × minfree / 100``) that only root may use."""
        fs = self.fs
        bfree = blkstofrags(fs, fs.fs_cs_nbfree) + fs.fs_cs_nffree + (fs.fs_pendingblocks >> fs.fs_fsbtodb)
        bresvd = fs.fs_dsize * fs.fs_minfree // 100
        files = fs.fs_ncg * fs.fs_ipg - UFS_ROOTINO
        ffree = fs.fs_cs_nifree + fs.fs_pendinginodes
        return StatVFS(
            f_bsize=fs.fs_bsize, f_frsize=fs.fs_fsize, f_blocks=fs.fs_dsize,
            f_bfree=max(bfree, 0), f_bavail=max(bfree - bresvd, 0),
            f_files=files, f_ffree=max(ffree, 0), f_favail=max(ffree, 0),
            f_fsid=self.fsid, f_flag=ST_RDONLY if self.readonly else 0, f_namemax=self.namemax)

    # ---- write ordering: the buffer cache's epochs, barriers before reuse ------------------------
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

    # ---- superblock and summary (ffs_sbupdate, ffs_cgupdate) --------------------------------------
    def write_superblock(self, barrier: bool = False) -> None:
        """ffs_sbupdate: the in-core superblock to its home, UFS1's 32-bit twins kept in step."""
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
        raw = self.alloc.csum_bytes()
        bp = self.bufcache.getblk(self.dev, fs.fs_csaddr << fs.fs_fshift, len(raw))
        bp.data[:] = raw
        self.bufcache.bwrite(bp)
        self.alloc.csum_dirty = False

    def vfs_sync(self, wait: bool = True) -> None:
        """ffs_sync: dirty inodes into their blocks, every delayed buffer (indirect blocks, inode
        blocks, cgs) to the device, then the summary area and the superblock. Nothing is ever
        dirty on a read-only mount."""
        if self.readonly:
            self.bufcache.flush_dev(self.dev)
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
        self.vfs_sync()
        if self.readonly:
            self.bufcache.invalidate_dev(self.dev)
            return
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

    # ---- the vnode operations vector -------------------------------------------------------------
    # NetBSD's ffs_vnodeop_entries (ffs_vnops.c): the function that answers each VOP, from the
    # module named after NetBSD's file that holds it. Each takes the mount first, so bound here it
    # is a method, and vopguard wraps it like any other.
    vfs_stat_inodes = ffs_stat_inodes
    vop_lookup = ufs_lookup
    vop_readdir = ufs_readdir
    vop_isempty = ufs_isempty
    vop_getattr = ufs_getattr
    vop_setattr = ufs_setattr
    vop_readlink = ufs_readlink
    vop_create = ufs_create
    vop_mkdir = ufs_mkdir
    vop_symlink = ufs_symlink
    vop_link = ufs_link
    vop_remove = ufs_remove
    vop_rmdir = ufs_rmdir
    vop_rename = ufs_rename
    vop_read = ffs_read
    vop_readinto = ffs_readinto
    vop_write = ffs_write
    vop_fsync = ffs_fsync
    vop_inactive = ufs_inactive
    vop_reclaim = ffs_reclaim
    vop_getextattr = ffs_getextattr
    vop_listextattr = ffs_listextattr
    vop_setextattr = ffs_setextattr
    vop_deleteextattr = ffs_deleteextattr
    # what the other modules (and tests) ask of any mount: its file data, its inode write-back,
    # its directory entries
    read_range = read_range
    iupdate = ffs_update
    dir_entries = dir_entries
