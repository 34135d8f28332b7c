"""On-disk inodes (``struct ufs1_dinode``, 128 bytes; ``struct ufs2_dinode``, 256 bytes).

Each dinode is declared once, as a ``Record``; the in-core ``Inode`` uses the same names without
the ``di_`` prefix. Decoding an inode is the hot path of a ``stat`` walk, so ``DinodeCodec`` does
not go through ``Record.decode`` (a dataclass per inode, then a copy): it compiles, once per
format, a function whose body is one precompiled ``unpack_from`` assigned straight into the inode's
slots. That function's text is generated from the Record's field list, so the field order is still
written only in the class below. ``encode_into`` is the inverse; fields a format lacks are not
written, and the UFS2-only fields of a UFS1 inode read as zero.
"""

from __future__ import annotations

import struct

from p2k.fs.ffs.inode import Inode
from p2k.ondisk import I16, I32, I64, U16, U32, U64, Annotated, Fmt, Record, define

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class Ufs1Dinode(Record):
    mode: U16
    nlink: I16
    ouid: U16  # di_oldids[0]: the 16-bit uid of the 4.2BSD inode format
    ogid: U16  # di_oldids[1]
    size: U64
    atime: I32
    atimensec: I32
    mtime: I32
    mtimensec: I32
    ctime: I32
    ctimensec: I32
    db: Annotated[list[int], Fmt("12i")]
    ib: Annotated[list[int], Fmt("3i")]
    flags: U32
    blocks: U32
    gen: U32
    uid: U32
    gid: U32
    modrev: U64


class Ufs2Dinode(Record):
    mode: U16
    nlink: I16
    uid: U32
    gid: U32
    blksize: U32
    size: U64
    blocks: U64
    atime: I64
    mtime: I64
    ctime: I64
    birthtime: I64
    mtimensec: I32
    atimensec: I32
    ctimensec: I32
    birthnsec: I32
    gen: U32
    kernflags: U32
    flags: U32
    extsize: U32
    extb: Annotated[list[int], Fmt("2q")]
    db: Annotated[list[int], Fmt("12q")]
    ib: Annotated[list[int], Fmt("3q")]
    modrev: U64
    spare: Annotated[bytes, Fmt("16s")]  # FreeBSD keeps freelink/ckhash here; written back untouched


assert Ufs1Dinode.SIZE == 128 and Ufs2Dinode.SIZE == 256
UFS1_FIELDS = Ufs1Dinode.FIELDS
UFS2_FIELDS = Ufs2Dinode.FIELDS

# What an inode holds when its format lacks the field (UFS1 has no birth time, ext area, ...).
_ABSENT: dict[str, str] = {"birthtime": "0", "birthnsec": "0", "extsize": "0", "kernflags": "0",
                           "blksize": "0", "extb": "[0, 0]", "spare": 'b""', "oldids": "(0, 0)"}
# Record fields that are not Inode slots: UFS1's di_oldids, kept in the inode as one tuple.
_LOCALS = ("ouid", "ogid")


def _exprs(rec: type[Record]) -> list[str]:
    """Per field, what is packed: the inode's slot (spread for a list), or a local for di_oldids."""
    return [name if name in _LOCALS else f"*ip.{name}" if count else f"ip.{name}"
            for (name, _), count in zip(rec.FIELDS, rec._COUNTS, strict=True)]  # noqa: SLF001 - the layout


def _compile(rec: type[Record], endian: str, old_inodefmt: bool) -> tuple[Callable[..., Inode], Callable[..., None]]:
    """The decode and encode functions of one format, generated from its Record (see the module
    docstring for why they are generated rather than written)."""
    names = [n for n, _ in rec.FIELDS]
    counts = dict(zip(names, rec._COUNTS, strict=True))  # noqa: SLF001
    exprs = _exprs(rec)
    lines = ["def decode(buf, off, ino):", "    t = _unpack_from(buf, off)", "    ip = _Inode()",
             "    ip.ino = ino", "    ip.dirty = False", "    ip.dircache = None",
             "    ip.ea = None"]
    i = 0
    for name in names:
        n = counts[name]
        if n:
            lines.append(f"    ip.{name} = list(t[{i}:{i + n}])")
            i += n
        else:
            lines.append(f"    {name if name in _LOCALS else 'ip.' + name} = t[{i}]")
            i += 1
    if "ouid" in names:
        lines.append("    ip.oldids = (ouid, ogid)")
        if old_inodefmt:
            lines.append("    ip.uid, ip.gid = ouid, ogid")
    for slot, value in _ABSENT.items():
        if slot not in names and not (slot == "oldids" and "ouid" in names):
            lines.append(f"    ip.{slot} = {value}")
    lines.append("    return ip")
    enc = ["def encode_into(ip, buf, off):"]
    if "ouid" in names:
        enc.append("    ouid, ogid = (ip.uid & 0xFFFF, ip.gid & 0xFFFF) if _old else ip.oldids")
    if "spare" in names:
        exprs = [e if e != "ip.spare" else "ip.spare.ljust(16, b'\\0')" for e in exprs]
    enc.append(f"    _pack_into(buf, off, {', '.join(exprs)})")
    st = rec.STRUCTS[endian]
    scope: dict[str, Any] = {"_unpack_from": st.unpack_from, "_pack_into": st.pack_into, "_Inode": Inode,
                             "_old": old_inodefmt}
    define("\n".join(lines) + "\n\n" + "\n".join(enc) + "\n", f"<dinode {rec.__name__}{endian}>", scope)
    return scope["decode"], scope["encode_into"]


