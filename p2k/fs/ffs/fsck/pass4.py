"""Phase 4 - Check Reference Counts (fsck_ffs pass4.c).

Only inodes that need attention are visited: those whose remaining link count is non-zero (found
with a byte scan of the count array, not a loop over every inode), those with a zero di_nlink, and
those still condemned or unreached. An inode nobody names is reconnected (or cleared, and always
cleared if it is empty in preen mode); a count that is merely wrong is adjusted.
"""

from __future__ import annotations

import re

from p2k.fs.ffs.fsck.ctx import Ctx
from p2k.fs.ffs.fsck.inode import clri
from p2k.fs.ffs.fsck.pass3 import adjust
from p2k.fs.ffs.fsck.state import DCLEAR, DFOUND, DSTATE, FCLEAR, FSTATE
from p2k.fs.ffs.wapbl import SF_LOG, journal_inode

_NONZERO = re.compile(rb"[^\x00]")


def candidates(ctx: Ctx) -> list[int]:
    st = ctx.st
    out = set(st.zlnlist)
    raw = st.lncnt.tobytes()
    for m in _NONZERO.finditer(raw):
        out.add(m.start() // 4)
    for s in (DSTATE, DCLEAR, FCLEAR):
        i = st.statemap.find(s)
        while i != -1:
            out.add(i)
            i = st.statemap.find(s, i + 1)
    return sorted(i for i in out if i >= 2)


def pass4(ctx: Ctx) -> None:
    st, rep = ctx.st, ctx.rep
    rep.phase = "Phase 4"
    zln = set(st.zlnlist)
    jino = journal_inode(ctx.fs, ctx.io.size)
    for ino in candidates(ctx):
        s = st.statemap[ino]
        if s in (FSTATE, DFOUND):
            n = st.lncnt[ino]
            if n:
                if ino == jino and ctx.ginode(ino).flags & SF_LOG:
                    continue  # the WAPBL journal: in no directory, and left alone (is_journal_inode)
                adjust(ctx, ino, n)
            elif ino in zln:
                clri(ctx, ino, "UNREF", True)
        elif s == DSTATE:
            clri(ctx, ino, "UNREF", True)
        elif s in (DCLEAR, FCLEAR):
            clri(ctx, ino, "BAD/DUP", True)
