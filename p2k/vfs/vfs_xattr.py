"""Extended-attribute syscalls: ``extattr_{get,set,delete,list}_{file,link,fd}`` (rump_sys_extattr_*).

Python conventions as the rest of ``k.sys``: ``get`` returns the value's bytes, ``set`` returns the
number of bytes written, ``list`` returns the names (``p2k.vfs.extattr.encode_list`` makes BSD's
length-prefixed buffer of them). The ``_fd`` forms also take a vnode the caller holds, which is
how the FUSE bridge and the server act by handle. ``set`` takes Linux's ``XATTR_CREATE`` /
``XATTR_REPLACE`` as ``flags`` (BSD has no such flags; 0 is its behaviour), checked and applied
under the one kernel lock, so the test and the write are atomic.
"""

from __future__ import annotations

import errno

from p2k.vfs.extattr import ENOATTR, XATTR_CREATE, XATTR_REPLACE, check_extattr_access, check_name
from p2k.vfs.sysbase import SysBase, syscall
from p2k.vfs.vnode import Vnode


class ExtattrCalls(SysBase):
    def _fd_vnode(self, fd: int | Vnode) -> Vnode:
        return fd if isinstance(fd, Vnode) else self.proc.fdt.get(fd).vp

    # ---- vnode-level helpers: one rule for the six forms -----------------------------------------
    def _ea_get(self, vp: Vnode, ns: int, name: bytes) -> bytes:
        check_name(ns, name)
        check_extattr_access(self.proc.cred, self._getattr(vp), ns, write=False)
        return vp.mount.vop_getextattr(vp, ns, name)

    def _ea_list(self, vp: Vnode, ns: int) -> list[bytes]:
        check_extattr_access(self.proc.cred, self._getattr(vp), ns, write=False)
        return vp.mount.vop_listextattr(vp, ns)

    def _ea_set(self, vp: Vnode, ns: int, name: bytes, value: bytes, flags: int) -> int:
        check_name(ns, name)
        if flags & ~(XATTR_CREATE | XATTR_REPLACE) or flags == XATTR_CREATE | XATTR_REPLACE:
            raise OSError(errno.EINVAL, "bad extended attribute flags")
        check_extattr_access(self.proc.cred, self._getattr(vp), ns, write=True)
        self._check_writable_fs(vp.mount)
        if flags:
            try:
                vp.mount.vop_getextattr(vp, ns, name)
                exists = True
            except OSError as e:
                if e.errno != ENOATTR:
                    raise
                exists = False
            if exists and flags & XATTR_CREATE:
                raise OSError(errno.EEXIST, "attribute exists")
            if not exists and flags & XATTR_REPLACE:
                raise OSError(ENOATTR, "no such attribute")
        value = bytes(value)
        vp.mount.vop_setextattr(vp, ns, name, value)
        return len(value)

    def _ea_delete(self, vp: Vnode, ns: int, name: bytes) -> None:
        check_name(ns, name)
        check_extattr_access(self.proc.cred, self._getattr(vp), ns, write=True)
        self._check_writable_fs(vp.mount)
        vp.mount.vop_deleteextattr(vp, ns, name)

    def _ea_path(self, path: str | bytes, follow: bool, fn: str, *args: object) -> object:
        vp = self._lookup(path, follow=follow)
        try:
            return getattr(self, fn)(vp, *args)
        finally:
            self._rele(vp)

    # ---- get -------------------------------------------------------------------------------------
    @syscall
    def extattr_get_file(self, path: str | bytes, ns: int, name: bytes) -> bytes:
        return self._ea_path(path, True, "_ea_get", ns, name)  # type: ignore[return-value]

    @syscall
    def extattr_get_link(self, path: str | bytes, ns: int, name: bytes) -> bytes:
        return self._ea_path(path, False, "_ea_get", ns, name)  # type: ignore[return-value]

    @syscall
    def extattr_get_fd(self, fd: int | Vnode, ns: int, name: bytes) -> bytes:
        return self._ea_get(self._fd_vnode(fd), ns, name)

    # ---- set -------------------------------------------------------------------------------------
    @syscall
    def extattr_set_file(self, path: str | bytes, ns: int, name: bytes, value: bytes, flags: int = 0) -> int:
        return self._ea_path(path, True, "_ea_set", ns, name, value, flags)  # type: ignore[return-value]

    @syscall
    def extattr_set_link(self, path: str | bytes, ns: int, name: bytes, value: bytes, flags: int = 0) -> int:
        return self._ea_path(path, False, "_ea_set", ns, name, value, flags)  # type: ignore[return-value]

    @syscall
    def extattr_set_fd(self, fd: int | Vnode, ns: int, name: bytes, value: bytes, flags: int = 0) -> int:
        return self._ea_set(self._fd_vnode(fd), ns, name, value, flags)

    # ---- delete ----------------------------------------------------------------------------------
    @syscall
    def extattr_delete_file(self, path: str | bytes, ns: int, name: bytes) -> None:
        self._ea_path(path, True, "_ea_delete", ns, name)

    @syscall
    def extattr_delete_link(self, path: str | bytes, ns: int, name: bytes) -> None:
        self._ea_path(path, False, "_ea_delete", ns, name)

    @syscall
    def extattr_delete_fd(self, fd: int | Vnode, ns: int, name: bytes) -> None:
        self._ea_delete(self._fd_vnode(fd), ns, name)

    # ---- list ------------------------------------------------------------------------------------
    @syscall
    def extattr_list_file(self, path: str | bytes, ns: int) -> list[bytes]:
        return self._ea_path(path, True, "_ea_list", ns)  # type: ignore[return-value]

    @syscall
    def extattr_list_link(self, path: str | bytes, ns: int) -> list[bytes]:
        return self._ea_path(path, False, "_ea_list", ns)  # type: ignore[return-value]

    @syscall
    def extattr_list_fd(self, fd: int | Vnode, ns: int) -> list[bytes]:
        return self._ea_list(self._fd_vnode(fd), ns)
