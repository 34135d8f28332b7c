"""Phase 1b - Rescan For More DUPS (fsck_ffs pass1b.c).

Phase 1 only sees the second and later claims of a fragment; this rescan finds the first owner of
each duplicate so that every inode involved is reported and condemned. It re-reads only inodes
phase 1 found allocated (their state says so) and only runs when there are duplicates.
"""

from __future__ import annotations

from p2k.fs.ffs.fsck.ctx import Ctx
from p2k.fs.ffs.fsck.inode import KEEPON, SKIP, STOP, ckinode
from p2k.fs.ffs.fsck.pass1 import _blkerror
from p2k.fs.ffs.fsck.state import USTATE


def pass1b(ctx: Ctx) -> None:
    st, rep = ctx.st, ctx.rep
    rep.phase = "Phase 1b"
    pending = set(st.dups)
    seen_first: set[int] = set()
    for ino in range(2, st.maxino):
        if st.statemap[ino] == USTATE or not pending:
            continue
        ip = ctx.ginode(ino)
        found: list[int] = []

        def check(frag: int, n: int, lbn: int, level: int, found: list[int] = found,
                  pending: set[int] = pending) -> int:
            if frag < 0 or frag + n > st.maxfsblock:
                return SKIP
            for f in range(frag, frag + n):
                if f in pending:
                    found.append(f)
            return KEEPON if len(found) < 64 else STOP

        ckinode(ctx, ip, check)
        for f in found:
            rep.warn(f"{f} DUP I={ino}", ino=ino, kind="dup block", block=f)
            _blkerror(ctx, ino)
            if f not in seen_first:
                seen_first.add(f)
        if len(seen_first) == len(pending):
            # every duplicate now has its first owner; later owners were named in phase 1
            pending = set()
