"""BSD disklabels inside MBR slices, each read by its own system's rules.

- **NetBSD** (slice type 0xA9): NetBSD's ``validate_label`` reads three sectors from the start of the
  slice and takes the first position, in steps of a word, where both magics sit, skipping
  ("disk label corrupted") a candidate with too many partitions or a bad checksum. Either byte
  order is accepted. Partition offsets are absolute sectors of the disk.
- **FreeBSD** (0xA5): the label sits at sector 1 of the slice (LABELSECTOR 1, LABELOFFSET 0),
  little-endian, 8 to 20 partitions. As FreeBSD's geom reads it, offsets are relative to the raw
  partition ``c``: a partition starts ``p_offset - c.p_offset`` sectors into the slice (``c`` is 0
  in labels written by today's bsdlabel, the slice start in old ones).
- **OpenBSD** (0xA6): sector 1 of the slice, little-endian, up to 16 partitions, absolute offsets;
  a version-1 label adds ``p_offseth``/``p_sizeh`` as the high 16 bits of 48-bit sector numbers.

Every label must have a zero checksum (XOR of its 16-bit words); a label that fails is reported
as a warning and its slice shows no BSD partitions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from p2k.etfs.disklabel import (
    D_MAGIC2_OFFSET,
    D_NPARTITIONS_OFFSET,
    DISKMAGIC,
    HEADER_SIZE,
    PARTITION_SIZE,
    ByteOrder,
    decode_disklabel,
    dkcksum,
)
from p2k.ondisk import U8, U16, U32, Fmt, Record

Flavor = Literal["netbsd", "freebsd", "openbsd"]
NETBSD_SCAN_SECTORS = 3
NETBSD_MAXPARTITIONS = 16  # x86's MAXPARTITIONS, which validate_label checks
FREEBSD_NPARTS = (8, 20)
OPENBSD_MAXPARTITIONS = 16
RAW_PART = 2  # 'c'
FS_UNUSED = 0
FSTYPE_NAMES = {
    0: "unused", 1: "swap", 2: "Version 6", 3: "Version 7", 4: "System V", 5: "4.1BSD", 6: "Eighth Edition",
    7: "4.2BSD", 8: "MSDOS", 9: "4.4LFS", 10: "unknown", 11: "HPFS", 12: "ISO9660", 13: "boot", 14: "ADOS",
    15: "HFS", 16: "FILECORE", 17: "Linux Ext2", 18: "NTFS", 19: "RAID", 20: "ccd", 21: "jfs",
    22: "Apple UFS", 23: "vinum", 24: "UDF", 25: "SysVBFS", 26: "EFS", 27: "ZFS",
}


class OpenBSDLabel(Record):
    """OpenBSD's ``struct disklabel`` header (148 bytes; magics and checksum where NetBSD has them)."""

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
    d_uid: Annotated[bytes, Fmt("8s")]
    d_acylinders: U32
    d_bstarth: U16
    d_bendh: U16
    d_bstart: U32
    d_bend: U32
    d_flags: U32
    d_drivedata: Annotated[list[int], Fmt("5I")]
    d_secperunith: U16
    d_version: U16
    d_spare: Annotated[list[int], Fmt("4I")]
    d_magic2: U32
    d_checksum: U16
    d_npartitions: U16
    d_bbsize: U32
    d_sbsize: U32


class OpenBSDPartition(Record):
    """OpenBSD's ``struct partition``: the 48-bit form (``p_offseth``/``p_sizeh``) of version 1."""

    p_size: U32
    p_offset: U32
    p_offseth: U16
    p_sizeh: U16
    p_fstype: U8
    p_fragblock: U8
    p_cpg: U16


assert OpenBSDLabel.SIZE == HEADER_SIZE and OpenBSDPartition.SIZE == PARTITION_SIZE
assert OpenBSDLabel.OFFSETS["d_magic2"] == D_MAGIC2_OFFSET


@dataclass(frozen=True, slots=True)
class LabelPartition:
    index: int  # 0 = 'a'
    start: int  # absolute sector
    size: int  # sectors
    fstype: int

    @property
    def letter(self) -> str:
        return chr(ord("a") + self.index)

    @property
    def type_name(self) -> str:
        return FSTYPE_NAMES.get(self.fstype, f"fstype {self.fstype}")


@dataclass(frozen=True, slots=True)
class SliceLabel:
    flavor: Flavor
    sector: int  # absolute sector holding the label
    partitions: tuple[LabelPartition, ...]


FLAVOR_BY_PTYPE: dict[int, Flavor] = {0xA9: "netbsd", 0xA5: "freebsd", 0xA6: "openbsd"}


