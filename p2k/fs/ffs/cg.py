"""Cylinder-group headers (``struct cg``) and their maps.

The 168-byte fixed part is declared once as a field list (both byte orders from one text); the
maps that follow are byte arrays addressed through the offsets stored in the header, never through
offsets we compute, because NetBSD and FreeBSD lay them out slightly differently. The read path
only needs ``cg_initediblk`` (UFS2 lazy inode initialisation) and the inode map; the write path
(alloc.py) uses ``Cg`` with ``encode_into`` to update a cg buffer in place.
"""

from __future__ import annotations

import errno
import operator
import struct

CG_MAGIC = 0x00090255

CG_FIELDS: tuple[tuple[str, str], ...] = (
    ("cg_firstfield", "i"), ("cg_magic", "i"), ("cg_old_time", "i"), ("cg_cgx", "I"),
    ("cg_old_ncyl", "h"), ("cg_old_niblk", "h"), ("cg_ndblk", "I"),
    ("cg_cs_ndir", "i"), ("cg_cs_nbfree", "i"), ("cg_cs_nifree", "i"), ("cg_cs_nffree", "i"),
    ("cg_rotor", "I"), ("cg_frotor", "I"), ("cg_irotor", "I"), ("cg_frsum", "8i"),
    ("cg_old_btotoff", "i"), ("cg_old_boff", "i"), ("cg_iusedoff", "I"), ("cg_freeoff", "I"),
    ("cg_nextfreeoff", "I"), ("cg_clustersumoff", "I"), ("cg_clusteroff", "I"),
    ("cg_nclusterblks", "I"), ("cg_niblk", "I"), ("cg_initediblk", "I"),
    ("cg_sparecon32", "12s"), ("cg_time", "q"), ("cg_sparecon64", "24s"),
)
CG_STRUCTS = {e: struct.Struct(e + "".join(f for _, f in CG_FIELDS)) for e in "<>"}
_FRSUM_AT = [n for n, _ in CG_FIELDS].index("cg_frsum")
_HEAD = operator.attrgetter(*(n for n, _ in CG_FIELDS[:_FRSUM_AT]))
_TAIL = operator.attrgetter(*(n for n, _ in CG_FIELDS[_FRSUM_AT + 1:]))
assert CG_STRUCTS["<"].size == 168
_INITEDIBLK_OFF = 120
_MAGIC_OFF = 4


