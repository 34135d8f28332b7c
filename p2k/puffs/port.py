"""What the FUSE bridge needs from a kernel, behind one small interface (``KernelPort``).

The bridge (``bridge.py``) speaks FUSE: node ids, entry replies, negative entries, readdir
buffers, errno. Everything that touches a kernel goes through a port, so the same bridge serves a
kernel in this process (``LocalPort``, vnodes by inode number) and a kernel
in a ``rump_server`` (``p2k.puffs.remote.RemotePort``, vnode handles over ``p2k.client``).

Ports name files by FUSE node id (``fino``) and count the host's lookups themselves, inside the
call that found the file: a remote port holds a handle per remembered node and must never see a
``forget`` overtake the lookup that it undoes, which counting in the same locked step rules out.
A port's methods are synchronous and may block; the bridge runs them in worker threads (or inline,
under ``port.lock``, when that lock is free — the local kernel's fast path).
"""

from __future__ import annotations

import os

from p2k.hints import Protocol
from p2k.puffs.creds import CredCache
from p2k.puffs.inodes import FUSE_ROOT, InodeMap
from p2k.puffs.portbase import PortBase
from p2k.puffs.xattrnames import xattr_call
from p2k.slotted import Slotted
from p2k.vfs.vattr import Dirent, Vattr

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from typing import Any

    from p2k.kernel import Kernel


class AttrChange(Slotted):
    """One FUSE setattr: None leaves a field alone. ``fh`` is the file handle it came with, if any.
    The fields are ``Syscalls.vsetattr``'s keywords (``fh`` is its ``fd``); it applies the rules.
    A ``Slotted`` class, not a dataclass: ``dataclasses`` brings ``inspect`` and 2.7 MiB into the
    mount daemon's resident size."""

    __slots__ = ("caller_uid", "uid", "gid", "size", "mode", "atime_ns", "mtime_ns", "fh")

    def __init__(self, caller_uid: int, uid: int | None = None, gid: int | None = None, size: int | None = None,
                 mode: int | None = None, atime_ns: int | None = None, mtime_ns: int | None = None,
                 fh: int | None = None) -> None:
        self.caller_uid = caller_uid
        self.uid = uid
        self.gid = gid
        self.size = size
        self.mode = mode
        self.atime_ns = atime_ns
        self.mtime_ns = mtime_ns
        self.fh = fh

    def kwargs(self) -> dict[str, Any]:
        """``vsetattr``'s keywords: the times are pyfuse3's (UTIME_NOW already a time of day)."""
        return {"uid": self.uid, "gid": self.gid, "size": self.size, "mode": self.mode,
                "atime_ns": self.atime_ns, "mtime_ns": self.mtime_ns, "fd": self.fh, "host_times": True}


class KernelPort(Protocol):
    """The operations of a kernel the bridge uses. ``who`` is whatever ``caller`` returned for a
    request's credentials; node ids are FUSE's (root = 1); errors are ``OSError`` with the errno
    the host should see. Methods that return a ``Vattr`` for a name count one host lookup of it."""

    lock: Any  # a lock to try for running a call inline, or None: always use a worker thread
    ncpu: int  # how many calls may run at once
    inodes: InodeMap

    def caller(self, uid: int, gid: int, pid: int) -> Any: ...
    def getattr(self, fino: int) -> Vattr: ...
    def lookup(self, who: Any, parent: int, name: bytes) -> Vattr: ...
    def forget(self, fino: int, n: int, *, undo: bool = False) -> None: ...
    def setattr(self, who: Any, fino: int, change: AttrChange) -> Vattr: ...
    def readlink(self, who: Any, fino: int) -> bytes: ...
    def mknod(self, who: Any, parent: int, name: bytes, mode: int, rdev: int) -> Vattr: ...
    def mkdir(self, who: Any, parent: int, name: bytes, mode: int) -> Vattr: ...
    def symlink(self, who: Any, parent: int, name: bytes, target: bytes) -> Vattr: ...
    def link(self, who: Any, fino: int, parent: int, name: bytes) -> Vattr: ...
    def unlink(self, who: Any, parent: int, name: bytes) -> None: ...
    def rmdir(self, who: Any, parent: int, name: bytes) -> None: ...
    def rename(self, who: Any, parent: int, name: bytes, new_parent: int, new_name: bytes, flags: int) -> None: ...
    def open(self, who: Any, fino: int, flags: int) -> int: ...
    def opens_matter(self) -> bool:
        """False when an open by a caller the host has already checked changes nothing (then the
        transport may tell the host to stop sending OPEN and RELEASE, and reads use ``read_node``)."""
    def read_node(self, fino: int, off: int, size: int) -> bytes: ...
    def create(self, who: Any, parent: int, name: bytes, mode: int, flags: int) -> tuple[int, Vattr]: ...
    def read(self, fh: int, off: int, size: int) -> bytes: ...
    def write(self, fh: int, off: int, buf: bytes) -> int: ...
    def release(self, fh: int) -> None: ...
    def fsync(self, fh: int, datasync: bool) -> None: ...
    def opendir(self, who: Any, fino: int) -> int: ...
    def dir_node(self, fh: int) -> int: ...
    def readdir(self, fh: int, cookie: int, limit: int) -> list[tuple[Dirent, Vattr | None, int | None]]:
        """Up to ``limit`` entries after ``cookie``, each with its attributes if known and the node
        id it was counted under (None for ``.`` and ``..``, which the host does not count)."""
    def releasedir(self, fh: int) -> None: ...
    def fsyncdir(self, fh: int) -> None: ...
    def statfs(self) -> os.statvfs_result: ...
    def access(self, who: Any, fino: int, mode: int) -> None: ...
    def xattr(self, who: Any, fino: int, op: str, *args: bytes) -> Any: ...
    def sync(self) -> None: ...
    def stats(self) -> dict[str, int]: ...
    def close(self) -> None: ...


