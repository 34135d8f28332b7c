"""Why p2k/ondisk.py declares structures itself instead of with construct: decode speed.

Decodes one UFS2 dinode (256 bytes) with construct's compiled parser (``Struct.compile()``) and
with the paths p2k uses, from the same bytes, and prints the time per inode and the ratios:

- ``Ufs2Dinode.STRUCTS[e].unpack_from``: the precompiled ``struct.Struct`` (a tuple of values);
- ``Ufs2Dinode.decode``: the typed Record (a dataclass instance);
- ``DinodeCodec.decode``: the driver's hot path (an ``Inode`` filled from one unpack_from).

    .venv/bin/python bench/bench_ondisk.py      (needs ``pip install construct``; p2k itself does not)
"""

from __future__ import annotations

import os
import sys
import timeit

from p2k.fs.ffs.dinode import DinodeCodec, Ufs2Dinode


def construct_dinode() -> object:
    import construct as c

    fields = []
    for name, fmt in Ufs2Dinode.FIELDS:
        kind = fmt[-1]
        count = int(fmt[:-1]) if fmt[:-1] else 1
        if kind == "s":
            fields.append(name / c.Bytes(count))
            continue
        one = {"H": c.Int16ul, "h": c.Int16sl, "I": c.Int32ul, "i": c.Int32sl, "Q": c.Int64ul,
               "q": c.Int64sl}[kind]
        fields.append(name / (c.Array(count, one) if fmt[:-1] else one))
    return c.Struct(*fields).compile()


def per_call(fn: object, n: int = 50_000) -> float:
    return min(timeit.repeat(fn, number=n, repeat=5)) / n * 1e6  # type: ignore[arg-type]


def main() -> int:
    try:
        parser = construct_dinode()
    except ImportError:
        print("bench_ondisk: construct is not installed (pip install construct)", file=sys.stderr)
        return 1
    buf = os.urandom(Ufs2Dinode.SIZE)
    st = Ufs2Dinode.STRUCTS["<"]
    codec = DinodeCodec(True, "<")
    t_con = per_call(lambda: parser.parse(buf))  # type: ignore[attr-defined]
    rows = [("construct compiled Struct.parse", t_con),
            ("struct.Struct.unpack_from", per_call(lambda: st.unpack_from(buf, 0))),
            ("Ufs2Dinode.decode (Record)", per_call(lambda: Ufs2Dinode.decode(buf))),
            ("DinodeCodec.decode (Inode)", per_call(lambda: codec.decode(buf, 0, 2)))]
    print(f"{'decode one UFS2 dinode':<34} {'us/call':>8} {'construct / this':>17}")
    for name, t in rows:
        print(f"{name:<34} {t:8.2f} {t_con / t:16.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
