"""Extended attributes: the rules every file system shares (BSD ``sys/extattr.h``, ``kern_extattr.c``).

An attribute is named by a *namespace* (``EXTATTR_NAMESPACE_USER`` or ``_SYSTEM``) and a name of
1..255 bytes without NUL. Drivers only store and find attributes (the four ``vop_*extattr``
VOPs); who may do what is decided here, once, from the attributes the driver reports:

- user namespace: reading or listing needs read access to the file, setting or deleting needs
  write access (FreeBSD's ``ffs_extattr_check_cred``: ``VOP_ACCESS`` with VREAD/VWRITE);
- system namespace: root only (FreeBSD's ``priv_check(PRIV_VFS_EXTATTR_SYSTEM)``), EPERM otherwise.

A missing attribute is ENOATTR, which on Linux (whose errno numbers ``k.sys`` uses, as the ``os``
module does) is ENODATA — glibc defines ENOATTR as exactly that.
"""

from __future__ import annotations

import errno

from p2k.vfs.lwproc import Cred
from p2k.vfs.perm import R_OK, W_OK, check_access
from p2k.vfs.vattr import VBLK, VCHR, Vattr

EXTATTR_NAMESPACE_EMPTY = 0
EXTATTR_NAMESPACE_USER = 1
EXTATTR_NAMESPACE_SYSTEM = 2
NAMESPACES = {EXTATTR_NAMESPACE_USER: "user", EXTATTR_NAMESPACE_SYSTEM: "system"}
EXTATTR_MAXNAMELEN = 255

ENOATTR = errno.ENODATA

# Linux setxattr(2) flags
XATTR_CREATE = 1
XATTR_REPLACE = 2


def check_name(ns: int, name: bytes) -> None:
    """EINVAL for an unknown namespace or a malformed name (empty, NUL, longer than 255)."""
    if ns not in NAMESPACES:
        raise OSError(errno.EINVAL, f"unknown attribute namespace {ns}")
    if not name or b"\0" in name:
        raise OSError(errno.EINVAL, "attribute name empty or containing NUL")
    if len(name) > EXTATTR_MAXNAMELEN:
        raise OSError(errno.ENAMETOOLONG, "attribute name longer than 255 bytes")


def check_extattr_access(cred: Cred, va: Vattr, ns: int, write: bool) -> None:
    """The BSD permission rule for reading (get, list) or writing (set, delete) in ``ns``."""
    if ns not in NAMESPACES:
        raise OSError(errno.EINVAL, f"unknown attribute namespace {ns}")
    if va.type in (VCHR, VBLK):
        # FreeBSD and NetBSD keep no attributes on device nodes (their ext area is specfs's).
        raise OSError(errno.EOPNOTSUPP, "no extended attributes on device nodes")
    if ns == EXTATTR_NAMESPACE_SYSTEM:
        if not cred.is_root:
            raise OSError(errno.EPERM, "system namespace attributes are for root only")
        return
    if not cred.is_root:
        check_access(cred, va, W_OK if write else R_OK, "extended attribute")


def encode_list(names: list[bytes]) -> bytes:
    """The ``extattr_list_*`` buffer: each name preceded by its length in one byte, no NULs."""
    return b"".join(bytes((len(n),)) + n for n in names)


def decode_list(buf: bytes) -> list[bytes]:
    """Inverse of ``encode_list`` (a truncated last entry is dropped)."""
    out = []
    i = 0
    while i < len(buf):
        n = buf[i]
        if i + 1 + n > len(buf):
            break
        out.append(bytes(buf[i + 1:i + 1 + n]))
        i += 1 + n
    return out


__all__ = [
    "ENOATTR", "EXTATTR_MAXNAMELEN", "EXTATTR_NAMESPACE_EMPTY", "EXTATTR_NAMESPACE_SYSTEM",
    "EXTATTR_NAMESPACE_USER", "NAMESPACES", "XATTR_CREATE", "XATTR_REPLACE", "check_extattr_access",
    "check_name", "decode_list", "encode_list",
]
