"""Calls by vnode handle, for the clients that keep vnodes rather than paths: the FUSE bridge
(one vnode per FUSE inode, released on forget) and the remote server.

Path syscalls take a held vnode as ``dir_fd``, so ``mkdir(name, dir_fd=vp)`` is the puffs
"mkdir in this directory" with every permission rule of the path call; the calls here add what has
no path form.
"""

from __future__ import annotations

import errno
import os

from p2k.vfs.perm import R_OK, check_access
from p2k.vfs.sysbase import SysBase, statvfs_result, syscall
from p2k.vfs.vattr import VDIR, Dirent, Vattr, stat_result
from p2k.vfs.vnode import Vnode


class VnodeCalls(SysBase):
    @syscall
    def lookup(self, name: str | bytes, dir_fd: int | Vnode | None = None, *, follow: bool = False) -> Vnode:
        """A referenced vnode for ``name``; the caller must ``vrele`` it."""
        return self._lookup(name, follow=follow, dir_fd=dir_fd)

    @syscall
    def root_vnode(self) -> Vnode:
        return self.kernel.vcache.vref(self.proc.root)

    @syscall
    def vref(self, vp: Vnode) -> Vnode:
        return self.kernel.vcache.vref(vp)

    @syscall
    def vrele(self, vp: Vnode) -> None:
        self.kernel.vcache.vrele(vp)

    @syscall
    def vstat(self, vp: Vnode) -> os.stat_result:
        self._alive(vp)
        return stat_result(vp.mount.vop_getattr(vp), vp.mount.fsid)

    @syscall
    def vgetattr(self, vp: Vnode) -> Vattr:
        self._alive(vp)
        return vp.mount.vop_getattr(vp)

    @syscall
    def vstatvfs(self, vp: Vnode) -> os.statvfs_result:
        self._alive(vp)
        return statvfs_result(vp.mount.vfs_statvfs())

    @syscall
    def vopen(self, vp: Vnode, flags: int) -> int:
        """Open a held vnode; the new fd takes a reference of its own."""
        self._alive(vp)
        self.kernel.vcache.vref(vp)
        try:
            return int(self._open_vp(vp, flags))  # type: ignore[attr-defined]
        except BaseException:
            self.kernel.vcache.vrele(vp)
            raise

    @syscall
    def vreaddir(self, vp: Vnode, cookie: int, count: int = 1024) -> list[Dirent]:
        """Entries after ``cookie``; checks read permission like opendir would."""
        self._alive(vp)
        if vp.type != VDIR:
            raise OSError(errno.ENOTDIR, "not a directory")
        if not self.proc.cred.is_root:
            check_access(self.proc.cred, vp.mount.vop_getattr(vp), R_OK, "read directory")
        out: list[Dirent] = []
        for d in vp.mount.readdir_entries(vp, cookie):
            out.append(d)
            if len(out) >= count:
                break
        return out

    @syscall
    def vpread(self, vp: Vnode, n: int, offset: int) -> bytes:
        """``pread`` by handle, with no descriptor: for a caller that has already checked the
        right to read (the FUSE bridge on a read-only mount, where the host's own permission check
        at open is the whole of the rule and the kernel sees no OPEN)."""
        self._alive(vp)
        if vp.type == VDIR:
            raise OSError(errno.EISDIR, "is a directory")
        if offset < 0 or n < 0:
            raise OSError(errno.EINVAL, "negative offset or count")
        return vp.mount.vop_read(vp, offset, n)

    @syscall
    def vreadlink(self, vp: Vnode) -> bytes:
        self._alive(vp)
        return vp.mount.vop_readlink(vp)

    @syscall
    def vchmod(self, vp: Vnode, mode: int) -> None:
        self._alive(vp)
        self._chmod_vp(vp, mode)  # type: ignore[attr-defined]

    @syscall
    def vchown(self, vp: Vnode, uid: int, gid: int) -> None:
        self._alive(vp)
        self._chown_vp(vp, uid, gid)  # type: ignore[attr-defined]

    @syscall
    def vutimens(self, vp: Vnode, atime_ns: int | None, mtime_ns: int | None) -> None:
        self._alive(vp)
        self._utimens_vp(vp, atime_ns, mtime_ns)  # type: ignore[attr-defined]

    @syscall
    def vtruncate(self, vp: Vnode, length: int, *, fd: int | None = None) -> None:
        """Truncate by handle: through an fd opened for writing no permission check (ftruncate),
        otherwise the truncate(2) rules."""
        self._alive(vp)
        if fd is None:
            from p2k.vfs.perm import W_OK

            if vp.type != VDIR:
                check_access(self.proc.cred, vp.mount.vop_getattr(vp), W_OK, "truncate")
        self._truncate_vp(vp, length)  # type: ignore[attr-defined]

    @syscall
    def vfsync(self, vp: Vnode, dataonly: bool = False) -> None:
        self._alive(vp)
        vp.mount.vop_fsync(vp, dataonly)

    @staticmethod
    def _alive(vp: Vnode) -> None:
        if vp.reclaimed:
            raise OSError(errno.ESTALE, "stale file handle (file system unmounted)")
