"""NetBSD disklabels, as rump_server's ``-d ...,disklabel=X`` finds them.

The layout (docs/ffs-format.md, "Disklabels") is declared once here, as ``Record`` classes from
which a ``struct.Struct`` per byte order is generated. rump_server reads the first 64 KiB of the
host file and slides a label-sized window over it in 4-byte steps; the first position where
``d_magic`` and ``d_magic2`` both hold DISKMAGIC (in either byte order) is *the* label: if that one
has too many partitions or a bad checksum, the search fails instead of looking further.

Two places where p2k deliberately differs from rump_server's C: offsets are computed in 64 bits
(rump_server shifts a ``uint32_t`` and so wraps partitions that start past 4 GiB), and a label of the
other byte order is decoded field by field (rump_server byte-swaps the already-shifted values and
compares the partition index with the unswapped count, which gives garbage windows).
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass
from typing import Annotated, Literal

from p2k.ondisk import U8, U16, U32, Fmt, Record

ByteOrder = Literal["little", "big"]

DISKMAGIC = 0x82564557
MAXPARTITIONS = 22
"""rump_server's own limit (RUMPSERVER_MAXPARTITIONS, = NetBSD's MAXMAXPARTITIONS), not the 16 of
x86's ``MAXPARTITIONS``: since it carries its own copy of the struct, a label written on any port is
accepted."""
DEV_BSHIFT = 9
LABEL_SCAN_BYTES = 1 << 16
LABEL_SCAN_STEP = 4
LABEL_BYTE_OFFSET = 512
"""Where NetBSD/i386 and amd64 write the label (LABELSECTOR 1, LABELOFFSET 0)."""

# p_fstype values that tests and tools name.
FS_UNUSED = 0
FS_SWAP = 1
FS_BSDFFS = 7
FS_MSDOS = 8
FS_OTHER = 10
DKTYPE_VND = 12

class DiskLabelHeader(Record):
    """``struct disklabel`` up to its partition table (``d_partitions[]`` follows it)."""

    d_magic: U32
    d_type: U16
    d_subtype: U16
    d_typename: Annotated[bytes, Fmt("16s")]
    d_packname: Annotated[bytes, Fmt("16s")]
    d_secsize: U32
    d_nsectors: U32
    d_ntracks: U32
    d_ncylinders: U32
    d_secpercyl: U32
    d_secperunit: U32
    d_sparespertrack: U16
    d_sparespercyl: U16
    d_acylinders: U32
    d_rpm: U16
    d_interleave: U16
    d_trackskew: U16
    d_cylskew: U16
    d_headswitch: U32
    d_trkseek: U32
    d_flags: U32
    d_drivedata: Annotated[bytes, Fmt("20s")]
    d_spare: Annotated[bytes, Fmt("20s")]
    d_magic2: U32
    d_checksum: U16
    d_npartitions: U16
    d_bbsize: U32
    d_sbsize: U32


class Partition(Record):
    """One ``struct partition`` entry; sizes and offsets in 512-byte sectors."""

    p_size: U32
    p_offset: U32
    p_fsize: U32
    p_fstype: U8
    p_frag: U8
    p_cpg: U16


_ORDER_CHAR: dict[ByteOrder, str] = {"little": "<", "big": ">"}
HEADER = {order: DiskLabelHeader.STRUCTS[c] for order, c in _ORDER_CHAR.items()}
PARTITION = {order: Partition.STRUCTS[c] for order, c in _ORDER_CHAR.items()}
HEADER_SIZE = DiskLabelHeader.SIZE  # 148
PARTITION_SIZE = Partition.SIZE  # 16
D_MAGIC2_OFFSET = DiskLabelHeader.OFFSETS["d_magic2"]  # 132
D_CHECKSUM_OFFSET = DiskLabelHeader.OFFSETS["d_checksum"]  # 136
D_NPARTITIONS_OFFSET = DiskLabelHeader.OFFSETS["d_npartitions"]  # 138
LABEL_STRUCT_SIZE = HEADER_SIZE + MAXPARTITIONS * PARTITION_SIZE
"""sizeof(struct rumpserver_disklabel): the scan never starts a candidate closer than this to the
end of the 64 KiB buffer."""
assert (HEADER_SIZE, PARTITION_SIZE, D_MAGIC2_OFFSET, D_NPARTITIONS_OFFSET) == (148, 16, 132, 138)


@dataclass(frozen=True, slots=True)
class DiskLabel:
    """A decoded label: where it was found, its byte order, header fields and partitions."""

    position: int
    byteorder: ByteOrder
    header: DiskLabelHeader
    partitions: tuple[Partition, ...]

    @property
    def npartitions(self) -> int:
        return len(self.partitions)

    def window(self, letter: str) -> tuple[int, int]:
        """(offset, size) in bytes of partition ``letter``; ENOENT as rump_server says it."""
        index = ord(letter) - ord("a")
        if not 0 <= index < self.npartitions:
            raise OSError(errno.ENOENT, "partition not available")
        part = self.partitions[index]
        return part.p_offset << DEV_BSHIFT, part.p_size << DEV_BSHIFT


def dkcksum(label: bytes, npartitions: int, order: ByteOrder) -> int:
    """XOR of the 16-bit words from d_magic to the end of d_partitions[npartitions].

    XOR commutes with byte swapping, so whether the result is zero (all the scan asks) does not
    depend on ``order``; the order matters only for the value a label writer stores.
    """
    nwords = (HEADER_SIZE + npartitions * PARTITION_SIZE) // 2
    total = 0
    for word in struct.unpack_from(f"{_ORDER_CHAR[order]}{nwords}H", label):
        total ^= word
    return total


def decode_disklabel(buf: bytes | memoryview, position: int, order: ByteOrder) -> DiskLabel:
    """Decode the label at ``position`` (which the caller has found by its magics)."""
    e = _ORDER_CHAR[order]
    header = DiskLabelHeader.decode(buf, position, e)
    parts = tuple(Partition.decode(buf, position + HEADER_SIZE + i * PARTITION_SIZE, e)
                  for i in range(header.d_npartitions))
    return DiskLabel(position, order, header, parts)


def _magic_positions(buf: bytes, limit: int) -> list[tuple[int, ByteOrder]]:
    """Every aligned position ≤ limit holding DISKMAGIC twice, in ascending order.

    ``bytes.find`` on the magic replaces rump_server's 16 000-step loop; the result is the same set
    of candidates, since a candidate is exactly an aligned magic with its twin 132 bytes further.
    """
    found: list[tuple[int, ByteOrder]] = []
    for order in ("little", "big"):
        magic = DISKMAGIC.to_bytes(4, order)
        pos = buf.find(magic)
        while 0 <= pos <= limit:
            if pos % LABEL_SCAN_STEP == 0 and buf[pos + D_MAGIC2_OFFSET:pos + D_MAGIC2_OFFSET + 4] == magic:
                found.append((pos, order))
            pos = buf.find(magic, pos + 1)
    found.sort()
    return found


def scan_disklabel(buf: bytes) -> DiskLabel | None:
    """rump_server's search over the first 64 KiB of a host file (``buf``, zero-padded by us)."""
    if len(buf) < LABEL_SCAN_BYTES:
        buf = bytes(buf) + bytes(LABEL_SCAN_BYTES - len(buf))
    buf = bytes(buf[:LABEL_SCAN_BYTES])
    candidates = _magic_positions(buf, LABEL_SCAN_BYTES - LABEL_STRUCT_SIZE)
    if not candidates:
        return None
    pos, order = candidates[0]
    npart = int.from_bytes(buf[pos + D_NPARTITIONS_OFFSET:pos + D_NPARTITIONS_OFFSET + 2], order)
    if npart > MAXPARTITIONS or dkcksum(buf[pos:pos + LABEL_STRUCT_SIZE], npart, order) != 0:
        return None
    return decode_disklabel(buf, pos, order)


