"""Phase 1 - Check Blocks and Sizes (fsck_ffs pass1.c).

Each cylinder group's inode table is read with one read per few megabytes (UFS2: only up to
``cg_initediblk``); the modes of all its inodes are pulled out with one ``struct.iter_unpack``, so
only allocated inodes cost a full decode. For each allocated inode: type, size against the block
pointers, every block address in range, each fragment claimed in the in-core map (a fragment
claimed twice is a DUP), and ``di_blocks`` against what was counted.
"""

from __future__ import annotations

from p2k.fs.ffs.cg import Cg, CgHeader, cg_layout_sane, cg_magic_ok
from p2k.fs.ffs.fs import (
    UFS_NDADDR,
    UFS_NIADDR,
    cgbase,
    cgdmin,
    cgimin,
    cgsblock,
    cgtod,
    maxfilesize,
)
from p2k.fs.ffs.fsck.ctx import Ctx
from p2k.fs.ffs.fsck.extattr import check_records, ext_bad_size, ext_blocks
from p2k.fs.ffs.fsck.inode import KEEPON, SKIP, STOP, ckinode, has_blocks
from p2k.fs.ffs.fsck.pass1fast import FastScan
from p2k.fs.ffs.fsck.report import FSCK_EXIT_CHECK_FAILED, FsckExit, Reporter
from p2k.fs.ffs.fsck.state import DCLEAR, DSTATE, FCLEAR, FSTATE, USTATE
from p2k.fs.ffs.inode import IFBLK, IFCHR, IFDIR, IFLNK, IFMT, VALID_TYPES, Inode

MAXBAD = 10
MAXDUP = 10
READ_CHUNK = 4 << 20
_INITEDIBLK = CgHeader.OFFSETS["cg_initediblk"]


