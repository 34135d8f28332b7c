"""FUSE operations mapped onto the kernel's vnode operations (NetBSD ``lib/libp2k/p2k.c``).

The bridge is what a FUSE request means for a kernel, whatever carries it: the direct /dev/fuse
transport (``devfuse.py``, the default) or pyfuse3 (``pyfuse3ops.py``). Its operations are plain
synchronous calls that take node ids and the caller, return the kernel's answers (``Vattr``, file
handles, bytes) and raise ``OSError`` with the errno the host should see; a transport only decodes
requests, encodes replies and decides where a call runs. What it asks of a kernel goes through a
``KernelPort`` (port.py): the kernel in this process (``LocalPort``) or one in a rump_server
(``p2k.puffs.remote.RemotePort``), so a local image and a server's tree are exported by the same code.

Where a call runs: at most ``port.ncpu`` requests are inside the kernel at once. A short call runs
on the transport's own thread when the port's lock is free (``try_inline``): a thread hop costs more
than most metadata calls, and while the lock is free nothing else could run in the kernel anyway.
Otherwise, and for bulk reads and writes, a worker thread waits its turn, so a long read holds the
kernel lock only per call and ``stat`` on another file is answered between its chunks. A port
without a lock (a remote one, which blocks on its socket) always uses a thread.

Requests that name something act as the caller (``CredCache``), so the kernel applies every
permission rule itself; ``default_permissions`` is also on, so the host kernel checks cached
names the same way before it asks (search permission on a prefix it has cached would otherwise go
unchecked). Anything but an ``OSError`` is a bug: logged with its traceback, answered EIO, and the
daemon keeps serving (``errno_of``).
"""

from __future__ import annotations

import errno
from _thread import allocate_lock as Lock
from collections.abc import Callable, Sequence

from p2k.hyper.console import console
from p2k.puffs.inodes import FUSE_ROOT
from p2k.puffs.port import AttrChange, KernelPort, LocalPort
from p2k.vfs.extattr import ENOATTR
from p2k.vfs.vattr import Dirent, Vattr
from p2k.vfs.vfs_syscalls import RENAME_EXCHANGE, RENAME_NOREPLACE

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from typing import Any

log = console("p2k.puffs")

READDIR_BATCH = 128
# Reads and writes up to this size run inline like metadata calls (a few hundred microseconds of
# kernel work at most); anything larger goes to a thread.
BULK_INLINE_MAX = 128 * 1024
# Linux's renameat2 flags, as FUSE passes them
LINUX_RENAME_NOREPLACE, LINUX_RENAME_EXCHANGE = 1, 2
XATTR_CREATE, XATTR_REPLACE = 1, 2

Fill = Callable[[Dirent, int, Vattr | None, int], bool]
"""A transport's readdir sink: (entry, node id, attributes or None, next cookie) → it fitted."""