def build_disklabel(
    partitions: list[tuple[int, int, int]],
    *,
    byteorder: ByteOrder = "little",
    npartitions: int | None = None,
    secperunit: int | None = None,
    typename: bytes = b"p2k",
    packname: bytes = b"",
    checksum: int | None = None,
) -> bytes:
    """A label (148 + 16 × npartitions bytes) for ``(p_size, p_offset, p_fstype)`` sector triples.

    For tests and image builders. ``npartitions`` may exceed ``len(partitions)`` (the rest are
    unused slots); ``checksum`` overrides the computed one, to make deliberately bad labels.
    """
    npart = len(partitions) if npartitions is None else npartitions
    if npart < len(partitions):
        raise ValueError(f"npartitions {npart} < {len(partitions)} partitions given")
    if secperunit is None:
        secperunit = max((size + off for size, off, _ in partitions), default=0)
    h = DiskLabelHeader.zeroed()
    h.d_magic = h.d_magic2 = DISKMAGIC
    h.d_type, h.d_typename, h.d_packname = DKTYPE_VND, typename, packname
    h.d_secsize, h.d_nsectors, h.d_ntracks, h.d_secpercyl = 1 << DEV_BSHIFT, 32, 64, 2048
    h.d_ncylinders, h.d_secperunit, h.d_rpm, h.d_interleave = secperunit // 2048, secperunit, 3600, 1
    h.d_npartitions, h.d_bbsize, h.d_sbsize = npart, 8192, 8192
    e = _ORDER_CHAR[byteorder]
    out = bytearray(h.encode(e))
    for size, off, fstype in partitions:
        ffs = fstype == FS_BSDFFS
        out += Partition(size, off, 2048 if ffs else 0, fstype, 8 if ffs else 0, 0).encode(e)
    out += bytes((npart - len(partitions)) * PARTITION_SIZE)
    if checksum is None:
        checksum = dkcksum(bytes(out), npart, byteorder)
    out[D_CHECKSUM_OFFSET:D_CHECKSUM_OFFSET + 2] = checksum.to_bytes(2, byteorder)
    return bytes(out)
