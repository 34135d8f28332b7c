"""The vnode operations FFS has of its own (NetBSD ``ffs_vnops.c``): ``ffs_fsync``, ``ffs_reclaim``
and the extended-attribute operations (FreeBSD/NetBSD ``ffs_getextattr`` … ``ffs_deleteextattr``);
the rest are UFS's, shared with the other UFS-derived file systems in NetBSD.

``ffs_fsync`` is a full ordered sync (data, a device flush, then metadata and a flush: the file's
data, its inode and the indirect blocks between them among it) followed by a host sync, because
fsync(2) promises durability even on an MNT_ASYNC mount.

Extended attributes can be read on read-only mounts too. The parsed area is kept on the
in-core inode (``ip.ea``) from the first call on, so a run of getxattr calls costs a dict lookup
each; every write builds the whole area again and writes it copy-on-write (``extattr.write_area``),
as FreeBSD rewrites the whole area on each commit. Permission checks are the syscall layer's
(``p2k.vfs.extattr``); here only the storage rules: UFS1 has no area (EOPNOTSUPP, as FreeBSD
and NetBSD without the old backing-file scheme), device nodes neither, names are unique per
namespace, and the area holds at most two blocks.
"""

from __future__ import annotations

import errno

from p2k.fs.ffs.extattr import UFS_NXADDR, Attrs, build_area, encode_record, read_area, walk_area, write_area
from p2k.fs.ffs.inode import IFBLK, IFCHR, IFDIR, IFMT
from p2k.fs.ffs.ufs_inode import ufs_reclaim
from p2k.hyper import now_ns
from p2k.vfs.extattr import ENOATTR, EXTATTR_NAMESPACE_SYSTEM, check_name

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from p2k.fs.ffs.ffs_vfsops import FfsMount
    from p2k.fs.ffs.inode import Inode
    from p2k.vfs.vattr import Vattr
    from p2k.vfs.vnode import Vnode


SMALL_AREA = 4096  # bytes of ext area kept parsed on any in-core inode
BIG_AREAS = 16  # bigger areas kept parsed at once per mount (each at most 2 blocks)


def _ip(vp: Vnode) -> Inode:
    return vp.data  # type: ignore[return-value]


def _ea(m: FfsMount, ip: Inode) -> Attrs:
    if not m.fs.ufs2:
        raise OSError(errno.EOPNOTSUPP, "UFS1 has no extended attribute area")
    if ip.mode & IFMT in (IFCHR, IFBLK):
        raise OSError(errno.EOPNOTSUPP, "no extended attributes on device nodes")
    if ip.ea is None:
        attrs, problem, end = walk_area(read_area(m, ip), m.fs.endian) if ip.extsize else ({}, None, 0)
        ip.ea = attrs
        ip.ea_clean = problem is None and end == ip.extsize
    if ip.extsize > SMALL_AREA:
        _keep_big(m, ip)
    return ip.ea


def _keep_big(m: FfsMount, ip: Inode) -> None:
    """Bound the memory the parsed areas take: a small one stays with its in-core inode (as
    big as the inode's own block share), a big one only while among the last BIG_AREAS used;
    the others are parsed again from the buffer cache, which RUMP_MEMLIMIT bounds."""
    lru = m.ea_lru  # a plain dict in insertion order (p2k.vfs.bufcache says why)
    lru.pop(ip.ino, None)
    lru[ip.ino] = ip
    while len(lru) > BIG_AREAS:
        lru.pop(next(iter(lru))).ea = None


def ffs_getextattr(m: FfsMount, vp: Vnode, ns: int, name: bytes) -> bytes:
    value = _ea(m, _ip(vp)).get((ns, name))
    if value is None:
        raise OSError(ENOATTR, "no such attribute")
    return value


def ffs_listextattr(m: FfsMount, vp: Vnode, ns: int) -> list[bytes]:
    return [n for (s, n) in _ea(m, _ip(vp)) if s == ns]


def _commit(m: FfsMount, ip: Inode, attrs: Attrs, data: bytes | None = None) -> None:
    """Write ``attrs`` (``data``: their area, when the caller made it by appending)."""
    if data is None:
        data = build_area(attrs, m.fs.endian)
    if len(data) > UFS_NXADDR * m.fs.fs_bsize:
        raise OSError(errno.ENOSPC, "extended attribute area full")
    write_area(m, ip, data, ip.uid == 0)
    ip.ea = attrs
    ip.ea_clean = True
    if ip.extsize > SMALL_AREA:
        _keep_big(m, ip)
    ip.ctime, ip.ctimensec = divmod(now_ns(), 1_000_000_000)
    m.mark_dirty(ip)