_OPEN_IGNORED = os.O_CREAT | os.O_EXCL | os.O_NOCTTY


class LocalPort(PortBase):
    """A kernel in this process, the file system mounted at ``mountpath``. Node ids are inode
    numbers (``InodeMap``) and no vnode is held between requests: each call gets its vnode from
    the cache by number (``Syscalls.vget_ino``), so the kernel's vnode cache stays bounded however
    many names the host remembers. Requests act as their caller, one kernel process per
    credential (``CredCache``), so the kernel applies every permission rule itself; every rule is
    in ``p2k.vfs`` (``sys_handle``), this only marshals."""

    def __init__(self, kernel: Kernel, mountpath: str = "/mnt") -> None:
        self.k = kernel
        self.lock = kernel.lock
        self.ncpu = kernel.params.ncpu
        self.rootvp: Any = kernel.sys.lookup(mountpath, follow=True)
        self.inodes = InodeMap(self.rootvp.mount.vfs_root_ino())
        self.creds = CredCache(kernel)
        self.root = self.creds.root
        self.fdsys = self.root  # every FUSE file handle is a descriptor of the port's root process
        self.openers: dict[int, Any] = {}  # fh → Syscalls of the process that opened it

    # ---- plumbing --------------------------------------------------------------------------------
    def caller(self, uid: int, gid: int, pid: int) -> Any:
        if uid == 0 and gid == 0:
            return self.root  # the process the port itself uses; no groups to read for root
        return self.creds.for_request(uid, gid, pid)

    def _with_vnode(self, fino: int, fn: Any, *args: Any) -> Any:
        """Call ``fn(vp, *args)`` with the vnode of node ``fino`` held for the call (one kernel
        entry for the vget, the call and the vrele)."""
        return self.root.on_ino(self.rootvp, self.inodes.to_fs(fino), fn, *args)

    def _counted(self, va: Vattr) -> Vattr:
        self.inodes.remember(self.inodes.to_fuse(va.ino))
        return va

    def _held(self, got: tuple[Any, Vattr]) -> Vattr:
        """The attributes of a (vnode, attributes) answer, counted; the vnode given back."""
        vp, va = got
        self.root.vrele(vp)
        return self._counted(va)

    # ---- names -----------------------------------------------------------------------------------
    def getattr(self, fino: int) -> Vattr:
        return self._with_vnode(fino, self.root.vgetattr)  # type: ignore[no-any-return]

    def lookup(self, who: Any, parent: int, name: bytes) -> Vattr:
        return self._counted(who.vlookup_ino(self.rootvp, self.inodes.to_fs(parent), name))

    def forget(self, fino: int, n: int, *, undo: bool = False) -> None:
        self.inodes.forget(fino, n, undo=undo)

    def setattr(self, who: Any, fino: int, change: AttrChange) -> Vattr:
        return self._with_vnode(fino, lambda vp: who.vsetattr(vp, **change.kwargs()))  # type: ignore[no-any-return]

    def readlink(self, who: Any, fino: int) -> bytes:
        return self._with_vnode(fino, who.vreadlink)  # type: ignore[no-any-return]

    def _make(self, who: Any, parent: int, name: bytes, kind: str, *args: Any, **kw: Any) -> Vattr:
        return self._with_vnode(parent, lambda dvp: self._held(who.vmake(dvp, name, kind, *args, **kw)))  # type: ignore[no-any-return]

    def link(self, who: Any, fino: int, parent: int, name: bytes) -> Vattr:
        return self._with_vnode(fino, lambda vp: self._make(who, parent, name, "link", link=vp))  # type: ignore[no-any-return]

    def unlink(self, who: Any, parent: int, name: bytes) -> None:
        self._with_vnode(parent, lambda dvp: who.unlink(name, dir_fd=dvp))

    def rmdir(self, who: Any, parent: int, name: bytes) -> None:
        self._with_vnode(parent, lambda dvp: who.rmdir(name, dir_fd=dvp))

    def rename(self, who: Any, parent: int, name: bytes, new_parent: int, new_name: bytes, flags: int) -> None:
        def run(fdvp: Any) -> None:
            self._with_vnode(new_parent, lambda tdvp: who.rename(
                name, new_name, flags, src_dir_fd=fdvp, dst_dir_fd=tdvp))

        self._with_vnode(parent, run)

    # ---- files -----------------------------------------------------------------------------------
    def open(self, who: Any, fino: int, flags: int) -> int:
        fd: int = self._with_vnode(fino, lambda vp: who.vopen(vp, flags & ~_OPEN_IGNORED))
        self.openers[fd] = who
        return fd

    def opens_matter(self) -> bool:
        """An open matters unless the mount is read-only and has no ACLs. On such a mount nothing
        can be written, unlinked or truncated, so no open has an effect to keep and no open file
        can lose its inode; and the only rule an open for reading applies, read permission from the
        mode bits, is the one the host applies itself (``default_permissions``) before it opens.
        With ACLs enforced it is not: the host reads only the mode, and a named user's entry may
        deny what the mode's other bits allow."""
        m = self.rootvp.mount
        return not m.readonly or bool(getattr(m, "acls", False))

    def read_node(self, fino: int, off: int, size: int) -> bytes:
        return self._with_vnode(fino, self.root.vpread, size, off)  # type: ignore[no-any-return]

    def create(self, who: Any, parent: int, name: bytes, mode: int, flags: int) -> tuple[int, Vattr]:
        def run(dvp: Any) -> tuple[int, Vattr]:  # one kernel entry: vget, create, both vreles
            fd, vp, va = who.vcreate(dvp, name, flags & ~os.O_NOCTTY, mode)
            self.root.vrele(vp)
            return fd, va

        fd, va = self._with_vnode(parent, run)
        self.openers[fd] = who
        return fd, self._counted(va)

    # ---- directories -----------------------------------------------------------------------------
    def opendir(self, who: Any, fino: int) -> int:
        return self._with_vnode(fino, lambda vp: who.vopen(vp, os.O_RDONLY | os.O_DIRECTORY))  # type: ignore[no-any-return]

    def dir_node(self, fh: int) -> int:
        return self.inodes.to_fuse(self.root.fvnode_ino(fh))

    def readdir(self, fh: int, cookie: int, limit: int) -> list[tuple[Dirent, Vattr | None, int | None]]:
        out: list[tuple[Dirent, Vattr | None, int | None]] = []
        root = self.root
        with self.k.lock:
            for d, vp, va in root.vreaddirplus(fh, cookie, limit):
                fino = None
                if vp is not None:
                    root.vrele(vp)
                if d.name not in (b".", b".."):
                    fino = self.inodes.to_fuse(d.ino)
                    self.inodes.remember(fino)
                out.append((d, va, fino))
        return out

    def releasedir(self, fh: int) -> None:
        self.root.close(fh)

    def fsyncdir(self, fh: int) -> None:
        self.root.fsync(fh)

    # ---- the file system -------------------------------------------------------------------------
    def statfs(self) -> os.statvfs_result:
        return self.root.vstatvfs(self.rootvp)  # type: ignore[no-any-return]

    def access(self, who: Any, fino: int, mode: int) -> None:
        self._with_vnode(fino, who.vaccess, mode)

    def xattr(self, who: Any, fino: int, op: str, *args: bytes) -> Any:
        """``op`` is get, set, list or remove, with Linux names (``xattrnames``), as the caller."""
        return self._with_vnode(fino, lambda vp: xattr_call(who, vp, op, who.proc.cred.is_root, *args))

    def sync(self) -> None:
        self.k.sync_all()

    def stats(self) -> dict[str, int]:
        return {"fuse_open_handles": len(self.openers)}

    def close(self) -> None:
        """Drop what the port holds so that the kernel can unmount cleanly."""
        with self.k.lock:
            if self.rootvp is not None and not self.rootvp.reclaimed:
                self.k.vcache.vrele(self.rootvp)
            self.rootvp = None
        self.creds.close()

__all__ = ["FUSE_ROOT", "AttrChange", "KernelPort", "LocalPort"]
