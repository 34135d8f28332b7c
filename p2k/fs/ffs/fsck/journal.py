"""fsck's WAPBL step (fsck_ffs setup.c and wapbl.c): replay the journal first, then check.

A file system with a NetBSD journal is checked as it will be seen once the journal is replayed:
with repairs allowed, the journal's blocks are written home and the log emptied before phase 1;
under -n, the replay is laid over every read (the image is not touched). Either way the
superblock is read again through the replay, ``FS_DOWAPBL`` is dropped in core (written only by a
repairing run) and the check is a full one, as fsck_ffs forces it. A log that cannot be replayed
is reported in one line ("UNABLE TO READ JOURNAL FOR REPLAY"); going on clears the journal flag
and checks the file system as it is on disk.
"""

from __future__ import annotations

from p2k.fs.ffs.fs import FS_DOWAPBL, FS_ISCLEAN, FS_NEEDSFSCK, FS_SUJ, Superblock
from p2k.fs.ffs.fsck.io import FsckIO
from p2k.fs.ffs.fsck.report import FSCK_EXIT_CHECK_FAILED, FsckExit, Reporter
from p2k.fs.ffs.fsck.setup import read_primary
from p2k.fs.ffs.wapbl import LogError, ReplayedDevice, has_log, log_state
from p2k.hyper import now_ns


def replay_journal(io: FsckIO, rep: Reporter, fs: Superblock) -> tuple[Superblock, bool]:
    """(the superblock to check with, whether the journal flag was dropped: superblock dirty)."""
    if not fs.fs_flags & FS_DOWAPBL or not has_log(fs):
        return fs, False
    try:
        rp = log_state(fs, io.device.pread, io.size, fs.fs_ncg * fs.fs_ipg)
    except LogError as e:
        rep.warn(f"UNABLE TO READ JOURNAL FOR REPLAY: {e}", kind="wapbl")
        if not rep.reply("CONTINUE"):
            raise FsckExit(FSCK_EXIT_CHECK_FAILED) from None
        rep.pwarn("CLEARING EXISTING JOURNAL")
        rep.resolved = rep.resolved and rep.mode != "n"
        fs.fs_flags &= ~FS_DOWAPBL
        return fs, True
    rep.pwarn("** File system is journaled; replaying journal")
    if not rp.empty:
        if io.readonly:
            io.device = ReplayedDevice(io.device, rp)  # type: ignore[assignment]
        else:
            rp.write_home(io.write)
            off, raw = rp.empty_header()
            io.write(off, raw)
            io.flush()
        io.invalidate()
        replayed, _ = read_primary(io)
        if replayed is not None:
            fs = replayed
    fs.fs_flags &= ~FS_DOWAPBL
    return fs, True


def suj_full_check(io: FsckIO, rep: Reporter, fs: Superblock) -> bool:
    """FreeBSD's soft-updates journal (SU+J): fsck_ffs would first try to recover from it; p2k
    does not, and falls through to the full check as FreeBSD does when the journal cannot be
    used. Like FreeBSD, a repairing run then records a new ``fs_mtime``, which makes every
    record of the old journal stale (suj.c ignores segments of another mount time), so neither
    FreeBSD's fsck nor its kernel will replay it over the checked file system. The flags and
    ``.sujournal`` stay: FreeBSD keeps using the journal after a full check. Returns whether
    the superblock changed."""
    if not fs.fs_flags & FS_SUJ:
        return False
    if not fs.fs_clean & FS_ISCLEAN and not fs.fs_flags & FS_NEEDSFSCK:
        rep.say("** Skipping journal, falling through to full fsck\n")
    if io.readonly:
        return False
    fs.fs_mtime = now_ns() // 1_000_000_000
    return True
