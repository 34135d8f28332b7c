"""The GUID partition table: primary header at LBA 1, backup header at the last LBA.

The sector size is found, not assumed: a header is looked for at byte 512 and byte 4096 (LBA 1 of
a 512- and a 4096-byte-sector disk), then the backup at the last sector for each size. A header
counts only when its signature, its CRC32, its own LBA and the CRC32 of the entry array it points
at all check out, as in the UEFI specification; when the primary fails and the backup holds,
the backup is used and a warning says so. Entries are numbered by their index in the array (1-based),
which is what Linux (``sda3``) and FreeBSD (``ada0p3``) call them.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from p2k.ondisk import U32, U64, Fmt, Record

GPT_SIGNATURE = b"EFI PART"
SECTOR_SIZES = (512, 4096)
MAX_ENTRIES = 4096
MAX_ENTRY_SIZE = 4096

TYPE_NAMES = {
    "c12a7328-f81f-11d2-ba4b-00a0c93ec93b": "EFI System",
    "21686148-6449-6e6f-744e-656564454649": "BIOS boot",
    "83bd6b9d-7f41-11dc-be0b-001560b84f0f": "freebsd-boot",
    "516e7cb4-6ecf-11d6-8ff8-00022d09712b": "freebsd",
    "516e7cb5-6ecf-11d6-8ff8-00022d09712b": "freebsd-swap",
    "516e7cb6-6ecf-11d6-8ff8-00022d09712b": "freebsd-ufs",
    "516e7cb8-6ecf-11d6-8ff8-00022d09712b": "freebsd-vinum",
    "516e7cba-6ecf-11d6-8ff8-00022d09712b": "freebsd-zfs",
    "49f48d32-b10e-11dc-b99b-0019d1879648": "NetBSD swap",
    "49f48d5a-b10e-11dc-b99b-0019d1879648": "NetBSD FFS",
    "49f48d82-b10e-11dc-b99b-0019d1879648": "NetBSD LFS",
    "49f48daa-b10e-11dc-b99b-0019d1879648": "NetBSD RAID",
    "2db519c4-b10f-11dc-b99b-0019d1879648": "NetBSD ccd",
    "2db519ec-b10f-11dc-b99b-0019d1879648": "NetBSD cgd",
    "824cc7a0-36a8-11e3-890a-952519ad3f61": "OpenBSD data",
    "0fc63daf-8483-4772-8e79-3d69d8477de4": "Linux filesystem",
    "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f": "Linux swap",
    "e6d6d379-f507-44c2-a23c-238f2a3df928": "Linux LVM",
    "a19d880f-05fc-4d3b-a006-743f0f84911e": "Linux RAID",
    "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7": "Microsoft basic data",
    "e3c9e316-0b5c-4db8-817d-f92df00215ae": "Microsoft reserved",
    "de94bba4-06d1-4d40-a16a-bfd50179d6ac": "Windows recovery",
}


class GptHeader(Record):
    """``struct gpt_hdr`` (little-endian; 92 bytes are defined, the rest of the sector is zero)."""

    hdr_sig: Annotated[bytes, Fmt("8s")]
    hdr_revision: U32
    hdr_size: U32
    hdr_crc_self: U32
    hdr_reserved: U32
    hdr_lba_self: U64
    hdr_lba_alt: U64
    hdr_lba_start: U64
    hdr_lba_end: U64
    hdr_guid: Annotated[bytes, Fmt("16s")]
    hdr_lba_table: U64
    hdr_entries: U32
    hdr_entsz: U32
    hdr_crc_table: U32


class GptEntry(Record):
    """``struct gpt_ent``: 128 bytes (a header may declare larger entries; the rest is skipped)."""

    ent_type: Annotated[bytes, Fmt("16s")]
    ent_guid: Annotated[bytes, Fmt("16s")]
    ent_lba_start: U64
    ent_lba_end: U64
    ent_attr: U64
    ent_name: Annotated[bytes, Fmt("72s")]


@dataclass(frozen=True, slots=True)
class GptPartition:
    number: int
    type_guid: str
    start: int  # LBA
    end: int  # LBA, inclusive
    label: str

    @property
    def type_name(self) -> str:
        return TYPE_NAMES.get(self.type_guid, self.type_guid)


@dataclass(frozen=True, slots=True)
class Gpt:
    secsize: int
    header: GptHeader
    partitions: tuple[GptPartition, ...]
    used_backup: bool


def _header_at(read: Callable[[int, int], bytes], secsize: int, lba: int,
               nsectors: int) -> tuple[GptHeader, bytes] | None:
    """The header at ``lba`` and its entry array, if every check passes."""
    if lba <= 0 or lba >= nsectors:
        return None
    raw = read(lba * secsize, secsize)
    if len(raw) < GptHeader.SIZE or not raw.startswith(GPT_SIGNATURE):
        return None
    hdr = GptHeader.decode(raw)
    if not GptHeader.SIZE <= hdr.hdr_size <= secsize or hdr.hdr_lba_self != lba:
        return None
    zeroed = bytearray(raw[:hdr.hdr_size])
    zeroed[GptHeader.OFFSETS["hdr_crc_self"]:GptHeader.OFFSETS["hdr_crc_self"] + 4] = bytes(4)
    if zlib.crc32(zeroed) != hdr.hdr_crc_self:
        return None
    if not (0 < hdr.hdr_entries <= MAX_ENTRIES and GptEntry.SIZE <= hdr.hdr_entsz <= MAX_ENTRY_SIZE
            and hdr.hdr_entsz % 8 == 0):
        return None
    nbytes = hdr.hdr_entries * hdr.hdr_entsz
    if hdr.hdr_lba_table >= nsectors or hdr.hdr_lba_table * secsize + nbytes > nsectors * secsize:
        return None
    table = read(hdr.hdr_lba_table * secsize, nbytes)
    if len(table) != nbytes or zlib.crc32(table) != hdr.hdr_crc_table:
        return None
    return hdr, table


def _entries(hdr: GptHeader, table: bytes, warn: Callable[[str], None]) -> tuple[GptPartition, ...]:
    out = []
    for i in range(hdr.hdr_entries):
        ent = GptEntry.decode(table, i * hdr.hdr_entsz)
        if ent.ent_type == bytes(16):
            continue
        if ent.ent_lba_end < ent.ent_lba_start:
            warn(f"GPT entry {i + 1} ends (LBA {ent.ent_lba_end}) before it starts (LBA {ent.ent_lba_start}); skipped")
            continue
        label = ent.ent_name.decode("utf-16-le", "replace").split("\x00")[0]
        out.append(GptPartition(i + 1, str(uuid.UUID(bytes_le=ent.ent_type)), ent.ent_lba_start,
                                ent.ent_lba_end, label))
    return tuple(out)


def read_gpt(read: Callable[[int, int], bytes], disk_size: int, warn: Callable[[str], None]) -> Gpt | None:
    """The GPT of the disk, from the primary header or, failing that, the backup; None if neither."""
    for secsize in SECTOR_SIZES:
        nsectors = disk_size // secsize
        found = _header_at(read, secsize, 1, nsectors)
        if found is not None:
            return Gpt(secsize, found[0], _entries(found[0], found[1], warn), False)
    for secsize in SECTOR_SIZES:
        nsectors = disk_size // secsize
        found = _header_at(read, secsize, nsectors - 1, nsectors)
        if found is not None:
            damaged = "damaged" if read(secsize, 8) == GPT_SIGNATURE else "missing"
            warn(f"primary GPT header {damaged}; using the backup at LBA {nsectors - 1} "
                 f"({secsize}-byte sectors)")
            return Gpt(secsize, found[0], _entries(found[0], found[1], warn), True)
    return None
