"""FFS vnode operations that change the file system (NetBSD ``ufs_vnops.c``, ``ufs_rename.c``,
``ufs_inode.c``, ``ffs_vnops.c``): create, mkdir, symlink, link, remove, rmdir, rename, setattr,
write, fsync, inactive.

Ordering for crash consistency follows NetBSD's synchronous (non-softdep) FFS, mapped onto the
buffer cache's ordered write-back (set up by ``FfsMountRW``): file data and blocks nothing points
to yet are written before the metadata of the same epoch, with a device flush between; a link
count goes up before a new name appears and down only after the old name is gone; a block or
inode freed since the last full sync is not written again before another one (``barrier``), so
a crash never lets an old pointer or name show new contents. ``fsync`` is a full ordered sync
followed by a host sync.

Whether a caller may dip into the minfree reserve is decided by the *owner* of the inode being
written (root-owned files may), since the VOP interface carries no credentials; for the usual case
— a process writing its own files — this is the same answer NetBSD gives.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from p2k.fs.ffs.dir import dir_template
from p2k.fs.ffs.extattr import free_area
from p2k.fs.ffs.ffs_balloc import write_range
from p2k.fs.ffs.ffs_inode import truncate
from p2k.fs.ffs.fs import UFS_NDADDR
from p2k.fs.ffs.inode import IFBLK, IFCHR, IFDIR, IFLNK, IFMT, IFREG
from p2k.fs.ffs.ufs_lookup import dir_index, dir_isempty, direnter, dirremove, dirrewrite
from p2k.fs.ffs.ufs_readwrite import FfsVnops
from p2k.hyper import now_ns, random_u32
from p2k.vfs.mount import MNT_NOATIME, MNT_RDONLY
from p2k.vfs.vattr import apply_owner_mode

if TYPE_CHECKING:
    from p2k.fs.ffs.inode import Inode
    from p2k.fs.ffs.vfsops_rw import FfsMountRW
    from p2k.vfs.vattr import SetAttr
    from p2k.vfs.vnode import Vnode

LINK_MAX = 32767
CHUNK = 1 << 20  # writes are cut into pieces so that ENOSPC can return a short count


def _ip(vp: Vnode) -> Inode:
    return vp.data  # type: ignore[return-value]


def _dtype(mode: int) -> int:
    return (mode >> 12) & 15


def set_times(ip: Inode, *, a: int | None = None, m: int | None = None, c: int | None = None,
              b: int | None = None) -> None:
    """Store nanosecond times as the dinode's seconds + nanoseconds fields."""
    g = 1_000_000_000
    if a is not None:
        ip.atime, ip.atimensec = divmod(a, g)
    if m is not None:
        ip.mtime, ip.mtimensec = divmod(m, g)
    if c is not None:
        ip.ctime, ip.ctimensec = divmod(c, g)
    if b is not None:
        ip.birthtime, ip.birthnsec = divmod(b, g)


def _modified(ip: Inode) -> None:
    t = now_ns()
    set_times(ip, m=t, c=t)


def _changed(ip: Inode) -> None:
    set_times(ip, c=now_ns())


