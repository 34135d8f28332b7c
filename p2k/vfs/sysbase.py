"""What every group of syscalls shares: the kernel lock, the calling process, stat building.

Each public syscall runs under the kernel lock (a big lock: the drivers are not reentrant, and
under CPython a finer lock would buy no parallelism). Helpers here turn vnode attributes into the
``os`` module's result types, so callers of ``k.sys`` can treat results as they treat ``os``'s.
"""

from __future__ import annotations

import errno
import os

from p2k.vfs.mount import MNT_RDONLY
from p2k.vfs.namei import LOOKUP, NameiResult, namei
from p2k.vfs.vattr import StatVFS, Vattr, stat_result
from p2k.vfs.vnode import Vnode
from p2k.vfs.vopguard import wrapped

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import ParamSpec, TypeVar

    from p2k.kernel import Kernel
    from p2k.vfs.lwproc import Proc
    from p2k.vfs.mount import Mount

    P = ParamSpec("P")  # annotations' only: the run time never sees them
    R = TypeVar("R")


def syscall(fn: Callable[P, R]) -> Callable[P, R]:
    """Run the call under the kernel lock; a process that has exited may not call in."""

    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        k = args[0].kernel  # type: ignore[attr-defined]
        with k.lock:
            k.sysdepth += 1
            try:
                result = fn(*args, **kwargs)
            finally:
                k.sysdepth -= 1
            if k.op_end_hooks and not k.sysdepth:
                for hook in list(k.op_end_hooks):
                    hook()
            return result

    return wrapped(wrapper, fn)


def statvfs_result(sv: StatVFS) -> os.statvfs_result:
    return os.statvfs_result((sv.f_bsize, sv.f_frsize, sv.f_blocks, sv.f_bfree, sv.f_bavail, sv.f_files,
                              sv.f_ffree, sv.f_favail, sv.f_flag, sv.f_namemax, sv.f_fsid))


class SysBase:
    def __init__(self, kernel: Kernel, proc: Proc) -> None:
        self.kernel = kernel
        self.proc = proc

    # ---- helpers for the syscall groups ----------------------------------------------------------
    def _namei(self, path: str | bytes, *, follow: bool = True, op: int = LOOKUP,
               want_parent: bool = False, dir_fd: int | Vnode | None = None,
               stat_only: bool = False) -> NameiResult:
        """``dir_fd`` is an fd or, for the FUSE bridge and the server, a vnode the caller holds."""
        start = None
        if dir_fd is not None and not _is_abs(path):
            start = dir_fd if isinstance(dir_fd, Vnode) else self.proc.fdt.get(dir_fd).vp
        return namei(self.kernel, self.proc, path, follow=follow, op=op, want_parent=want_parent,
                     start=start, stat_only=stat_only)

    def _lookup(self, path: str | bytes, follow: bool = True, dir_fd: int | Vnode | None = None) -> Vnode:
        """Referenced vnode of an existing path."""
        r = self._namei(path, follow=follow, dir_fd=dir_fd)
        assert r.vp is not None
        return r.vp

    def _rele(self, *vps: Vnode | None) -> None:
        for vp in vps:
            if vp is not None:
                self.kernel.vcache.vrele(vp)

    @staticmethod
    def _getattr(vp: Vnode) -> Vattr:
        return vp.mount.vop_getattr(vp)

    @staticmethod
    def _check_writable_fs(mp: Mount) -> None:
        if mp.flags & MNT_RDONLY:
            raise OSError(errno.EROFS, "read-only file system")

    def _stat_vp(self, vp: Vnode) -> os.stat_result:
        return stat_result(vp.mount.vop_getattr(vp), vp.mount.fsid)


def _is_abs(path: str | bytes) -> bool:
    return path[:1] in ("/", b"/")
