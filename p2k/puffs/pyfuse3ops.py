"""The bridge served through pyfuse3 and trio (``p2k mount -o transport=pyfuse3``).

pyfuse3 decodes each request and calls an async method here; the method runs the bridge's
operation (``bridge.py``) inline when the port's lock is free, else in a trio worker thread behind
a capacity limiter of ``ncpu`` tokens, and turns the answer into pyfuse3's types. The size probe
and ERANGE of getxattr/listxattr and the XATTR_CREATE/REPLACE check are pyfuse3's own here.
The direct transport (``devfuse.py``) is the default; this one stays for a host where /dev/fuse
cannot be driven directly and as the reference the other is compared with.
"""

from __future__ import annotations

import contextlib
import errno
import signal
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pyfuse3
import trio

from p2k.puffs.bridge import BULK_INLINE_MAX, Bridge
from p2k.puffs.port import AttrChange
from p2k.vfs.vattr import Dirent, Vattr

T = TypeVar("T")


class Pyfuse3Ops(pyfuse3.Operations):
    supports_dot_lookup = False  # no NFS export: ".." is never asked of us
    enable_writeback_cache = False  # the kernel's buffer cache is the one write-back cache
    enable_acl = False

    def __init__(self, bridge: Bridge) -> None:
        super().__init__()
        self.b = bridge
        self.limiter = trio.CapacityLimiter(bridge.ncpu)

    async def _run(self, fn: Callable[..., T], *args: Any, bulk: bool = False) -> T:
        """Run the bridge's ``fn`` inline when the port's lock and a token are free (an inline
        call runs to its end before the loop could start a thread, so it need not hold one),
        else in a worker thread."""
        b = self.b
        b.count(fn.__name__)
        try:
            if not bulk and self.limiter.available_tokens and b.try_inline():
                try:
                    return fn(*args)
                finally:
                    b.lock.release()
            return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)
        except Exception as e:  # noqa: BLE001 - every failure becomes an errno (bugs logged)
            raise pyfuse3.FUSEError(b.errno_of(e, fn.__name__)) from None

    def _who(self, ctx: pyfuse3.RequestContext) -> Any:
        return self.b.caller(ctx.uid, ctx.gid, ctx.pid)

    def entry(self, va: Vattr) -> pyfuse3.EntryAttributes:
        e = pyfuse3.EntryAttributes()
        e.st_ino = self.b.node(va)
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
        e.attr_timeout = self.b.attr_timeout
        e.entry_timeout = self.b.attr_timeout
        return e

    # ---- names -----------------------------------------------------------------------------------
    async def lookup(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        va = await self._run(self.b.lookup, self._who(ctx), parent_inode, name)
        if va is None:
            miss = pyfuse3.EntryAttributes()
            miss.st_ino = 0
            miss.entry_timeout = self.b.attr_timeout
            return miss
        return self.entry(va)

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        self.b.forget(inode_list)

    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self.entry(await self._run(self.b.getattr, inode))

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
        return self.entry(await self._run(self.b.setattr, self._who(ctx), inode, change))

    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        return await self._run(self.b.readlink, self._who(ctx), inode)

    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self.entry(await self._run(self.b.mknod, self._who(ctx), parent_inode, name, mode, rdev))

    async def mkdir(self, parent_inode: int, name: bytes, mode: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self.entry(await self._run(self.b.mkdir, self._who(ctx), parent_inode, name, mode))

    async def symlink(self, parent_inode: int, name: bytes, target: bytes,
                      ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self.entry(await self._run(self.b.symlink, self._who(ctx), parent_inode, name, target))

    async def link(self, inode: int, new_parent_inode: int, new_name: bytes,
                   ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self.entry(await self._run(self.b.link, self._who(ctx), inode, new_parent_inode, new_name))

    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._run(self.b.unlink, self._who(ctx), parent_inode, name)

    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._run(self.b.rmdir, self._who(ctx), parent_inode, name)

    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int, name_new: bytes,
                     flags: int, ctx: pyfuse3.RequestContext) -> None:
        await self._run(self.b.rename, self._who(ctx), parent_inode_old, name_old,
                        parent_inode_new, name_new, flags)

    # ---- files -----------------------------------------------------------------------------------
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        fd = await self._run(self.b.open, self._who(ctx), inode, flags)
        return pyfuse3.FileInfo(fh=fd, keep_cache=self.b.keep_cache)

    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: pyfuse3.RequestContext) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        fd, va = await self._run(self.b.create, self._who(ctx), parent_inode, name, mode, flags)
        return pyfuse3.FileInfo(fh=fd, keep_cache=self.b.keep_cache), self.entry(va)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        return await self._run(self.b.read, fh, off, size, bulk=size > BULK_INLINE_MAX)

    async def write(self, fh: int, off: int, buf: bytes) -> int:
        return await self._run(self.b.write, fh, off, buf, bulk=len(buf) > BULK_INLINE_MAX)

    async def flush(self, fh: int) -> None:
        """close(2) of one of possibly several descriptors: nothing to do, data is in the kernel's
        buffer cache and reaches the image on fsync, sync and unmount. ENOSYS tells the host
        kernel so once, and it stops sending FLUSH: one request fewer per close."""
        raise pyfuse3.FUSEError(errno.ENOSYS)

    async def release(self, fh: int) -> None:
        await self._run(self.b.release, fh)

    async def fsync(self, fh: int, datasync: bool) -> None:
        await self._run(self.b.fsync, fh, datasync)

    # ---- directories -----------------------------------------------------------------------------
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        return await self._run(self.b.opendir, self._who(ctx), inode)

    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        def fill(d: Dirent, fino: int, va: Vattr | None, cookie: int) -> bool:
            if va is not None:
                e = self.entry(va)
            else:  # the type only; the host asks for the rest
                e = pyfuse3.EntryAttributes()
                e.st_ino = fino
                e.st_mode = d.type << 12
                e.attr_timeout = 0
                e.entry_timeout = 0
            return bool(pyfuse3.readdir_reply(token, d.name, e, cookie))

        await self._run(self.b.readdir, fh, start_id, fill)

    async def releasedir(self, fh: int) -> None:
        await self._run(self.b.releasedir, fh)

    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        await self._run(self.b.fsyncdir, fh)

    # ---- the file system -------------------------------------------------------------------------
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        sv = await self._run(self.b.statfs)
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
        await self._run(self.b.access, self._who(ctx), inode, mode)
        return True

    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        return await self._run(self.b.getxattr, self._who(ctx), inode, name)

    async def setxattr(self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._run(self.b.setxattr, self._who(ctx), inode, name, value)

    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        return await self._run(self.b.listxattr, self._who(ctx), inode)

    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._run(self.b.removexattr, self._who(ctx), inode, name)


def serve(bridge: Bridge, mountpoint: str, options: set[str], daemon: Any) -> None:
    """Mount with pyfuse3, serve until unmounted or ``daemon`` asks to stop, then unmount."""
    pyfuse3.init(Pyfuse3Ops(bridge), mountpoint, options)
    daemon.mounted = True

    async def signals() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1) as sigs:
            async for sig in sigs:
                if daemon.on_signal(sig):
                    pyfuse3.terminate()

    async def syncer() -> None:
        while True:
            await trio.sleep(daemon.sync_interval)
            await trio.to_thread.run_sync(daemon.sync_once)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(signals)
            nursery.start_soon(syncer)
            daemon.ready()
            await pyfuse3.main()
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        with contextlib.suppress(Exception):  # the session may be gone already; the kernel must halt
            pyfuse3.close(unmount=daemon.signalled)
