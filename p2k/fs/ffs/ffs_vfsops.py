"""FFS VFS operations (NetBSD ``ffs_vfsops.c``): mount, vget, statvfs, sync, unmount.

``FfsMount.vfs_start`` finds and validates the superblock, builds the per-mount codecs, and decides
``rw_refusal``: a one-line reason why this file system may only be mounted read-only (a feature
p2k does not maintain, or a state NetBSD itself refuses to mount read-write), or None. A read-write
mount of such a file system fails with EROFS and that reason.
"""

from __future__ import annotations

import errno
import logging
from typing import TYPE_CHECKING, Any

from p2k.fs.ffs.bmap import BlockMap
from p2k.fs.ffs.cg import cg_initediblk, cg_magic_ok
from p2k.fs.ffs.dinode import DinodeCodec
from p2k.fs.ffs.ffs_vnops import FfsExtattrVnops
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
from p2k.fs.ffs.ufs_readwrite import FfsVnops
from p2k.fs.ffs.wapbl import LogError, Replay, ReplayedDevice, has_log, log_state
from p2k.vfs.mount import Mount
from p2k.vfs.vattr import StatVFS

if TYPE_CHECKING:
    from p2k.kernel import Kernel
    from p2k.vfs.bufcache import BlockDevice

ST_RDONLY = 1
log = logging.getLogger("p2k.ffs")
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


class FfsMount(FfsExtattrVnops, FfsVnops, Mount):
    """A mounted FFS (UFS1, UFS2, UFS2EA; either byte order). ``data["device"]`` is the device."""

    fstype = "ffs"
    namemax = 255

    def __init__(self, kernel: Kernel, flags: int, data: dict[str, Any]) -> None:
        super().__init__(kernel, flags, data)
        self.dev: BlockDevice = data["device"]
        self.bufcache = kernel.bufcache
        self.rw_refusal: str | None = None
        self.dir_errors: list[str] = []
        self.notes: list[str] = []  # one-line remarks of the mount (a journal replayed or not)

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
        if not self.readonly:
            if self.rw_refusal is not None:
                raise OSError(errno.EROFS, f"read-write mount refused: {self.rw_refusal}")
            if self.dev.readonly and not isinstance(self.dev, ReplayedDevice):
                raise OSError(errno.EROFS, "device is read-only")

    def _open_journal(self, fs: Superblock) -> Superblock:
        """ffs_mountfs's WAPBL step: a superblock with a journal gets it parsed; a non-empty one
        is laid over every read from here on (``ReplayedDevice``) and the superblock read again
        through it, as NetBSD re-reads it after starting replay. A read-write mount writes it
        home later (``replay_to_disk``), once nothing else refuses the mount. A log that cannot
        be replayed is noted in one line and the file system is read without it."""
        self.journal: Replay | str | None = None
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

    def vfs_sync(self, wait: bool = True) -> None:
        """Nothing is ever dirty on the read path; the write path flushes inodes, cgs and sb here."""
        self.bufcache.flush_dev(self.dev)

    def vfs_unmount(self, force: bool = False) -> None:
        self.vfs_sync()
        self.bufcache.invalidate_dev(self.dev)
