"""Bit and fragment-pattern helpers of the cg maps (NetBSD ``ffs_subr.c``: ffs_fragacct,
ffs_isblock, setbit/clrbit), done without per-bit Python loops.

A block's ``frag`` free bits form its *pattern*; ``_FragTables`` knows, for every pattern, its free
runs (for ``cg_frsum``), its population count, and translate tables that turn a whole free map
into one byte per block, so searches are ``bytes.translate`` + ``bytes.find``. Runs of bits are set
or cleared through ``int.from_bytes`` on the bytes they span.
"""

from __future__ import annotations


def _runs(pattern: int, frag: int) -> tuple[int, ...]:
    out, run = [], 0
    for i in range(frag):
        if pattern >> i & 1:
            run += 1
        elif run:
            out.append(run)
            run = 0
    if run:
        out.append(run)
    return tuple(out)


class _FragTables:
    """Per-``frag`` lookup tables: free-run lengths of every block pattern and translate tables."""

    def __init__(self, frag: int) -> None:
        self.frag = frag
        self.full = (1 << frag) - 1
        self.per = 8 // frag
        self.split = [bytes((b >> (k * frag)) & self.full for b in range(256)) for k in range(self.per)]
        self.runs = [_runs(p, frag) for p in range(1 << frag)]
        self.popcount = [bin(p).count("1") for p in range(1 << frag)]
        self.is_full = bytes(int(p == self.full) for p in range(256))
        # fits[n]: 1 where a partially free block has a free run of at least n fragments
        self.fits = [bytes(int(p <= self.full and p != self.full and max(self.runs[p], default=0) >= n)
                           for p in range(256)) for n in range(frag + 1)]

    def patterns(self, freemap: bytes | memoryview, nblocks: int) -> bytes:
        """One byte per block (its ``frag`` free bits) for the first ``nblocks`` blocks."""
        if self.per == 1:
            return bytes(freemap[:nblocks])
        raw = bytes(freemap)
        out = bytearray(len(raw) * self.per)
        for k in range(self.per):
            out[k::self.per] = raw.translate(self.split[k])
        return bytes(out[:nblocks])

    def first_run(self, pattern: int, n: int) -> int:
        """Position of the first run of ≥ n free fragments in ``pattern``."""
        want = (1 << n) - 1
        for p in range(self.frag - n + 1):
            if (pattern >> p) & want == want:
                return p
        raise AssertionError("no run")


_TABLES: dict[int, _FragTables] = {}


def frag_tables(frag: int) -> _FragTables:
    t = _TABLES.get(frag)
    if t is None:
        t = _TABLES[frag] = _FragTables(frag)
    return t


def set_bits(buf: bytearray, base: int, start: int, n: int, value: bool) -> None:
    """Set (value) or clear bits ``start .. start+n-1`` of the bitmap at byte ``base``."""
    if n <= 0:
        return
    lo = base + (start >> 3)
    hi = base + ((start + n + 7) >> 3)
    word = int.from_bytes(buf[lo:hi], "little")
    mask = ((1 << n) - 1) << (start & 7)
    word = word | mask if value else word & ~mask
    buf[lo:hi] = word.to_bytes(hi - lo, "little")


def get_bits(buf: bytes | bytearray, base: int, start: int, n: int) -> int:
    lo = base + (start >> 3)
    hi = base + ((start + n + 7) >> 3)
    return (int.from_bytes(buf[lo:hi], "little") >> (start & 7)) & ((1 << n) - 1)