def _checked(buf: bytes, pos: int, order: ByteOrder, maxparts: int) -> str | None:
    """Why the label at ``pos`` is unusable, or None if its count and checksum hold."""
    npart = int.from_bytes(buf[pos + D_NPARTITIONS_OFFSET:pos + D_NPARTITIONS_OFFSET + 2], order)
    if npart > maxparts:
        return f"{npart} partitions (at most {maxparts})"
    end = pos + HEADER_SIZE + npart * PARTITION_SIZE
    if end > len(buf):
        return "partition table runs past the sectors read"
    if dkcksum(buf[pos:end], npart, order) != 0:
        return "bad checksum"
    return None


def _netbsd(read: Callable[[int, int], bytes], start: int, secsize: int,
            warn: Callable[[str], None]) -> SliceLabel | None:
    buf = read(start * secsize, NETBSD_SCAN_SECTORS * secsize)
    for pos in range(0, len(buf) - HEADER_SIZE + 1, 4):
        for order in ("little", "big"):
            magic = DISKMAGIC.to_bytes(4, order)
            if buf[pos:pos + 4] != magic or buf[pos + D_MAGIC2_OFFSET:pos + D_MAGIC2_OFFSET + 4] != magic:
                continue
            why = _checked(buf, pos, order, NETBSD_MAXPARTITIONS)
            if why:
                warn(f"NetBSD disklabel at byte {start * secsize + pos} corrupted ({why}); ignored")
                continue
            label = decode_disklabel(buf, pos, order)
            parts = tuple(LabelPartition(i, p.p_offset, p.p_size, p.p_fstype)
                          for i, p in enumerate(label.partitions) if p.p_size)
            return SliceLabel("netbsd", start + pos // secsize, parts)
    return None


def _freebsd(buf: bytes, start: int, warn: Callable[[str], None]) -> SliceLabel | None:
    why = _checked(buf, 0, "little", FREEBSD_NPARTS[1])
    npart = int.from_bytes(buf[D_NPARTITIONS_OFFSET:D_NPARTITIONS_OFFSET + 2], "little")
    if why is None and npart < FREEBSD_NPARTS[0]:
        why = f"{npart} partitions (at least {FREEBSD_NPARTS[0]})"
    if why:
        warn(f"FreeBSD bsdlabel in the slice at sector {start}: {why}; ignored")
        return None
    label = decode_disklabel(buf, 0, "little")
    rawoff = label.partitions[RAW_PART].p_offset
    parts = []
    for i, p in enumerate(label.partitions):
        if not p.p_size:
            continue
        if p.p_offset < rawoff:
            warn(f"FreeBSD bsdlabel partition {chr(97 + i)} starts before the raw partition; ignored")
            continue
        parts.append(LabelPartition(i, start + p.p_offset - rawoff, p.p_size, p.p_fstype))
    return SliceLabel("freebsd", start + 1, tuple(parts))


def _openbsd(buf: bytes, start: int, warn: Callable[[str], None]) -> SliceLabel | None:
    why = _checked(buf, 0, "little", OPENBSD_MAXPARTITIONS)
    if why:
        warn(f"OpenBSD disklabel in the slice at sector {start}: {why}; ignored")
        return None
    hdr = OpenBSDLabel.decode(buf)
    wide = hdr.d_version == 1
    parts = []
    for i in range(hdr.d_npartitions):
        p = OpenBSDPartition.decode(buf, HEADER_SIZE + i * PARTITION_SIZE)
        size = p.p_size | (p.p_sizeh << 32 if wide else 0)
        if size:
            parts.append(LabelPartition(i, p.p_offset | (p.p_offseth << 32 if wide else 0), size, p.p_fstype))
    return SliceLabel("openbsd", start + 1, tuple(parts))


def read_slice_label(read: Callable[[int, int], bytes], ptype: int, start: int, secsize: int,
                     warn: Callable[[str], None]) -> SliceLabel | None:
    """The BSD label in the MBR slice of type ``ptype`` starting at sector ``start``, if any."""
    flavor = FLAVOR_BY_PTYPE.get(ptype)
    if flavor == "netbsd":
        return _netbsd(read, start, secsize, warn)
    if flavor is None:
        return None
    buf = read((start + 1) * secsize, secsize)
    if len(buf) < HEADER_SIZE or int.from_bytes(buf[:4], "little") != DISKMAGIC \
            or int.from_bytes(buf[D_MAGIC2_OFFSET:D_MAGIC2_OFFSET + 4], "little") != DISKMAGIC:
        return None
    return _freebsd(buf, start, warn) if flavor == "freebsd" else _openbsd(buf, start, warn)
