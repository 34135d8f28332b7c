"""FFS extended-attribute VOPs (FreeBSD/NetBSD ``ffs_getextattr`` … ``ffs_deleteextattr``).

Mixed into ``FfsMount`` (reading works on read-only mounts too). The parsed area is kept on the
in-core inode (``ip.ea``) from the first call on, so a run of getxattr calls costs a dict lookup
each; every write builds the whole area again and writes it copy-on-write (``extattr.write_area``),
as FreeBSD rewrites the whole area on each commit. Permission checks are the syscall layer's
(``p2k.vfs.extattr``); here only the storage rules: UFS1 has no area (EOPNOTSUPP, as FreeBSD
and NetBSD without the old backing-file scheme), device nodes neither, names are unique per
namespace, and the area holds at most two blocks.
"""

from __future__ import annotations

import errno
from collections import OrderedDict
from typing import TYPE_CHECKING

from p2k.fs.ffs.extattr import UFS_NXADDR, Attrs, build_area, encode_record, read_area, walk_area, write_area
from p2k.fs.ffs.inode import IFBLK, IFCHR, IFDIR, IFMT
from p2k.hyper import now_ns
from p2k.vfs.acl import (
    ACL_TYPE_ACCESS,
    ACL_TYPE_DEFAULT,
    EA_NAMES,
    decode_oldacl,
    encode_oldacl,
    enforced_vattr,
    is_minimal,
    mode_of,
    with_mode,
)
from p2k.vfs.extattr import ENOATTR, EXTATTR_NAMESPACE_SYSTEM, check_name

if TYPE_CHECKING:
    from p2k.fs.ffs.inode import Inode
    from p2k.fs.ffs.ufs_readwrite import FfsVnops
    from p2k.fs.ffs.vfsops_rw import FfsMountRW
    from p2k.vfs.vattr import Vattr
    from p2k.vfs.vnode import Vnode


SMALL_AREA = 4096  # bytes of ext area kept parsed on any in-core inode
BIG_AREAS = 16  # bigger areas kept parsed at once per mount (each at most 2 blocks)


def _ip(vp: Vnode) -> Inode:
    return vp.data  # type: ignore[return-value]


