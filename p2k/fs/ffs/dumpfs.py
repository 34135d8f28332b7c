"""dumpfs(8) for FFS: the superblock and every cylinder group, as readable text.

The layout follows NetBSD's dumpfs: a header naming format, byte order and location, the
superblock fields in labelled columns, the per-cg summaries of the csum area, then each cylinder
group's header and its maps as ranges ("inodes used: 0-3, 7", "blks free: 32-63"). Ranges are
found with byte operations on the maps, not a Python loop per bit.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from p2k.fs.ffs.cg import Cg, cg_magic_ok
from p2k.fs.ffs.fs import Csum, Superblock, cgbase, cgtod, decode_csums
from p2k.fs.ffs.wapbl import LogError, find_log, journal_locations, open_log

Pread = Callable[[int, int], bytes]


def _t(secs: int) -> str:
    try:
        return time.strftime("%a %b %e %H:%M:%S %Y", time.gmtime(secs))
    except (OverflowError, OSError, ValueError):
        return str(secs)


def ranges(bitmap: bytes, nbits: int, base: int = 0) -> str:
    """"a-b, c, ..." of the set bits of ``bitmap`` (first ``nbits``), offset by ``base``."""
    out: list[str] = []
    val = int.from_bytes(bitmap, "little") & ((1 << nbits) - 1)
    pos = 0
    while val:
        low = (val & -val).bit_length() - 1  # first set bit
        val >>= low
        pos += low
        run = (~val & (val + 1)).bit_length() - 1  # length of the run of ones
        out.append(f"{base + pos}" if run == 1 else f"{base + pos}-{base + pos + run - 1}")
        val >>= run
        pos += run
    return ", ".join(out)


def _cols(pairs: list[tuple[str, object]]) -> str:
    return "\t".join(f"{k}\t{v}" for k, v in pairs)


def superblock_lines(fs: Superblock, devname: str) -> Iterator[str]:
    fmt = "FFSv2" if fs.ufs2 else "FFSv1"
    yield f"file system: {devname}"
    yield f"format\t{fmt}{'ea' if fs.ea else ''}"
    yield f"endian\t{'little' if fs.endian == '<' else 'big'}-endian"
    yield f"location {fs.loc}\t(-b {fs.loc // 512})"
    yield _cols([("magic", f"{fs.fs_magic:x}"), ("time", _t(fs.fs_time))])
    yield _cols([("superblock location", fs.fs_sblockloc), ("id", f"[ {fs.fs_id0 & 0xffffffff:x} "
                                                                   f"{fs.fs_id1 & 0xffffffff:x} ]")])
    yield _cols([("cylgrp", "dynamic"), ("inodes", "FFSv2" if fs.ufs2 else "4.4BSD"),
                 ("sblock", "FFSv2" if fs.ufs2 or fs.fs_old_flags & 0x80 else "FFSv1")])
    yield _cols([("nbfree", fs.fs_cs_nbfree), ("ndir", fs.fs_cs_ndir), ("nifree", fs.fs_cs_nifree),
                 ("nffree", fs.fs_cs_nffree)])
    yield _cols([("ncg", fs.fs_ncg), ("size", fs.fs_size), ("blocks", fs.fs_dsize)])
    yield _cols([("bsize", fs.fs_bsize), ("shift", fs.fs_bshift), ("mask", f"0x{fs.fs_bmask & 0xffffffff:08x}")])
    yield _cols([("fsize", fs.fs_fsize), ("shift", fs.fs_fshift), ("mask", f"0x{fs.fs_fmask & 0xffffffff:08x}")])
    yield _cols([("frag", fs.fs_frag), ("shift", fs.fs_fragshift), ("fsbtodb", fs.fs_fsbtodb)])
    yield _cols([("sbsize", fs.fs_sbsize), ("cgsize", fs.fs_cgsize), ("csaddr", fs.fs_csaddr),
                 ("cssize", fs.fs_cssize)])
    yield _cols([("sblkno", fs.fs_sblkno), ("cblkno", fs.fs_cblkno), ("iblkno", fs.fs_iblkno),
                 ("dblkno", fs.fs_dblkno)])
    yield _cols([("ipg", fs.fs_ipg), ("fpg", fs.fs_fpg), ("inopb", fs.fs_inopb), ("nindir", fs.fs_nindir)])
    yield _cols([("minfree", f"{fs.fs_minfree}%"), ("optim", "space" if fs.fs_optim else "time"),
                 ("maxcontig", fs.fs_maxcontig), ("maxbpg", fs.fs_maxbpg)])
    yield _cols([("contigsumsize", fs.fs_contigsumsize), ("maxsymlinklen", fs.fs_maxsymlinklen),
                 ("maxfilesize", f"0x{fs.fs_maxfilesize:016x}")])
    yield _cols([("avgfilesize", fs.fs_avgfilesize), ("avgfpdir", fs.fs_avgfpdir),
                 ("maxbsize", fs.fs_maxbsize)])
    if not fs.ufs2:
        yield _cols([("cpg", fs.fs_old_cpg), ("rotdelay", f"{fs.fs_old_rotdelay}ms"), ("rps", fs.fs_old_rps),
                     ("cgoffset", fs.fs_old_cgoffset), ("cgmask", f"0x{fs.fs_old_cgmask & 0xffffffff:08x}")])
    yield _cols([("flags", f"0x{fs.fs_flags:x}"), ("clean", f"0x{fs.fs_clean:02x}"),
                 ("old_flags", f"0x{fs.fs_old_flags:02x}")])
    mnt = fs.fs_fsmnt.split(b"\0", 1)[0].decode("utf-8", "replace")
    vol = fs.fs_volname.split(b"\0", 1)[0].decode("utf-8", "replace")
    yield f"fsmnt\t{mnt}"
    yield f"volname\t{vol}\tswuid\t{fs.fs_swuid}"


def wapbl_lines(fs: Superblock, pread: Pread, devsize: int) -> Iterator[str]:
    """NetBSD dumpfs's two journal lines, then what the log itself holds: where it is, its
    commit header, and what a replay would do (or why it cannot be replayed)."""
    if not (fs.fs_journal_version or fs.fs_journal_location):
        return
    j = journal_locations(fs)[0]
    try:
        j = find_log(fs, devsize)
    except LogError:
        pass
    yield _cols([("wapbl version", f"0x{fs.fs_journal_version:x}"), ("location", fs.fs_journal_location),
                 ("flags", f"0x{j.flags:x}")])
    yield _cols([("wapbl loc0", j.addr), ("loc1", j.count), ("loc2", j.blksz), ("loc3", j.ino)])
    try:
        rp = open_log(fs, pread, devsize, fs.fs_ncg * fs.fs_ipg)
    except (LogError, OSError) as e:
        yield f"wapbl log\tunreadable: {e}"
        return
    h = rp.header
    yield _cols([("wapbl log offset", rp.loc.offset), ("size", rp.loc.size),
                 ("endian", "little" if rp.endian == "<" else "big")])
    yield _cols([("generation", h.wc_generation), ("head", h.wc_head), ("tail", h.wc_tail),
                 ("circ_off", h.wc_circ_off), ("circ_size", h.wc_circ_size)])
    if rp.empty:
        yield "wapbl log\tempty"
    else:
        yield _cols([("pending transactions", rp.transactions), ("records", rp.records),
                     ("blocks", len(rp.blocks)), ("inodes", len(rp.inodes))])


@dataclass
class FsDump:
    """What dumpfs reads, as values rather than text, so that a test or a tool asks for a field
    instead of parsing a line. The cylinder groups are read one at a time, on iteration, so a
    large file system is never held in memory at once."""

    fs: Superblock
    pread: Pread
    csums: list[list[int]]  # [ndir, nbfree, nifree, nffree] per cg, from the summary area

    def cgs(self) -> Iterator[tuple[int, int, Cg | None]]:
        """(cg number, byte offset of its header, decoded header or None for a bad magic)."""
        fs = self.fs
        for c in range(fs.fs_ncg):
            off = cgtod(fs, c) * fs.fs_fsize
            buf = self.pread(off, fs.fs_cgsize)
            yield c, off, Cg(buf, fs.endian) if cg_magic_ok(buf, fs.endian) else None


def read_fs(fs: Superblock, pread: Pread) -> FsDump:
    raw = pread(fs.fs_csaddr * fs.fs_fsize, fs.fs_cssize)
    n = min(fs.fs_ncg, len(raw) // Csum.SIZE)
    return FsDump(fs, pread, decode_csums(raw, n, fs.endian))


def csum_lines(d: FsDump) -> Iterator[str]:
    yield "cs[].cs_(nbfree,ndir,nifree,nffree):"
    row = []
    for ndir, nbfree, nifree, nffree in d.csums:
        row.append(f"({nbfree},{ndir},{nifree},{nffree})")
        if len(row) == 8:
            yield "\t" + " ".join(row)
            row = []
    if row:
        yield "\t" + " ".join(row)


def cg_lines(fs: Superblock, c: int, off: int, cg: Cg | None) -> Iterator[str]:
    yield ""
    yield f"cg {c}:"
    if cg is None:
        yield f"dumpfs: cg {c}: bad magic number"
        return
    buf = cg.buf
    yield _cols([("magic", f"{cg.cg_magic:x}"), ("tell", f"{off:x}"),
                 ("time", _t(cg.cg_time if fs.ufs2 else cg.cg_old_time))])
    yield _cols([("cgx", cg.cg_cgx), ("ndblk", cg.cg_ndblk), ("niblk", cg.cg_niblk if fs.ufs2 else cg.cg_old_niblk),
                 ("initiblk", cg.cg_initediblk)])
    yield _cols([("nbfree", cg.cg_cs_nbfree), ("ndir", cg.cg_cs_ndir), ("nifree", cg.cg_cs_nifree),
                 ("nffree", cg.cg_cs_nffree)])
    yield _cols([("rotor", cg.cg_rotor), ("irotor", cg.cg_irotor), ("frotor", cg.cg_frotor)])
    yield "frsum\t" + "\t".join(str(v) for v in cg.cg_frsum[1:fs.fs_frag])
    yield f"sum of frsum: {sum(i * v for i, v in enumerate(cg.cg_frsum[:fs.fs_frag]))}"
    if fs.fs_contigsumsize > 0:
        sums = struct.unpack_from(f"{fs.endian}{fs.fs_contigsumsize}i", buf, cg.cg_clustersumoff + 4)
        yield f"clusters 1-{fs.fs_contigsumsize}:\t" + "\t".join(str(v) for v in sums)
        nblk = cg.cg_nclusterblks
        cmap = buf[cg.cg_clusteroff:cg.cg_clusteroff + (nblk + 7) // 8]
        yield f"clusters free:\t{ranges(bytes(cmap), nblk)}"
    yield f"inodes used:\t{ranges(bytes(cg.inosused()), fs.fs_ipg, c * fs.fs_ipg)}"
    yield f"blks free:\t{ranges(bytes(cg.blksfree(fs.fs_fpg)), cg.cg_ndblk, cgbase(fs, c))}"


def dumpfs(fs: Superblock, pread: Pread, devname: str, superblock_only: bool = False,
           devsize: int = 0) -> Iterator[str]:
    """dumpfs(8)'s text, line by line, from ``read_fs``; ``devsize`` lets the journal be found."""
    yield from superblock_lines(fs, devname)
    yield from wapbl_lines(fs, pread, devsize)
    if superblock_only:
        return
    d = read_fs(fs, pread)
    yield ""
    yield from csum_lines(d)
    for c, off, cg in d.cgs():
        yield from cg_lines(fs, c, off, cg)


