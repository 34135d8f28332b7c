"""``sane_blocks`` passes a whole directory block at once when a few list-wide tests say every
record is sane; anything else goes record by record. The block test must never pass a block the
record-by-record rules would cut: random blocks with one flaw each, against those rules."""

from __future__ import annotations

import random

from p2k.fs.ffs.ufs_lookup import _block_sane

ME, MAXINO, SECOND = 40, 1000, 12
Rec = tuple[int, int, int, bytes, int]


def record_ok(rec: Rec, second: int) -> bool:
    """The record-by-record rules of ``sane_blocks`` (ufs_dirbad's), written out plainly."""
    off, ino, _t, name, _r = rec
    if not name or b"/" in name or not 2 <= ino < MAXINO:
        return False
    if name == b".":
        return off == 0 and ino == ME
    if name == b"..":
        return off == second
    return ino != ME


def block(rng: random.Random, first: bool) -> list[Rec]:
    recs: list[Rec] = []
    off = 512  # a later block (only the first has a record at offset 0)
    if first:
        recs += [(0, ME, 4, b".", 12), (12, 7, 4, b"..", 12)]
        off = 24
    for _ in range(rng.randrange(0, 8)):
        name = bytes(rng.choice(b"abcxyz") for _ in range(rng.randrange(1, 6)))
        recs.append((off, rng.randrange(2, MAXINO), 8, name, 16))
        off += 16
    return recs


def flaw(rng: random.Random, recs: list[Rec]) -> list[Rec]:
    if not recs:
        return recs
    i = rng.randrange(len(recs))
    off, ino, t, name, r = recs[i]
    kind = rng.randrange(7)
    new = [(off, ME, t, name, r), (off, MAXINO + rng.randrange(3), t, name, r), (off, rng.randrange(2), t, name, r),
           (off, ino, t, b"", r), (off, ino, t, name + b"/x", r), (off, ino, t, b".", r),
           (off, ino, t, b"..", r)][kind]
    return recs[:i] + [new] + recs[i + 1:]


def test_block_test_never_passes_what_records_would_cut() -> None:
    rng = random.Random(16)
    passed_flawed = 0
    for n in range(20000):
        recs = block(rng, first=n % 2 == 0)
        if n % 3:
            recs = flaw(rng, recs)
        every = all(record_ok(r, SECOND) for r in recs)
        if _block_sane(recs, ME, MAXINO, SECOND):
            assert every, recs
        elif every:
            passed_flawed += 1  # a sane block sent the slow way: allowed, only slower
    assert passed_flawed < 2000  # and it stays rare: the fast test is the common path
