"""The PC master boot record and its chain of extended boot records.

Primary entries are numbered by their slot (1–4) and logical partitions from 5 in chain order, as
Linux and FreeBSD name them. The chain is walked the way NetBSD's ``scan_mbr`` walks it — each
EBR's link is relative to the first extended partition, and a link that does not move forward ends
the walk — with two additions, since the image may be hostile: a sector seen twice ends the walk
with a warning (a loop NetBSD's forward-only rule would also stop, but this one names it), and
at most ``MAX_LOGICAL`` logical partitions are read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from p2k.ondisk import U8, U16, U32, Record

MBR_PART_OFFSET = 446
MBR_PART_COUNT = 4
MBR_MAGIC_OFFSET = 510
MBR_MAGIC = 0xAA55
PTYPE_UNUSED = 0x00
PTYPE_PMBR = 0xEE
PTYPE_386BSD = 0xA5  # FreeBSD
PTYPE_OPENBSD = 0xA6
PTYPE_NETBSD = 0xA9
EXTENDED_TYPES = frozenset({0x05, 0x0F, 0x85})
MAX_LOGICAL = 128

TYPE_NAMES = {
    0x01: "FAT12", 0x04: "FAT16", 0x05: "Extended", 0x06: "FAT16", 0x07: "NTFS/exFAT", 0x0B: "FAT32",
    0x0C: "FAT32 (LBA)", 0x0E: "FAT16 (LBA)", 0x0F: "Extended (LBA)", 0x82: "Linux swap", 0x83: "Linux",
    0x85: "Linux extended", 0x8E: "Linux LVM", 0xA5: "FreeBSD", 0xA6: "OpenBSD", 0xA9: "NetBSD",
    0xEE: "GPT protective", 0xEF: "EFI System", 0xFD: "Linux RAID",
}


class MbrPartition(Record):
    """``struct mbr_partition`` (NetBSD sys/bootblock.h): one 16-byte slot, little-endian."""

    mbrp_flag: U8
    mbrp_shd: U8
    mbrp_ssect: U8
    mbrp_scyl: U8
    mbrp_type: U8
    mbrp_ehd: U8
    mbrp_esect: U8
    mbrp_ecyl: U8
    mbrp_start: U32
    mbrp_size: U32


class MbrMagic(Record):
    mbr_magic: U16


@dataclass(frozen=True, slots=True)
class MbrEntry:
    number: int  # 1..4 primary, 5.. logical
    ptype: int
    start: int  # sectors from the start of the disk
    size: int  # sectors
    extended: bool = False


def type_name(ptype: int) -> str:
    return TYPE_NAMES.get(ptype, f"type 0x{ptype:02x}")


def _slots(sector: bytes) -> list[MbrPartition] | None:
    """The four slots of a boot record, or None if it does not carry the 0xAA55 signature."""
    if len(sector) < 512 or MbrMagic.decode(sector, MBR_MAGIC_OFFSET).mbr_magic != MBR_MAGIC:
        return None
    return [MbrPartition.decode(sector, MBR_PART_OFFSET + i * MbrPartition.SIZE) for i in range(MBR_PART_COUNT)]


def is_protective(sector: bytes) -> bool:
    """An MBR whose only entry is the GPT protective one (NetBSD bails on it, and so do we)."""
    slots = _slots(sector)
    return slots is not None and any(s.mbrp_type == PTYPE_PMBR for s in slots)


def looks_like_mbr(sector: bytes) -> bool:
    """A boot record that is a partition table, not a file system's boot sector: the signature,
    boot flags of 0x00 or 0x80 only (as Linux checks), and at least one used slot."""
    slots = _slots(sector)
    if slots is None or any(s.mbrp_flag not in (0x00, 0x80) for s in slots):
        return False
    return any(s.mbrp_type != PTYPE_UNUSED and s.mbrp_size for s in slots)


def read_mbr(read: Callable[[int, int], bytes], secsize: int, warn: Callable[[str], None]) -> list[MbrEntry]:
    """Primary and logical entries of the MBR at sector 0 (empty if there is none)."""
    slots = _slots(read(0, secsize))
    if slots is None:
        return []
    entries: list[MbrEntry] = []
    ext_base = 0
    for i, s in enumerate(slots):
        if s.mbrp_type == PTYPE_UNUSED or s.mbrp_size == 0:
            continue
        extended = s.mbrp_type in EXTENDED_TYPES
        entries.append(MbrEntry(i + 1, s.mbrp_type, s.mbrp_start, s.mbrp_size, extended))
        if extended and ext_base == 0 and s.mbrp_start:
            ext_base = s.mbrp_start
    if ext_base:
        entries += _logical(read, secsize, ext_base, warn)
    return entries


def _logical(read: Callable[[int, int], bytes], secsize: int, ext_base: int,
             warn: Callable[[str], None]) -> list[MbrEntry]:
    out: list[MbrEntry] = []
    seen: set[int] = set()
    this = ext_base
    while len(out) < MAX_LOGICAL:
        if this in seen:
            warn(f"extended partition chain loops back to sector {this}; logical partitions after p{4 + len(out)} "
                 "ignored")
            break
        seen.add(this)
        slots = _slots(read(this * secsize, secsize))
        if slots is None:
            warn(f"extended boot record at sector {this} has no 0xAA55 signature; chain ends there")
            break
        nxt = 0
        for s in slots:
            if s.mbrp_type == PTYPE_UNUSED or s.mbrp_size == 0:
                continue
            if s.mbrp_type in EXTENDED_TYPES:
                nxt = nxt or ext_base + s.mbrp_start
            elif len(out) < MAX_LOGICAL:
                out.append(MbrEntry(5 + len(out), s.mbrp_type, this + s.mbrp_start, s.mbrp_size))
        if not nxt:
            break
        this = nxt
    else:
        warn(f"more than {MAX_LOGICAL} logical partitions; the rest ignored")
    return out
