"""FUSE operations mapped onto the kernel's vnode operations (NetBSD ``lib/libp2k/p2k.c``).

Every request runs in a worker thread (``trio.to_thread``) behind a capacity limiter of RUMP_NCPU
tokens: at most that many requests are inside the kernel at once, and a long read holds one token
and the kernel lock only per call, so ``stat`` on another file is answered between its chunks.
Requests that name something act as the caller (``CredCache``), so the kernel applies every
permission rule itself; ``default_permissions`` is also on, so the host kernel checks cached
names the same way before it asks (search permission on a prefix it has cached would otherwise go
unchecked). Errors travel as ``OSError`` up to here and leave as ``FUSEError`` with the same errno;
anything else is a bug: logged with its traceback, answered EIO, and the daemon keeps serving.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

import pyfuse3
import trio

from p2k.puffs import kernelops as ko
from p2k.puffs.creds import CredCache
from p2k.puffs.inodes import InodeMap
from p2k.vfs.sys_path import RENAME_EXCHANGE, RENAME_NOREPLACE
from p2k.vfs.vattr import UTIME_NOW, UTIME_OMIT, Dirent, Vattr

log = logging.getLogger("p2k.puffs")

T = TypeVar("T")

READDIR_BATCH = 128
# Reads and writes up to this size run inline like metadata calls (FUSE sends at most 128 KiB
# per request, a few hundred microseconds of kernel work); anything larger goes to a thread.
BULK_INLINE_MAX = 128 * 1024
_OPEN_IGNORED = os.O_CREAT | os.O_EXCL | os.O_NOCTTY


class Bridge(pyfuse3.Operations):
    """One mounted kernel tree (the file system mounted at ``mountpath`` in ``kernel``)."""

    supports_dot_lookup = False  # no NFS export: ".." is never asked of us
    enable_writeback_cache = False  # the kernel's buffer cache is the one write-back cache
    enable_acl = False

    def __init__(self, kernel: Any, mountpath: str = "/mnt", *, attr_timeout: float = 1.0) -> None:
        super().__init__()
        self.k = kernel
        self.rootvp = kernel.sys.lookup(mountpath, follow=True)
        self.mp = self.rootvp.mount
        self.inodes = InodeMap(self.mp.vfs_root_ino())
        self.creds = CredCache(kernel)
        self.limiter = trio.CapacityLimiter(kernel.params.ncpu)
        self.attr_timeout = attr_timeout
        self.openers: dict[int, Any] = {}  # fh → Syscalls of the process that opened it
        self.requests = 0

    # ---- plumbing --------------------------------------------------------------------------------
    async def _run(self, fn: Callable[..., T], *args: Any, bulk: bool = False) -> T:
        """Run ``fn`` in the kernel. A short call (anything but bulk data) runs right here when
        a CPU token and the kernel lock are free: a thread hop costs more than most metadata
        calls, and while the lock is free nothing else could run in the kernel anyway. Otherwise,
        and for bulk reads and writes, a worker thread waits its turn so the loop keeps taking
        requests."""
        self.requests += 1
        try:
            if not bulk:
                try:
                    self.limiter.acquire_nowait()
                except trio.WouldBlock:
                    pass
                else:
                    try:
                        if self.k.lock.acquire(blocking=False):
                            try:
                                return fn(*args)
                            finally:
                                self.k.lock.release()
                    finally:
                        self.limiter.release()
            return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)
        except pyfuse3.FUSEError:
            raise
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno or errno.EIO) from None
        except Exception:
            log.exception("bug while serving %s", getattr(fn, "__name__", fn))
            raise pyfuse3.FUSEError(errno.EIO) from None

    def _sys(self, ctx: pyfuse3.RequestContext) -> Any:
        return self.creds.for_request(ctx.uid, ctx.gid, ctx.pid)

    def _with_vnode(self, fino: int, fn: Callable[..., T], *args: Any) -> T:
        """Call ``fn(vp, *args)`` with the vnode of node ``fino`` held for the call."""
        vp = ko.vget(self.k, self.mp, self.inodes.to_fs(fino))
        try:
            return fn(vp, *args)
        finally:
            with self.k.lock:
                self.k.vcache.vrele(vp)

    def entry(self, va: Vattr) -> pyfuse3.EntryAttributes:
        e = pyfuse3.EntryAttributes()
        e.st_ino = self.inodes.to_fuse(va.ino)
        e.generation = va.gen
        e.st_mode = va.mode
        e.st_nlink = va.nlink
        e.st_uid = va.uid
        e.st_gid = va.gid
        e.st_rdev = va.rdev
        e.st_size = va.size
        e.st_blksize = va.blksize
        e.st_blocks = va.blocks
        e.st_atime_ns = va.atime_ns
        e.st_mtime_ns = va.mtime_ns
        e.st_ctime_ns = va.ctime_ns
        e.attr_timeout = self.attr_timeout
        e.entry_timeout = self.attr_timeout
        return e

    def _found(self, va: Vattr) -> pyfuse3.EntryAttributes:
        """An entry reply: the host counts one more lookup of it."""
        e = self.entry(va)
        self.inodes.remember(e.st_ino)
        return e

    def _named_attr(self, s: Any, dvp: Any, name: bytes) -> Vattr:
        vp = s.lookup(name, dir_fd=dvp, follow=False)
        try:
            return s.vgetattr(vp)
        finally:
            s.vrele(vp)

    # ---- names -----------------------------------------------------------------------------------
    async def lookup(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        s = self._sys(ctx)
        if name in (b".", b"..") and parent_inode == pyfuse3.ROOT_INODE:
            va = await self._run(ko.getattr_ino, self.k, self.mp, self.inodes.root_ino)
        else:
            try:
                va = await self._run(self._with_vnode, parent_inode, lambda dvp: ko.lookup_attr(s, dvp, name))
            except pyfuse3.FUSEError as e:
                if e.errno != errno.ENOENT:
                    raise
                # A negative entry: the host caches the miss as long as a positive one, which
                # spares the repeated misses of include paths and git's probes. Every creation
                # comes through this mount, so the host drops the negative entry itself.
                miss = pyfuse3.EntryAttributes()
                miss.st_ino = 0
                miss.entry_timeout = self.attr_timeout
                return miss
        return self._found(va)

    async def forget(self, inode_list: list[tuple[int, int]]) -> None:
        for fino, n in inode_list:
            self.inodes.forget(fino, n)

    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        va = await self._run(ko.getattr_ino, self.k, self.mp, self.inodes.to_fs(inode))
        return self.entry(va)

    async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields,
                      fh: int | None, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        s = self._sys(ctx)

        def change(vp: Any) -> Vattr:
            with self.k.lock:
                if fields.update_uid or fields.update_gid:
                    s.vchown(vp, attr.st_uid if fields.update_uid else -1, attr.st_gid if fields.update_gid else -1)
                if fields.update_size:
                    through_fd = fh is not None and ko.fd_writable(self.k, fh)
                    s.vtruncate(vp, attr.st_size, fd=fh if through_fd else None)
                if fields.update_mode:
                    mode = attr.st_mode & 0o7777
                    if not ko.clear_setid(s, vp, mode):
                        s.vchmod(vp, mode)
                if fields.update_atime or fields.update_mtime:
                    a = attr.st_atime_ns if fields.update_atime else UTIME_OMIT
                    m = attr.st_mtime_ns if fields.update_mtime else UTIME_OMIT
                    va = s.vgetattr(vp)
                    if ctx.uid not in (0, va.uid):
                        # pyfuse3 turns UTIME_NOW into the time of day; the host kernel lets a
                        # non-owner set times only to now, so that is what reached us.
                        a = UTIME_NOW if fields.update_atime else UTIME_OMIT
                        m = UTIME_NOW if fields.update_mtime else UTIME_OMIT
                    s.vutimens(vp, a, m)
                return s.vgetattr(vp)

        va = await self._run(self._with_vnode, inode, change)
        return self.entry(va)

    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        s = self._sys(ctx)
        return await self._run(self._with_vnode, inode, s.vreadlink)

    def _create_then_stat(self, parent: int, name: bytes, s: Any, make: Callable[[Any], object]) -> Vattr:
        def run(dvp: Any) -> Vattr:
            with self.k.lock:
                make(dvp)
                return self._named_attr(self.creds.root, dvp, name)

        return self._with_vnode(parent, run)

    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        s = self._sys(ctx)
        va = await self._run(self._create_then_stat, parent_inode, name, s,
                             lambda dvp: s.mknod(name, mode, rdev, dir_fd=dvp))
        return self._found(va)

    async def mkdir(self, parent_inode: int, name: bytes, mode: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        s = self._sys(ctx)
        va = await self._run(self._create_then_stat, parent_inode, name, s,
                             lambda dvp: s.mkdir(name, mode, dir_fd=dvp))
        return self._found(va)

    async def symlink(self, parent_inode: int, name: bytes, target: bytes,
                      ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        s = self._sys(ctx)
        va = await self._run(self._create_then_stat, parent_inode, name, s,
                             lambda dvp: s.symlink(target, name, dir_fd=dvp))
        return self._found(va)

    async def link(self, inode: int, new_parent_inode: int, new_name: bytes,
                   ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        s = self._sys(ctx)

        def run(vp: Any) -> Vattr:
            return self._create_then_stat(new_parent_inode, new_name, s,
                                          lambda dvp: s.vlink(vp, new_name, dvp))

        va = await self._run(self._with_vnode, inode, run)
        return self._found(va)

    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        s = self._sys(ctx)
        await self._run(self._with_vnode, parent_inode, lambda dvp: s.unlink(name, dir_fd=dvp))

    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        s = self._sys(ctx)
        await self._run(self._with_vnode, parent_inode, lambda dvp: s.rmdir(name, dir_fd=dvp))

    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int, name_new: bytes,
                     flags: int, ctx: pyfuse3.RequestContext) -> None:
        s = self._sys(ctx)
        kflags = (RENAME_NOREPLACE if flags & pyfuse3.RENAME_NOREPLACE else 0) | \
                 (RENAME_EXCHANGE if flags & pyfuse3.RENAME_EXCHANGE else 0)
        if flags & ~(pyfuse3.RENAME_NOREPLACE | pyfuse3.RENAME_EXCHANGE):
            raise pyfuse3.FUSEError(errno.EINVAL)

        def run(fdvp: Any) -> None:
            self._with_vnode(parent_inode_new, lambda tdvp: s.rename(
                name_old, name_new, kflags, src_dir_fd=fdvp, dst_dir_fd=tdvp))

        await self._run(self._with_vnode, parent_inode_old, run)

    # ---- files -----------------------------------------------------------------------------------
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        s = self._sys(ctx)
        fd = await self._run(self._with_vnode, inode, lambda vp: s.vopen(vp, flags & ~_OPEN_IGNORED))
        self.openers[fd] = s
        # keep_cache: every change reaches the file through this mount, so the host's page cache
        # of it is never stale.
        return pyfuse3.FileInfo(fh=fd, keep_cache=True)

    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: pyfuse3.RequestContext) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        s = self._sys(ctx)

        def run(dvp: Any) -> tuple[int, Vattr]:
            with self.k.lock:
                fd = s.open(name, (flags & ~os.O_NOCTTY) | os.O_CREAT, mode, dir_fd=dvp)
                return fd, s.vgetattr(ko.fd_vnode(self.k, fd))

        fd, va = await self._run(self._with_vnode, parent_inode, run)
        self.openers[fd] = s
        return pyfuse3.FileInfo(fh=fd, keep_cache=True), self._found(va)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        return await self._run(self.creds.root.pread, fh, size, off, bulk=size > BULK_INLINE_MAX)

    async def write(self, fh: int, off: int, buf: bytes) -> int:
        # As the opener, so that a write by anyone but root clears set-uid/set-gid.
        s = self.openers.get(fh, self.creds.root)

        def run() -> int:
            with self.k.lock:
                if ko.fd_append(self.k, fh):
                    return s.write(fh, buf)  # O_APPEND: at the end as the kernel sees it, atomically
                return s.pwrite(fh, buf, off)

        return await self._run(run, bulk=len(buf) > BULK_INLINE_MAX)

    async def flush(self, fh: int) -> None:
        """close(2) of one of possibly several descriptors: nothing to do, data is in the kernel's
        buffer cache and reaches the image on fsync, sync and unmount. ENOSYS tells the host
        kernel so once, and it stops sending FLUSH: one request fewer per close."""
        raise pyfuse3.FUSEError(errno.ENOSYS)

    async def release(self, fh: int) -> None:
        self.openers.pop(fh, None)
        await self._run(self.creds.root.close, fh)

    async def fsync(self, fh: int, datasync: bool) -> None:
        await self._run(self.creds.root.fdatasync if datasync else self.creds.root.fsync, fh)

    # ---- directories -----------------------------------------------------------------------------
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        s = self._sys(ctx)
        return await self._run(self._with_vnode, inode, lambda vp: s.vopen(vp, os.O_RDONLY | os.O_DIRECTORY))

    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        """Entries after cookie ``start_id``; the next id of each is the kernel's cookie, which
        stays valid across reclaim and concurrent changes. Stops when the reply buffer is full:
        the host asks again from the last cookie it accepted."""
        cookie = start_id
        dir_fino = self.inodes.to_fuse((await self._run(ko.fd_vnode, self.k, fh)).ino)
        while True:
            batch = await self._run(ko.readdir_plus, self.k, fh, cookie, READDIR_BATCH)
            for d, va in batch:
                e = self._dirent_attr(d, va, dir_fino)
                if not pyfuse3.readdir_reply(token, d.name, e, d.cookie):
                    return
                if d.name not in (b".", b".."):
                    self.inodes.remember(e.st_ino)
                cookie = d.cookie
            if len(batch) < READDIR_BATCH:
                return

    def _dirent_attr(self, d: Dirent, va: Vattr | None, dir_fino: int) -> pyfuse3.EntryAttributes:
        if va is not None:
            return self.entry(va)
        e = pyfuse3.EntryAttributes()
        if d.name == b"..":
            e.st_ino = pyfuse3.ROOT_INODE if dir_fino == pyfuse3.ROOT_INODE else self.inodes.to_fuse(d.ino)
        elif d.name == b".":
            e.st_ino = dir_fino
        else:
            e.st_ino = self.inodes.to_fuse(d.ino)
        e.st_mode = d.type << 12
        e.attr_timeout = 0
        e.entry_timeout = 0
        return e

    async def releasedir(self, fh: int) -> None:
        await self._run(self.creds.root.close, fh)

    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        await self._run(self.creds.root.fsync, fh)

    # ---- the file system -------------------------------------------------------------------------
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        sv = await self._run(self.creds.root.vstatvfs, self.rootvp)
        out = pyfuse3.StatvfsData()
        out.f_bsize = sv.f_bsize
        out.f_frsize = sv.f_frsize
        out.f_blocks = sv.f_blocks
        out.f_bfree = sv.f_bfree
        out.f_bavail = sv.f_bavail
        out.f_files = sv.f_files
        out.f_ffree = sv.f_ffree
        out.f_favail = sv.f_favail
        out.f_namemax = sv.f_namemax
        return out

    async def access(self, inode: int, mode: int, ctx: pyfuse3.RequestContext) -> bool:
        s = self._sys(ctx)
        await self._run(self._with_vnode, inode, lambda vp: ko.access_vp(s, vp, mode))
        return True

    # ---- extended attributes (ENOTSUP unless the driver has them) --------------------------------
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        return await self._run(self._with_vnode, inode, lambda vp: ko.xattr_call(self.k, vp, "get", name))

    async def setxattr(self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._run(self._with_vnode, inode, lambda vp: ko.xattr_call(self.k, vp, "set", name, value))

    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        return await self._run(self._with_vnode, inode, lambda vp: ko.xattr_call(self.k, vp, "list"))

    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._run(self._with_vnode, inode, lambda vp: ko.xattr_call(self.k, vp, "delete", name))

    # ---- life cycle ------------------------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        return {"fuse_known_inodes": len(self.inodes), "fuse_forgets": self.inodes.forgets,
                "fuse_open_handles": len(self.openers), "fuse_requests": self.requests}

    def close(self) -> None:
        """Drop what the bridge holds so that the kernel can unmount cleanly."""
        with self.k.lock:
            if self.rootvp is not None and not self.rootvp.reclaimed:
                self.k.vcache.vrele(self.rootvp)
            self.rootvp = None
        self.creds.close()
