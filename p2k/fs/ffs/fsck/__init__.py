"""fsck for FFS images: the phases of NetBSD's fsck_ffs over a p2k.etfs device.

``checkfilesys`` runs setup and phases 1-5 in order (main.c's checkfilesys); each phase is its own
module, the in-core state is flat arrays (``state.py``), all device access goes through
``io.FsckIO`` (read-only under -n) and all talk through ``report.Reporter``.
"""

from __future__ import annotations

from dataclasses import dataclass
from io import StringIO
from typing import TYPE_CHECKING, Any, TextIO

from p2k.fs.ffs.fs import FS_DOWAPBL, FS_ISCLEAN, FS_NEEDSFSCK, FS_UNCLEAN
from p2k.fs.ffs.fsck.ctx import Ctx, Options
from p2k.fs.ffs.fsck.io import FsckIO
from p2k.fs.ffs.fsck.journal import replay_journal, suj_full_check
from p2k.fs.ffs.fsck.pass1 import pass1
from p2k.fs.ffs.fsck.pass1b import pass1b
from p2k.fs.ffs.fsck.pass2 import pass2
from p2k.fs.ffs.fsck.pass3 import pass3
from p2k.fs.ffs.fsck.pass4 import pass4
from p2k.fs.ffs.fsck.pass5 import pass5
from p2k.fs.ffs.fsck.report import (
    FSCK_EXIT_CHECK_FAILED,
    FSCK_EXIT_OK,
    FSCK_EXIT_UNRESOLVED,
    FsckExit,
    Reporter,
)
from p2k.fs.ffs.fsck.setup import check_fields, read_csum, read_superblock, skip_clean, write_superblock
from p2k.hyper import now_ns

if TYPE_CHECKING:
    from p2k.etfs import Device

__all__ = ["FsckIO", "FsckResult", "Options", "Reporter", "checkfilesys", "fsck_device"]


@dataclass
class FsckResult:
    """One check's outcome as values: the crash runner and tests read these, never fsck's text."""

    code: int  # fsck_ffs's exit status (FSCK_EXIT_*)
    summary: dict[str, Any]  # files, used, free, frags, blocks, fragmentation
    modified: bool  # something was written to the device
    resolved: bool  # no inconsistency was left unrepaired
    findings: list[dict[str, Any]]  # every message, question and answer, as --json lists them
    lines: list[str]  # what fsck printed (or would have), one line each
    report: Reporter

    def json(self) -> str:
        return self.report.json_report(self.summary, self.code, self.modified)


def fsck_device(dev: Device, opts: Options, name: str, out: TextIO | None = None) -> FsckResult:
    """Check (and with -y/-p repair) the file system on ``dev`` — fsck_ffs on one device. ``out``
    receives the running text (``p2k fsck`` passes stdout); None keeps it only in the result."""
    rep = Reporter(name, opts.mode, as_json=opts.as_json, out=out if out is not None else StringIO(),
                   progress=None if out is not None else False)
    io = FsckIO(dev, opts.mode == "n")
    try:
        code, summary = checkfilesys(io, rep, opts)
    except OSError as e:
        rep.say(f"{name}: CANNOT READ: {e.strerror or e}")
        code, summary = FSCK_EXIT_CHECK_FAILED, {}
    return FsckResult(code, summary, io.modified, rep.resolved, rep.findings, rep.lines, rep)


def checkfilesys(io: FsckIO, rep: Reporter, opts: Options) -> tuple[int, dict[str, Any]]:
    """Check (and under -y/-p repair) one file system; returns (exit code, summary)."""
    summary: dict[str, Any] = {}
    try:
        return _check(io, rep, opts, summary), summary
    except FsckExit as e:
        return e.code, summary


