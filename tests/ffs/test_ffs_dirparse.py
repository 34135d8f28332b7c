"""``parse_dirblock`` looks for a NUL inside a name once per block instead of once per entry; the
result and the damage reports must stay those of the plain rule (NetBSD's ``ufs_dirbadentry``:
a chunk's parse stops at its first bad entry, and that is reported). Random chunks with damage
of every kind, against the rule written out entry by entry."""

from __future__ import annotations

import random
import struct

from p2k.fs.ffs.dir import DIRBLKSIZ, MAXNAMLEN, parse_dirblock

Ent = tuple[int, int, int, bytes, int]


def reference(data: bytes, base: int) -> tuple[list[Ent], list[int], int]:
    """Entries, the offsets reported bad, and how many of those were a NUL inside a live name,
    one entry at a time (little-endian, new format)."""
    out: list[Ent] = []
    bad: list[int] = []
    inner = 0
    for chunk in range(0, len(data), DIRBLKSIZ):
        end = chunk + DIRBLKSIZ
        if end > len(data):
            bad.append(base + chunk)
            break
        pos = chunk
        while pos < end:
            if end - pos < 8:
                bad.append(base + pos)
                break
            ino, reclen, dtype, namlen = struct.unpack_from("<IHBB", data, pos)
            name_end = pos + 8 + namlen
            nul = data.find(b"\0", pos + 8, name_end + 1)
            if (reclen % 4 or reclen > end - pos or namlen > MAXNAMLEN or reclen < (namlen + 12) & ~3
                    or (ino and nul != name_end)):
                bad.append(base + pos)
                inner += bool(ino) and 0 <= nul < name_end and not reclen % 4 and reclen <= end - pos
                break
            out.append((base + pos, ino, dtype, data[pos + 8:name_end], reclen))
            pos += reclen
    return out, bad, inner


def chunk(rng: random.Random) -> bytearray:
    """A well-formed chunk, then (most of the time) one byte or field spoiled."""
    buf = bytearray()
    while len(buf) < DIRBLKSIZ:
        name = bytes(rng.choice(b"abc.xyz") for _ in range(rng.randrange(1, 9)))
        need = (len(name) + 12) & ~3
        left = DIRBLKSIZ - len(buf)
        if left < need + 16 or rng.random() < 0.1:
            need = left  # the last entry runs to the chunk's end
        ino = 0 if rng.random() < 0.1 else rng.randrange(2, 5000)
        rec = struct.pack("<IHBB", ino, need, 8, len(name)) + name
        buf += rec + bytes(need - len(rec))
    for _ in range(rng.choice((0, 1, 1, 2))):
        at = rng.randrange(DIRBLKSIZ)
        kind = rng.randrange(3)
        if kind == 0:
            buf[at] = 0  # often a NUL inside a name
        elif kind == 1:
            buf[at] = rng.randrange(256)
        else:
            buf[at] = rng.choice(b"abc")  # often a name's terminator overwritten
    return buf


def test_parse_matches_the_entry_by_entry_rule() -> None:
    rng = random.Random(1616)
    damaged = inner_nul = 0
    for _ in range(3000):
        data = bytes(b"".join(chunk(rng) for _ in range(rng.randrange(1, 5))))
        if rng.random() < 0.05:
            data = data[:-rng.randrange(1, 100)]  # a partial last chunk
        base = rng.randrange(4) * 4096
        reported: list[int] = []
        got = parse_dirblock(data, base, "<", False, lambda off, why, seen=reported: seen.append(off))
        want, want_bad, inner = reference(data, base)
        assert got == want
        assert reported == want_bad
        damaged += bool(want_bad)
        inner_nul += inner
    assert damaged > 500 and inner_nul > 50  # the random damage reached the rules, the inner NUL's too
