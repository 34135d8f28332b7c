"""A mounted file system: the VFS operations and the vnode operations a driver implements.

NetBSD dispatches vnode operations through a per-file-system vector. In Python the natural vector is
the driver's ``Mount`` subclass: every VOP is a method that receives the vnode(s) it acts on. The
generic layer (namei, syscalls, the vnode cache) does everything two file systems would otherwise
both write — permission checks, path walking, fd bookkeeping, the POSIX argument rules — so a
driver only answers the questions below about its own nodes.

Conventions every driver keeps:
- Errors are ``OSError(errno.X, message)``; nothing else may escape a VOP on bad on-disk data.
- A VOP that creates an object returns its inode number; the caller gets the vnode from the cache.
- Names are ``bytes`` (no ``/``, not ``.`` or ``..`` unless the VOP says so, ≤ ``namemax``).
- ``vp.data`` is the driver's in-core inode, created by ``vfs_loadvnode``.
- Timestamps are the driver's business (``p2k.vfs.times`` has the shared rules).
"""

from __future__ import annotations

import errno
import os

from p2k.vfs.vattr import Dirent, SetAttr, StatVFS, Vattr, stat_result
from p2k.vfs.vnode import Vnode
from p2k.vfs.vopguard import guard_class

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import Any, NoReturn

    from p2k.kernel import Kernel

MNT_RDONLY = 0x00000001
MNT_SYNCHRONOUS = 0x00000002
MNT_NOEXEC = 0x00000004
MNT_NOSUID = 0x00000008
MNT_NODEV = 0x00000010
MNT_ASYNC = 0x00000040
MNT_LOG = 0x02000000  # NetBSD: journal metadata (WAPBL)
MNT_NOATIME = 0x04000000
MNT_FORCE = 0x00080000  # unmount flag
MNT_UPDATE = 0x00010000


def _eopnotsupp(*_: object, **__: object) -> NoReturn:
    raise OSError(errno.EOPNOTSUPP, "operation not supported by this file system")