class FfsExtattrVnops:
    def _ea(self: FfsVnops, ip: Inode) -> Attrs:
        if not self.fs.ufs2:
            raise OSError(errno.EOPNOTSUPP, "UFS1 has no extended attribute area")
        if ip.mode & IFMT in (IFCHR, IFBLK):
            raise OSError(errno.EOPNOTSUPP, "no extended attributes on device nodes")
        if ip.ea is None:
            attrs, problem, end = walk_area(read_area(self, ip), self.fs.endian) if ip.extsize else ({}, None, 0)
            ip.ea = attrs
            ip.ea_clean = problem is None and end == ip.extsize
        if ip.extsize > SMALL_AREA:
            FfsExtattrVnops._keep_big(self, ip)
        return ip.ea

    def _keep_big(self: FfsVnops, ip: Inode) -> None:
        """Bound the memory the parsed areas take: a small one stays with its in-core inode (as
        big as the inode's own block share), a big one only while among the last BIG_AREAS used;
        the others are parsed again from the buffer cache, which RUMP_MEMLIMIT bounds."""
        lru: OrderedDict[int, Inode] | None = self.__dict__.get("_ea_lru")
        if lru is None:
            lru = self.__dict__["_ea_lru"] = OrderedDict()
        lru[ip.ino] = ip
        lru.move_to_end(ip.ino)
        while len(lru) > BIG_AREAS:
            _, old = lru.popitem(last=False)
            old.ea = None

    def vop_getextattr(self: FfsVnops, vp: Vnode, ns: int, name: bytes) -> bytes:
        value = FfsExtattrVnops._ea(self, _ip(vp)).get((ns, name))
        if value is None:
            raise OSError(ENOATTR, "no such attribute")
        return value

    def vop_listextattr(self: FfsVnops, vp: Vnode, ns: int) -> list[bytes]:
        return [n for (s, n) in FfsExtattrVnops._ea(self, _ip(vp)) if s == ns]

    def _commit(self: FfsMountRW, ip: Inode, attrs: Attrs, data: bytes | None = None) -> None:
        """Write ``attrs`` (``data``: their area, when the caller made it by appending)."""
        if data is None:
            data = build_area(attrs, self.fs.endian)
        if len(data) > UFS_NXADDR * self.fs.fs_bsize:
            raise OSError(errno.ENOSPC, "extended attribute area full")
        write_area(self, ip, data, ip.uid == 0)
        ip.ea = attrs
        ip.ea_clean = True
        if ip.extsize > SMALL_AREA:
            FfsExtattrVnops._keep_big(self, ip)
        ip.ctime, ip.ctimensec = divmod(now_ns(), 1_000_000_000)
        self.mark_dirty(ip)

    def _writable(self: FfsMountRW) -> None:
        if self.readonly or getattr(self, "alloc", None) is None:
            raise OSError(errno.EROFS, "read-only file system")

    def vop_setextattr(self: FfsMountRW, vp: Vnode, ns: int, name: bytes, value: bytes) -> None:
        check_name(ns, name)
        FfsExtattrVnops._writable(self)
        ip = _ip(vp)
        attrs = dict(FfsExtattrVnops._ea(self, ip))
        if len(value) > UFS_NXADDR * self.fs.fs_bsize:
            raise OSError(errno.EINVAL, "attribute value larger than the area")  # ffs_setextattr
        data = None
        if (ns, name) not in attrs and ip.ea_clean:
            # a new name goes at the end (FreeBSD appends too): no need to encode the others again
            data = read_area(self, ip) + encode_record(ns, name, bytes(value), self.fs.endian)
        attrs[(ns, name)] = bytes(value)
        FfsExtattrVnops._commit(self, ip, attrs, data)

    def vop_deleteextattr(self: FfsMountRW, vp: Vnode, ns: int, name: bytes) -> None:
        FfsExtattrVnops._writable(self)
        ip = _ip(vp)
        attrs = dict(FfsExtattrVnops._ea(self, ip))
        if attrs.pop((ns, name), None) is None:
            raise OSError(ENOATTR, "no such attribute")
        FfsExtattrVnops._commit(self, ip, attrs)

    def acl_vattr(self: FfsVnops, ip: Inode, va: Vattr) -> Vattr:
        """``va`` carrying the stored access ACL, for the permission checks (ACLs enforced)."""
        try:
            raw = FfsExtattrVnops._ea(self, ip).get((EXTATTR_NAMESPACE_SYSTEM, EA_NAMES[ACL_TYPE_ACCESS]))
        except OSError:
            return va  # an unreadable area: the mode applies
        return enforced_vattr(va, raw, self.fs.endian)

    def inherit_acl(self: FfsMountRW, dip: Inode, ip: Inode) -> None:
        """POSIX.1e inheritance (FreeBSD ``ufs_do_posix1e_acl_inheritance_{dir,file}``), for a
        node just made in ``dip`` and not yet named: with ACLs enforced and a default ACL on the
        parent, the new mode is the requested one limited by that ACL's owner, group-class and
        other entries, the access ACL is the default one with that mode merged in (stored unless
        minimal), and a directory inherits the default ACL itself. The requested mode arrives
        with the umask already applied (the syscall layer, or the host kernel before a FUSE
        request), where POSIX.1e would let the default ACL replace the umask."""
        if not self.acls or not dip.extsize:
            return
        raw = FfsExtattrVnops._ea(self, dip).get((EXTATTR_NAMESPACE_SYSTEM, EA_NAMES[ACL_TYPE_DEFAULT]))
        if raw is None:
            return
        try:
            default = decode_oldacl(raw, self.fs.endian)
        except OSError:
            return  # a damaged default ACL is not inherited; getfacl on the parent reports it
        limit = mode_of(default, 0o777)
        ip.mode = (ip.mode & ~0o777) | (ip.mode & limit & 0o777)
        access = with_mode(default, ip.mode)
        attrs: Attrs = {}
        if not is_minimal(access):
            attrs[(EXTATTR_NAMESPACE_SYSTEM, EA_NAMES[ACL_TYPE_ACCESS])] = encode_oldacl(access, self.fs.endian)
        if ip.mode & IFMT == IFDIR:
            attrs[(EXTATTR_NAMESPACE_SYSTEM, EA_NAMES[ACL_TYPE_DEFAULT])] = raw
        if attrs:
            write_area(self, ip, build_area(attrs, self.fs.endian), True)
            ip.ea = attrs
            ip.ea_clean = True
