"""Phase 2 - Check Pathnames (fsck_ffs pass2.c).

The root inode is checked first; then every directory's blocks are read, each 512-byte chunk is
parsed and every entry checked: the format (a broken entry is salvaged by folding it into its
neighbour, as fsck_readdir does), "." and ".." as the first two entries, inode numbers in range
and allocated, names of condemned inodes, extra hard links to directories, and d_type against the
inode. Every reference found is subtracted from the target's link count for phase 4, and each
directory's parent is recorded for phase 3. Last, each ".." is compared with the parent found.
"""

from __future__ import annotations

from typing import Any

from p2k.fs.ffs.dir import DIRBLKSIZ, DIRSIZ, MAXNAMLEN
from p2k.fs.ffs.fs import UFS_ROOTINO, UFS_WINO
from p2k.fs.ffs.fsck.ctx import Ctx
from p2k.fs.ffs.fsck.dir import allocdir, changeino, dir_blocks, fix_dotdot, getpathname, hdr, pack_entry
from p2k.fs.ffs.fsck.inode import clri
from p2k.fs.ffs.fsck.report import FSCK_EXIT_CHECK_FAILED, FsckExit
from p2k.fs.ffs.fsck.state import DCLEAR, DFOUND, DSTATE, FCLEAR, FSTATE, NO_DOTDOT, USTATE
from p2k.vfs.vattr import DT_DIR, DT_WHT


def check_root(ctx: Ctx) -> None:
    st, rep = ctx.st, ctx.rep
    s = st.statemap[UFS_ROOTINO]
    if s == USTATE:
        rep.fatal("ROOT INODE UNALLOCATED")
        if not rep.reply("ALLOCATE") or not allocdir(ctx, UFS_ROOTINO, 0o755, UFS_ROOTINO):
            rep.say("CANNOT ALLOCATE ROOT INODE")
            raise FsckExit(FSCK_EXIT_CHECK_FAILED)
    elif s in (DCLEAR, FCLEAR, FSTATE):
        msg = "DUPS/BAD IN ROOT INODE" if s == DCLEAR else "ROOT INODE NOT DIRECTORY"
        rep.fatal(msg)
        if rep.reply("REALLOCATE"):
            clri(ctx, UFS_ROOTINO, "BAD", False) if not rep.preen else None
            if not allocdir(ctx, UFS_ROOTINO, 0o755, UFS_ROOTINO):
                rep.say("CANNOT ALLOCATE ROOT INODE")
                raise FsckExit(FSCK_EXIT_CHECK_FAILED)
        elif not rep.reply("CONTINUE"):
            raise FsckExit(FSCK_EXIT_CHECK_FAILED)
        else:
            st.statemap[UFS_ROOTINO] = DSTATE
    st.statemap[UFS_ROOTINO] = DFOUND
    st.parent[UFS_ROOTINO] = UFS_ROOTINO


def fileerror(ctx: Ctx, cwd: int, ino: int, name: bytes, msg: str, question: str, **info: Any) -> bool:
    path = getpathname(ctx, cwd).rstrip("/") + "/" + name.decode("utf-8", "replace")
    st = ctx.st
    what = "NAME"
    if 0 < ino < st.maxino and st.statemap[ino] != USTATE:
        what = "DIR" if st.statemap[ino] in (DSTATE, DFOUND, DCLEAR) else "FILE"
    return ctx.rep.ask(f"{msg} I={ino}\n{what}={path}", question, ino=ino, dir=cwd, name=path, **info)


def direrror(ctx: Ctx, dirino: int, msg: str, question: str, **info: Any) -> bool:
    path = getpathname(ctx, dirino)
    return ctx.rep.ask(f"{msg} I={dirino}\nDIR={path}", question, ino=dirino, name=path, **info)


