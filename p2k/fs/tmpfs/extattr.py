"""tmpfs extended attributes: kept in memory on the node, charged to the mount like file data.

NetBSD's tmpfs has none; p2k gives it the same four VOPs as FFS so that everything above the
driver (syscalls, the FUSE bridge, the server) can be tested against either file system. The
limits are FFS's with 64 KiB blocks (one value at most 64 KiB, as Linux's XATTR_SIZE_MAX), so a
program sees the same answers on both.
"""

from __future__ import annotations

import errno

from p2k.hyper import now_ns
from p2k.vfs.extattr import ENOATTR, EXTATTR_NAMESPACE_SYSTEM, check_name

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from p2k.fs.tmpfs.node import TmpNode
    from p2k.fs.tmpfs.vfsops import TmpfsMount
    from p2k.vfs.vattr import Vattr
    from p2k.vfs.vnode import Vnode

MAX_VALUE = 64 * 1024
MAX_AREA = 128 * 1024
RECORD_OVERHEAD = 16


def _cost(name: bytes, value: bytes) -> int:
    return RECORD_OVERHEAD + len(name) + len(value)


def _node(vp: Vnode) -> TmpNode:
    return vp.data  # type: ignore[return-value]


def tmpfs_getextattr(m: TmpfsMount, vp: Vnode, ns: int, name: bytes) -> bytes:
    value = (_node(vp).xattrs or {}).get((ns, name))
    if value is None:
        raise OSError(ENOATTR, "no such attribute")
    return value


def tmpfs_listextattr(m: TmpfsMount, vp: Vnode, ns: int) -> list[bytes]:
    return [n for (s, n) in (_node(vp).xattrs or {}) if s == ns]


def tmpfs_setextattr(m: TmpfsMount, vp: Vnode, ns: int, name: bytes, value: bytes) -> None:
    check_name(ns, name)
    if m.readonly:
        raise OSError(errno.EROFS, "read-only file system")
    if len(value) > MAX_VALUE:
        raise OSError(errno.EINVAL, "attribute value too large")
    n = _node(vp)
    attrs = n.xattrs if n.xattrs is not None else {}
    old = attrs.get((ns, name))
    used = sum(_cost(k[1], v) for k, v in attrs.items())
    delta = _cost(name, value) - (_cost(name, old) if old is not None else 0)
    if used + delta > MAX_AREA:
        raise OSError(errno.ENOSPC, "extended attribute area full")
    if delta > 0:
        m.charge(delta)
    else:
        m.uncharge(-delta)
    attrs[(ns, name)] = bytes(value)
    n.xattrs = attrs
    n.ctime_ns = now_ns()


def tmpfs_deleteextattr(m: TmpfsMount, vp: Vnode, ns: int, name: bytes) -> None:
    if m.readonly:
        raise OSError(errno.EROFS, "read-only file system")
    n = _node(vp)
    old = (n.xattrs or {}).pop((ns, name), None)
    if old is None:
        raise OSError(ENOATTR, "no such attribute")
    m.uncharge(_cost(name, old))
    n.ctime_ns = now_ns()


def acl_vattr(m: TmpfsMount, n: TmpNode, va: Vattr) -> Vattr:
    """``va`` carrying the node's access ACL for the permission checks (mount with -o acls);
    ACLs are kept little-endian here, tmpfs having no byte order of its own."""
    from p2k.vfs.acl import ACL_TYPE_ACCESS, EA_NAMES, enforced_vattr  # a mount with -o acls only

    return enforced_vattr(va, (n.xattrs or {}).get((EXTATTR_NAMESPACE_SYSTEM, EA_NAMES[ACL_TYPE_ACCESS])), "<")


def xattr_bytes(n: TmpNode) -> int:
    """What a node's attributes are charged (given back when the node is freed)."""
    return sum(_cost(k[1], v) for k, v in (n.xattrs or {}).items())
