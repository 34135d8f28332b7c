"""Directory blocks (``struct direct``), parsed one 512-byte chunk (DIRBLKSIZ) at a time.

Entries never cross a chunk, so a chunk is the unit of damage: an entry that fails NetBSD's
``ufs_dirbadentry`` test (reclen not a multiple of 4, shorter than DIRSIZ(namlen), running past the
chunk, namlen > 255, a NUL inside the name) ends the parse of *its* chunk only, as NetBSD's lookup
does after ``ufs_dirbad`` — the rest of the directory stays readable and a corrupt entry can never
make a scan loop (reclen 0 included). The damage is reported through ``bad`` so the caller can count
it. The 4.2BSD format (``fs_maxsymlinklen <= 0``) has a 16-bit d_namlen and no d_type.
"""

from __future__ import annotations

from p2k.ondisk import U8, U16, U32, Record
from p2k.vfs.vattr import DT_UNKNOWN

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from collections.abc import Callable

DIRBLKSIZ = 512
MAXNAMLEN = 255
_NUL = "NUL inside a name or name not terminated"



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
    out: list[tuple[int, int, int, bytes, int]] = []
    append = out.append
    stops: list[tuple[int, str]] = []  # (offset, why) where a chunk's parse stopped, for ``bad``
    n = len(data)
    for chunk in range(0, n, DIRBLKSIZ):
        end = chunk + DIRBLKSIZ
        if end > n:
            stops.append((base + chunk, "partial directory chunk"))
            break
        pos = chunk
        while pos < end:
            left = end - pos
            if left < 8:  # the record before left no room for a header: it is mangled
                stops.append((base + pos, f"{left} bytes left at the end of the chunk"))
                break
            if oldfmt:
                ino, reclen, namlen = hdr(data, pos)
                dtype = DT_UNKNOWN
            else:
                ino, reclen, dtype, namlen = hdr(data, pos)
            # ufs_dirbadentry; DIRSIZ(namlen) = (namlen + 12) & ~3 inlined
            if reclen & 3 or reclen > left or namlen > MAXNAMLEN or reclen < (namlen + 12) & ~3:
                stops.append((base + pos, f"mangled entry (reclen {reclen}, namlen {namlen})"))
                break
            at = pos + 8
            if ino and data[at + namlen]:  # the name must end in a NUL
                stops.append((base + pos, _NUL))
                break
            append((base + pos, ino, dtype, data[at:at + namlen], reclen))
            pos += reclen
    # A NUL inside a live name is looked for once for the whole block (a find per entry was a
    # fifth of the parse), and only a block that has one is gone through again.
    if b"\0" in b"".join([e[3] for e in out if e[1]]):
        out = _cut_at_inner_nul(out, base, stops)
    if bad is not None:
        for off, why in stops:
            bad(off, why)
    return out


def _cut_at_inner_nul(ents: list[tuple[int, int, int, bytes, int]], base: int,
                      stops: list[tuple[int, str]]) -> list[tuple[int, int, int, bytes, int]]:
    """``ents`` as if the parse of each chunk had stopped at its first live entry whose name
    holds a NUL (``parse_dirblock``'s rule for a bad entry); ``stops`` gets that entry in place
    of any later stop of the same chunk, so ``bad`` hears of one problem per chunk, in order."""
    first: dict[int, int] = {}  # chunk -> offset of its first entry with a NUL in its name
    for e in ents:
        chunk = (e[0] - base) // DIRBLKSIZ
        if e[1] and b"\0" in e[3] and chunk not in first:
            first[chunk] = e[0]
    kept = [(off, why) for off, why in stops if (off - base) // DIRBLKSIZ not in first]
    stops[:] = sorted(kept + [(off, _NUL) for off in first.values()])
    return [e for e in ents if e[0] < first.get((e[0] - base) // DIRBLKSIZ, e[0] + 1)]


def pack_entry(endian: str, ino: int, dtype: int, name: bytes, reclen: int) -> bytes:
    """One entry: the header, then the name NUL-padded to DIRSIZ (``reclen`` may claim more)."""
    return DIRECT[endian].pack(ino, reclen, dtype, len(name)) + name.ljust(DIRSIZ(len(name)) - DirectHeader.SIZE, b"\0")


def dir_template(endian: str, ino: int, parent: int) -> bytes:
    """The first chunk of a new directory: "." (reclen 12) and ".." (the rest of the chunk)."""
    return (pack_entry(endian, ino, 4, b".", 12) + pack_entry(endian, parent, 4, b"..", DIRBLKSIZ - 12)
            ).ljust(DIRBLKSIZ, b"\0")