class FfsWriteVnops:
    """Mixed into ``FfsMountRW`` (``self`` is the mount)."""

    # ---- helpers ---------------------------------------------------------------------------------
    def _rw(self: FfsMountRW) -> None:
        if self.flags & MNT_RDONLY or self.alloc is None:
            raise OSError(errno.EROFS, "read-only file system")

    def _new_inode(self: FfsMountRW, dip: Inode, mode: int, uid: int, gid: int) -> Inode:
        """ffs_valloc + ufs_makeinode's initialisation of a fresh in-core inode."""
        assert self.alloc is not None
        isdir = mode & IFMT == IFDIR
        ino = self.alloc.alloc_inode(dip.ino, isdir)
        if ino in self.freed_inos:
            self.barrier()  # the name that pointed to its last life must be gone on disk first
        ip = self.read_dinode(ino)
        if ip.mode != 0:
            raise OSError(errno.EIO, f"inode {ino} is free in the map but allocated on disk")
        gen = (ip.gen + 1) & 0xFFFFFFFF
        ip.gen = gen or random_u32() or 1
        ip.mode = mode
        ip.nlink = 0
        ip.uid, ip.gid = uid, gid
        ip.size = ip.blocks = 0
        ip.db = [0] * UFS_NDADDR
        ip.ib = [0, 0, 0]
        ip.flags = 0
        ip.extsize = 0
        ip.extb = [0, 0]
        ip.kernflags = 0
        ip.modrev = 0
        ip.oldids = (0, 0)
        if self.fs.ufs2:
            ip.blksize = self.fs.fs_bsize
        t = now_ns()
        set_times(ip, a=t, m=t, c=t, b=t if self.fs.ufs2 else None)
        ip.dircache = None
        return ip

    def _undo_inode(self: FfsMountRW, ip: Inode) -> None:
        """Give back an inode whose creation failed before any name pointed at it."""
        assert self.alloc is not None
        isdir = ip.mode & IFMT == IFDIR
        free_area(self, ip)
        if ip.blocks:
            truncate(self, ip, 0, True)
        ip.mode = 0
        ip.nlink = 0
        self.iupdate(ip, sync=True)
        self.alloc.free_inode(ip.ino, isdir)
        self.freed_inos.add(ip.ino)

    def _root(self: FfsMountRW, ip: Inode) -> bool:
        return ip.uid == 0

    def _enter(self: FfsMountRW, dip: Inode, name: bytes, ip: Inode) -> None:
        if name in dir_index(self, dip).offsets:
            raise OSError(errno.EEXIST, "entry exists")
        direnter(self, dip, name, ip.ino, _dtype(ip.mode), self._root(dip))
        _modified(dip)
        self.mark_dirty(dip)

    def _make(self: FfsMountRW, dvp: Vnode, name: bytes, mode: int, uid: int, gid: int,
              body: bytes | None = None, rdev: int = 0) -> int:
        self._rw()
        dip = _ip(dvp)
        if name in dir_index(self, dip).offsets:
            raise OSError(errno.EEXIST, "entry exists")
        ip = self._new_inode(dip, mode, uid, gid)
        try:
            ip.nlink = 1
            kind = mode & IFMT
            if kind in (IFCHR, IFBLK):
                v = rdev & 0xFFFFFFFF if not self.fs.ufs2 else rdev & 0xFFFFFFFFFFFFFFFF
                ip.db[0] = v - (1 << 32) if not self.fs.ufs2 and v >= 1 << 31 else (
                    v - (1 << 64) if v >= 1 << 63 else v)
            elif kind == IFLNK and body is not None:
                if len(body) < self.fs.fs_maxsymlinklen:
                    self.codec.set_shortlink(ip, body)
                    ip.size = len(body)
                else:
                    write_range(self, ip, 0, body, self._root(dip))
            if kind != IFLNK:
                self.inherit_acl(dip, ip)  # ffs_vnops: the parent's default ACL, if any
            self.iupdate(ip, sync=True)  # the inode is on disk before a name points to it
            self._enter(dip, name, ip)
        except BaseException:
            self._undo_inode(ip)
            raise
        return ip.ino

    # ---- creation --------------------------------------------------------------------------------
    def vop_create(self: FfsMountRW, dvp: Vnode, name: bytes, mode: int, uid: int, gid: int,
                   rdev: int = 0) -> int:
        if mode & IFMT == 0:
            mode |= IFREG
        return self._make(dvp, name, mode, uid, gid, rdev=rdev)

    def vop_symlink(self: FfsMountRW, dvp: Vnode, name: bytes, target: bytes, mode: int, uid: int,
                    gid: int) -> int:
        return self._make(dvp, name, IFLNK | (mode & 0o7777), uid, gid, body=bytes(target))

    def vop_mkdir(self: FfsMountRW, dvp: Vnode, name: bytes, mode: int, uid: int, gid: int) -> int:
        self._rw()
        dip = _ip(dvp)
        if name in dir_index(self, dip).offsets:
            raise OSError(errno.EEXIST, "entry exists")
        if dip.nlink >= LINK_MAX:
            raise OSError(errno.EMLINK, "too many links")
        ip = self._new_inode(dip, IFDIR | (mode & 0o7777), uid, gid)
        try:
            ip.nlink = 2
            write_range(self, ip, 0, dir_template(self.fs.endian, ip.ino, dip.ino), self._root(dip))
            self.inherit_acl(dip, ip)
            self.iupdate(ip, sync=True)
        except BaseException:
            self._undo_inode(ip)
            raise
        dip.nlink += 1  # the new ".." counts before the entry exists (fsck lowers it if need be)
        self.iupdate(dip, sync=True)
        try:
            self._enter(dip, name, ip)
        except BaseException:
            dip.nlink -= 1
            self.iupdate(dip, sync=True)
            self._undo_inode(ip)
            raise
        return ip.ino

    def vop_link(self: FfsMountRW, dvp: Vnode, name: bytes, vp: Vnode) -> None:
        self._rw()
        dip, ip = _ip(dvp), _ip(vp)
        if ip.nlink >= LINK_MAX:
            raise OSError(errno.EMLINK, "too many links")
        if name in dir_index(self, dip).offsets:
            raise OSError(errno.EEXIST, "entry exists")
        ip.nlink += 1
        _changed(ip)
        self.iupdate(ip, sync=True)
        try:
            self._enter(dip, name, ip)
        except BaseException:
            ip.nlink -= 1
            self.iupdate(ip, sync=True)
            raise

    # ---- removal ---------------------------------------------------------------------------------
    def vop_remove(self: FfsMountRW, dvp: Vnode, name: bytes, vp: Vnode) -> None:
        self._rw()
        dip, ip = _ip(dvp), _ip(vp)
        dirremove(self, dip, name)
        _modified(dip)
        self.mark_dirty(dip)
        ip.nlink -= 1
        _changed(ip)
        self.mark_dirty(ip)

    def vop_rmdir(self: FfsMountRW, dvp: Vnode, name: bytes, vp: Vnode) -> None:
        self._rw()
        dip, ip = _ip(dvp), _ip(vp)
        dirremove(self, dip, name)
        dip.nlink -= 1
        _modified(dip)
        self.mark_dirty(dip)
        ip.nlink = 0
        _changed(ip)
        truncate(self, ip, 0, True)
        self.dirindex.pop(ip.ino, None)
        ip.dircache = {}
        self.mark_dirty(ip)

    def vop_isempty(self: FfsMountRW, vp: Vnode) -> bool:
        return dir_isempty(self, _ip(vp))

    def vop_rename(self: FfsMountRW, fdvp: Vnode, fname: bytes, fvp: Vnode, tdvp: Vnode, tname: bytes,
                   tvp: Vnode | None) -> None:
        self._rw()
        fdip, tdip, ip = _ip(fdvp), _ip(tdvp), _ip(fvp)
        isdir = ip.mode & IFMT == IFDIR
        newparent = fdip.ino != tdip.ino
        if isdir and newparent and tvp is None and tdip.nlink >= LINK_MAX:
            raise OSError(errno.EMLINK, "too many links")
        ip.nlink += 1  # counted twice while both names may exist on disk
        _changed(ip)
        self.iupdate(ip, sync=True)
        try:
            if tvp is not None:
                tip = _ip(tvp)
                dirrewrite(self, tdip, tname, ip.ino, _dtype(ip.mode))
                if tip.mode & IFMT == IFDIR:
                    tip.nlink = 0
                    if not (isdir and newparent):
                        tdip.nlink -= 1  # the replaced directory's ".." is gone
                    truncate(self, tip, 0, True)
                    self.dirindex.pop(tip.ino, None)
                    tip.dircache = {}
                else:
                    tip.nlink -= 1
                _changed(tip)
                self.mark_dirty(tip)
                _modified(tdip)
                self.mark_dirty(tdip)
            else:
                if isdir and newparent:
                    tdip.nlink += 1
                    self.iupdate(tdip, sync=True)
                try:
                    self._enter(tdip, tname, ip)
                except BaseException:
                    if isdir and newparent:
                        tdip.nlink -= 1
                        self.iupdate(tdip, sync=True)
                    raise
        except BaseException:
            ip.nlink -= 1
            self.iupdate(ip, sync=True)
            raise
        dirremove(self, fdip, fname)
        ip.nlink -= 1
        if isdir and newparent:
            dirrewrite(self, ip, b"..", tdip.ino, _dtype(IFDIR))
            fdip.nlink -= 1
        _modified(fdip)
        self.mark_dirty(fdip)
        _changed(ip)
        self.mark_dirty(ip)

    # ---- attributes ------------------------------------------------------------------------------
    def vop_setattr(self: FfsMountRW, vp: Vnode, sa: SetAttr) -> None:
        self._rw()
        ip = _ip(vp)
        if sa.size is not None:
            kind = ip.mode & IFMT
            if kind == IFDIR:
                raise OSError(errno.EISDIR, "is a directory")
            if kind != IFREG:
                raise OSError(errno.EINVAL, "not a regular file")
            if sa.size > self.maxfilesize:
                raise OSError(errno.EFBIG, "file too large")
            if sa.size != ip.size:
                truncate(self, ip, sa.size, self._root(ip))
                _modified(ip)
        apply_owner_mode(ip, sa)
        set_times(ip, a=sa.atime_ns, m=sa.mtime_ns, b=sa.birthtime_ns if self.fs.ufs2 else None)
        _changed(ip)
        if sa.ctime_ns is not None:
            set_times(ip, c=sa.ctime_ns)
        self.codec.clamp_times(ip)
        self.mark_dirty(ip)

    # ---- data ------------------------------------------------------------------------------------
    def vop_write(self: FfsMountRW, vp: Vnode, offset: int, data: bytes | bytearray | memoryview) -> int:
        self._rw()
        ip = _ip(vp)
        kind = ip.mode & IFMT
        if kind == IFDIR:
            raise OSError(errno.EISDIR, "is a directory")
        if kind != IFREG:
            raise OSError(errno.EINVAL, "not a regular file")
        n = len(data)
        if n == 0:
            return 0
        if offset + n > self.maxfilesize:
            raise OSError(errno.EFBIG, "file too large")
        view = memoryview(data).cast("B")
        root = self._root(ip)
        done = 0
        bsize = self.fs.fs_bsize
        step = CHUNK
        try:
            while done < n:
                piece = min(step, n - done)
                try:
                    write_range(self, ip, offset + done, view[done:done + piece], root)
                except OSError as e:
                    if e.errno != errno.ENOSPC or step <= bsize:
                        raise
                    step = bsize  # retry in single blocks to fill up to the last free one
                    continue
                done += piece
        except OSError as e:
            if done == 0 or e.errno != errno.ENOSPC:
                raise
        _modified(ip)
        self.mark_dirty(ip)
        return done

    def vop_read(self: FfsMountRW, vp: Vnode, offset: int, size: int) -> bytes:
        """The read path's read, plus the access time POSIX asks for (ufs_read's IN_ACCESS),
        on a read-write mount without ``noatime``; the inode goes out with the next sync."""
        data = FfsVnops.vop_read(self, vp, offset, size)
        if self.alloc is not None and not self.flags & (MNT_RDONLY | MNT_NOATIME):
            ip = _ip(vp)
            set_times(ip, a=now_ns())
            self.mark_dirty(ip)
        return data

    def vop_fsync(self: FfsMountRW, vp: Vnode, dataonly: bool = False) -> None:
        """A full ordered sync (data, flush, metadata, flush: the file's data, its inode and the
        indirect blocks between them among it), then the host file is synced before returning."""
        if self.readonly or self.alloc is None:
            return
        self.iupdate(_ip(vp))
        self.vfs_sync(wait=True)
        self.dev.fsync()  # fsync(2) promises durability even on an MNT_ASYNC mount

    # ---- life cycle ------------------------------------------------------------------------------
    def vop_inactive(self: FfsMountRW, vp: Vnode) -> bool:
        """ufs_inactive: the last reference to an unlinked inode frees its blocks, then the inode."""
        ip: Inode | None = vp.data  # type: ignore[assignment]
        if ip is None or self.readonly or self.alloc is None or ip.nlink > 0 or ip.mode == 0:
            return False
        kind = ip.mode & IFMT
        isdir = kind == IFDIR
        free_area(self, ip)  # first: a fast symlink's blocks must read 0 below
        fast_link = kind == IFLNK and ip.size < self.fs.fs_maxsymlinklen and ip.blocks == 0
        if kind in (IFREG, IFDIR, IFLNK) and not fast_link and (ip.size or ip.blocks):
            truncate(self, ip, 0, True)
        ip.size = 0
        ip.db = [0] * UFS_NDADDR
        ip.ib = [0, 0, 0]
        ip.mode = 0
        _changed(ip)
        self.iupdate(ip, sync=True)
        self.alloc.free_inode(ip.ino, isdir)
        self.freed_inos.add(ip.ino)
        self.dirindex.pop(ip.ino, None)
        return True
