"""FUSE operations mapped onto the kernel's vnode operations (NetBSD ``lib/libp2k/p2k.c``).

The bridge knows FUSE; what it asks of a kernel goes through a ``KernelPort`` (port.py): the
kernel in this process (``LocalPort``) or one in a rump_server (``p2k.puffs.remote.RemotePort``),
so a local image and a server's tree are exported by the same code.

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
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pyfuse3
import trio

from p2k.puffs.port import AttrChange, KernelPort, LocalPort
from p2k.vfs.vattr import Dirent, Vattr
from p2k.vfs.vfs_syscalls import RENAME_EXCHANGE, RENAME_NOREPLACE

log = logging.getLogger("p2k.puffs")

T = TypeVar("T")

READDIR_BATCH = 128
# Reads and writes up to this size run inline like metadata calls (FUSE sends at most 128 KiB
# per request, a few hundred microseconds of kernel work); anything larger goes to a thread.
BULK_INLINE_MAX = 128 * 1024


class Bridge(pyfuse3.Operations):
    """One exported tree: the file system mounted at ``mountpath`` in ``kernel``, or whatever
    ``port`` serves (then ``kernel`` and ``mountpath`` are ignored)."""

    supports_dot_lookup = False  # no NFS export: ".." is never asked of us
    enable_writeback_cache = False  # the kernel's buffer cache is the one write-back cache
    enable_acl = False

    def __init__(self, kernel: Any = None, mountpath: str = "/mnt", *, attr_timeout: float = 1.0,
                 port: KernelPort | None = None) -> None:
        super().__init__()
        self.port: KernelPort = port if port is not None else LocalPort(kernel, mountpath)
        self.inodes = self.port.inodes
        self.limiter = trio.CapacityLimiter(self.port.ncpu)
        self.attr_timeout = attr_timeout
        self.requests = 0
        self.ops: dict[str, int] = {}  # requests per port call, for the stats file (what to optimise)

    # ---- plumbing --------------------------------------------------------------------------------
    async def _run(self, fn: Callable[..., T], *args: Any, bulk: bool = False) -> T:
        """Run ``fn`` in the kernel. A short call (anything but bulk data) runs right here when
        a CPU token and the port's lock are free: a thread hop costs more than most metadata
        calls, and while the lock is free nothing else could run in the kernel anyway. Otherwise,
        and for bulk reads and writes, a worker thread waits its turn so the loop keeps taking
        requests. A port without a lock (a remote one, which blocks on its socket) always uses
        a thread."""
        self.requests += 1
        name = fn.__name__
        ops = self.ops
        ops[name] = ops.get(name, 0) + 1
        try:
            lock = self.port.lock
            # A free token is enough: an inline call runs to its end before the loop could start
            # a thread, so it need not hold one (taking and giving it back cost a microsecond).
            if not bulk and lock is not None and self.limiter.available_tokens and lock.acquire(blocking=False):
                try:
                    return fn(*args)
                finally:
                    lock.release()
            return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)
        except pyfuse3.FUSEError:
            raise
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno or errno.EIO) from None
        except Exception:
            log.exception("bug while serving %s", name)
            raise pyfuse3.FUSEError(errno.EIO) from None

    def _who(self, ctx: pyfuse3.RequestContext) -> Any:
        return self.port.caller(ctx.uid, ctx.gid, ctx.pid)

    def entry(self, va: Vattr) -> pyfuse3.EntryAttributes:
        e = pyfuse3.EntryAttributes()
        e.st_ino = self.inodes.node(va)
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

    # ---- names -----------------------------------------------------------------------------------
    async def lookup(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        if name in (b".", b"..") and parent_inode == pyfuse3.ROOT_INODE:
            va = await self._run(self.port.getattr, pyfuse3.ROOT_INODE)
            self.inodes.remember(pyfuse3.ROOT_INODE)
            return self.entry(va)
        try:
            va = await self._run(self.port.lookup, self._who(ctx), parent_inode, name)
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
        return self.entry(va)

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for fino, n in inode_list:
            self.port.forget(fino, n)

    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self.entry(await self._run(self.port.getattr, inode))

    async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields,
                      fh: int | None, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        change = AttrChange(
            caller_uid=ctx.uid, fh=fh,
            uid=attr.st_uid if fields.update_uid else None,
            gid=attr.st_gid if fields.update_gid else None,
            size=attr.st_size if fields.update_size else None,
            mode=attr.st_mode & 0o7777 if fields.update_mode else None,
            atime_ns=attr.st_atime_ns if fields.update_atime else None,
            mtime_ns=attr.st_mtime_ns if fields.update_mtime else None)
        return self.entry(await self._run(self.port.setattr, self._who(ctx), inode, change))

    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        return await self._run(self.port.readlink, self._who(ctx), inode)

    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self.entry(await self._run(self.port.mknod, self._who(ctx), parent_inode, name, mode, rdev))

    async def mkdir(self, parent_inode: int, name: bytes, mode: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self.entry(await self._run(self.port.mkdir, self._who(ctx), parent_inode, name, mode))

    async def symlink(self, parent_inode: int, name: bytes, target: bytes,
                      ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self.entry(await self._run(self.port.symlink, self._who(ctx), parent_inode, name, target))

    async def link(self, inode: int, new_parent_inode: int, new_name: bytes,
                   ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self.entry(await self._run(self.port.link, self._who(ctx), inode, new_parent_inode, new_name))

    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._run(self.port.unlink, self._who(ctx), parent_inode, name)

    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._run(self.port.rmdir, self._who(ctx), parent_inode, name)

    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int, name_new: bytes,
                     flags: int, ctx: pyfuse3.RequestContext) -> None:
        kflags = (RENAME_NOREPLACE if flags & pyfuse3.RENAME_NOREPLACE else 0) | \
                 (RENAME_EXCHANGE if flags & pyfuse3.RENAME_EXCHANGE else 0)
        if flags & ~(pyfuse3.RENAME_NOREPLACE | pyfuse3.RENAME_EXCHANGE):
            raise pyfuse3.FUSEError(errno.EINVAL)
        await self._run(self.port.rename, self._who(ctx), parent_inode_old, name_old,
                        parent_inode_new, name_new, kflags)

    # ---- files -----------------------------------------------------------------------------------
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        fd = await self._run(self.port.open, self._who(ctx), inode, flags)
        # keep_cache: every change reaches the file through this mount, so the host's page cache
        # of it is never stale.
        return pyfuse3.FileInfo(fh=fd, keep_cache=True)

    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: pyfuse3.RequestContext) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        fd, va = await self._run(self.port.create, self._who(ctx), parent_inode, name, mode, flags)
        return pyfuse3.FileInfo(fh=fd, keep_cache=True), self.entry(va)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        return await self._run(self.port.read, fh, off, size, bulk=size > BULK_INLINE_MAX)

    async def write(self, fh: int, off: int, buf: bytes) -> int:
        return await self._run(self.port.write, fh, off, buf, bulk=len(buf) > BULK_INLINE_MAX)

    async def flush(self, fh: int) -> None:
        """close(2) of one of possibly several descriptors: nothing to do, data is in the kernel's
        buffer cache and reaches the image on fsync, sync and unmount. ENOSYS tells the host
        kernel so once, and it stops sending FLUSH: one request fewer per close."""
        raise pyfuse3.FUSEError(errno.ENOSYS)

    async def release(self, fh: int) -> None:
        await self._run(self.port.release, fh)

    async def fsync(self, fh: int, datasync: bool) -> None:
        await self._run(self.port.fsync, fh, datasync)

    # ---- directories -----------------------------------------------------------------------------
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        return await self._run(self.port.opendir, self._who(ctx), inode)

    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        """Entries after cookie ``start_id``; the next id of each is the kernel's cookie, which
        stays valid across reclaim and concurrent changes. Stops when the reply buffer is full:
        the host asks again from the last cookie it accepted. The port counted every entry as a
        lookup; those that did not reach the host are taken back."""
        cookie = start_id
        dir_fino = await self._run(self.port.dir_node, fh)
        while True:
            batch = await self._run(self.port.readdir, fh, cookie, READDIR_BATCH)
            for i, (d, va, _) in enumerate(batch):
                e = self._dirent_attr(d, va, dir_fino)
                if not pyfuse3.readdir_reply(token, d.name, e, d.cookie):
                    for _, _, counted in batch[i:]:
                        if counted is not None:
                            self.port.forget(counted, 1, undo=True)
                    return
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
        await self._run(self.port.releasedir, fh)

    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        await self._run(self.port.fsyncdir, fh)

    # ---- the file system -------------------------------------------------------------------------
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        sv = await self._run(self.port.statfs)
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
        await self._run(self.port.access, self._who(ctx), inode, mode)
        return True

    # ---- extended attributes (Linux names: xattrnames.py; EOPNOTSUPP unless the driver has them) --
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        return await self._run(self.port.xattr, self._who(ctx), inode, "get", name)

    async def setxattr(self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._run(self.port.xattr, self._who(ctx), inode, "set", name, value)

    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        return await self._run(self.port.xattr, self._who(ctx), inode, "list")

    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._run(self.port.xattr, self._who(ctx), inode, "remove", name)

    # ---- life cycle ------------------------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        return {"fuse_known_inodes": len(self.inodes), "fuse_forgets": self.inodes.forgets,
                "fuse_requests": self.requests, **{f"fuse_op_{k}": v for k, v in self.ops.items()},
                **self.port.stats()}

    def close(self) -> None:
        """Drop what the bridge holds so that the kernel can unmount cleanly."""
        self.port.close()