class Cg:
    """A decoded cg header over its buffer; ``buf`` is the whole cg block (maps included)."""

    def __init__(self, buf: bytearray | bytes, endian: str) -> None:
        vals = CG_STRUCTS[endian].unpack_from(buf, 0)
        i = 0
        for name, fmt in CG_FIELDS:
            if fmt == "8i":
                setattr(self, name, list(vals[i:i + 8]))
                i += 8
            else:
                setattr(self, name, vals[i])
                i += 1
        self.endian = endian
        self.buf = buf

    def encode_into(self, buf: bytearray) -> None:
        """Pack the header back into ``buf`` (the allocator does this on every cg change, so it
        is one attrgetter call and one pack_into, not a loop over the fields)."""
        vals = _HEAD(self)
        CG_STRUCTS[self.endian].pack_into(buf, 0, *vals, *self.cg_frsum, *_TAIL(self))

    def check(self, cgx: int, ipg: int, fpg: int, cgsize: int) -> None:
        """EIO unless the header is this group's and its map offsets fit inside the cg block."""
        if self.cg_magic != CG_MAGIC:
            raise OSError(errno.EIO, f"cg {cgx}: bad magic number {self.cg_magic:#x}")
        if self.cg_cgx != cgx:
            raise OSError(errno.EIO, f"cg {cgx}: header says it is cg {self.cg_cgx}")
        if (self.cg_iusedoff + (ipg + 7) // 8 > cgsize
                or self.cg_freeoff + (fpg + 7) // 8 > cgsize):
            raise OSError(errno.EIO, f"cg {cgx}: maps outside the cylinder group block")

    def inosused(self) -> memoryview:
        """The inode map (1 = in use), ``ceil(ipg/8)`` bytes; only valid after ``check``."""
        return memoryview(self.buf)[self.cg_iusedoff:self.cg_freeoff]

    def blksfree(self, fpg: int) -> memoryview:
        """The fragment map (1 = free)."""
        return memoryview(self.buf)[self.cg_freeoff:self.cg_freeoff + (fpg + 7) // 8]


def cg_magic_ok(buf: bytes | bytearray, endian: str) -> bool:
    return struct.unpack_from(endian + "i", buf, _MAGIC_OFF)[0] == CG_MAGIC


def cg_initediblk(buf: bytes | bytearray, endian: str) -> int:
    """``cg_initediblk`` without decoding the whole header: the per-inode-load check uses it."""
    return struct.unpack_from(endian + "I", buf, _INITEDIBLK_OFF)[0]


def isset(bitmap: bytes | bytearray | memoryview, i: int) -> bool:
    return bool(bitmap[i >> 3] & (1 << (i & 7)))


CG_HEADER_SIZE = 168  # the fixed part of struct cg; the maps start at cg_space


def cg_layout(fs: object) -> dict[str, int]:
    """Where a cylinder group's maps go, from the superblock's geometry alone (mkfs initcg and
    fsck_ffs pass5 compute the same): UFS1 keeps room for the old rotational tables first, the
    cluster summary's unused slot 0 sits just before a 4-byte aligned array. fsck rebuilds a
    damaged cg header from this, so it never needs a healthy group to copy from."""
    ipg, fpg = fs.fs_ipg, fs.fs_fpg  # type: ignore[attr-defined]
    out = {"cg_old_btotoff": 0, "cg_old_boff": 0}
    if fs.ufs2:  # type: ignore[attr-defined]
        iused = CG_HEADER_SIZE
    else:
        cpg = max(fs.fs_old_cpg, 1)  # type: ignore[attr-defined]
        nrpos = max(fs.fs_old_nrpos, 1)  # type: ignore[attr-defined]
        out["cg_old_btotoff"] = CG_HEADER_SIZE
        out["cg_old_boff"] = CG_HEADER_SIZE + 4 * cpg
        iused = out["cg_old_boff"] + 2 * cpg * nrpos
    free = iused + (ipg + 7) // 8
    nextfree = free + (fpg + 7) // 8
    sumoff = clusteroff = 0
    contig = fs.fs_contigsumsize  # type: ignore[attr-defined]
    if contig > 0:
        sumoff = -(-(nextfree - 4) // 4) * 4
        clusteroff = sumoff + (contig + 1) * 4
        nextfree = clusteroff + (fpg // fs.fs_frag + 7) // 8  # type: ignore[attr-defined]
    out.update(cg_iusedoff=iused, cg_freeoff=free, cg_nextfreeoff=nextfree, cg_clustersumoff=sumoff,
               cg_clusteroff=clusteroff)
    return out


def cg_layout_sane(cg: Cg, fs: object) -> bool:
    """Do the header's own map offsets describe maps that fit the block without overlapping the
    header or each other? (A layout other than ours — an older newfs's — is accepted if so.)"""
    ipg, fpg, frag = fs.fs_ipg, fs.fs_fpg, fs.fs_frag  # type: ignore[attr-defined]
    contig, cgsize = fs.fs_contigsumsize, fs.fs_cgsize  # type: ignore[attr-defined]
    spans = [(cg.cg_iusedoff, (ipg + 7) // 8), (cg.cg_freeoff, (fpg + 7) // 8)]
    if contig > 0:
        spans += [(cg.cg_clustersumoff + 4, 4 * contig), (cg.cg_clusteroff, (fpg // frag + 7) // 8)]
        if cg.cg_clustersumoff & 3:
            return False
    end = CG_HEADER_SIZE
    for off, n in spans:
        if off < end or off + n > cgsize:
            return False
        end = off + n
    return end <= cg.cg_nextfreeoff <= cgsize