def pass2(ctx: Ctx) -> None:
    st, rep = ctx.st, ctx.rep
    rep.phase = "Phase 2"
    check_root(ctx)
    dirs = list(st.dirs)
    for k, d in enumerate(dirs):
        rep.progress(k, len(dirs))
        if st.statemap[d] not in (DSTATE, DFOUND):
            continue
        ip = ctx.ginode(d)
        if ip.size % DIRBLKSIZ:
            path = getpathname(ctx, d)
            newsize = ip.size + DIRBLKSIZ - ip.size % DIRBLKSIZ
            if rep.ask(f"DIRECTORY {path}: LENGTH {ip.size} NOT MULTIPLE OF {DIRBLKSIZ}", "ADJUST",
                       preen_action="ADJUSTED", ino=d, kind="directory length",
                       field="di_size"):
                ip.size = newsize
                ctx.inodirty(ip)
        check_dir(ctx, d, ip)
    rep.progress_done()
    for d in dirs:
        if st.statemap[d] not in (DSTATE, DFOUND) or not st.parent[d]:
            continue
        par, dd = st.parent[d], st.dotdot[d]
        if dd == par:
            continue
        if dd == NO_DOTDOT:
            continue
        if dd == 0:
            st.dotdot[d] = par
            if fileerror(ctx, par, d, b"..", "MISSING '..'", "FIX", kind="missing dotdot", field="d_ino"):
                if fix_dotdot(ctx, d, par):
                    st.lncnt[par] -= 1
                else:
                    rep.fatal("CANNOT FIX, INSUFFICIENT SPACE TO ADD '..'")
                    rep.resolved = False
            continue
        if fileerror(ctx, par, d, b"..", "BAD INODE NUMBER FOR '..'", "FIX", kind="bad dotdot", field="d_ino"):
            if dd < st.maxino:
                st.lncnt[dd] += 1
            st.lncnt[par] -= 1
            st.dotdot[d] = par
            changeino(ctx, d, b"..", par)


def check_dir(ctx: Ctx, d: int, ip: object) -> None:
    """Check every entry of directory ``d`` (pass2check over fsck_readdir)."""
    h = hdr(ctx)
    unpack = h.unpack_from
    st = ctx.st
    statemap, typemap, lncnt, maxino = st.statemap, st.typemap, st.lncnt, st.maxino
    entryno = 0
    for _lbn, off, n in dir_blocks(ctx, ip):  # type: ignore[arg-type]
        data = bytearray(ctx.io.read(off, n))
        dirty = False
        for chunk in range(0, n - n % DIRBLKSIZ, DIRBLKSIZ):
            pos = chunk
            prev = -1
            end = chunk + DIRBLKSIZ
            while pos < end:
                if end - pos < 8:  # no room for a record header: the record before it is corrupt
                    ino = reclen = dtype = namlen = 0
                else:
                    ino, reclen, dtype, namlen = unpack(data, pos)
                # The common entry — a well-formed name of an allocated file of the right type —
                # costs one reference; everything else goes through the full pass2check below.
                if (entryno >= 2 and 2 <= ino < maxino and statemap[ino] == FSTATE and dtype == typemap[ino]
                        and reclen >= 8 + ((namlen + 4) & ~3) and not reclen & 3 and pos + reclen <= end
                        and data[pos + 8 + namlen] == 0 and 0 < namlen):
                    name = data[pos + 8:pos + 8 + namlen]
                    if b"\0" not in name and b"/" not in name and name != b"." and name != b"..":
                        lncnt[ino] -= 1
                        entryno += 1
                        prev = pos
                        pos += reclen
                        continue
                if not _entry_ok(data, pos, end, ino, reclen, dtype, namlen):
                    if direrror(ctx, d, "DIRECTORY CORRUPTED", "SALVAGE", preen_action="SALVAGED",
                                kind="directory corrupted", offset=off + pos,
                                field="d_reclen/d_namlen"):
                        dirty = True
                        if prev < 0:
                            # The chunk's first record now spans it: check it like any other, so a
                            # salvaged first chunk of a directory gets its '.' and '..' back.
                            h.pack_into(data, pos, 0, end - pos, 0, 0)
                            continue
                        pino, prec, pt, pn = h.unpack_from(data, prev)
                        h.pack_into(data, prev, pino, prec + end - pos, pt, pn)
                    break
                changed, entryno = _check_entry(ctx, d, data, pos, entryno)
                dirty |= changed
                prev = pos
                pos += reclen
        if dirty:
            ctx.io.write(off, data)