def _check(io: FsckIO, rep: Reporter, opts: Options, summary: dict[str, Any]) -> int:
    if io.readonly:
        if rep.preen:
            rep.fatal("NO WRITE ACCESS")
        rep.say(f"** {rep.devname} (NO WRITE)")
    else:
        rep.banner(f"** {rep.devname}")
    fs, alternate = read_superblock(io, rep, opts.sblock)
    force = opts.force or opts.sblock is not None
    if fs.fs_flags & FS_DOWAPBL and rep.preen and not force:
        rep.pwarn("file system is journaled; not checking")
        return FSCK_EXIT_OK
    fs, replayed = replay_journal(io, rep, fs)
    skip_clean(fs, rep, force or replayed, alternate)
    replayed = suj_full_check(io, rep, fs) or replayed
    if opts.endian and opts.endian != fs.endian:
        rep.say("p2k fsck: byte-order conversion (-B) is not supported")
        return FSCK_EXIT_CHECK_FAILED
    ctx = Ctx(fs, io, rep, opts)
    ctx.sbdirty = check_fields(fs, rep) or replayed
    ctx.csum = read_csum(io, fs)
    mnt = fs.fs_fsmnt.split(b"\0", 1)[0].decode("utf-8", "replace")
    rep.banner(f"** Last Mounted on {mnt}")
    rep.banner("** Phase 1 - Check Blocks and Sizes")
    pass1(ctx)
    if ctx.st.dups:
        if rep.preen:
            rep.fatal("INTERNAL ERROR: dups with -p")
        rep.pwarn("** Phase 1b - Rescan For More DUPS")
        pass1b(ctx)
    rep.banner("** Phase 2 - Check Pathnames")
    pass2(ctx)
    rep.banner("** Phase 3 - Check Connectivity")
    pass3(ctx)
    rep.banner("** Phase 4 - Check Reference Counts")
    pass4(ctx)
    rep.banner("** Phase 5 - Check Cyl groups")
    rep.phase = "Phase 5"
    pass5(ctx)
    st = ctx.st
    nffree, nbfree = fs.fs_cs_nffree, fs.fs_cs_nbfree
    dsize = max(fs.fs_dsize, 1)
    frag_pct = f"{nffree * 100 // dsize}.{((nffree * 1000 + dsize // 2) // dsize) % 10}"
    rep.pwarn(f"{st.n_files} files, {st.n_blks} used, {nffree + fs.fs_frag * nbfree} free "
              f"({nffree} frags, {nbfree} blocks, {frag_pct}% fragmentation)")
    summary.update(files=st.n_files, used=st.n_blks, free=nffree + fs.fs_frag * nbfree,
                   frags=nffree, blocks=nbfree, fragmentation=float(frag_pct))
    rep.phase = "finish"
    if not io.readonly:
        _finish(ctx, alternate)
    code = FSCK_EXIT_OK
    if not rep.resolved:
        rep.pwarn("\n***** UNRESOLVED INCONSISTENCIES REMAIN *****")
        code = FSCK_EXIT_UNRESOLVED
    if io.modified and not rep.preen:
        rep.pwarn("\n***** FILE SYSTEM WAS MODIFIED *****")
    return code


def _finish(ctx: Ctx, alternate: bool) -> None:
    """ckfini: rewrite the standard superblock when needed, and mark the file system clean."""
    fs, rep, io = ctx.fs, ctx.rep, ctx.io
    if alternate and (rep.preen or rep.reply("UPDATE STANDARD SUPERBLOCK")):
        ctx.sbdirty = True
    if io.modified or ctx.sbdirty:
        fs.fs_time = now_ns() // 1_000_000_000
        ctx.sbdirty = True
    if rep.resolved and not fs.fs_clean & FS_ISCLEAN:
        if rep.preen:
            rep.pwarn("MARKING FILE SYSTEM CLEAN")
            ok = True
        else:
            ok = rep.reply("MARK FILE SYSTEM CLEAN")
        if ok:
            fs.fs_clean = FS_ISCLEAN
            fs.fs_flags &= ~(FS_UNCLEAN | FS_NEEDSFSCK)  # FreeBSD's ckfini clears them with it
            fs.fs_pendingblocks = fs.fs_pendinginodes = 0
            ctx.sbdirty = True
    if ctx.sbdirty:
        fs.fs_fmod = 0
        fs.fs_ronly = 0
        write_superblock(io, fs)
    io.flush()
