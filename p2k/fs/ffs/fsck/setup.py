"""Setup: find and check the superblock, read the summary area (fsck_ffs setup.c).

The primary superblock is searched where the kernel searches (``SBLOCKSEARCH``, with its rules
about UFS1 at 65536 and ``fs_sblockloc``) and compared with the copy in the last cylinder group.
If it is unusable, fsck asks "LOOK FOR ALTERNATE SUPERBLOCKS" (answered yes even under -n, it
only decides whether to go on) and scans the device for a copy that validates, as fsck_ffs does
with the geometry it guesses from the disk label; a repairing run later rewrites the primary.
"""

from __future__ import annotations

from p2k.fs.ffs.cg import cg_layout, cg_magic_ok
from p2k.fs.ffs.fs import (
    DEV_BSIZE,
    FS_FLAGS_UPDATED,
    FS_ISCLEAN,
    FS_MAGIC_OFFSET,
    FS_UFS1_MAGIC,
    FS_UFS2_MAGIC,
    FS_UFS2EA_MAGIC,
    SBLOCK_STRUCT_SIZE,
    SBLOCK_UFS1,
    SBLOCK_UFS2,
    SBLOCKSEARCH,
    SBLOCKSIZE,
    Fs,
    Superblock,
    cgdmin,
    cgsblock,
    cgtod,
    decode_csums,
    encode_csums,
    oldfscompat_read,
    superblock_candidates,
    validate,
)
from p2k.fs.ffs.fsck.io import FsckIO
from p2k.fs.ffs.fsck.report import FSCK_EXIT_CHECK_FAILED, FSCK_EXIT_OK, FsckExit, Reporter

_MAGICS = (FS_UFS1_MAGIC, FS_UFS2_MAGIC, FS_UFS2EA_MAGIC)
FS_OPTTIME, FS_OPTSPACE = 0, 1
MINFREE_DEFAULT = 10
# NetBSD's FS_KNOWN_FLAGS plus the flags this checker understands and leaves alone: FreeBSD's
# FS_UNCLEAN and FS_NEEDSFSCK (cleared when the file system is marked clean) and FS_SUJ (kept
# after a full check, as FreeBSD's fsck_ffs keeps it; see fsck/journal.py).
KNOWN_FLAGS = 0x001 | 0x002 | 0x004 | 0x008 | 0x080 | 0x100 | 0x200 | 0x010 | 0x800 | 0x400
# Fields that must agree between the primary and an alternate (the geometry; counts, times, the
# clean flag and the mount point legitimately differ).
GEOMETRY = ("fs_sblkno", "fs_cblkno", "fs_iblkno", "fs_dblkno", "fs_ncg", "fs_bsize", "fs_fsize",
            "fs_frag", "fs_bshift", "fs_fshift", "fs_fragshift", "fs_fsbtodb", "fs_nindir",
            "fs_inopb", "fs_cssize", "fs_cgsize", "fs_ipg", "fs_fpg", "fs_size", "fs_dsize",
            "fs_csaddr", "ufs2", "fs_old_cgoffset", "fs_old_cgmask", "fs_maxsymlinklen", "fs_old_cpg",
            "fs_old_nrpos", "fs_old_inodefmt", "fs_sbsize")

FS_44INODEFMT = 2  # fs_old_inodefmt of a 4.4BSD-layout UFS1: new directories and fast symlinks


def decode_at(buf: bytes, loc: int) -> Superblock | None:
    """A superblock of either byte order in ``buf`` (read at byte ``loc``), or None."""
    if len(buf) < SBLOCK_STRUCT_SIZE:
        return None
    for endian in "<>":
        magic = Fs.field("fs_magic", endian).unpack_from(buf, FS_MAGIC_OFFSET)[0]
        if magic in _MAGICS:
            fs = Superblock.decode(buf, endian, loc)
            oldfscompat_read(fs)
            return fs
    return None