def mark_metadata(ctx: Ctx) -> None:
    """Superblock copies, cg headers, inode tables and the summary area are in use."""
    fs, st = ctx.fs, ctx.st
    for c in range(fs.fs_ncg):
        start = cgbase(fs, c) if c == 0 else cgsblock(fs, c)
        st.claim_range(start, min(cgdmin(fs, c), st.maxfsblock))
    csfrags = -(-fs.fs_cssize // fs.fs_fsize)
    st.claim_range(fs.fs_csaddr, fs.fs_csaddr + csfrags)


def cg_inode_limit(ctx: Ctx, c: int) -> int:
    """Inodes of cg ``c`` that may be in use: all of them, or up to cg_initediblk on UFS2."""
    fs = ctx.fs
    buf = ctx.io.read(cgtod(fs, c) * fs.fs_fsize, fs.fs_cgsize)
    if not cg_magic_ok(buf, fs.endian):
        ctx.st.cg_bad.add(c)
        ctx.rep.fatal(f"CG {c}: BAD MAGIC NUMBER")
        return fs.fs_ipg
    if not fs.ufs2:
        return fs.fs_ipg
    n: int = min(CgHeader.field("cg_initediblk", fs.endian).unpack_from(buf, _INITEDIBLK)[0], fs.fs_ipg)
    # A cg_initediblk damaged low would hide allocated inodes (the root among them): trust the
    # inode map as far as it shows inodes in use, when the header's offsets can be trusted.
    cg = Cg(buf, fs.endian)
    if n < fs.fs_ipg and cg_layout_sane(cg, fs):
        imap = bytes(cg.inosused()[:(fs.fs_ipg + 7) // 8]).rstrip(b"\0")
        if imap:
            top = (len(imap) - 1) * 8 + imap[-1].bit_length()
            n = max(n, min(fs.fs_ipg, -(-top // fs.fs_inopb) * fs.fs_inopb))
    return n


def pass1(ctx: Ctx) -> None:
    fs, st, rep = ctx.fs, ctx.st, ctx.rep
    rep.phase = "Phase 1"
    mark_metadata(ctx)
    isize = ctx.isize
    maxsize = maxfilesize(fs)
    fast = FastScan(ctx, maxsize, lambda buf, off, ino: check_inode(ctx, ctx.codec.decode(buf, off, ino), maxsize),
                    lambda ino: _partially_allocated(ctx, ino))
    for c in range(fs.fs_ncg):
        rep.progress(c * fs.fs_ipg, fs.fs_ncg * fs.fs_ipg)  # inodes scanned
        limit = cg_inode_limit(ctx, c)
        st.inosused_limit.append(limit)
        base_ino = c * fs.fs_ipg
        per_read = max(fs.fs_inopb, (READ_CHUNK // isize) // fs.fs_inopb * fs.fs_inopb)
        for first in range(0, limit, per_read):
            n = min(per_read, limit - first)
            buf = ctx.io.read(cgimin(fs, c) * fs.fs_fsize + first * isize, n * isize)
            fast.scan(buf, base_ino + first)
    rep.progress_done()


def _partially_allocated(ctx: Ctx, ino: int) -> None:
    if ctx.rep.ask(f"PARTIALLY ALLOCATED INODE I={ino}", "CLEAR", ino=ino, kind="partially allocated", field="di_mode"):
        ctx.io.write(ctx.inode_offset(ino), bytes(ctx.isize))


def _bad_size(ctx: Ctx, ip: Inode, maxsize: int) -> str | None:
    """Why the size disagrees with the block pointers (pass1's "bad size" tests), or None."""
    fs = ctx.fs
    t = ip.mode & IFMT
    if ip.size > maxsize:
        return f"size {ip.size} beyond the largest file"
    if t == IFDIR and ip.size and not ip.db[0]:
        return "directory without its first block"  # no "." or "..": nothing phase 2 could repair
    ext = ext_bad_size(ctx, ip)
    if ext:
        return ext
    if not has_blocks(ctx, ip):
        if t == IFLNK:
            return None  # a fast symlink keeps its target in the address fields
        ndb = 1  # a device keeps its dev_t in di_db[0]
    else:
        ndb = -(-ip.size // fs.fs_bsize)
    for j in range(min(ndb, UFS_NDADDR), UFS_NDADDR):
        if ip.db[j]:
            return f"size {ip.size} but block {j} allocated"
    need = ndb - UFS_NDADDR
    levels = 0
    span = 1
    while need > 0 and levels < UFS_NIADDR:
        span *= fs.fs_nindir
        need -= span
        levels += 1
    if ndb > UFS_NDADDR and levels == 0:
        levels = 1
    for j in range(levels, UFS_NIADDR):
        if ip.ib[j]:
            return f"size {ip.size} but indirect block level {j + 1} allocated"
    return None


def check_inode(ctx: Ctx, ip: Inode, maxsize: int) -> None:
    fs, st, rep = ctx.fs, ctx.st, ctx.rep
    ino = ip.ino
    t = ip.mode & IFMT
    why = "type" if t not in VALID_TYPES else _bad_size(ctx, ip, maxsize)
    if why is not None:
        st.statemap[ino] = FCLEAR
        if rep.ask(f"UNKNOWN FILE TYPE I={ino}" + ("" if why == "type" else f" ({why})"), "CLEAR",
                   ino=ino, kind="unknown file type", reason=why,
                   field="di_mode" if why == "type" else "di_size"):
            st.statemap[ino] = USTATE
            ctx.io.write(ctx.inode_offset(ino), bytes(ctx.isize))
        return
    st.n_files += 1
    st.lncnt[ino] = ip.nlink
    if ip.nlink <= 0:
        st.zlnlist.append(ino)
    if t == IFDIR:
        st.statemap[ino] = DCLEAR if ip.size == 0 else DSTATE
        st.dirs.append(ino)
    else:
        st.statemap[ino] = FSTATE
    st.typemap[ino] = (ip.mode >> 12) & 0xF
    counted = 0
    bad = 0
    dup = 0
    maxf = st.maxfsblock

    calls = 0

    def check(frag: int, n: int, lbn: int, level: int) -> int:
        nonlocal counted, bad, dup, calls
        calls += 1
        if frag < 0 or frag + n > maxf or (frag % fs.fs_frag + n > fs.fs_frag):
            rep.warn(f"{frag} BAD I={ino}", ino=ino, kind="bad block", block=frag,
                     field=_addr_field(lbn, level))
            _blkerror(ctx, ino)
            bad += 1
            if bad >= MAXBAD:
                return _excessive(rep, f"EXCESSIVE BAD BLKS I={ino}", ino, "excessive bad")
            return SKIP
        counted += n
        already = st.claim(frag, n)
        if not already:
            st.n_blks += n
            return KEEPON
        st.n_blks += n - bin(already).count("1")
        for k in range(n):
            if already >> ((frag + k) & 7) & 1:
                f = frag + k
                rep.warn(f"{f} DUP I={ino}", ino=ino, kind="dup block", block=f, field=_addr_field(lbn, level))
                st.dups[f] = st.dups.get(f, 0) + 1
                dup += 1
        _blkerror(ctx, ino)
        if dup >= MAXDUP:
            return _excessive(rep, f"EXCESSIVE DUP BLKS I={ino}", ino, "excessive dup")
        return KEEPON

    if ip.extsize:
        check_records(ctx, ip)  # may truncate the area: before its blocks are claimed
    if ckinode(ctx, ip, check) == STOP:
        st.stopped[ino] = calls  # clri may give back only what this scan claimed
    if t in (IFBLK, IFCHR):
        counted = 0
    ext_blocks(ctx, ip, check)
    sectors = counted * (fs.fs_fsize // 512)
    if ip.blocks != sectors and st.statemap[ino] not in (FCLEAR, DCLEAR):
        if rep.ask(f"INCORRECT BLOCK COUNT I={ino} ({ip.blocks} should be {sectors})", "CORRECT",
                   preen_action="CORRECTED", ino=ino, kind="incorrect block count",
                   field="di_blocks"):
            ip.blocks = sectors
            ctx.inodirty(ip)


def _addr_field(lbn: int, level: int) -> str:
    """Which pointer held a bad or duplicate address, for --json."""
    if level >= 0:
        return f"address of a level-{level + 1} indirect block (logical block {lbn})"
    return f"di_db[{lbn}]" if lbn < UFS_NDADDR else f"indirect pointer for logical block {lbn}"


def _excessive(rep: Reporter, msg: str, ino: int, kind: str) -> int:
    """Too many bad or duplicate blocks in one inode: stop scanning it (preen), or ask whether to
    go on with the check at all, as fsck_ffs does."""
    rep.warn(msg, ino=ino, kind=kind)
    if not rep.preen and not rep.reply("CONTINUE"):
        raise FsckExit(FSCK_EXIT_CHECK_FAILED)
    return STOP


def _blkerror(ctx: Ctx, ino: int) -> None:
    """A bad or duplicate block condemns its inode: phase 2 removes its names, phase 4 clears it."""
    st = ctx.st
    s = st.statemap[ino]
    if s == FSTATE:
        st.statemap[ino] = FCLEAR
    elif s == DSTATE:
        st.statemap[ino] = DCLEAR
