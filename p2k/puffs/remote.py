"""The bridge as a remote client: a rump_server's tree exported through FUSE (``p2k mount --server``).

``RemotePort`` serves the bridge over one ``p2k.client`` connection. A server names files only by
vnode handles (docs/protocol.md), so the port holds one handle per node id the host remembers and
gives it back when the host forgets the node — the way the local port would hold vnodes if it
could not load them by inode number. Node ids are the server's inode numbers (root swapped with
1, as locally); a file of another file system mounted below PATH gets a node id of its own above
``FOREIGN_BASE``, since its inode number may repeat one of the exported file system's.

Round trips: FUSE's lookup, READDIRPLUS, create, mkdir/mknod/symlink/link and setattr each map to
one server call (``vlookup``, ``vreaddirplus``, ``vcreate``, ``vmake``, ``vsetattr`` of
p2k/vfs/sys_handle.py, the same calls the local port makes) that returns handles and attributes
together; a duplicate handle (a name looked up again while its node is remembered) and the handles
of forgotten nodes are given back in batches with ``vrelev`` rather than one call each. Calls run in
worker threads, several at once: the client pipelines them over the one connection.

Credentials: every request that acts for the host caller carries the caller's uid, gid and groups
(the protocol's per-call credentials), so the server's kernel applies exactly the local mount's
rules: permissions, set-uid/set-gid clearing on a non-owner's write, and a new file owned by its
maker from the moment it exists (its group the directory's when that is set-gid).
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
import threading
from typing import Any

from p2k.client import Client, Handle, ServerGone
from p2k.puffs.creds import host_cred
from p2k.puffs.inodes import FUSE_ROOT, InodeMap
from p2k.puffs.port import AttrChange
from p2k.puffs.portbase import PortBase
from p2k.puffs.xattrnames import xattr_call
from p2k.vfs.vattr import Dirent, Vattr

FOREIGN_BASE = 1 << 56
"""Node ids of files on other file systems than the exported one start here."""
SPARE_BATCH = 64
"""Handles to give back are sent in one ``vrelev`` once this many wait (or before a change)."""
_OPEN_IGNORED = os.O_CREAT | os.O_EXCL | os.O_NOCTTY


class RemoteInodes(InodeMap):
    """Node ids for a server's files: inode numbers of the exported file system, mapped as the
    local bridge maps them, and numbers of their own for files of file systems mounted below."""

    def __init__(self, root_ino: int, fsid: int) -> None:
        super().__init__(root_ino)
        self.fsid = fsid
        self.foreign: dict[tuple[int, int], int] = {}

    def node(self, va: Vattr) -> int:
        if va.fsid == self.fsid:
            return self.to_fuse(va.ino)
        with self.lock:
            fino = self.foreign.get((va.fsid, va.ino))
            if fino is None:
                fino = self.foreign[(va.fsid, va.ino)] = FOREIGN_BASE + len(self.foreign)
            return fino


class _Calls:
    """``client.sys`` with a lost server reported as ENOTCONN, what a FUSE file system whose
    backend is gone answers: ``p2k umount`` then treats the mount as stale and clears it."""

    def __init__(self, sys: Any) -> None:
        self._sys = sys

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self._sys, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except ServerGone as e:
                raise OSError(errno.ENOTCONN, f"server gone: {e.strerror or e}") from None

        call.__name__ = name
        self.__dict__[name] = call  # looked up once per name
        return call


class RemotePort(PortBase):
    """A ``KernelPort`` over a connection to a p2k server, exporting the tree at ``path`` there."""

    lock = None  # every call blocks on the socket: always in a worker thread

    def __init__(self, client: Client, path: str | bytes, *, ncpu: int = 4, own_client: bool = True) -> None:
        self.c = client
        self.s: Any = _Calls(client.sys)
        self.own_client = own_client
        self.ncpu = ncpu
        self.s.umask(0)  # the host kernel already applied the caller's umask to every mode
        self.root: Handle = self.s.lookup(path, follow=True)
        va = self.s.vgetattr(self.root)
        if stat_mod.S_IFMT(va.mode) != stat_mod.S_IFDIR:
            self.s.vrele(self.root)
            raise OSError(errno.ENOTDIR, "not a directory on the server", os.fsdecode(path))
        self.inodes = RemoteInodes(va.ino, va.fsid)
        self.handles: dict[int, Handle] = {FUSE_ROOT: self.root}  # node id → the handle behind it
        self.spare: list[Handle] = []  # handles to give back to the server
        self.spare_lock = threading.Lock()
        self.fdsys = self.s  # every FUSE file handle is a descriptor of the connection's process
        self.openers: dict[int, Any] = {}  # open file fh (a server fd) → the caller that opened it
        self.callers: dict[tuple[int, int, tuple[int, ...]], Any] = {}
        self.dirs: dict[int, int] = {}  # open directory fh → its node id
        self.released = 0

    # ---- handles ---------------------------------------------------------------------------------
    def _h(self, fino: int) -> Handle:
        h = self.handles.get(fino)
        if h is None:
            raise OSError(errno.ESTALE, f"node {fino} is not known to this mount")
        return h

    def _adopt(self, h: Handle, va: Vattr) -> int:
        """Count one host lookup of the file ``h`` refers to; keep ``h`` as its handle unless the
        node already has one (then ``h`` is given back later). Returns the node id."""
        fino = self.inodes.node(va)
        inodes = self.inodes
        with inodes.lock:
            if fino not in self.handles:
                self.handles[fino] = h
                h = None  # type: ignore[assignment]
            inodes.nlookup[fino] = inodes.nlookup.get(fino, 0) + 1
        if h is not None:
            with self.spare_lock:
                self.spare.append(h)
        return fino

    def forget(self, fino: int, n: int, *, undo: bool = False) -> None:
        """Runs on the event loop: it never calls the server, it only queues the handle."""
        with self.inodes.lock:
            gone = self.inodes.nlookup.get(fino, 0) - n <= 0
            h = self.handles.pop(fino, None) if gone and fino != FUSE_ROOT else None
        self.inodes.forget(fino, n, undo=undo)
        if h is not None:
            with self.spare_lock:
                self.spare.append(h)

    def _give_back(self, force: bool = False) -> None:
        """Send the queued handles back in one call; always before a change, so that the server's
        vnode of a removed file is not kept alive by a handle nobody uses any more."""
        with self.spare_lock:
            if not self.spare or (not force and len(self.spare) < SPARE_BATCH):
                return
            batch, self.spare = self.spare, []
        try:
            self.released += self.s.vrelev(batch)
        except OSError:
            pass  # a handle the server already dropped: nothing left to give back

    # ---- credentials ------------------------------------------------------------------------------
    def caller(self, uid: int, gid: int, pid: int) -> Any:
        """The connection's calls, made with the host caller's credentials (one view per
        credential, kept: they cost nothing on the server until used)."""
        cred = host_cred(uid, gid, pid)
        key = (cred.uid, cred.gid, cred.groups)
        who = self.callers.get(key)
        if who is None:
            if len(self.callers) > 1024:
                self.callers.clear()
            who = self.callers[key] = _Calls(self.c.sys_as(cred.uid, cred.gid, cred.groups))
        return who

    # ---- names -----------------------------------------------------------------------------------
    def getattr(self, fino: int) -> Vattr:
        return self.s.vgetattr(self._h(fino))  # type: ignore[no-any-return]

    def lookup(self, who: Any, parent: int, name: bytes) -> Vattr:
        try:
            h, va = who.vlookup(self._h(parent), name)
            self._adopt(h, va)
        finally:
            self._give_back()  # misses too: a walk of missing names must not let the queue grow
        return va  # type: ignore[no-any-return]

    def setattr(self, who: Any, fino: int, change: AttrChange) -> Vattr:
        return who.vsetattr(self._h(fino), **change.kwargs())  # type: ignore[no-any-return]

    def readlink(self, who: Any, fino: int) -> bytes:
        return who.vreadlink(self._h(fino))  # type: ignore[no-any-return]

    def _make(self, who: Any, parent: int, name: bytes, kind: str, *args: Any, **kw: Any) -> Vattr:
        self._give_back(force=True)
        h, va = who.vmake(self._h(parent), name, kind, *args, **kw)
        self._adopt(h, va)
        return va  # type: ignore[no-any-return]

    def link(self, who: Any, fino: int, parent: int, name: bytes) -> Vattr:
        return self._make(who, parent, name, "link", link=self._h(fino))

    def unlink(self, who: Any, parent: int, name: bytes) -> None:
        self._give_back(force=True)
        who.unlink(name, dir_fd=self._h(parent))

    def rmdir(self, who: Any, parent: int, name: bytes) -> None:
        self._give_back(force=True)
        who.rmdir(name, dir_fd=self._h(parent))

    def rename(self, who: Any, parent: int, name: bytes, new_parent: int, new_name: bytes, flags: int) -> None:
        self._give_back(force=True)
        who.rename(name, new_name, flags, src_dir_fd=self._h(parent), dst_dir_fd=self._h(new_parent))

    # ---- files -----------------------------------------------------------------------------------
    def open(self, who: Any, fino: int, flags: int) -> int:
        fd: int = who.vopen(self._h(fino), flags & ~_OPEN_IGNORED)
        self.openers[fd] = who
        return fd

    def create(self, who: Any, parent: int, name: bytes, mode: int, flags: int) -> tuple[int, Vattr]:
        self._give_back(force=True)
        fd, h, va = who.vcreate(self._h(parent), name, flags & ~os.O_NOCTTY, mode)
        self._adopt(h, va)
        self.openers[fd] = who
        return fd, va

    # ---- directories -----------------------------------------------------------------------------
    def opendir(self, who: Any, fino: int) -> int:
        fd: int = who.vopen(self._h(fino), os.O_RDONLY | os.O_DIRECTORY)
        self.dirs[fd] = fino
        return fd

    def dir_node(self, fh: int) -> int:
        fino = self.dirs.get(fh)
        if fino is None:
            raise OSError(errno.EBADF, "not an open directory")
        return fino

    def readdir(self, fh: int, cookie: int, limit: int) -> list[tuple[Dirent, Vattr | None, int | None]]:
        out: list[tuple[Dirent, Vattr | None, int | None]] = []
        for d, h, va in self.s.vreaddirplus(self._h(self.dir_node(fh)), cookie, limit):
            if d.name in (b".", b".."):
                out.append((d, None, None))
            elif h is not None:
                out.append((d, va, self._adopt(h, va)))
            else:
                fino = self.inodes.to_fuse(d.ino)  # listed without attributes; the host counts it
                self.inodes.remember(fino)
                out.append((d, None, fino))
        self._give_back()
        return out

    def releasedir(self, fh: int) -> None:
        self.dirs.pop(fh, None)
        self.s.close(fh)

    def fsyncdir(self, fh: int) -> None:
        self.s.fsync(fh)

    # ---- the file system -------------------------------------------------------------------------
    def statfs(self) -> os.statvfs_result:
        return self.s.vstatvfs(self.root)  # type: ignore[no-any-return]

    def access(self, who: Any, fino: int, mode: int) -> None:
        who.vaccess(self._h(fino), mode)

    def xattr(self, who: Any, fino: int, op: str, *args: bytes) -> Any:
        """Linux names mapped here, the extattr and ACL calls made by handle as the caller (the
        server applies the rules; a list tries the system names and falls back when refused)."""
        return xattr_call(who, self._h(fino), op, True, *args)

    def sync(self) -> None:
        """Nothing to do periodically: the data lives in the server, not in this daemon."""
        self._give_back()

    def stats(self) -> dict[str, int]:
        out: dict[str, int] = {}
        try:
            out.update(self.c.stats())
        except OSError:  # ServerGone too
            pass
        out.update(fuse_open_handles=len(self.openers), remote_handles=len(self.handles),
                   remote_handles_released=self.released)
        return out

    def close(self) -> None:
        """Give back every handle and descriptor, sync the server's file systems (so that when
        ``p2k umount`` returns the data is on the server's images, as for a local mount), and
        close the connection. The server keeps serving its other clients."""
        try:
            for fd in [*self.openers, *self.dirs]:
                try:
                    self.s.close(fd)
                except OSError:
                    pass
            self.openers.clear()
            self.dirs.clear()
            with self.inodes.lock:
                held, self.handles = list(self.handles.values()), {}
            with self.spare_lock:
                self.spare.extend(held)
            self._give_back(force=True)
            self.s.sync()
        except OSError:
            pass  # the server went away: it released everything of this connection itself
        finally:
            if self.own_client:
                self.c.close()