def _entry_ok(data: bytearray, pos: int, end: int, ino: int, reclen: int, dtype: int, namlen: int) -> bool:
    if reclen < 8 or reclen & 3 or pos + reclen > end:
        return False
    if ino == 0:
        return True
    if namlen > MAXNAMLEN or reclen < DIRSIZ(namlen) or dtype > 15:
        return False
    name = data[pos + 8:pos + 8 + namlen]
    return b"\0" not in name and b"/" not in name and data[pos + 8 + namlen] == 0


def _check_dot(ctx: Ctx, d: int, data: bytearray, pos: int, ino: int, name: bytes) -> tuple[bool, int, bool]:
    """The first entry must be "." naming the directory; (changed, next entry number, done with
    this entry). Where fsck_ffs gives up ("CANNOT FIX, FIRST ENTRY IN DIRECTORY CONTAINS"), the
    entry is overwritten with "." instead: its inode, now unnamed, is reconnected by phase 3 or 4,
    so a second run finds nothing left to fix."""
    st, rep = ctx.st, ctx.rep
    h = hdr(ctx)
    _ino, reclen, dtype, _n = h.unpack_from(data, pos)
    if ino and name == b".":
        changed = False
        if ino != d:
            if direrror(ctx, d, "BAD INODE NUMBER FOR '.'", "FIX", kind="bad dot", field="d_ino"):
                h.pack_into(data, pos, d, reclen, DT_DIR, 1)
                changed = True
            ino = d
        if dtype != DT_DIR and direrror(ctx, d, "BAD TYPE VALUE FOR '.'", "FIX", kind="bad type", field="d_type"):
            h.pack_into(data, pos, ino, reclen, DT_DIR, 1)
            changed = True
        st.lncnt[d] -= 1 if ino == d else 0
        return changed, 1, True
    if reclen < 12:
        direrror(ctx, d, "MISSING '.'", "FIX", kind="missing dot", field="d_reclen")
        rep.fatal("CANNOT FIX, INSUFFICIENT SPACE TO ADD '.'")
        rep.resolved = False
        return False, 1, False
    other = bool(ino) and name != b".." and ino != d
    if not direrror(ctx, d, "MISSING '.'", "FIX", kind="missing dot", field="d_name",
                    lost=ino if other else None):
        return False, 1, bool(ino) and name != b".."
    if other:
        rep.pwarn(f"FIRST ENTRY IN DIRECTORY CONTAINS {name.decode('utf-8', 'replace')} (I={ino}); "
                  "IT IS REPLACED, ITS INODE RECONNECTED")
    if reclen < 24:
        data[pos:pos + 12] = pack_entry(ctx, d, reclen, DT_DIR, b".")
    else:
        data[pos:pos + 12] = pack_entry(ctx, d, 12, DT_DIR, b".")
        h.pack_into(data, pos + 12, 0, reclen - 12, 0, 0)
    st.lncnt[d] -= 1
    return True, 1, True


def _check_dotdot(ctx: Ctx, d: int, data: bytearray, pos: int, changed: bool) -> tuple[bool, int]:
    """The second entry must be ".."; what it names is checked against the parent after the scan.
    Any other entry here is emptied (its inode is reconnected later) so that the ".." fix after
    the scan has its slot: fsck_ffs would stop at "CANNOT FIX, SECOND ENTRY ... CONTAINS"."""
    st, rep = ctx.st, ctx.rep
    h = hdr(ctx)
    ino, reclen, dtype, namlen = h.unpack_from(data, pos)
    name = bytes(data[pos + 8:pos + 8 + namlen])
    if ino and name == b"..":
        st.dotdot[d] = ino
        if dtype != DT_DIR and direrror(ctx, d, "BAD TYPE VALUE FOR '..'", "FIX", kind="bad type", field="d_type"):
            h.pack_into(data, pos, ino, reclen, DT_DIR, 2)
            changed = True
        if ino >= st.maxino or st.statemap[ino] == USTATE:
            st.dotdot[d] = 0
            return changed, 2
        st.lncnt[ino] -= 1
        return changed, 2
    st.dotdot[d] = 0
    if ino == 0 and reclen >= 12:
        return changed, 2  # an empty slot: the ".." check after the scan rewrites it
    if reclen < 12:
        direrror(ctx, d, "MISSING '..'", "FIX", kind="missing dotdot", field="d_reclen")
        rep.fatal("CANNOT FIX, INSUFFICIENT SPACE TO ADD '..'")
        rep.resolved = False
        st.dotdot[d] = NO_DOTDOT
        return changed, 2
    if direrror(ctx, d, "MISSING '..'", "FIX", kind="missing dotdot", field="d_name", lost=ino):
        rep.pwarn(f"SECOND ENTRY IN DIRECTORY CONTAINS {name.decode('utf-8', 'replace')} (I={ino}); "
                  "IT IS REPLACED, ITS INODE RECONNECTED")
        h.pack_into(data, pos, 0, reclen, 0, 0)
        return True, 2
    st.dotdot[d] = NO_DOTDOT
    if ino < st.maxino and st.statemap[ino] != USTATE:
        st.lncnt[ino] -= 1
    return changed, 2