def _checked(fs: Superblock, devsize: int) -> str | None:
    """Why ``fs`` is unusable, or None. minfree and optim are repaired later, not refused here."""
    minfree = fs.fs_minfree
    try:
        fs.fs_minfree = 0
        validate(fs, devsize)
    except OSError as e:
        return e.strerror
    finally:
        fs.fs_minfree = minfree
    # Fields validate() leaves alone but that newfs and makefs always set one way: a candidate
    # with another value is damaged (the copy in the last cg decides between two that validate).
    if not 0 < fs.fs_dsize <= fs.fs_size:
        return f"data size {fs.fs_dsize} outside the file system"  # (and not writable back, on UFS1)
    if fs.fs_cssize != -(-fs.fs_ncg * 16 // fs.fs_fsize) * fs.fs_fsize:
        return f"summary size {fs.fs_cssize} wrong for {fs.fs_ncg} cylinder groups"
    sblkno, cblkno = _made_sblkno_cblkno(fs)
    if (fs.fs_sblkno, fs.fs_cblkno) != (sblkno, cblkno):
        # every newfs and makefs since 4.4BSD puts the superblock copy and the cg header here;
        # trusting another value had fsck write the superblock copy over cg 0's header
        return f"superblock/cylinder group blocks {fs.fs_sblkno}/{fs.fs_cblkno} not at {sblkno}/{cblkno}"
    need = cg_layout(fs)["cg_nextfreeoff"]
    if fs.fs_cgsize < need:
        return f"cylinder group size {fs.fs_cgsize} too small for its maps ({need} bytes)"
    if fs.fs_maxsymlinklen not in (0, 120 if fs.ufs2 else 60):
        return f"impossible symlink length {fs.fs_maxsymlinklen}"
    if fs.fs_sblockloc not in SBLOCKSEARCH:
        return f"superblock location {fs.fs_sblockloc} is not a standard one"
    fs.fs_qbmask = fs.fs_bsize - 1
    fs.fs_qfmask = fs.fs_fsize - 1
    return None


def _made_sblkno_cblkno(fs: Superblock) -> tuple[int, int]:
    """Where newfs and makefs put each group's superblock copy and header (fragments from the
    group's start): just past the superblock's own place, each rounded up to a whole block."""
    def frags_in_blocks(nbytes: int) -> int:  # roundup(howmany(nbytes, fsize), frag)
        frags = (nbytes + fs.fs_fsize - 1) // fs.fs_fsize
        return (frags + fs.fs_frag - 1) // fs.fs_frag * fs.fs_frag

    sblkno = frags_in_blocks(fs.fs_sblockloc + SBLOCKSIZE)
    return sblkno, sblkno + frags_in_blocks(SBLOCKSIZE)


def read_primary(io: FsckIO) -> tuple[Superblock | None, str]:
    reason = "MAGIC NUMBER WRONG"
    for _loc, fs in superblock_candidates(io.read, io.size):
        why = _checked(fs, io.size)
        if why is None:
            return fs, ""
        reason = why.upper()
    return None, reason


def disagrees_with_alternate(io: FsckIO, fs: Superblock) -> bool:
    """fsck_ffs compares the primary with the copy in the last cylinder group."""
    off = cgsblock(fs, fs.fs_ncg - 1) * fs.fs_fsize
    if off + SBLOCK_STRUCT_SIZE > io.size:
        return False
    alt = decode_at(io.read(off, SBLOCK_STRUCT_SIZE), off)
    if alt is None or alt.endian != fs.endian:
        return True
    return any(getattr(alt, f) != getattr(fs, f) for f in GEOMETRY)


def _is_primary_slot(fs: Superblock, loc: int) -> bool:
    return (loc == SBLOCK_UFS2 and fs.ufs2) or (loc == SBLOCK_UFS1 and not fs.ufs2)


def search_alternates(io: FsckIO, after: int) -> Superblock | None:
    """Scan the device for a superblock copy that validates (on a DEV_BSIZE boundary)."""
    pats = [Fs.field("fs_magic", e).pack(m) for e in "<>" for m in _MAGICS]
    chunk = 1 << 20
    pos = after - after % DEV_BSIZE
    while pos < io.size:
        n = min(chunk + SBLOCK_STRUCT_SIZE, io.size - pos)
        buf = io.read(pos, n)
        hits = []
        for p in pats:
            i = buf.find(p)
            while i != -1:
                start = i - FS_MAGIC_OFFSET
                if start >= 0 and (pos + start) % DEV_BSIZE == 0 and start < chunk:
                    hits.append(pos + start)
                i = buf.find(p, i + 1)
        for loc in sorted(hits):
            if loc <= after:
                continue
            fs = decode_at(io.read(loc, min(SBLOCKSIZE, io.size - loc)), loc)
            if fs is not None and _is_primary_slot(fs, loc):
                continue  # the primary just rejected (UFS2 at 65536), not an alternate
            if fs is not None and _checked(fs, io.size) is None:
                return fs
        pos += chunk
    return None


def read_superblock(io: FsckIO, rep: Reporter, sblock: int | None) -> tuple[Superblock, bool]:
    """The superblock to check with, and whether it is an alternate (the primary needs rewriting)."""
    if sblock is not None:
        loc = sblock * DEV_BSIZE
        fs = None
        if 0 <= loc and loc + SBLOCK_STRUCT_SIZE <= io.size:
            fs = decode_at(io.read(loc, min(SBLOCKSIZE, io.size - loc)), loc)
        why = "MAGIC NUMBER WRONG" if fs is None else _checked(fs, io.size)
        if fs is None or why:
            rep.pwarn(f"BAD SUPER BLOCK: {why}")
            rep.fatal("CAN'T CHECK FILE SYSTEM.") if rep.preen else None
            raise FsckExit(FSCK_EXIT_CHECK_FAILED)
        check_last_copy(io, rep, fs)
        return fs, loc != fs.fs_sblockloc
    fs, reason = read_primary(io)
    if fs is not None and disagrees_with_alternate(io, fs) and not primary_wins(io, fs):
        fs, reason = None, "VALUES IN SUPER BLOCK DISAGREE WITH THOSE IN FIRST ALTERNATE"
    if fs is not None:
        check_last_copy(io, rep, fs)
        return fs, False
    rep.warn(f"BAD SUPER BLOCK: {reason}", kind="superblock")
    if rep.preen:
        rep.fatal("CAN'T CHECK FILE SYSTEM.")
    if not rep.reply("LOOK FOR ALTERNATE SUPERBLOCKS"):
        raise FsckExit(FSCK_EXIT_CHECK_FAILED)
    alt = search_alternates(io, SBLOCKSEARCH[1])
    if alt is None:
        rep.say("SEARCH FOR ALTERNATE SUPER-BLOCK FAILED. YOU MUST USE THE\n-b OPTION TO FSCK_FFS "
                "TO SPECIFY THE\nLOCATION OF AN ALTERNATE SUPER-BLOCK TO SUPPLY NEEDED\n"
                "INFORMATION; SEE fsck_ffs(8).")
        raise FsckExit(FSCK_EXIT_CHECK_FAILED)
    rep.warn(f"USING ALTERNATE SUPERBLOCK AT {alt.loc // DEV_BSIZE}", kind="alternate superblock")
    rep.resolved = rep.resolved and rep.mode != "n"
    check_last_copy(io, rep, alt)
    return alt, True


def _same_geometry(a: Superblock | None, b: Superblock) -> bool:
    return a is not None and a.endian == b.endian and all(getattr(a, f) == getattr(b, f) for f in GEOMETRY)


def _copy_at(io: FsckIO, loc: int) -> Superblock | None:
    if loc <= 0 or loc + SBLOCK_STRUCT_SIZE > io.size:
        return None
    return decode_at(io.read(loc, min(SBLOCKSIZE, io.size - loc)), loc)


def primary_wins(io: FsckIO, fs: Superblock) -> bool:
    """The primary validates but the copy in the last cylinder group disagrees: which is wrong?
    Another copy decides (the first groups' copies, found with the primary's geometry); with one
    cylinder group there is none, and the primary is kept if its own cg 0 is where it says and its
    counts are possible. Without this, a damaged last copy made every check fail ("SEARCH FOR
    ALTERNATE SUPER-BLOCK FAILED") or replaced a good primary."""
    for c in range(min(2, fs.fs_ncg - 1)):
        other = _copy_at(io, cgsblock(fs, c) * fs.fs_fsize)
        if other is not None and _checked(other, io.size) is None:
            return _same_geometry(other, fs)
    last = _copy_at(io, cgsblock(fs, fs.fs_ncg - 1) * fs.fs_fsize)
    if last is not None and _checked(last, io.size) is None and not _as_made(fs) and _as_made(last):
        return False
    off = cgtod(fs, 0) * fs.fs_fsize
    if off + fs.fs_cgsize > io.size:
        return False
    cg = io.read(off, fs.fs_cgsize)
    bounds = (fs.fs_ncg * fs.fs_ipg, fs.fs_size // fs.fs_frag, fs.fs_ncg * fs.fs_ipg, fs.fs_size)
    return (cg_magic_ok(cg, fs.endian) and 0 < fs.fs_dsize <= fs.fs_size
            and all(0 <= v <= b for v, b in zip(fs.cstotal, bounds, strict=True)))


def _as_made(fs: Superblock) -> bool:
    """Layout facts newfs and makefs always write one way: the summary area at the start of cg 0's
    data, and a 4.4BSD format's fast-symlink length. Between a primary that breaks one and a copy
    that does not, the copy is right: keeping the primary would have fsck write the summary over
    the inodes, or read every directory in the 4.2BSD format."""
    new_format = fs.ufs2 or fs.fs_old_inodefmt >= FS_44INODEFMT
    return fs.fs_csaddr == cgdmin(fs, 0) and (not new_format or fs.fs_maxsymlinklen == (120 if fs.ufs2 else 60))


def check_last_copy(io: FsckIO, rep: Reporter, fs: Superblock) -> None:
    """The copy in the last cylinder group is what the next check compares with: one that
    disagrees with the superblock in use is rewritten from it (a plain ``fsck -y`` after
    ``fsck -b N -y`` would otherwise fail again)."""
    loc = cgsblock(fs, fs.fs_ncg - 1) * fs.fs_fsize
    if loc == fs.loc or loc + fs.fs_sbsize > io.size or _same_geometry(_copy_at(io, loc), fs):
        return
    if rep.ask(f"SUPERBLOCK COPY AT {loc // DEV_BSIZE} DISAGREES WITH THE ONE IN USE", "UPDATE",
               preen_action="UPDATED", kind="superblock copy", field="geometry", block=loc // DEV_BSIZE):
        write_superblock(io, fs, loc)


def check_fields(fs: Superblock, rep: Reporter) -> bool:
    """The superblock fields fsck_ffs repairs in place; returns True if any was changed."""
    changed = False
    if fs.fs_optim not in (FS_OPTTIME, FS_OPTSPACE):
        if rep.ask("UNDEFINED OPTIMIZATION IN SUPERBLOCK", "SET TO DEFAULT", kind="superblock",
                   field="fs_optim"):
            fs.fs_optim = FS_OPTTIME
            changed = True
    if not 0 <= fs.fs_minfree <= 99:
        if rep.ask(f"IMPOSSIBLE MINFREE={fs.fs_minfree} IN SUPERBLOCK", "SET TO DEFAULT", kind="superblock",
                   field="fs_minfree"):
            fs.fs_minfree = MINFREE_DEFAULT
            changed = True
    want = 120 if fs.ufs2 else 60  # the bytes a fast symlink keeps in the inode
    if (fs.ufs2 or fs.fs_old_inodefmt >= FS_44INODEFMT) and fs.fs_maxsymlinklen != want:
        # A 4.4BSD-format file system with another value would have its directories read in the
        # 4.2BSD format (fsck_ffs setup.c: "INCORRECT MAXSYMLINKLEN").
        if rep.ask(f"INCORRECT MAXSYMLINKLEN={fs.fs_maxsymlinklen} IN SUPERBLOCK", "FIX", kind="superblock",
                   field="fs_maxsymlinklen"):
            fs.fs_maxsymlinklen = want
            changed = True
    unknown = fs.fs_flags & ~KNOWN_FLAGS & 0x7FFFFFFF
    if unknown:
        if rep.ask(f"UNKNOWN FLAGS={unknown:#x} IN SUPERBLOCK", "CLEAR", kind="superblock", field="fs_flags"):
            fs.fs_flags &= ~unknown
            if not fs.ufs2 and not fs.fs_old_flags & FS_FLAGS_UPDATED:
                fs.fs_old_flags &= ~unknown  # where an old UFS1 keeps its flags (oldfscompat_read)
            changed = True
    return changed


def skip_clean(fs: Superblock, rep: Reporter, force: bool, alternate: bool) -> None:
    """A clean file system is not checked unless -f (or an alternate superblock is in use)."""
    if fs.fs_clean & FS_ISCLEAN:
        if not force and not alternate:
            rep.pwarn("file system is clean; not checking" if rep.preen
                      else "** File system is clean; not checking")
            raise FsckExit(FSCK_EXIT_OK)
        rep.banner("** File system is already clean")


def read_csum(io: FsckIO, fs: Superblock) -> list[list[int]]:
    """The per-cg summaries (``struct csum``: ndir, nbfree, nifree, nffree) of the csum area."""
    raw = io.read(fs.fs_csaddr * fs.fs_fsize, fs.fs_cssize)
    return decode_csums(raw, fs.fs_ncg, fs.endian)


def write_csum(io: FsckIO, fs: Superblock, csum: list[list[int]]) -> None:
    off = fs.fs_csaddr * fs.fs_fsize
    raw = bytearray(io.read(off, fs.fs_cssize))
    body = encode_csums(csum, fs.endian)
    raw[:len(body)] = body
    io.write(off, raw)


def write_superblock(io: FsckIO, fs: Superblock, loc: int | None = None) -> None:
    """Write the superblock at its standard place (or at copy ``loc``); UFS1 keeps its old
    fields in step."""
    if not fs.ufs2:
        # (clamped: a copy is written before phase 5 has recomputed damaged totals)
        fs.fs_old_cs_ndir, fs.fs_old_cs_nbfree, fs.fs_old_cs_nifree, fs.fs_old_cs_nffree = (
            max(min(v, 2**31 - 1), -(2**31)) for v in fs.cstotal)
        fs.fs_old_time = fs.fs_time & 0xFFFFFFFF if fs.fs_time < 2**31 else fs.fs_old_time
        fs.fs_old_size, fs.fs_old_dsize, fs.fs_old_csaddr = fs.fs_size, fs.fs_dsize, fs.fs_csaddr
    io.write(fs.fs_sblockloc if loc is None else loc, fs.encode())
