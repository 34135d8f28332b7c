"""Phase 3 - Check Connectivity (fsck_ffs pass3.c), and linkup() and adjust() shared with phase 4.

Directories are marked found by following the parents phase 2 recorded (each chain is walked
once, so this is linear in the number of directories). Each directory still not found is the top
of an orphaned subtree (or of a loop, which is reported) and is reconnected under lost+found,
which is created when missing (mode from -m).
"""

from __future__ import annotations

from p2k.fs.ffs.fs import UFS_ROOTINO
from p2k.fs.ffs.fsck.ctx import Ctx
from p2k.fs.ffs.fsck.dir import allocdir, changeino, clear_entry, find_name, lookup, makeentry
from p2k.fs.ffs.fsck.inode import clri, pinode
from p2k.fs.ffs.fsck.report import Reporter
from p2k.fs.ffs.fsck.state import DFOUND, DSTATE, FSTATE
from p2k.fs.ffs.inode import IFDIR, IFMT
from p2k.vfs.vattr import DT_DIR

LFNAME = b"lost+found"


def propagate(ctx: Ctx) -> None:
    """Mark DFOUND every directory whose chain of parents reaches a found directory."""
    st = ctx.st
    for d in st.dirs:
        if st.statemap[d] != DSTATE:
            continue
        chain = []
        cur = d
        seen = set()
        while st.statemap[cur] == DSTATE and cur not in seen:
            seen.add(cur)
            chain.append(cur)
            p = st.parent[cur]
            if not p:
                break
            cur = p
        if st.statemap[cur] == DFOUND:
            for c in chain:
                st.statemap[c] = DFOUND


def pass3(ctx: Ctx) -> None:
    st, rep = ctx.st, ctx.rep
    rep.phase = "Phase 3"
    propagate(ctx)
    for d in list(st.dirs)[::-1]:
        if st.statemap[d] != DSTATE:
            continue
        orphan = d
        seen = {d}
        loop = False
        while True:
            p = st.parent[orphan]
            if not p or st.statemap[p] != DSTATE:
                break
            if p in seen:
                loop = True
                break
            seen.add(p)
            orphan = p
        if loop:
            _reconnect_loop(ctx, orphan)
        else:
            linkup(ctx, orphan, st.dotdot[orphan])
        st.statemap[orphan] = DFOUND
        propagate(ctx)


def _reconnect_loop(ctx: Ctx, orphan: int) -> None:
    """Break a loop of unreachable directories as fsck_ffs does: ``orphan`` moves into lost+found
    under the name its parent in the loop gave it, and that entry is cleared. Reconnecting it as
    ``#ino`` while the old entry stays would leave a second name for a directory, which the next
    run reports as an extraneous hard link."""
    st, rep = ctx.st, ctx.rep
    rep.fatal(f"ORPHANED DIRECTORY LOOP DETECTED I={orphan}")
    if not rep.reply("RECONNECT"):
        return
    parent = st.parent[orphan]
    found = find_name(ctx, parent, orphan)
    if found is None:
        rep.fatal("COULD NOT FIND NAME IN PARENT DIRECTORY")
    name = found[1] if found else None
    if name and (lf := find_lostfound(ctx)) and lookup(ctx, lf, name):
        name = None                     # a name lost+found already has: #ino instead
    if linkup(ctx, orphan, parent, name) and found is not None:
        clear_entry(ctx, found[0])
        st.lncnt[orphan] += 1


def find_lostfound(ctx: Ctx) -> int:
    """lost+found's inode, creating it (NO lost+found DIRECTORY / CREATE) when missing."""
    st, rep = ctx.st, ctx.rep
    if st.lfdir:
        return st.lfdir
    ino = lookup(ctx, UFS_ROOTINO, LFNAME)
    if ino and ino < st.maxino and st.statemap[ino] in (DFOUND, DSTATE) and st.typemap[ino] == DT_DIR:
        st.lfdir = ino
        return ino
    if ino:
        return _reallocate_lostfound(ctx, ino)
    if not rep.ask("NO lost+found DIRECTORY", "CREATE", preen_action="CREATED", kind="no lost+found"):
        return 0
    lf = allocdir(ctx, UFS_ROOTINO, ctx.opts.lfmode)
    if not lf or not makeentry(ctx, UFS_ROOTINO, lf, LFNAME):
        return _cannot_create(rep)
    root = ctx.ginode(UFS_ROOTINO)
    root.nlink += 1
    ctx.inodirty(root)
    st.lfdir = lf
    return lf