def inode_lines(fs: Superblock, pread: Pread) -> Iterator[str]:
    """dumpfs -i: one line per allocated inode, UFS2's ext area (di_extsize, di_extb) included."""
    from p2k.fs.ffs.dinode import DinodeCodec
    from p2k.fs.ffs.fs import FS_44INODEFMT, cgimin

    codec = DinodeCodec(fs.ufs2, fs.endian, not fs.ufs2 and fs.fs_old_inodefmt < FS_44INODEFMT)
    isize = fs.inode_size
    for c in range(fs.fs_ncg):
        cgbuf = pread(cgtod(fs, c) * fs.fs_fsize, fs.fs_cgsize)
        if not cg_magic_ok(cgbuf, fs.endian):
            yield f"cg {c}: bad magic number"
            continue
        limit = min(Cg(bytearray(cgbuf), fs.endian).cg_initediblk, fs.fs_ipg) if fs.ufs2 else fs.fs_ipg
        table = pread(cgimin(fs, c) * fs.fs_fsize, limit * isize)
        for i in range(limit):
            ino = c * fs.fs_ipg + i
            ip = codec.decode(table, i * isize, ino)
            if ip.mode == 0 or ino < 2:
                continue
            line = (f"ino {ino}\tmode {ip.mode:o}\tnlink {ip.nlink}\tuid {ip.uid}\tgid {ip.gid}"
                    f"\tsize {ip.size}\tblocks {ip.blocks}\tgen {ip.gen}")
            if fs.ufs2:
                line += f"\textsize {ip.extsize}\textb {ip.extb[0]},{ip.extb[1]}"
            yield line
