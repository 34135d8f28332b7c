"""NetBSD disklabels, as rump_server's ``-d ...,disklabel=X`` finds them.

The layout is in the reference (ffs-format.md §12); this module declares it once, as field lists
from which a ``struct.Struct`` per byte order is generated. rump_server reads the first 64 KiB of the
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
from typing import Literal

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

_HEADER_FIELDS: tuple[tuple[str, str], ...] = (
    ("d_magic", "I"),
    ("d_type", "H"),
    ("d_subtype", "H"),
    ("d_typename", "16s"),
    ("d_packname", "16s"),
    ("d_secsize", "I"),
    ("d_nsectors", "I"),
    ("d_ntracks", "I"),
    ("d_ncylinders", "I"),
    ("d_secpercyl", "I"),
    ("d_secperunit", "I"),
    ("d_sparespertrack", "H"),
    ("d_sparespercyl", "H"),
    ("d_acylinders", "I"),
    ("d_rpm", "H"),
    ("d_interleave", "H"),
    ("d_trackskew", "H"),
    ("d_cylskew", "H"),
    ("d_headswitch", "I"),
    ("d_trkseek", "I"),
    ("d_flags", "I"),
    ("d_drivedata", "20s"),
    ("d_spare", "20s"),
    ("d_magic2", "I"),
    ("d_checksum", "H"),
    ("d_npartitions", "H"),
    ("d_bbsize", "I"),
    ("d_sbsize", "I"),
)
_PARTITION_FIELDS: tuple[tuple[str, str], ...] = (
    ("p_size", "I"),
    ("p_offset", "I"),
    ("p_fsize", "I"),
    ("p_fstype", "B"),
    ("p_frag", "B"),
    ("p_cpg", "H"),
)
_ORDER_CHAR: dict[ByteOrder, str] = {"little": "<", "big": ">"}


def _codec(fields: tuple[tuple[str, str], ...], order: ByteOrder) -> struct.Struct:
    return struct.Struct(_ORDER_CHAR[order] + "".join(fmt for _, fmt in fields))


HEADER = {order: _codec(_HEADER_FIELDS, order) for order in _ORDER_CHAR}
PARTITION = {order: _codec(_PARTITION_FIELDS, order) for order in _ORDER_CHAR}
HEADER_SIZE = HEADER["little"].size  # 148
PARTITION_SIZE = PARTITION["little"].size  # 16


def _offset_of(name: str) -> int:
    names = [field for field, _ in _HEADER_FIELDS]
    return struct.calcsize("<" + "".join(fmt for _, fmt in _HEADER_FIELDS[:names.index(name)]))


D_MAGIC2_OFFSET = _offset_of("d_magic2")  # 132
D_CHECKSUM_OFFSET = _offset_of("d_checksum")  # 136
D_NPARTITIONS_OFFSET = _offset_of("d_npartitions")  # 138
LABEL_STRUCT_SIZE = HEADER_SIZE + MAXPARTITIONS * PARTITION_SIZE
"""sizeof(struct rumpserver_disklabel): the scan never starts a candidate closer than this to the
end of the 64 KiB buffer."""
assert (HEADER_SIZE, PARTITION_SIZE, D_MAGIC2_OFFSET, D_NPARTITIONS_OFFSET) == (148, 16, 132, 138)


@dataclass(frozen=True, slots=True)
class Partition:
    p_size: int
    p_offset: int
    p_fsize: int
    p_fstype: int
    p_frag: int
    p_cpg: int


@dataclass(frozen=True, slots=True)
class DiskLabel:
    """A decoded label: where it was found, its byte order, header fields and partitions."""

    position: int
    byteorder: ByteOrder
    header: dict[str, int | bytes]
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
    values = HEADER[order].unpack_from(buf, position)
    header = {name: value for (name, _), value in zip(_HEADER_FIELDS, values, strict=True)}
    npart = int(header["d_npartitions"])
    codec = PARTITION[order]
    parts = tuple(
        Partition(*codec.unpack_from(buf, position + HEADER_SIZE + i * PARTITION_SIZE)) for i in range(npart)
    )
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
    fields: dict[str, int | bytes] = {name: (b"" if fmt.endswith("s") else 0) for name, fmt in _HEADER_FIELDS}
    fields.update(
        d_magic=DISKMAGIC, d_magic2=DISKMAGIC, d_type=DKTYPE_VND, d_typename=typename, d_packname=packname,
        d_secsize=1 << DEV_BSHIFT, d_nsectors=32, d_ntracks=64, d_secpercyl=2048,
        d_ncylinders=secperunit // 2048, d_secperunit=secperunit, d_rpm=3600, d_interleave=1,
        d_npartitions=npart, d_bbsize=8192, d_sbsize=8192,
    )
    out = bytearray(HEADER[byteorder].pack(*(fields[name] for name, _ in _HEADER_FIELDS)))
    codec = PARTITION[byteorder]
    for size, off, fstype in partitions:
        frag = 8 if fstype == FS_BSDFFS else 0
        out += codec.pack(size, off, 2048 if fstype == FS_BSDFFS else 0, fstype, frag, 0)
    out += bytes((npart - len(partitions)) * PARTITION_SIZE)
    if checksum is None:
        checksum = dkcksum(bytes(out), npart, byteorder)
    out[D_CHECKSUM_OFFSET:D_CHECKSUM_OFFSET + 2] = checksum.to_bytes(2, byteorder)
    return bytes(out)