def _cannot_create(rep: Reporter) -> int:
    rep.say("SORRY. CANNOT CREATE lost+found DIRECTORY\n")
    rep.resolved = False
    return 0


def _reallocate_lostfound(ctx: Ctx, old: int) -> int:
    """The root's "lost+found" names something that is not a directory: make a new one and point
    the name at it (fsck_ffs pass3.c); the old inode loses that name and phase 4 sees to it."""
    st, rep = ctx.st, ctx.rep
    rep.fatal("lost+found IS NOT A DIRECTORY")
    if not rep.reply("REALLOCATE"):
        rep.findings.append({"phase": rep.phase, "message": "lost+found IS NOT A DIRECTORY", "ino": old,
                             "answer": "no"})
        return 0
    lf = allocdir(ctx, UFS_ROOTINO, ctx.opts.lfmode)
    if not lf or not changeino(ctx, UFS_ROOTINO, LFNAME, lf):
        return _cannot_create(rep)
    rep.findings.append({"phase": rep.phase, "message": "lost+found IS NOT A DIRECTORY", "ino": old,
                         "question": "REALLOCATE", "answer": "yes", "kind": "lost+found", "new": lf})
    root = ctx.ginode(UFS_ROOTINO)
    root.nlink += 1
    ctx.inodirty(root)
    st.lfdir = lf
    if old < st.maxino and st.statemap[old] in (FSTATE, DFOUND):
        # The old inode lost its name now, perhaps after phase 4 went past it: its count is
        # settled here, as fsck_ffs does (reconnected into the new lost+found, or cleared).
        st.lncnt[old] += 1
        adjust(ctx, old, st.lncnt[old])
        st.lncnt[old] = 0
    return lf


def linkup(ctx: Ctx, orphan: int, parentdir: int, name: bytes | None = None) -> bool:
    """Reconnect ``orphan`` as lost+found/#ino, or under ``name`` (fsck_ffs linkup); False if it
    stays unreferenced."""
    st, rep = ctx.st, ctx.rep
    ip = ctx.ginode(orphan)
    isdir = ip.mode & IFMT == IFDIR
    text = f"UNREF {'DIR' if isdir else 'FILE'} {pinode(ctx, ip)}"
    if rep.preen and ip.size == 0:
        return False
    if not rep.ask(text, "RECONNECT", preen_action="RECONNECTED", ino=orphan,
                   kind="unref dir" if isdir else "unref file"):
        return False
    lf = find_lostfound(ctx)
    if not lf:
        return False
    if not makeentry(ctx, lf, orphan, name or f"#{orphan}".encode()):
        rep.say("SORRY. NO SPACE IN lost+found DIRECTORY")
        rep.resolved = False
        return False
    st.lncnt[orphan] -= 1
    if isdir:
        if not changeino(ctx, orphan, b"..", lf):
            makeentry(ctx, orphan, lf, b"..")
        lfip = ctx.ginode(lf)
        lfip.nlink += 1
        ctx.inodirty(lfip)
        old = st.dotdot[orphan]
        if old and old < st.maxino and old != lf:
            st.lncnt[old] += 1
        st.parent[orphan] = st.dotdot[orphan] = lf
        rep.pwarn(f"DIR I={orphan} CONNECTED. PARENT WAS I={parentdir}\n")
    return True


def adjust(ctx: Ctx, ino: int, lcnt: int) -> None:
    st, rep = ctx.st, ctx.rep
    ip = ctx.ginode(ino)
    if ip.nlink == lcnt:
        if not linkup(ctx, ino, 0):
            clri(ctx, ino, "UNREF", False)
            return
        # Reconnected: lost+found now holds the one name. A count that was too high besides (a
        # crash between ufs_rename's nlink++ and its nlink--) is still wrong; adjust it now, as
        # fsck_ffs's adjust() does, or a second run would find it.
        lcnt = st.lncnt[ino]
        if not lcnt:
            return
        ip = ctx.ginode(ino)
    what = "lost+found" if ino == st.lfdir else ("DIR" if ip.mode & IFMT == IFDIR else "FILE")
    text = f"LINK COUNT {what} {pinode(ctx, ip)} COUNT {ip.nlink} SHOULD BE {ip.nlink - lcnt}"
    if rep.preen and lcnt < 0:
        rep.fatal(text + "\nLINK COUNT INCREASING")
    if rep.ask(text, "ADJUST", preen_action="ADJUSTED", ino=ino, kind="link count",
                   field="di_nlink"):
        ip.nlink -= lcnt
        st.lncnt[ino] = 0
        ctx.inodirty(ip)
