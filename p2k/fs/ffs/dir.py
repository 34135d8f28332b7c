"""Directory blocks (``struct direct``), parsed one 512-byte chunk (DIRBLKSIZ) at a time.

Entries never cross a chunk, so a chunk is the unit of damage: an entry that fails NetBSD's
``ufs_dirbadentry`` test (reclen not a multiple of 4, shorter than DIRSIZ(namlen), running past the
chunk, namlen > 255, a NUL inside the name) ends the parse of *its* chunk only, as NetBSD's lookup
does after ``ufs_dirbad`` — the rest of the directory stays readable and a corrupt entry can never
make a scan loop (reclen 0 included). The damage is reported through ``bad`` so the caller can count
it. The 4.2BSD format (``fs_maxsymlinklen <= 0``) has a 16-bit d_namlen and no d_type.
"""

from __future__ import annotations

from collections.abc import Callable

from p2k.ondisk import U8, U16, U32, Record
from p2k.vfs.vattr import DT_UNKNOWN

DIRBLKSIZ = 512
MAXNAMLEN = 255



class DirectHeader(Record):
    """The fixed part of ``struct direct``; the name follows, NUL-padded to a multiple of 4."""

    d_ino: U32
    d_reclen: U16  # bytes from this entry to the next (the last one of a chunk runs to its end)
    d_type: U8
    d_namlen: U8


class OldDirectHeader(Record):
    """The 4.2BSD ``struct direct`` (``fs_maxsymlinklen <= 0``): a 16-bit d_namlen, no d_type."""

    d_ino: U32
    d_reclen: U16
    d_namlen: U16


DIRECT = DirectHeader.STRUCTS
D_INO = DirectHeader.OFFSETS["d_ino"]
D_RECLEN = DirectHeader.OFFSETS["d_reclen"]
D_TYPE = DirectHeader.OFFSETS["d_type"]
_HDR = DirectHeader.STRUCTS
_HDR_OLD = OldDirectHeader.STRUCTS
assert DirectHeader.SIZE == OldDirectHeader.SIZE == 8


def set_d_ino(buf: bytearray | memoryview, pos: int, endian: str, ino: int) -> None:
    """Point the entry at ``pos`` at ``ino`` (0 frees it)."""
    DirectHeader.field("d_ino", endian).pack_into(buf, pos + D_INO, ino)


def set_d_reclen(buf: bytearray | memoryview, pos: int, endian: str, reclen: int) -> None:
    DirectHeader.field("d_reclen", endian).pack_into(buf, pos + D_RECLEN, reclen)


def DIRSIZ(namlen: int) -> int:  # noqa: N802 - the C macro's name
    """Minimal record size of an entry with a ``namlen``-byte name."""
    return DirectHeader.SIZE + ((namlen + 1 + 3) & ~3)


def parse_dirblock(data: bytes | bytearray | memoryview, base: int, endian: str, oldfmt: bool,
                   bad: Callable[[int, str], None] | None = None,
                   ) -> list[tuple[int, int, int, bytes, int]]:
    """``(offset, ino, type, name, reclen)`` for every entry of ``data`` (whole chunks of a
    directory starting at byte ``base``), free slots (ino 0) included so that the write path can
    reuse this parser. A trailing partial chunk is treated as damaged. Returns a list rather than
    yielding: a stat walk parses every block of every directory, and a list is cheaper."""
    hdr = (_HDR_OLD if oldfmt else _HDR)[endian].unpack_from
    if not isinstance(data, bytes):
        data = bytes(data)  # slices of bytes are the names themselves, no copy of a view each
    find = data.find
    out: list[tuple[int, int, int, bytes, int]] = []
    append = out.append
    n = len(data)
    for chunk in range(0, n, DIRBLKSIZ):
        end = chunk + DIRBLKSIZ
        if end > n:
            if bad is not None:
                bad(base + chunk, "partial directory chunk")
            break
        pos = chunk
        while pos < end:
            left = end - pos
            if left < 8:  # the record before left no room for a header: it is mangled
                if bad is not None:
                    bad(base + pos, f"{left} bytes left at the end of the chunk")
                break
            if oldfmt:
                ino, reclen, namlen = hdr(data, pos)
                dtype = DT_UNKNOWN
            else:
                ino, reclen, dtype, namlen = hdr(data, pos)
            # ufs_dirbadentry; DIRSIZ(namlen) = (namlen + 12) & ~3 inlined
            if reclen & 3 or reclen > left or namlen > MAXNAMLEN or reclen < (namlen + 12) & ~3:
                if bad is not None:
                    bad(base + pos, f"mangled entry (reclen {reclen}, namlen {namlen})")
                break
            at = pos + 8
            name_end = at + namlen
            if ino and find(b"\0", at, name_end + 1) != name_end:  # the first NUL must end the name
                if bad is not None:
                    bad(base + pos, "NUL inside a name or name not terminated")
                break
            append((base + pos, ino, dtype, data[at:name_end], reclen))
            pos += reclen
    return out


def pack_entry(endian: str, ino: int, dtype: int, name: bytes, reclen: int) -> bytes:
    """One entry: the header, then the name NUL-padded to DIRSIZ (``reclen`` may claim more)."""
    return DIRECT[endian].pack(ino, reclen, dtype, len(name)) + name.ljust(DIRSIZ(len(name)) - DirectHeader.SIZE, b"\0")


def dir_template(endian: str, ino: int, parent: int) -> bytes:
    """The first chunk of a new directory: "." (reclen 12) and ".." (the rest of the chunk)."""
    return (pack_entry(endian, ino, 4, b".", 12) + pack_entry(endian, parent, 4, b"..", DIRBLKSIZ - 12)
            ).ljust(DIRBLKSIZ, b"\0")
