"""On-disk inodes (``struct ufs1_dinode``, 128 bytes; ``struct ufs2_dinode``, 256 bytes).

Each dinode is declared once as a field list; a ``struct.Struct`` per byte order is generated from
it, and decoding an inode is one ``unpack_from`` straight out of the cached inode block — this is
the hot path of a ``stat`` walk, so there is no intermediate dict. ``encode_into`` is the inverse,
for the write path; fields a format lacks are simply not written.
"""

from __future__ import annotations

import struct

from p2k.fs.ffs.inode import Inode

# (name, format); "12i" style counts expand to lists in the in-core inode.
UFS1_FIELDS: tuple[tuple[str, str], ...] = (
    ("mode", "H"), ("nlink", "h"), ("ouid", "H"), ("ogid", "H"), ("size", "Q"),
    ("atime", "i"), ("atimensec", "i"), ("mtime", "i"), ("mtimensec", "i"),
    ("ctime", "i"), ("ctimensec", "i"), ("db", "12i"), ("ib", "3i"),
    ("flags", "I"), ("blocks", "I"), ("gen", "I"), ("uid", "I"), ("gid", "I"), ("modrev", "Q"),
)
UFS2_FIELDS: tuple[tuple[str, str], ...] = (
    ("mode", "H"), ("nlink", "h"), ("uid", "I"), ("gid", "I"), ("blksize", "I"),
    ("size", "Q"), ("blocks", "Q"), ("atime", "q"), ("mtime", "q"), ("ctime", "q"), ("birthtime", "q"),
    ("mtimensec", "i"), ("atimensec", "i"), ("ctimensec", "i"), ("birthnsec", "i"),
    ("gen", "I"), ("kernflags", "I"), ("flags", "I"), ("extsize", "I"), ("extb", "2q"),
    ("db", "12q"), ("ib", "3q"), ("modrev", "Q"), ("spare", "16s"),
)


def _struct(fields: tuple[tuple[str, str], ...], endian: str) -> struct.Struct:
    return struct.Struct(endian + "".join(f for _, f in fields))


class DinodeCodec:
    """Decode/encode the dinodes of one file system (version and byte order fixed at mount)."""

    def __init__(self, ufs2: bool, endian: str, old_inodefmt: bool = False) -> None:
        self.ufs2 = ufs2
        self.endian = endian
        self.old_inodefmt = old_inodefmt  # FS_42INODEFMT: uid/gid live in di_oldids
        self.st = _struct(UFS2_FIELDS if ufs2 else UFS1_FIELDS, endian)
        self.size = self.st.size
        assert self.size == (256 if ufs2 else 128)
        self._addrs = struct.Struct(endian + ("15q" if ufs2 else "15i"))

    def decode(self, buf: bytes | bytearray | memoryview, off: int, ino: int) -> Inode:
        t = self.st.unpack_from(buf, off)
        ip = Inode()
        ip.ino = ino
        ip.dirty = False
        ip.dircache = None
        ip.ea = None
        if self.ufs2:
            (ip.mode, ip.nlink, ip.uid, ip.gid, ip.blksize, ip.size, ip.blocks,
             ip.atime, ip.mtime, ip.ctime, ip.birthtime,
             ip.mtimensec, ip.atimensec, ip.ctimensec, ip.birthnsec,
             ip.gen, ip.kernflags, ip.flags, ip.extsize) = t[:19]
            ip.extb = list(t[19:21])
            ip.db = list(t[21:33])
            ip.ib = list(t[33:36])
            ip.modrev = t[36]
            ip.spare = t[37]
            ip.oldids = (0, 0)
        else:
            (ip.mode, ip.nlink, ouid, ogid, ip.size,
             ip.atime, ip.atimensec, ip.mtime, ip.mtimensec, ip.ctime, ip.ctimensec) = t[:11]
            ip.db = list(t[11:23])
            ip.ib = list(t[23:26])
            ip.flags, ip.blocks, ip.gen, ip.uid, ip.gid, ip.modrev = t[26:32]
            ip.oldids = (ouid, ogid)
            if self.old_inodefmt:
                ip.uid, ip.gid = ouid, ogid
            ip.birthtime = ip.birthnsec = ip.extsize = ip.kernflags = ip.blksize = 0
            ip.extb = [0, 0]
            ip.spare = b""
        return ip

    def encode_into(self, ip: Inode, buf: bytearray | memoryview, off: int) -> None:
        """Write ``ip`` into an inode block buffer at ``off`` (the inverse of ``decode``)."""
        if self.ufs2:
            self.st.pack_into(
                buf, off, ip.mode, ip.nlink, ip.uid, ip.gid, ip.blksize, ip.size, ip.blocks,
                ip.atime, ip.mtime, ip.ctime, ip.birthtime,
                ip.mtimensec, ip.atimensec, ip.ctimensec, ip.birthnsec,
                ip.gen, ip.kernflags, ip.flags, ip.extsize, *ip.extb, *ip.db, *ip.ib, ip.modrev,
                ip.spare.ljust(16, b"\0"))
        else:
            ouid, ogid = (ip.uid & 0xFFFF, ip.gid & 0xFFFF) if self.old_inodefmt else ip.oldids
            self.st.pack_into(
                buf, off, ip.mode, ip.nlink, ouid, ogid, ip.size,
                ip.atime, ip.atimensec, ip.mtime, ip.mtimensec, ip.ctime, ip.ctimensec,
                *ip.db, *ip.ib, ip.flags, ip.blocks, ip.gen, ip.uid, ip.gid, ip.modrev)

    def shortlink(self, ip: Inode) -> bytes:
        """The bytes of di_db[]+di_ib[], where a fast symlink keeps its target (60 or 120 bytes)."""
        return self._addrs.pack(*ip.db, *ip.ib)

    def set_shortlink(self, ip: Inode, target: bytes) -> None:
        """Store a fast-symlink target in db/ib (write path; caller checks the length rule)."""
        vals = self._addrs.unpack(target.ljust(self._addrs.size, b"\0"))
        ip.db = list(vals[:12])
        ip.ib = list(vals[12:])
