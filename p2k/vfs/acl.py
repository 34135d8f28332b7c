"""POSIX.1e ACLs: FreeBSD's on-disk form, Linux's xattr form, and the access check.

FreeBSD keeps a file's access ACL in the system-namespace attribute ``posix1e.acl_access`` and a
directory's default ACL in ``posix1e.acl_default``, each a ``struct oldacl`` in the file system's
byte order: ``int acl_cnt`` then 32 entries of ``(int tag, uid_t id, mode_t perm)`` (12 bytes each
with the padding after the 16-bit mode_t), 388 bytes whatever the count (``sys/acl.h``;
``ufs_acl.c`` refuses any other length). Linux's ``system.posix_acl_access`` value is little-endian
``u32 version (2)`` then ``(u16 tag, u16 perm, u32 id)`` entries. Tags and permission bits have
the same values in both, so converting is re-packing.

As in FreeBSD (``ufs_sync_acl_from_inode``), the inode's mode is authoritative for the owner,
group-class (the mask if there is one, else the owning group) and other entries: reading an ACL
merges the mode in, and setting one moves those entries into the mode.
"""

from __future__ import annotations

import errno

from p2k.ondisk import I32, U16, U32, Record
from p2k.vfs.lwproc import Cred
from p2k.vfs.vattr import AclVattr, Vattr

ACL_USER_OBJ = 0x01
ACL_USER = 0x02
ACL_GROUP_OBJ = 0x04
ACL_GROUP = 0x08
ACL_MASK = 0x10
ACL_OTHER = 0x20
ACL_UNDEFINED_ID = 0xFFFFFFFF
TAGS = (ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_GROUP, ACL_MASK, ACL_OTHER)

ACL_TYPE_ACCESS = 2  # FreeBSD's acl_type_t values
ACL_TYPE_DEFAULT = 3
ACL_TYPE_NFS4 = 4
EA_NAMES = {ACL_TYPE_ACCESS: b"posix1e.acl_access", ACL_TYPE_DEFAULT: b"posix1e.acl_default"}
NFS4_EA_NAME = b"nfs4.acl"
OLDACL_MAX_ENTRIES = 32
LINUX_ACL_VERSION = 2

Entry = tuple[int, int, int]  # (tag, id, perm)


class OldaclHeader(Record):
    acl_cnt: I32


class OldaclEntry(Record):
    ae_tag: I32
    ae_id: U32
    ae_perm: U16
    ae_pad: U16


class LinuxAclHeader(Record):
    a_version: U32


class LinuxAclEntry(Record):
    e_tag: U16
    e_perm: U16
    e_id: U32


OLDACL_SIZE = OldaclHeader.SIZE + OLDACL_MAX_ENTRIES * OldaclEntry.SIZE  # 388


def _sorted(entries: list[Entry]) -> list[Entry]:
    order = {t: i for i, t in enumerate(TAGS)}
    return sorted(entries, key=lambda e: (order.get(e[0], 99), e[1]))


def validate(entries: list[Entry]) -> None:
    """EINVAL unless a valid POSIX.1e ACL: one owner, owning group and other entry, a mask when
    there are named entries, no name twice, permissions within rwx."""
    count = {t: 0 for t in TAGS}
    seen: set[tuple[int, int]] = set()
    for tag, qid, perm in entries:
        if tag not in count or perm & ~7:
            raise OSError(errno.EINVAL, f"invalid ACL entry {tag:#x}:{qid}:{perm:o}")
        count[tag] += 1
        if tag in (ACL_USER, ACL_GROUP):
            if (tag, qid) in seen:
                raise OSError(errno.EINVAL, "ACL names one user or group twice")
            seen.add((tag, qid))
    if count[ACL_USER_OBJ] != 1 or count[ACL_GROUP_OBJ] != 1 or count[ACL_OTHER] != 1 or count[ACL_MASK] > 1:
        raise OSError(errno.EINVAL, "ACL needs exactly one owner, group and other entry")
    if (count[ACL_USER] or count[ACL_GROUP]) and not count[ACL_MASK]:
        raise OSError(errno.EINVAL, "ACL with named entries needs a mask")
    if len(entries) > OLDACL_MAX_ENTRIES:
        raise OSError(errno.ENOSPC, f"ACL of more than {OLDACL_MAX_ENTRIES} entries")


def decode_oldacl(buf: bytes, endian: str) -> list[Entry]:
    if len(buf) != OLDACL_SIZE:
        raise OSError(errno.EPERM, f"stored ACL of {len(buf)} bytes, {OLDACL_SIZE} expected")  # ufs_getacl
    (cnt,) = OldaclHeader.STRUCTS[endian].unpack_from(buf, 0)
    if not 0 <= cnt <= OLDACL_MAX_ENTRIES:
        raise OSError(errno.EPERM, f"stored ACL with {cnt} entries")
    st = OldaclEntry.STRUCTS[endian]
    out = []
    for i in range(cnt):
        tag, qid, perm, _ = st.unpack_from(buf, OldaclHeader.SIZE + i * st.size)
        out.append((tag, qid, perm & 7))
    return out


def encode_oldacl(entries: list[Entry], endian: str) -> bytes:
    buf = bytearray(OLDACL_SIZE)
    OldaclHeader(len(entries)).encode_into(buf, 0, endian)
    for i, (tag, qid, perm) in enumerate(entries):
        OldaclEntry(tag, qid, perm, 0).encode_into(buf, OldaclHeader.SIZE + i * OldaclEntry.SIZE, endian)
    return bytes(buf)