def _check_entry(ctx: Ctx, d: int, data: bytearray, pos: int, entryno: int) -> tuple[bool, int]:
    """pass2check for one well-formed entry; returns (entry changed, next entry number)."""
    st = ctx.st
    h = hdr(ctx)
    ino, reclen, dtype, namlen = h.unpack_from(data, pos)
    name = bytes(data[pos + 8:pos + 8 + namlen])
    changed = False
    if entryno == 0:
        changed, entryno, stop = _check_dot(ctx, d, data, pos, ino, name)
        if stop:
            return changed, entryno
        ino, reclen, dtype, namlen = h.unpack_from(data, pos)
        name = bytes(data[pos + 8:pos + 8 + namlen])
    if entryno == 1:
        return _check_dotdot(ctx, d, data, pos, changed)
    entryno += 1
    if ino == 0:
        return changed, entryno
    if name in (b".", b".."):
        what = "EXTRA '.' ENTRY" if name == b"." else "EXTRA '..' ENTRY"
        if direrror(ctx, d, what, "FIX", kind="extra dot entry"):
            h.pack_into(data, pos, 0, reclen, 0, 0)
            return True, entryno
        return changed, entryno
    if ino == UFS_WINO and dtype == DT_WHT:
        return changed, entryno
    if ino < UFS_ROOTINO or ino >= st.maxino:
        if fileerror(ctx, d, ino, name, "I OUT OF RANGE", "REMOVE", kind="inode out of range", field="d_ino"):
            h.pack_into(data, pos, 0, reclen, 0, 0)
            return True, entryno
        return changed, entryno
    s = st.statemap[ino]
    if s == USTATE:
        if fileerror(ctx, d, ino, name, "UNALLOCATED", "REMOVE", kind="unallocated", field="d_ino"):
            h.pack_into(data, pos, 0, reclen, 0, 0)
            return True, entryno
        return changed, entryno
    if s in (DCLEAR, FCLEAR):
        msg = "DUP/BAD"
        if s == DCLEAR and ctx.ginode(ino).size == 0:
            msg = "ZERO LENGTH DIRECTORY"
        if fileerror(ctx, d, ino, name, msg, "REMOVE", kind=msg.lower()):
            h.pack_into(data, pos, 0, reclen, 0, 0)
            return True, entryno
        tip = ctx.ginode(ino)
        s = DSTATE if tip.is_dir() else FSTATE
        st.statemap[ino] = s
        st.lncnt[ino] = tip.nlink
        st.typemap[ino] = (tip.mode >> 12) & 0xF
    if s in (DSTATE, DFOUND):
        if st.parent[ino]:
            if fileerror(ctx, d, ino, name, "IS AN EXTRANEOUS HARD LINK TO DIRECTORY", "REMOVE",
                         kind="extraneous hard link", field="d_ino"):
                h.pack_into(data, pos, 0, reclen, 0, 0)
                return True, entryno
        else:
            st.parent[ino] = d
    want = st.typemap[ino]
    if dtype != want:
        if fileerror(ctx, d, ino, name, "BAD TYPE VALUE", "FIX", kind="bad type", field="d_type"):
            h.pack_into(data, pos, ino, reclen, want, namlen)
            changed = True
    st.lncnt[ino] -= 1
    return changed, entryno
