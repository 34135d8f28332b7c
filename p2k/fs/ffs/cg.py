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

from p2k.ondisk import I16, I32, I64, U32, Annotated, Fmt, Record

CG_MAGIC = 0x00090255

class CgHeader(Record):
    """The fixed 168 bytes of ``struct cg``; the maps follow at the offsets it stores."""

    cg_firstfield: I32
    cg_magic: I32
    cg_old_time: I32
    cg_cgx: U32
    cg_old_ncyl: I16
    cg_old_niblk: I16
    cg_ndblk: U32
    cg_cs_ndir: I32
    cg_cs_nbfree: I32
    cg_cs_nifree: I32
    cg_cs_nffree: I32
    cg_rotor: U32
    cg_frotor: U32
    cg_irotor: U32
    cg_frsum: Annotated[list[int], Fmt("8i")]  # free runs of each length 1..frag-1, by length
    cg_old_btotoff: I32
    cg_old_boff: I32
    cg_iusedoff: U32
    cg_freeoff: U32
    cg_nextfreeoff: U32
    cg_clustersumoff: U32
    cg_clusteroff: U32
    cg_nclusterblks: U32
    cg_niblk: U32
    cg_initediblk: U32
    cg_sparecon32: Annotated[bytes, Fmt("12s")]
    cg_time: I64
    cg_sparecon64: Annotated[bytes, Fmt("24s")]


CG_FIELDS = CgHeader.FIELDS
CG_STRUCTS = CgHeader.STRUCTS
_FRSUM_AT = [n for n, _ in CG_FIELDS].index("cg_frsum")  # the one repeated field
_HEAD = operator.attrgetter(*(n for n, _ in CG_FIELDS[:_FRSUM_AT]))
_TAIL = operator.attrgetter(*(n for n, _ in CG_FIELDS[_FRSUM_AT + 1:]))
_NFRSUM = 8
assert CgHeader.SIZE == 168
_INITEDIBLK_OFF = CgHeader.OFFSETS["cg_initediblk"]
_MAGIC_OFF = CgHeader.OFFSETS["cg_magic"]


class Cg(CgHeader):
    """A decoded cg header over its buffer; ``buf`` is the whole cg block (maps included)."""

    endian: str
    buf: bytearray | bytes

    def __init__(self, buf: bytearray | bytes, endian: str) -> None:
        vals = CG_STRUCTS[endian].unpack_from(buf, 0)
        tail = _FRSUM_AT + _NFRSUM
        args: list[object] = [*vals[:_FRSUM_AT], list(vals[_FRSUM_AT:tail]), *vals[tail:]]
        super().__init__(*args)  # type: ignore[arg-type]  # the values are the fields', in order
        self.endian = endian
        self.buf = buf

    def encode_into(self, buf: bytearray | memoryview, off: int = 0, endian: str | None = None) -> None:
        """Pack the header back into ``buf`` (the allocator does this on every cg change, so it
        is one attrgetter call and one pack_into, not a loop over the fields)."""
        vals = _HEAD(self)
        CG_STRUCTS[endian or self.endian].pack_into(buf, off, *vals, *self.cg_frsum, *_TAIL(self))

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
    return bool(CgHeader.field("cg_magic", endian).unpack_from(buf, _MAGIC_OFF)[0] == CG_MAGIC)


def cg_initediblk(buf: bytes | bytearray, endian: str) -> int:
    """``cg_initediblk`` without decoding the whole header: the per-inode-load check uses it."""
    return int(CgHeader.field("cg_initediblk", endian).unpack_from(buf, _INITEDIBLK_OFF)[0])


def isset(bitmap: bytes | bytearray | memoryview, i: int) -> bool:
    return bool(bitmap[i >> 3] & (1 << (i & 7)))


CG_HEADER_SIZE = CgHeader.SIZE  # the fixed part of struct cg; the maps start at cg_space


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
    return bool(end <= cg.cg_nextfreeoff <= cgsize)