def decode_linux(buf: bytes) -> list[Entry]:
    """Linux's ``posix_acl_xattr`` value (EINVAL if malformed)."""
    hs, es = LinuxAclHeader.SIZE, LinuxAclEntry.SIZE
    if len(buf) < hs or (len(buf) - hs) % es:
        raise OSError(errno.EINVAL, "malformed POSIX ACL value")
    if LinuxAclHeader.decode(buf, 0, "<").a_version != LINUX_ACL_VERSION:
        raise OSError(errno.EOPNOTSUPP, "unknown POSIX ACL version")
    out = []
    for off in range(hs, len(buf), es):
        tag, perm, qid = LinuxAclEntry.STRUCTS["<"].unpack_from(buf, off)
        if tag in (ACL_USER_OBJ, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER):
            qid = ACL_UNDEFINED_ID
        out.append((tag, qid, perm))
    return out


def encode_linux(entries: list[Entry]) -> bytes:
    parts = [LinuxAclHeader(LINUX_ACL_VERSION).encode("<")]
    for tag, qid, perm in _sorted(entries):
        parts.append(LinuxAclEntry(tag, perm, qid if tag in (ACL_USER, ACL_GROUP) else ACL_UNDEFINED_ID).encode("<"))
    return b"".join(parts)


def is_minimal(entries: list[Entry]) -> bool:
    """Only the three entries the mode already says: no need to store anything."""
    return len(entries) == 3


def with_mode(entries: list[Entry], mode: int) -> list[Entry]:
    """The ACL as it stands with the inode's ``mode`` merged in (the mode wins)."""
    has_mask = any(t == ACL_MASK for t, _, _ in entries)
    out = []
    for tag, qid, perm in entries:
        if tag == ACL_USER_OBJ:
            perm = (mode >> 6) & 7
        elif tag == ACL_OTHER:
            perm = mode & 7
        elif tag == ACL_MASK or (tag == ACL_GROUP_OBJ and not has_mask):
            perm = (mode >> 3) & 7
        out.append((tag, qid, perm))
    return out


def mode_of(entries: list[Entry], mode: int) -> int:
    """The mode an ACL sets: owner, group-class and other bits from it, the rest of ``mode`` kept."""
    bits = {t: p for t, _, p in entries if t in (ACL_USER_OBJ, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER)}
    group = bits.get(ACL_MASK, bits.get(ACL_GROUP_OBJ, 0))
    return (mode & ~0o777 & 0o7777) | bits.get(ACL_USER_OBJ, 0) << 6 | group << 3 | bits.get(ACL_OTHER, 0)


def acl_permits(cred: Cred, va: Vattr, entries: list[Entry], want: int) -> bool:
    """POSIX.1e access check (FreeBSD ``vaccess_acl_posix1e``): owner entry, else the first
    matching named user (masked), else any matching group entry granting all (masked), else
    other. ``entries`` have the mode merged in (``with_mode``); root is the caller's business."""
    mask = 7
    for tag, _, perm in entries:
        if tag == ACL_MASK:
            mask = perm
    if cred.uid == va.uid:
        return want & (va.mode >> 6) & 7 == want
    for tag, qid, perm in entries:
        if tag == ACL_USER and qid == cred.uid:
            return want & perm & mask == want
    matched = False
    for tag, qid, perm in entries:
        if (tag == ACL_GROUP_OBJ and cred.in_group(va.gid)) or (tag == ACL_GROUP and cred.in_group(qid)):
            matched = True
            if want & perm & mask == want:
                return True
    if matched:
        return False
    return want & va.mode & 7 == want


def enforced_vattr(va: Vattr, raw: bytes | None, endian: str) -> Vattr:
    """What a driver enforcing ACLs returns from getattr: ``va`` itself when no access ACL is
    stored (``raw`` None) or the stored one is unreadable (the mode then applies; getfacl reports
    the damage), else an AclVattr carrying the ACL with the mode merged in."""
    if raw is None:
        return va
    try:
        acl = with_mode(decode_oldacl(raw, endian), va.mode)
    except OSError:
        return va
    return AclVattr(va.mode, va.nlink, va.uid, va.gid, va.size, va.ino, va.rdev, va.atime_ns, va.mtime_ns,
                    va.ctime_ns, va.birthtime_ns, va.blocks, va.blksize, va.flags, va.gen, va.fsid, acl=acl)


def access_default(mode: int) -> list[Entry]:
    """The minimal ACL a mode stands for."""
    return [(ACL_USER_OBJ, ACL_UNDEFINED_ID, (mode >> 6) & 7), (ACL_GROUP_OBJ, ACL_UNDEFINED_ID, (mode >> 3) & 7),
            (ACL_OTHER, ACL_UNDEFINED_ID, mode & 7)]


__all__ = [
    "ACL_GROUP", "ACL_GROUP_OBJ", "ACL_MASK", "ACL_OTHER", "ACL_TYPE_ACCESS", "ACL_TYPE_DEFAULT",
    "ACL_TYPE_NFS4", "ACL_UNDEFINED_ID", "ACL_USER", "ACL_USER_OBJ", "EA_NAMES", "AclVattr", "NFS4_EA_NAME",
    "OLDACL_SIZE", "Entry", "access_default", "enforced_vattr", "acl_permits", "decode_linux", "decode_oldacl",
    "encode_linux", "encode_oldacl", "is_minimal", "mode_of", "validate", "with_mode",
]
