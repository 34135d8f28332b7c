"""The attribute calls of NetBSD's ``vfs_syscalls.c``: chmod, chown, utimensat, truncate (path and
fd forms) and access.

Each path form and its fd form share one vnode-level helper, so the POSIX rules live once.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod

from p2k.hyper import now_ns
from p2k.vfs.perm import R_OK, W_OK, X_OK, can_access, check_access, check_chown, chmod_mode, killpriv_mode
from p2k.vfs.sysbase import SysBase, syscall
from p2k.vfs.vattr import UTIME_NOW, UTIME_OMIT, VDIR, VREG, SetAttr
from p2k.vfs.vnode import Vnode


class AttrCalls(SysBase):
    # ---- chmod -----------------------------------------------------------------------------------
    def _chmod_vp(self, vp: Vnode, mode: int) -> None:
        va = self._getattr(vp)
        cred = self.proc.cred
        newmode = chmod_mode(cred, va, mode)
        self._check_writable_fs(vp.mount)
        vp.mount.vop_setattr(vp, SetAttr(mode=newmode))

    @syscall
    def chmod(self, path: str | bytes, mode: int, *, dir_fd: int | Vnode | None = None,
              follow_symlinks: bool = True) -> None:
        vp = self._lookup(path, follow=follow_symlinks, dir_fd=dir_fd)
        try:
            self._chmod_vp(vp, mode)
        finally:
            self._rele(vp)

    @syscall
    def fchmod(self, fd: int, mode: int) -> None:
        self._chmod_vp(self.proc.fdt.get(fd).vp, mode)

    # ---- chown -----------------------------------------------------------------------------------
    def _chown_vp(self, vp: Vnode, uid: int, gid: int) -> None:
        u = None if uid == -1 else uid
        g = None if gid == -1 else gid
        va = self._getattr(vp)
        check_chown(self.proc.cred, va, u, g)
        self._check_writable_fs(vp.mount)
        sa = SetAttr(uid=u, gid=g)
        # chown by anyone drops set-uid/set-gid on non-directories (Linux and NetBSD agree for
        # non-root; Linux also for root and even for chown(-1, -1), which is what host tools see).
        if not stat_mod.S_ISDIR(va.mode) and va.mode & 0o6000:
            keep_sgid = va.mode & stat_mod.S_ISGID and not va.mode & stat_mod.S_IXGRP
            sa.mode = va.mode & 0o1777 | (stat_mod.S_ISGID if keep_sgid else 0)
        vp.mount.vop_setattr(vp, sa)

    @syscall
    def chown(self, path: str | bytes, uid: int, gid: int, *, dir_fd: int | Vnode | None = None,
              follow_symlinks: bool = True) -> None:
        vp = self._lookup(path, follow=follow_symlinks, dir_fd=dir_fd)
        try:
            self._chown_vp(vp, uid, gid)
        finally:
            self._rele(vp)

    def lchown(self, path: str | bytes, uid: int, gid: int) -> None:
        self.chown(path, uid, gid, follow_symlinks=False)

    @syscall
    def fchown(self, fd: int, uid: int, gid: int) -> None:
        self._chown_vp(self.proc.fdt.get(fd).vp, uid, gid)

    # ---- times -----------------------------------------------------------------------------------
    def _utimens_vp(self, vp: Vnode, atime_ns: int | None, mtime_ns: int | None) -> None:
        """None means UTIME_NOW for both (``utimes(path, NULL)``)."""
        a = UTIME_NOW if atime_ns is None else atime_ns
        m = UTIME_NOW if mtime_ns is None else mtime_ns
        if a == UTIME_OMIT and m == UTIME_OMIT:
            return
        va = self._getattr(vp)
        cred = self.proc.cred
        only_now = a in (UTIME_NOW, UTIME_OMIT) and m in (UTIME_NOW, UTIME_OMIT)
        if cred.uid not in (0, va.uid):
            if not only_now:
                raise OSError(errno.EPERM, "only the owner may set explicit times")
            if not can_access(cred, va, W_OK):
                raise OSError(errno.EACCES, "setting times to now needs write access")
        self._check_writable_fs(vp.mount)
        t = now_ns()
        vp.mount.vop_setattr(vp, SetAttr(
            atime_ns=None if a == UTIME_OMIT else (t if a == UTIME_NOW else a),
            mtime_ns=None if m == UTIME_OMIT else (t if m == UTIME_NOW else m)))

    @syscall
    def utimensat(self, path: str | bytes, atime_ns: int | None = None, mtime_ns: int | None = None, *,
                  dir_fd: int | Vnode | None = None, follow_symlinks: bool = True) -> None:
        """Times in ns, or UTIME_NOW / UTIME_OMIT; both None = now (as ``utimensat(..., NULL)``)."""
        vp = self._lookup(path, follow=follow_symlinks, dir_fd=dir_fd)
        try:
            self._utimens_vp(vp, atime_ns, mtime_ns)
        finally:
            self._rele(vp)

    @syscall
    def futimens(self, fd: int, atime_ns: int | None = None, mtime_ns: int | None = None) -> None:
        self._utimens_vp(self.proc.fdt.get(fd).vp, atime_ns, mtime_ns)

    def utime(self, path: str | bytes, times: tuple[float, float] | None = None, *,
              ns: tuple[int, int] | None = None, follow_symlinks: bool = True) -> None:
        """``os.utime``'s signature."""
        if ns is None and times is not None:
            ns = (int(times[0] * 1e9), int(times[1] * 1e9))
        self.utimensat(path, *(ns or (None, None)), follow_symlinks=follow_symlinks)

    # ---- truncate --------------------------------------------------------------------------------
    def _truncate_vp(self, vp: Vnode, length: int) -> None:
        if length < 0:
            raise OSError(errno.EINVAL, "negative length")
        if vp.type == VDIR:
            raise OSError(errno.EISDIR, "is a directory")
        if vp.type != VREG:
            raise OSError(errno.EINVAL, "not a regular file")
        if length > vp.mount.maxfilesize:
            raise OSError(errno.EFBIG, "file too large")
        self._check_writable_fs(vp.mount)
        sa = SetAttr(size=length)
        if not self.proc.cred.is_root:
            sa.mode = killpriv_mode(self.proc.cred, vp.mount.vop_getattr(vp))
        vp.mount.vop_setattr(vp, sa)

    @syscall
    def truncate(self, path: str | bytes, length: int) -> None:
        vp = self._lookup(path)
        try:
            if vp.type == VREG:
                check_access(self.proc.cred, self._getattr(vp), W_OK, "truncate")
            self._truncate_vp(vp, length)
        finally:
            self._rele(vp)

    @syscall
    def ftruncate(self, fd: int, length: int) -> None:
        fp = self.proc.fdt.get(fd)
        if not fp.writable:
            raise OSError(errno.EINVAL, "file not open for writing")
        self._truncate_vp(fp.vp, length)

    # ---- access ----------------------------------------------------------------------------------
    @syscall
    def access(self, path: str | bytes, mode: int, *, dir_fd: int | Vnode | None = None,
               follow_symlinks: bool = True) -> bool:
        """Like ``os.access`` it returns a bool; the errno is available from ``check_access``."""
        try:
            self._access(path, mode, dir_fd, follow_symlinks)
        except OSError:
            return False
        return True

    @syscall
    def check_access(self, path: str | bytes, mode: int) -> None:
        """access(2) with its errno: raises instead of returning False."""
        self._access(path, mode, None, True)

    def _access(self, path: str | bytes, mode: int, dir_fd: int | Vnode | None, follow: bool) -> None:
        if mode & ~(R_OK | W_OK | X_OK):
            raise OSError(errno.EINVAL, "bad access mode")
        vp = self._lookup(path, follow=follow, dir_fd=dir_fd)
        try:
            if mode == os.F_OK:
                return
            va = self._getattr(vp)
            check_access(self.proc.cred, va, mode)
            if mode & W_OK and vp.mount.readonly and vp.type in (VREG, VDIR):
                raise OSError(errno.EROFS, "read-only file system")
        finally:
            self._rele(vp)