class Mount:
    """Base of every driver's mount. Subclasses set ``fstype`` and override the VOPs they support."""

    fstype: str = "none"
    namemax: int = 255
    maxfilesize: int = (1 << 63) - 1
    supports_exchange: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        guard_class(cls)  # nothing but OSError leaves a driver (p2k.vfs.vopguard)

    def __init__(self, kernel: Kernel, flags: int, data: dict[str, Any]) -> None:
        self.kernel = kernel
        self.flags = flags
        self.data = data
        self.covered: Vnode | None = None  # the vnode this mount hides (None for the root mount)
        self.mountpoint_path = "/"
        self.fsid = id(self) & 0xFFFFFFFF
        self.busy = 0  # vnodes of this mount in use

    @property
    def readonly(self) -> bool:
        return bool(self.flags & MNT_RDONLY)

    # ---- VFS operations --------------------------------------------------------------------------
    def vfs_start(self) -> None:
        """Called once after construction: read the superblock, validate, mark unclean on rw."""

    def vfs_root_ino(self) -> int:
        raise NotImplementedError

    def vfs_loadvnode(self, ino: int) -> tuple[object, int]:
        """Read inode ``ino`` into the driver's in-core form and its S_IFMT type (``VFS_LOADVNODE``).

        ENOENT/ESTALE for a free inode; EIO for one whose on-disk form is nonsense."""
        raise NotImplementedError

    def vfs_stat_inodes(self, inos: Sequence[int]) -> list[os.stat_result | OSError]:
        """``lstat`` of each of ``inos`` straight from the file system, for a stat walk
        (``scandir``), without entering the vnode cache: a walk over a big tree would otherwise
        evict what is in use and pay a reclaim per entry. Errors are per inode (an unreadable
        inode fails its entry only). Only for inodes *not* in the vnode cache: a cached vnode may
        hold changes not yet written, so the caller answers those from the cache. The answer is
        exactly what ``vop_getattr`` of the loaded inode gives, which is what this default does
        through a transient vnode; a driver overrides it to answer in bulk from its own store."""
        out: list[os.stat_result | OSError] = []
        for ino in inos:
            try:
                data, vtype = self.vfs_loadvnode(ino)
                out.append(stat_result(self.vop_getattr(Vnode(self, ino, data, vtype)), self.fsid))
            except OSError as e:
                out.append(e)
        return out

    def vfs_statvfs(self) -> StatVFS:
        raise NotImplementedError

    def vfs_sync(self, wait: bool = True) -> None:
        """Write back every dirty inode and buffer of this mount."""

    def vfs_unmount(self, force: bool = False) -> None:
        """Last act before the mount disappears: sync, set the clean flag, release the device."""

    # ---- vnode life cycle ------------------------------------------------------------------------
    def vop_inactive(self, vp: Vnode) -> bool:
        """Last reference dropped. Free an unlinked inode's storage; True asks for reclaim now."""
        return False

    def vop_reclaim(self, vp: Vnode) -> None:
        """The vnode leaves the cache: write back the in-core inode if dirty, drop ``vp.data``."""

    # ---- attributes ------------------------------------------------------------------------------
    def vop_getattr(self, vp: Vnode) -> Vattr:
        raise NotImplementedError

    def vop_setattr(self, vp: Vnode, sa: SetAttr) -> None:
        _eopnotsupp()

    # ---- names -----------------------------------------------------------------------------------
    def vop_lookup(self, dvp: Vnode, name: bytes) -> int:
        """Inode number of ``name`` in directory ``dvp`` (``..`` included) or ENOENT."""
        raise NotImplementedError

    def vop_create(self, dvp: Vnode, name: bytes, mode: int, uid: int, gid: int, rdev: int = 0) -> int:
        """Create a non-directory, non-symlink node (regular, fifo, socket, device); mode has S_IFMT."""
        _eopnotsupp()

    def vop_mkdir(self, dvp: Vnode, name: bytes, mode: int, uid: int, gid: int) -> int:
        _eopnotsupp()

    def vop_symlink(self, dvp: Vnode, name: bytes, target: bytes, mode: int, uid: int, gid: int) -> int:
        _eopnotsupp()

    def vop_link(self, dvp: Vnode, name: bytes, vp: Vnode) -> None:
        _eopnotsupp()

    def vop_remove(self, dvp: Vnode, name: bytes, vp: Vnode) -> None:
        _eopnotsupp()

    def vop_rmdir(self, dvp: Vnode, name: bytes, vp: Vnode) -> None:
        """Remove empty directory ``vp`` (the caller has checked emptiness with ``vop_isempty``)."""
        _eopnotsupp()

    def vop_rename(self, fdvp: Vnode, fname: bytes, fvp: Vnode, tdvp: Vnode, tname: bytes,
                   tvp: Vnode | None) -> None:
        """Move ``fname`` to ``tname``, replacing ``tvp`` (already checked compatible and empty)."""
        _eopnotsupp()

    def vop_exchange(self, fdvp: Vnode, fname: bytes, fvp: Vnode, tdvp: Vnode, tname: bytes,
                     tvp: Vnode) -> None:
        """Atomically swap two names (RENAME_EXCHANGE); only when ``supports_exchange``."""
        raise OSError(errno.EINVAL, "RENAME_EXCHANGE not supported by this file system")

    def vop_isempty(self, vp: Vnode) -> bool:
        """True when directory ``vp`` holds nothing but ``.`` and ``..``."""
        return not any(d.name not in (b".", b"..") for d in self.readdir_entries(vp, 0))

    def vop_readdir(self, vp: Vnode, cookie: int) -> Iterator[list[Dirent]]:
        """Entries after position ``cookie`` (0 = start), a list at a time, as NetBSD's
        VOP_READDIR fills the caller's buffer with as many as fit: a directory block's worth for
        FFS. A walk reads every entry of every directory, and a generator step per entry through
        the driver and its VOP guard was a tenth of ``find``'s walk. Cookies stay valid across
        reclaim."""
        raise NotImplementedError

    def readdir_entries(self, vp: Vnode, cookie: int) -> Iterator[Dirent]:
        """``vop_readdir``'s entries one at a time, for callers that stop early or look for one."""
        for batch in self.vop_readdir(vp, cookie):
            yield from batch

    def vop_readlink(self, vp: Vnode) -> bytes:
        raise OSError(errno.EINVAL, "not a symbolic link")

    # ---- data ------------------------------------------------------------------------------------
    def vop_read(self, vp: Vnode, offset: int, size: int) -> bytes:
        raise NotImplementedError

    def vop_readinto(self, vp: Vnode, offset: int, buf: memoryview) -> int:
        """``vop_read`` into the caller's buffer (the server's shared-memory arena): a driver
        that can copy straight from its own memory overrides this and saves a copy per read."""
        data = self.vop_read(vp, offset, len(buf))
        n = len(data)
        buf[:n] = data
        return n

    def vop_write(self, vp: Vnode, offset: int, data: bytes | bytearray | memoryview) -> int:
        _eopnotsupp()

    def vop_fsync(self, vp: Vnode, dataonly: bool = False) -> None:
        """Make this file's data and inode durable (the caller syncs the host device afterwards)."""

    def vop_fallocate(self, vp: Vnode, mode: int, offset: int, length: int) -> None:
        _eopnotsupp()

    # ---- extended attributes ---------------------------------------------------------------------
    # ``ns`` is EXTATTR_NAMESPACE_USER or _SYSTEM (p2k.vfs.extattr); permission checks are the
    # caller's. A missing name is ENOATTR (ENODATA); a file system without attributes EOPNOTSUPP.
    def vop_getextattr(self, vp: Vnode, ns: int, name: bytes) -> bytes:
        raise OSError(errno.EOPNOTSUPP, "extended attributes not supported")

    def vop_setextattr(self, vp: Vnode, ns: int, name: bytes, value: bytes) -> None:
        raise OSError(errno.EOPNOTSUPP, "extended attributes not supported")

    def vop_listextattr(self, vp: Vnode, ns: int) -> list[bytes]:
        raise OSError(errno.EOPNOTSUPP, "extended attributes not supported")

    def vop_deleteextattr(self, vp: Vnode, ns: int, name: bytes) -> None:
        raise OSError(errno.EOPNOTSUPP, "extended attributes not supported")
