"""POSIX.1e ACL syscalls (NetBSD/FreeBSD ``__acl_get_file``/``__acl_set_file``/``__acl_delete_*``).

The ACL lives in a system-namespace attribute (``p2k.vfs.acl``); these calls read and write it
as the kernel would, with no system-namespace privilege needed: anyone who can reach a file may
read its ACL, its owner (or root) may set it (``ufs_setacl``: VADMIN). Setting an access ACL
also sets the mode's owner, group-class and other bits, and an ACL the mode already says (three
entries) is not stored at all. ``acl_get_*`` returns None when nothing is stored, so that the
FUSE bridge can answer ENODATA as Linux file systems do (FreeBSD would synthesise the minimal ACL
from the mode: ``access_default``).
"""

from __future__ import annotations

import errno

from p2k.vfs.extattr import ENOATTR, EXTATTR_NAMESPACE_SYSTEM
from p2k.vfs.perm import check_owner
from p2k.vfs.sysbase import SysBase, syscall
from p2k.vfs.vattr import VDIR, SetAttr
from p2k.vfs.vnode import Vnode

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from p2k.vfs.acl import Entry

# The codecs (p2k.vfs.acl) are imported by the calls that use them: every kernel has these
# syscalls, few programs call them.

_SYS = EXTATTR_NAMESPACE_SYSTEM


def _ea_name(acltype: int) -> bytes:
    from p2k.vfs.acl import EA_NAMES

    name = EA_NAMES.get(acltype)
    if name is None:
        raise OSError(errno.EINVAL, f"unsupported ACL type {acltype}")
    return name


class AclCalls(SysBase):
    def _acl_get_vp(self, vp: Vnode, acltype: int) -> list[Entry] | None:
        from p2k.vfs.acl import ACL_TYPE_ACCESS, decode_oldacl, with_mode

        name = _ea_name(acltype)
        try:
            raw = vp.mount.vop_getextattr(vp, _SYS, name)
        except OSError as e:
            if e.errno == ENOATTR:
                return None
            raise
        endian = getattr(getattr(vp.mount, "fs", None), "endian", "<")
        entries = decode_oldacl(raw, endian)
        if acltype == ACL_TYPE_ACCESS:
            entries = with_mode(entries, self._getattr(vp).mode)
        return entries

    def _acl_set_vp(self, vp: Vnode, acltype: int, entries: list[Entry] | None) -> None:
        from p2k.vfs.acl import ACL_TYPE_ACCESS, ACL_TYPE_DEFAULT, encode_oldacl, is_minimal, mode_of, validate

        name = _ea_name(acltype)
        va = self._getattr(vp)
        check_owner(self.proc.cred, va)
        self._check_writable_fs(vp.mount)
        if acltype == ACL_TYPE_DEFAULT and va.type != VDIR:
            raise OSError(errno.EACCES if entries else errno.EINVAL, "default ACLs are for directories")
        if entries:
            validate(entries)
        if acltype == ACL_TYPE_ACCESS and entries:
            newmode = mode_of(entries, va.mode)
            if newmode != va.mode & 0o7777:
                vp.mount.vop_setattr(vp, SetAttr(mode=newmode))
        if not entries or (acltype == ACL_TYPE_ACCESS and is_minimal(entries)):
            try:
                vp.mount.vop_deleteextattr(vp, _SYS, name)
            except OSError as e:
                if e.errno != ENOATTR:
                    raise
            return
        endian = getattr(getattr(vp.mount, "fs", None), "endian", "<")
        vp.mount.vop_setextattr(vp, _SYS, name, encode_oldacl(entries, endian))

    def _acl_vp(self, target: str | bytes | int | Vnode, follow: bool) -> tuple[Vnode, bool]:
        if isinstance(target, Vnode):
            return target, False
        if isinstance(target, int):
            return self.proc.fdt.get(target).vp, False
        return self._lookup(target, follow=follow), True

    @syscall
    def acl_get_file(self, target: str | bytes | int | Vnode, acltype: int, *,
                     follow_symlinks: bool = True) -> list[Entry] | None:
        """The stored ACL of ``target`` (a path, an fd or a held vnode), or None."""
        vp, held = self._acl_vp(target, follow_symlinks)
        try:
            return self._acl_get_vp(vp, acltype)
        finally:
            if held:
                self._rele(vp)

    @syscall
    def acl_set_file(self, target: str | bytes | int | Vnode, acltype: int, entries: list[Entry] | None, *,
                     follow_symlinks: bool = True) -> None:
        """Set (or with None / [] delete) the ACL of ``target``."""
        vp, held = self._acl_vp(target, follow_symlinks)
        try:
            self._acl_set_vp(vp, acltype, entries)
        finally:
            if held:
                self._rele(vp)