def _writable(m: FfsMount) -> None:
    if m.readonly:
        raise OSError(errno.EROFS, "read-only file system")


def ffs_setextattr(m: FfsMount, vp: Vnode, ns: int, name: bytes, value: bytes) -> None:
    check_name(ns, name)
    _writable(m)
    ip = _ip(vp)
    attrs = dict(_ea(m, ip))
    if len(value) > UFS_NXADDR * m.fs.fs_bsize:
        raise OSError(errno.EINVAL, "attribute value larger than the area")  # ffs_setextattr
    data = None
    if (ns, name) not in attrs and ip.ea_clean:
        # a new name goes at the end (FreeBSD appends too): no need to encode the others again
        data = read_area(m, ip) + encode_record(ns, name, bytes(value), m.fs.endian)
    attrs[(ns, name)] = bytes(value)
    _commit(m, ip, attrs, data)


def ffs_deleteextattr(m: FfsMount, vp: Vnode, ns: int, name: bytes) -> None:
    _writable(m)
    ip = _ip(vp)
    attrs = dict(_ea(m, ip))
    if attrs.pop((ns, name), None) is None:
        raise OSError(ENOATTR, "no such attribute")
    _commit(m, ip, attrs)


def acl_vattr(m: FfsMount, ip: Inode, va: Vattr) -> Vattr:
    """``va`` carrying the stored access ACL, for the permission checks (ACLs enforced)."""
    from p2k.vfs.acl import ACL_TYPE_ACCESS, EA_NAMES, enforced_vattr  # a mount enforcing ACLs only

    try:
        raw = _ea(m, ip).get((EXTATTR_NAMESPACE_SYSTEM, EA_NAMES[ACL_TYPE_ACCESS]))
    except OSError:
        return va  # an unreadable area: the mode applies
    return enforced_vattr(va, raw, m.fs.endian)


def inherit_acl(m: FfsMount, dip: Inode, ip: Inode) -> None:
    """POSIX.1e inheritance (FreeBSD ``ufs_do_posix1e_acl_inheritance_{dir,file}``), for a
    node just made in ``dip`` and not yet named: with ACLs enforced and a default ACL on the
    parent, the new mode is the requested one limited by that ACL's owner, group-class and
    other entries, the access ACL is the default one with that mode merged in (stored unless
    minimal), and a directory inherits the default ACL itself. The requested mode arrives
    with the umask already applied (the syscall layer, or the host kernel before a FUSE
    request), where POSIX.1e would let the default ACL replace the umask."""
    if not m.acls or not dip.extsize:
        return
    from p2k.vfs.acl import (
        ACL_TYPE_ACCESS,
        ACL_TYPE_DEFAULT,
        EA_NAMES,
        decode_oldacl,
        encode_oldacl,
        is_minimal,
        mode_of,
        with_mode,
    )

    raw = _ea(m, dip).get((EXTATTR_NAMESPACE_SYSTEM, EA_NAMES[ACL_TYPE_DEFAULT]))
    if raw is None:
        return
    try:
        default = decode_oldacl(raw, m.fs.endian)
    except OSError:
        return  # a damaged default ACL is not inherited; getfacl on the parent reports it
    limit = mode_of(default, 0o777)
    ip.mode = (ip.mode & ~0o777) | (ip.mode & limit & 0o777)
    access = with_mode(default, ip.mode)
    attrs: Attrs = {}
    if not is_minimal(access):
        attrs[(EXTATTR_NAMESPACE_SYSTEM, EA_NAMES[ACL_TYPE_ACCESS])] = encode_oldacl(access, m.fs.endian)
    if ip.mode & IFMT == IFDIR:
        attrs[(EXTATTR_NAMESPACE_SYSTEM, EA_NAMES[ACL_TYPE_DEFAULT])] = raw
    if attrs:
        write_area(m, ip, build_area(attrs, m.fs.endian), True)
        ip.ea = attrs
        ip.ea_clean = True


def ffs_fsync(m: FfsMount, vp: Vnode, dataonly: bool = False) -> None:
    if m.readonly:
        return
    m.iupdate(_ip(vp))
    m.vfs_sync(wait=True)
    m.dev.fsync()


def ffs_reclaim(m: FfsMount, vp: Vnode) -> None:
    ip: Inode | None = vp.data  # type: ignore[assignment]
    if ip is not None:
        ufs_reclaim(m, ip)
    vp.data = None