# What an lstat needs of a dinode, in the order ``DinodeCodec.stat_fields`` returns it.
STAT_FIELDS = ("mode", "nlink", "uid", "gid", "size", "blocks", "atime", "atimensec", "mtime", "mtimensec",
               "ctime", "ctimensec")


def _compile_stat(rec: type[Record], endian: str, old_inodefmt: bool) -> Callable[..., tuple[int, ...]]:
    """``stat_fields(buf, off)``: the STAT_FIELDS of the dinode at ``off``. One ``unpack_from`` of
    a struct that passes over every other field as pad bytes, so a stat walk makes no in-core
    inode and no objects for the block pointers; generated from the Record like the codec."""
    src = {n: n for n in STAT_FIELDS}
    if old_inodefmt:
        src["uid"], src["gid"] = "ouid", "ogid"
    wanted = set(src.values())
    fmt = "".join(f if n in wanted else f"{struct.calcsize(endian + f)}x" for n, f in rec.FIELDS)
    names = [n for n, _ in rec.FIELDS if n in wanted]
    st = struct.Struct(endian + fmt)
    assert st.size == rec.SIZE
    text = (f"def stat_fields(buf, off):\n    {', '.join(names)}, = _unpack_from(buf, off)\n"
            f"    return {', '.join(src[n] for n in STAT_FIELDS)}\n")
    scope: dict[str, Any] = {"_unpack_from": st.unpack_from}
    define(text, f"<dinode stat {rec.__name__}{endian}>", scope)
    fn: Callable[..., tuple[int, ...]] = scope["stat_fields"]
    return fn


_TIME_FIELDS = (("atime", "atimensec"), ("mtime", "mtimensec"), ("ctime", "ctimensec"),
                ("birthtime", "birthnsec"))


class DinodeCodec:
    """Decode/encode the dinodes of one file system (version and byte order fixed at mount)."""

    def __init__(self, ufs2: bool, endian: str, old_inodefmt: bool = False) -> None:
        self.ufs2 = ufs2
        self.endian = endian
        self.old_inodefmt = old_inodefmt  # FS_42INODEFMT: uid/gid live in di_oldids
        rec = Ufs2Dinode if ufs2 else Ufs1Dinode
        self.st = rec.STRUCTS[endian]
        self.size = rec.SIZE
        self.decode: Callable[[bytes | bytearray | memoryview, int, int], Inode]
        self.encode_into: Callable[[Inode, bytearray | memoryview, int], None]
        self.decode, encode_into = _compile(rec, endian, old_inodefmt)
        self.stat_fields: Callable[[bytes | bytearray | memoryview, int], tuple[int, ...]]
        self.stat_fields = _compile_stat(rec, endian, old_inodefmt)
        fmts = dict(rec.FIELDS)
        self._addrs = struct.Struct(endian + fmts["db"] + fmts["ib"])  # where a short symlink lives
        bits = 64 if ufs2 else 32
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        self._time_range = (lo, hi)
        clamp = self.clamp_times

        def encode_clamped(ip: Inode, buf: bytearray | memoryview, off: int) -> None:
            if not (lo <= ip.atime <= hi and lo <= ip.mtime <= hi and lo <= ip.ctime <= hi
                    and lo <= ip.birthtime <= hi):
                clamp(ip)
            encode_into(ip, buf, off)

        self.encode_into = encode_clamped

    def clamp_times(self, ip: Inode) -> None:
        """Bring the in-core times into the dinode's range, as Linux does for file systems with
        narrower times: a second outside it becomes the nearest limit with zero nanoseconds.
        UFS1 stores 32-bit signed seconds, UFS2 64-bit. Done where times are set, so that
        ``stat`` reports what is stored, and again before encoding, so no write can fail."""
        lo, hi = self._time_range
        for sec, nsec in _TIME_FIELDS:
            v = getattr(ip, sec)
            if v > hi or v < lo:
                setattr(ip, sec, hi if v > hi else lo)
                setattr(ip, nsec, 0)

    def shortlink(self, ip: Inode) -> bytes:
        """The bytes of di_db[]+di_ib[], where a fast symlink keeps its target (60 or 120 bytes)."""
        return self._addrs.pack(*ip.db, *ip.ib)

    def set_shortlink(self, ip: Inode, target: bytes) -> None:
        """Store a fast-symlink target in db/ib (write path; caller checks the length rule)."""
        vals = self._addrs.unpack(target.ljust(self._addrs.size, b"\0"))
        ip.db = list(vals[:12])
        ip.ib = list(vals[12:])