class Bridge:
    """One exported tree: the file system mounted at ``mountpath`` in ``kernel``, or whatever
    ``port`` serves (then ``kernel`` and ``mountpath`` are ignored)."""

    keep_cache = True
    """Open files keep the host's page cache: every change reaches a local image through this
    mount, and a server mount's changes by others show through AUTO_INVAL_DATA (mtime, size)."""

    def __init__(self, kernel: Any = None, mountpath: str = "/mnt", *, attr_timeout: float = 1.0,
                 port: KernelPort | None = None) -> None:
        self.port: KernelPort = port if port is not None else LocalPort(kernel, mountpath)
        self.inodes = self.port.inodes
        self.lock = self.port.lock
        self.ncpu = self.port.ncpu
        self.attr_timeout = attr_timeout
        self.requests = 0
        self.no_open = False  # a transport set the host to open files without asking (devfuse.Session)
        self.ops: dict[str, int] = {}  # requests per operation, for the stats file (what to optimise)
        self._count_lock = Lock()

    # ---- plumbing --------------------------------------------------------------------------------
    def count(self, name: str) -> None:
        with self._count_lock:  # two transport threads read requests (devfuse.Session.serve)
            self.requests += 1
            self.ops[name] = self.ops.get(name, 0) + 1

    def try_inline(self) -> bool:
        """True (holding the port's lock: release it after the call) when a call may run on the
        transport's thread now; False: hand it to a worker thread."""
        lock = self.lock
        return lock is not None and lock.acquire(blocking=False)

    @staticmethod
    def errno_of(e: BaseException, what: str) -> int:
        """The errno a failed call answers: an ``OSError``'s own, EIO (logged) for anything else."""
        if isinstance(e, OSError):
            return e.errno or errno.EIO
        log.error("bug while serving %s", what, exc_info=e)
        return errno.EIO

    def caller(self, uid: int, gid: int, pid: int) -> Any:
        return self.port.caller(uid, gid, pid)

    def node(self, va: Vattr) -> int:
        return self.inodes.node(va)

    # ---- names -----------------------------------------------------------------------------------
    def lookup(self, who: Any, parent: int, name: bytes) -> Vattr | None:
        """The attributes of ``name``, counted as one host lookup; None when there is no such name:
        a negative entry, which the host caches as long as a positive one — it spares the repeated
        misses of include paths and git's probes, and since every creation comes through this
        mount (or, on a server mount, is seen at the next lookup once the timeout passes) the host
        drops it itself."""
        if parent == FUSE_ROOT and name in (b".", b".."):
            va = self.port.getattr(FUSE_ROOT)
            self.inodes.remember(FUSE_ROOT)
            return va
        try:
            return self.port.lookup(who, parent, name)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise
            return None

    def forget(self, pairs: Sequence[tuple[int, int]]) -> None:
        for fino, n in pairs:
            self.port.forget(fino, n)

    def getattr(self, fino: int) -> Vattr:
        return self.port.getattr(fino)

    def setattr(self, who: Any, fino: int, change: AttrChange) -> Vattr:
        return self.port.setattr(who, fino, change)

    def readlink(self, who: Any, fino: int) -> bytes:
        return self.port.readlink(who, fino)

    def mknod(self, who: Any, parent: int, name: bytes, mode: int, rdev: int) -> Vattr:
        return self.port.mknod(who, parent, name, mode, rdev)

    def mkdir(self, who: Any, parent: int, name: bytes, mode: int) -> Vattr:
        return self.port.mkdir(who, parent, name, mode)

    def symlink(self, who: Any, parent: int, name: bytes, target: bytes) -> Vattr:
        return self.port.symlink(who, parent, name, target)

    def link(self, who: Any, fino: int, parent: int, name: bytes) -> Vattr:
        return self.port.link(who, fino, parent, name)

    def unlink(self, who: Any, parent: int, name: bytes) -> None:
        self.port.unlink(who, parent, name)

    def rmdir(self, who: Any, parent: int, name: bytes) -> None:
        self.port.rmdir(who, parent, name)

    def rename(self, who: Any, parent: int, name: bytes, new_parent: int, new_name: bytes, flags: int) -> None:
        """``flags`` are Linux's (NOREPLACE, EXCHANGE); any other (WHITEOUT) is EINVAL."""
        if flags & ~(LINUX_RENAME_NOREPLACE | LINUX_RENAME_EXCHANGE):
            raise OSError(errno.EINVAL, "rename flag not supported")
        kflags = (RENAME_NOREPLACE if flags & LINUX_RENAME_NOREPLACE else 0) | \
                 (RENAME_EXCHANGE if flags & LINUX_RENAME_EXCHANGE else 0)
        self.port.rename(who, parent, name, new_parent, new_name, kflags)

    # ---- files -----------------------------------------------------------------------------------
    def open(self, who: Any, fino: int, flags: int) -> int:
        return self.port.open(who, fino, flags)

    def create(self, who: Any, parent: int, name: bytes, mode: int, flags: int) -> tuple[int, Vattr]:
        return self.port.create(who, parent, name, mode, flags)

    def read(self, fh: int, off: int, size: int) -> bytes:
        return self.port.read(fh, off, size)

    def opens_matter(self) -> bool:
        return self.port.opens_matter()

    def read_node(self, fino: int, off: int, size: int) -> bytes:
        """A read with no file handle: the host opened the file without asking (``no_open``)."""
        return self.port.read_node(fino, off, size)

    def write(self, fh: int, off: int, buf: bytes) -> int:
        return self.port.write(fh, off, buf)

    def release(self, fh: int) -> None:
        self.port.release(fh)

    def fsync(self, fh: int, datasync: bool) -> None:
        self.port.fsync(fh, datasync)

    # ---- directories -----------------------------------------------------------------------------
    def opendir(self, who: Any, fino: int) -> int:
        return self.port.opendir(who, fino)

    def readdir(self, fh: int, start: int, fill: Fill, batch: int = READDIR_BATCH) -> None:
        """Entries after cookie ``start`` into ``fill``; the next id of each is the kernel's cookie,
        which stays valid across reclaim and concurrent changes. Stops when ``fill`` is full: the
        host asks again from the last cookie it accepted. The port counted every entry as a
        lookup; those that did not reach the host are taken back."""
        cookie = start
        dir_fino = self.port.dir_node(fh)
        while True:
            got = self.port.readdir(fh, cookie, batch)
            for i, (d, va, _) in enumerate(got):
                if not fill(d, self._dirent_node(d, va, dir_fino), va, d.cookie):
                    for _, _, counted in got[i:]:
                        if counted is not None:
                            self.port.forget(counted, 1, undo=True)
                    return
                cookie = d.cookie
            if len(got) < batch:
                return

    def _dirent_node(self, d: Dirent, va: Vattr | None, dir_fino: int) -> int:
        if va is not None:
            return self.inodes.node(va)
        if d.name == b"..":
            return FUSE_ROOT if dir_fino == FUSE_ROOT else self.inodes.to_fuse(d.ino)
        if d.name == b".":
            return dir_fino
        return self.inodes.to_fuse(d.ino)

    def releasedir(self, fh: int) -> None:
        self.port.releasedir(fh)

    def fsyncdir(self, fh: int) -> None:
        self.port.fsyncdir(fh)

    # ---- the file system -------------------------------------------------------------------------
    def statfs(self) -> Any:
        return self.port.statfs()

    def access(self, who: Any, fino: int, mode: int) -> None:
        self.port.access(who, fino, mode)

    # ---- extended attributes (Linux names: xattrnames.py; EOPNOTSUPP unless the driver has them) --
    def getxattr(self, who: Any, fino: int, name: bytes) -> bytes:
        return self.port.xattr(who, fino, "get", name)  # type: ignore[no-any-return]

    def setxattr(self, who: Any, fino: int, name: bytes, value: bytes, flags: int = 0) -> None:
        """``XATTR_CREATE``/``XATTR_REPLACE`` as Linux defines them, checked with a get first
        (BSD's extattr_set has no such flags)."""
        if flags & (XATTR_CREATE | XATTR_REPLACE):
            try:
                self.port.xattr(who, fino, "get", name)
            except OSError as e:
                if e.errno != ENOATTR or flags & XATTR_REPLACE:
                    raise
            else:
                if flags & XATTR_CREATE:
                    raise OSError(errno.EEXIST, "attribute exists")
        self.port.xattr(who, fino, "set", name, value)

    def listxattr(self, who: Any, fino: int) -> list[bytes]:
        return self.port.xattr(who, fino, "list")  # type: ignore[no-any-return]

    def removexattr(self, who: Any, fino: int, name: bytes) -> None:
        self.port.xattr(who, fino, "remove", name)

    # ---- life cycle ------------------------------------------------------------------------------
    def sync(self) -> None:
        self.port.sync()

    def stats(self) -> dict[str, int]:
        return {"fuse_known_inodes": len(self.inodes), "fuse_forgets": self.inodes.forgets,
                "fuse_no_open": int(self.no_open),
                "fuse_requests": self.requests, **{f"fuse_op_{k}": v for k, v in self.ops.items()},
                **self.port.stats()}

    def close(self) -> None:
        """Drop what the bridge holds so that the kernel can unmount cleanly."""
        self.port.close()
