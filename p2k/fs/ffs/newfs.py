"""Creating a file system (NetBSD ``sbin/newfs``: ``newfs.c`` defaults, ``mkfs.c`` geometry).

Defaults are NetBSD's, chosen by size: below 20 MB 512-byte fragments and 4 KiB blocks, below
1000 MB 1 KiB/8 KiB, above that 2 KiB/16 KiB; one inode per ``4 × fsize`` bytes; minfree 5 %;
optimisation for time; ``maxcontig = 64 KiB / bsize``; ``maxbpg`` one indirect block's worth.
The cylinder-group size is the largest that keeps the cg header in one block while leaving at
least four groups (mkfs's MINCYLGRPS rule); a last group too small for its own metadata and a
block of data is dropped. UFS1 puts its superblock at 8192, UFS2 at 65536; the root directory
is inode 2 and ``lost+found`` (a whole block of empty chunks, so fsck can fill it without
allocating) inode 3, as NetBSD's newfs makes them.

The empty file system is laid out directly (cgs, inode tables, summary area, superblock and its
backups); the root and lost+found are then made with the write path's allocator, so what newfs
writes obeys exactly the accounting the kernel keeps.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from dataclasses import dataclass

from p2k.fs.ffs.bitmap import set_bits
from p2k.fs.ffs.cg import CG_MAGIC, Cg, CgHeader
from p2k.fs.ffs.dinode import DinodeCodec
from p2k.fs.ffs.dir import DIRBLKSIZ, DIRECT, dir_template, pack_entry
from p2k.fs.ffs.ffs_alloc import Allocator
from p2k.fs.ffs.fs import (
    FS_44INODEFMT,
    FS_FLAGS_UPDATED,
    FS_ISCLEAN,
    FS_UFS1_MAGIC,
    FS_UFS2_MAGIC,
    MAXBSIZE,
    MINBSIZE,
    SBLOCK_STRUCT_SIZE,
    SBLOCK_UFS1,
    SBLOCK_UFS2,
    SBLOCKSIZE,
    Superblock,
    cgbase,
    cgdmin,
    cgimin,
    cgsblock,
    cgtod,
    encode_csums,
    ino_to_fsba,
    ino_to_fsbo,
    maxfilesize,
)
from p2k.fs.ffs.inode import IFDIR, Inode
from p2k.hyper import MemAccount, Window, now_ns, random_bytes, random_u32
from p2k.hyper.hostio import HostFile, create_host_file, host_path_exists
from p2k.vfs.bufcache import BufCache

FS_OPTTIME = 0
FS_OPTSPACE = 1
MINFREE = 5
NFPI = 4
MINCYLGRPS = 4
FS_MAXCONTIG = 16
AVFILESIZ = 16384
AFPDIR = 64
SMALL_FSSIZE = 20 * 1024 * 1024
MEDIUM_FSSIZE = 1000 * 1024 * 1024


@dataclass
class NewfsOptions:
    size: int  # bytes
    version: int = 1
    bsize: int = 0
    fsize: int = 0
    density: int = 0  # bytes per inode
    ninodes: int = 0
    minfree: int = MINFREE
    optim: int = FS_OPTTIME
    endian: str = "<"
    maxbpg: int = 0
    avgfilesize: int = AVFILESIZ
    avgfpdir: int = AFPDIR
    sblockloc: int = 0  # 0: the version's standard location
    layout: str = "newfs"  # "makefs": makefs's cylinder groups (see _Geometry)
    lost_found: bool = True
    volname: bytes = b""


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _roundup(a: int, b: int) -> int:
    return _ceil(a, b) * b


def defaults(o: NewfsOptions) -> NewfsOptions:
    """Fill in NetBSD newfs's size-dependent defaults; EINVAL for impossible combinations."""
    if o.version not in (1, 2):
        raise OSError(errno.EINVAL, f"unknown format version {o.version} (1 or 2)")
    if o.fsize == 0:
        o.fsize = o.bsize // 8 if o.bsize else (
            512 if o.size < SMALL_FSSIZE else 1024 if o.size < MEDIUM_FSSIZE else 2048)
    if o.bsize == 0:
        o.bsize = 8 * o.fsize
    for name, v in (("block size", o.bsize), ("fragment size", o.fsize)):
        if v <= 0 or v & (v - 1):
            raise OSError(errno.EINVAL, f"{name} {v} is not a power of 2")
    if not MINBSIZE <= o.bsize <= MAXBSIZE:
        raise OSError(errno.EINVAL, f"block size {o.bsize} outside {MINBSIZE}..{MAXBSIZE}")
    if o.fsize < 512 or o.fsize > o.bsize or o.bsize // o.fsize > 8:
        raise OSError(errno.EINVAL, f"fragment size {o.fsize} impossible with block size {o.bsize}")
    if not 0 <= o.minfree <= 99:
        raise OSError(errno.EINVAL, f"minfree {o.minfree} outside 0..99")
    if o.density == 0:
        o.density = NFPI * o.fsize
    if o.minfree < MINFREE and o.optim != FS_OPTSPACE:
        o.optim = FS_OPTSPACE  # NetBSD newfs: "changing optimization to space"
    if o.maxbpg == 0:
        o.maxbpg = o.bsize // (8 if o.version == 2 else 4)
    if o.sblockloc == 0:
        o.sblockloc = SBLOCK_UFS2 if o.version == 2 else SBLOCK_UFS1
    return o


def _cgsize(ufs2: bool, contig: int, frag: int, ipg: int, fpg: int) -> int:
    """fs.h CGSIZE: the bytes a cg header with these maps needs."""
    old_cpg = 0 if ufs2 else 1
    size = 176 + 4 + old_cpg * 4 + old_cpg * 2 + _ceil(ipg, 8) + _ceil(fpg, 8)
    if contig > 0:
        size += contig * 4 + _ceil(fpg // frag, 8)
    return size


class _Geometry:
    """Blocks and inodes per cylinder group, the two ways NetBSD chooses them.

    newfs (sbin/newfs/mkfs.c) keeps at least MINCYLGRPS groups and drops a last group too small
    to be useful; makefs (usr.sbin/makefs/ffs/mkfs.c) packs each group until its maps fill one
    block, whatever the group count, and shrinks the groups until the last one is viable, so
    that an image sized to its tree keeps every byte it was given.
    """

    def __init__(self, ufs2: bool, bsize: int, frag: int, inopb: int, inopf: int, iblkno: int,
                 contig: int, total: int, fragsperinode: int, ninodes: int) -> None:
        self.ufs2, self.bsize, self.frag, self.inopb, self.inopf = ufs2, bsize, frag, inopb, inopf
        self.iblkno, self.contig, self.total = iblkno, contig, total
        self.fragsperinode, self.ninodes = fragsperinode, ninodes

    def ipg(self, fpg: int) -> int:
        # -n asks for a number of inodes, which may exceed one per fragment
        want = _ceil(fpg * self.ninodes, self.total) if self.ninodes else _ceil(fpg, self.fragsperinode)
        return max(_roundup(want, self.inopb), self.inopb)

    def cgsize(self, fpg: int) -> int:
        return _cgsize(self.ufs2, self.contig, self.frag, self.ipg(fpg), fpg)

    def newfs(self) -> tuple[int, int, int, int]:
        frag, total = self.frag, self.total

        def fits(fpg: int) -> bool:
            """The cg header with its maps fits in one block (monotonic in fpg)."""
            if not self.ufs2 and self.ipg(fpg) > 0x7FFF:
                return False
            return self.cgsize(fpg) <= self.bsize

        lo, hi = 1, max(1, min(self.bsize * 8, _ceil(total, frag) * frag) // frag)
        if total // MINCYLGRPS >= 16 * frag:  # MINCYLGRPS: prefer at least four groups
            hi = max(1, min(hi, total // MINCYLGRPS // frag))
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits(mid * frag):
                lo = mid
            else:
                hi = mid - 1
        fpg = lo * frag
        ipg = self.ipg(fpg)
        if self.iblkno + ipg // self.inopf + frag > fpg:
            raise OSError(errno.ENOSPC, f"file system of {total * (self.bsize // frag)} bytes is too small")
        ncg = _ceil(total, fpg)
        if ncg > 1 and total - (ncg - 1) * fpg < self.iblkno + ipg // self.inopf + frag:
            ncg -= 1
            total = ncg * fpg
        return fpg, ipg, ncg, total

    def makefs(self) -> tuple[int, int, int, int]:
        frag, total = self.frag, self.total
        minfpg = min(self.fragsperinode * self.inopb, total)
        fpg = max(_roundup(self.iblkno + self.inopb // self.inopf, frag), minfpg)
        fpg = max(_roundup(self.iblkno + self.ipg(fpg) // self.inopf, frag), minfpg)
        # grow by whole blocks while the maps still fit in one block, up to the whole size
        lo, hi = 0, max(0, _ceil(total - 1 - fpg, frag))
        if self.cgsize(fpg) > self.bsize:
            raise OSError(errno.EINVAL, "bytes per inode too large for one cylinder group map")
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.cgsize(fpg + mid * frag) <= self.bsize:
                lo = mid
            else:
                hi = mid - 1
        fpg += lo * frag
        while True:  # the last group must hold its own metadata
            ipg = self.ipg(fpg)
            lastmin = _roundup(self.iblkno + ipg // self.inopf, frag)
            if total < lastmin:
                raise OSError(errno.ENOSPC, f"file system size {total} < minimum size of {lastmin}")
            if total % fpg >= lastmin or total % fpg == 0:
                return fpg, ipg, _ceil(total, fpg), total
            fpg -= frag


def plan(o: NewfsOptions) -> Superblock:
    """The superblock of the new file system (all geometry; summary counts of the empty fs).
    One function because it follows newfs's mkfs() step by step, each value from the ones before
    it; split up, the order that makes it right would be spread over several places."""
    o = defaults(o)
    ufs2 = o.version == 2
    bsize, fsize = o.bsize, o.fsize
    frag = bsize // fsize
    isize = 256 if ufs2 else 128
    inopb = bsize // isize
    total = o.size // fsize
    maxcontig = max(1, MAXBSIZE // bsize)
    contig = min(maxcontig, FS_MAXCONTIG)
    sblkno = _roundup(_ceil(o.sblockloc + SBLOCKSIZE, fsize), frag)
    cblkno = sblkno + _roundup(_ceil(SBLOCKSIZE, fsize), frag)
    iblkno = cblkno + frag
    fragsperinode = max(1, o.density // fsize)  # mkfs: numfrags(density), rounded down
    inopf = max(inopb // frag, 1)
    geo = _Geometry(ufs2, bsize, frag, inopb, inopf, iblkno, contig, total, fragsperinode, o.ninodes)
    fpg, ipg, ncg, total = geo.makefs() if o.layout == "makefs" else geo.newfs()
    dblkno = iblkno + ipg // inopf
    cssize = _roundup(ncg * 16, fsize)
    if dblkno + _ceil(cssize, fsize) + 3 * frag > min(fpg, total):
        raise OSError(errno.ENOSPC, f"file system of {o.size} bytes is too small")
    fs = Superblock.new(o.endian)
    fs.ufs2 = ufs2
    fs.loc = o.sblockloc
    t = now_ns() // 1_000_000_000
    sbsize = min(_roundup(SBLOCK_STRUCT_SIZE, fsize), SBLOCKSIZE)
    fs.raw_tail = bytes(sbsize - SBLOCK_STRUCT_SIZE)
    fs.update(fs_sblkno=sblkno, fs_cblkno=cblkno, fs_iblkno=iblkno, fs_dblkno=dblkno,
              fs_ncg=ncg, fs_bsize=bsize, fs_fsize=fsize, fs_frag=frag, fs_minfree=o.minfree,
              fs_bmask=~(bsize - 1), fs_fmask=~(fsize - 1), fs_bshift=bsize.bit_length() - 1,
              fs_fshift=fsize.bit_length() - 1, fs_maxcontig=maxcontig, fs_maxbpg=o.maxbpg,
              fs_fragshift=frag.bit_length() - 1, fs_fsbtodb=(fsize // 512).bit_length() - 1,
              fs_sbsize=sbsize, fs_nindir=bsize // (8 if ufs2 else 4), fs_inopb=inopb,
              fs_optim=o.optim, fs_id0=t, fs_id1=random_u32() & 0x7FFFFFFF, fs_cssize=cssize,
              fs_cgsize=_roundup(_cgsize(ufs2, contig, frag, ipg, fpg), fsize), fs_ipg=ipg, fs_fpg=fpg,
              fs_clean=FS_ISCLEAN, fs_old_flags=FS_FLAGS_UPDATED, fs_maxbsize=bsize,
              fs_sblockloc=o.sblockloc, fs_time=t, fs_size=total, fs_csaddr=dblkno,
              fs_avgfilesize=o.avgfilesize, fs_avgfpdir=o.avgfpdir, fs_contigsumsize=contig,
              fs_maxsymlinklen=(UFS2_MAXSYMLINKLEN if ufs2 else UFS1_MAXSYMLINKLEN),
              fs_old_inodefmt=FS_44INODEFMT, fs_qbmask=bsize - 1, fs_qfmask=fsize - 1,
              fs_magic=FS_UFS2_MAGIC if ufs2 else FS_UFS1_MAGIC,
              fs_volname=o.volname[:31].ljust(32, b"\0"))
    fs.fs_dsize = total - sblkno - ncg * (dblkno - sblkno) - _ceil(cssize, fsize)
    if not ufs2:
        nspf = fsize // 512
        fs.update(fs_old_cgmask=-1, fs_old_time=t, fs_old_size=total, fs_old_dsize=fs.fs_dsize,
                  fs_old_rps=60, fs_old_nspf=nspf, fs_old_npsect=fpg * nspf, fs_old_interleave=1,
                  fs_old_csaddr=dblkno, fs_old_nsect=fpg * nspf, fs_old_spc=fpg * nspf, fs_old_ncyl=ncg,
                  fs_old_cpg=1, fs_old_postblformat=1, fs_old_nrpos=1)
    fs.fs_maxfilesize = maxfilesize(fs)
    if not ufs2:
        fs.fs_maxfilesize = min(fs.fs_maxfilesize, (1 << 31) * bsize - 1)
    return fs


UFS1_MAXSYMLINKLEN = 60
UFS2_MAXSYMLINKLEN = 120


class _MemDev:
    """A BlockDevice over a pread/pwrite pair (newfs runs without a kernel)."""

    def __init__(self, pread: Callable[[int, int], bytes], pwrite: Callable[[int, bytes], None],
                 size: int, fsync: Callable[[], None]) -> None:
        self.dev_id = id(self)
        self.size = size
        self.readonly = False
        self.pread = pread
        self.pwrite = pwrite
        self.fsync = fsync


def _init_cg(fs: Superblock, c: int, t: int) -> bytes:
    """The header and maps of cylinder group ``c`` of an empty file system (mkfs initcg)."""
    ufs2 = fs.ufs2
    frag, fpg, ipg = fs.fs_frag, fs.fs_fpg, fs.fs_ipg
    buf = bytearray(fs.fs_cgsize)
    cbase = cgbase(fs, c)
    ndblk = min(cbase + fpg, fs.fs_size) - cbase
    iusedoff = 168 if ufs2 else 174
    freeoff = iusedoff + _ceil(ipg, 8)
    contig = fs.fs_contigsumsize
    if contig > 0:
        clustersumoff = _roundup(freeoff + _ceil(fpg, 8) - 4, 4)
        clusteroff = clustersumoff + (contig + 1) * 4
        nextfreeoff = clusteroff + _ceil(fpg // frag, 8)
    else:
        clustersumoff = clusteroff = 0
        nextfreeoff = freeoff + _ceil(fpg, 8)
    CgHeader.field("cg_magic", fs.endian).pack_into(buf, CgHeader.OFFSETS["cg_magic"], CG_MAGIC)
    cg = Cg(buf, fs.endian)
    cg.cg_cgx = c
    cg.cg_ndblk = ndblk
    cg.cg_iusedoff, cg.cg_freeoff, cg.cg_nextfreeoff = iusedoff, freeoff, nextfreeoff
    cg.cg_clustersumoff, cg.cg_clusteroff = clustersumoff, clusteroff
    cg.cg_nclusterblks = ndblk // frag if contig > 0 else 0
    if ufs2:
        cg.cg_niblk = ipg
        cg.cg_initediblk = min(ipg, 2 * fs.fs_inopb)
        cg.cg_time = t
    else:
        cg.cg_old_ncyl = 1
        cg.cg_old_niblk = ipg
        cg.cg_old_btotoff, cg.cg_old_boff = 168, 172
        cg.cg_old_time = t & 0x7FFFFFFF
    cg.cg_cs_nifree = ipg
    if c == 0:
        set_bits(buf, iusedoff, 0, 2, True)  # inodes 0 and 1 are never free
        cg.cg_cs_nifree -= 2
    dlower = cgsblock(fs, c) - cbase
    dupper = cgdmin(fs, c) - cbase
    if c == 0:
        dupper += _ceil(fs.fs_cssize, fs.fs_fsize)
    free_runs: list[tuple[int, int]] = []
    if c > 0 and dlower:
        free_runs.append((0, dlower))
    if dupper < ndblk:
        free_runs.append((dupper, ndblk))
    for lo, hi in free_runs:
        set_bits(buf, freeoff, lo, hi - lo, True)
        b = lo
        if b % frag:  # leading partial block
            end = min(_roundup(b, frag), hi)
            cg.cg_cs_nffree += end - b
            cg.cg_frsum[end - b] += 1
            b = end
        full = (hi - b) // frag
        cg.cg_cs_nbfree += full
        if contig > 0:
            set_bits(buf, clusteroff, b // frag, full, True)
        b += full * frag
        if b < hi:  # trailing partial block
            cg.cg_cs_nffree += hi - b
            cg.cg_frsum[hi - b] += 1
    if contig > 0:
        sums = [0] * (contig + 1)
        nblk = cg.cg_nclusterblks
        bits = int.from_bytes(buf[clusteroff:clusteroff + _ceil(nblk, 8)], "little")
        run = 0
        for i in range(nblk + 1):
            if i < nblk and bits >> i & 1:
                run += 1
            elif run:
                sums[min(run, contig)] += 1
                run = 0
        # slot 0 is never used and overlaps the end of the fragment map: start at slot 1
        struct.pack_into(f"{fs.endian}{contig}i", buf, clustersumoff + 4, *sums[1:])
    cg.encode_into(buf)
    return bytes(buf)


def _inode_block(fs: Superblock, n: int) -> bytes:
    """``n`` zeroed inodes, each with a random generation number (as newfs gives them)."""
    isize = fs.inode_size
    buf = bytearray(n * isize)
    rnd = random_bytes(4 * n)
    off = 80 if fs.ufs2 else 108
    for k in range(4):
        buf[off + k::isize] = rnd[k::4]
    return bytes(buf)


def backups(fs: Superblock) -> list[int]:
    """Sector numbers of the superblock copies (what ``fsck -b`` takes)."""
    return [cgsblock(fs, c) << fs.fs_fsbtodb for c in range(fs.fs_ncg)]


def write_fs(fs: Superblock, pread: Callable[[int, int], bytes], pwrite: Callable[[int, bytes], None],
             fsync: Callable[[], None], lost_found: bool = True,
             progress: Callable[[str, int, int], None] | None = None) -> None:
    """Lay the new file system down through ``pwrite`` and make the root (and lost+found).
    ``progress("cylinder groups", done, total)`` follows the one long loop, for a display."""
    fsize, bsize = fs.fs_fsize, fs.fs_bsize
    t = fs.fs_time
    # Wipe superblocks an earlier file system may have left where the search looks first
    # (NetBSD newfs zaps them too); done before the new cgs and inode tables go down.
    for loc in (0, SBLOCK_UFS1, SBLOCK_UFS2, 262144):
        if loc != fs.fs_sblockloc and loc + SBLOCKSIZE <= fs.fs_size * fsize:
            pwrite(loc, bytes(SBLOCKSIZE))
    inoblk = _inode_block(fs, fs.fs_inopb)
    for c in range(fs.fs_ncg):
        pwrite(cgtod(fs, c) * fsize, _init_cg(fs, c, t))
        n_init = min(fs.fs_ipg, 2 * fs.fs_inopb) if fs.ufs2 else fs.fs_ipg
        nblk = _ceil(n_init, fs.fs_inopb)
        table = b"".join(_inode_block(fs, fs.fs_inopb) if k < 4 else inoblk for k in range(nblk))
        pwrite(cgimin(fs, c) * fsize, table)
        if progress is not None:
            progress("cylinder groups", c + 1, fs.fs_ncg)
    pwrite(fs.fs_csaddr * fsize, bytes(fs.fs_cssize))
    # the summary of the empty fs comes from the cg headers just written
    ndir = nbfree = nifree = nffree = 0
    csum: list[list[int]] = []
    for c in range(fs.fs_ncg):
        cg = Cg(pread(cgtod(fs, c) * fsize, fs.fs_cgsize), fs.endian)
        csum.append([cg.cg_cs_ndir, cg.cg_cs_nbfree, cg.cg_cs_nifree, cg.cg_cs_nffree])
        ndir += cg.cg_cs_ndir
        nbfree += cg.cg_cs_nbfree
        nifree += cg.cg_cs_nifree
        nffree += cg.cg_cs_nffree
    pwrite(fs.fs_csaddr * fsize, encode_csums(csum, fs.endian, fs.fs_cssize))
    fs.fs_cs_ndir, fs.fs_cs_nbfree, fs.fs_cs_nifree, fs.fs_cs_nffree = ndir, nbfree, nifree, nffree
    dev = _MemDev(pread, pwrite, fs.fs_size * fsize, fsync)
    bc = BufCache(MemAccount(None))
    codec = DinodeCodec(fs.ufs2, fs.endian)
    alloc = Allocator(fs, dev, bc, codec)  # type: ignore[arg-type]
    endian = fs.endian
    entries = [(2, b".", 2), (2, b"..", 2)]
    root_nlink = 2
    if lost_found:
        alloc.claim_inode(2, True)
        alloc.claim_inode(3, True)
        root_nlink = 3
        entries.append((3, b"lost+found", 4))
    else:
        alloc.claim_inode(2, True)
    # root directory: one chunk, a fragment run
    rootdir = pack_entry(endian, 2, 4, b".", 12) + pack_entry(endian, 2, 4, b"..", 12 if lost_found else 500)
    if lost_found:
        rootdir += pack_entry(endian, 3, 4, b"lost+found", DIRBLKSIZ - 24)
    rootdir = rootdir.ljust(DIRBLKSIZ, b"\0")
    rfr = _ceil(DIRBLKSIZ, fsize)
    if rfr < fs.fs_frag:
        raddr = alloc.alloc_frags(0, 0, rfr, True)
    else:
        raddr, _ = alloc.alloc_blocks(0, 0, 1, True)
    dev.pwrite(raddr * fsize, rootdir.ljust(rfr * fsize, b"\0"))
    _put_inode(fs, codec, dev, 2, IFDIR | 0o755, root_nlink, DIRBLKSIZ, [raddr], rfr * fsize, t)
    if lost_found:
        laddr, _ = alloc.alloc_blocks(0, 0, 1, True)
        empty = DIRECT[endian].pack(0, DIRBLKSIZ, 0, 0).ljust(DIRBLKSIZ, b"\0")
        body = dir_template(endian, 3, 2) + empty * (bsize // DIRBLKSIZ - 1)
        dev.pwrite(laddr * fsize, body)
        _put_inode(fs, codec, dev, 3, IFDIR | 0o700, 2, bsize, [laddr], bsize, t)
    bc.flush_dev(dev)  # type: ignore[arg-type]
    pwrite(fs.fs_csaddr * fsize, alloc.csum_bytes())
    if not fs.ufs2:
        fs.fs_old_cs_ndir, fs.fs_old_cs_nbfree = fs.fs_cs_ndir, fs.fs_cs_nbfree
        fs.fs_old_cs_nifree, fs.fs_old_cs_nffree = fs.fs_cs_nifree, fs.fs_cs_nffree
    raw = fs.encode()
    for c in range(fs.fs_ncg):
        pwrite(cgsblock(fs, c) * fsize, raw)
    pwrite(fs.fs_sblockloc, raw)  # the primary last: a crash before this leaves no file system
    fsync()


def _put_inode(fs: Superblock, codec: DinodeCodec, dev: _MemDev, ino: int, mode: int, nlink: int,
               size: int, db: list[int], nbytes: int, t: int) -> None:
    off = ino_to_fsba(fs, ino) * fs.fs_fsize + ino_to_fsbo(fs, ino) * fs.inode_size
    ip = codec.decode(dev.pread(off, fs.inode_size), 0, ino)
    ip2 = Inode()
    for name in Inode.__slots__:
        if hasattr(ip, name):
            setattr(ip2, name, getattr(ip, name))
    ip2.mode, ip2.nlink, ip2.uid, ip2.gid, ip2.size = mode, nlink, 0, 0, size
    ip2.blocks = nbytes // 512
    ip2.db = db + [0] * (12 - len(db))
    ip2.ib = [0, 0, 0]
    ip2.atime = ip2.mtime = ip2.ctime = t
    ip2.atimensec = ip2.mtimensec = ip2.ctimensec = 0
    if fs.ufs2:
        ip2.birthtime, ip2.birthnsec, ip2.blksize = t, 0, fs.fs_bsize
    buf = bytearray(fs.inode_size)
    codec.encode_into(ip2, buf, 0)
    dev.pwrite(off, bytes(buf))


def summary_lines(fs: Superblock, name: str, verbosity: int = 3) -> list[str]:
    """What NetBSD newfs prints: size line, group line, and the superblock backups."""
    out: list[str] = []
    mb = 1024 * 1024
    if verbosity >= 1:
        out.append(f"{name}: {fs.fs_size * fs.fs_fsize / mb:.1f}MB ({fs.fs_size << fs.fs_fsbtodb} sectors) "
                   f"block size {fs.fs_bsize}, fragment size {fs.fs_fsize}")
        out.append(f"\tusing {fs.fs_ncg} cylinder groups of {fs.fs_fpg * fs.fs_fsize / mb:.2f}MB, "
                   f"{fs.fs_fpg // fs.fs_frag} blks, {fs.fs_ipg} inodes.")
    if verbosity >= 3:
        out.append("super-block backups (for fsck_ffs -b #) at:")
        nums = backups(fs)
        width = len(str(nums[-1]))
        per = max(76 // (width + 2), 1)
        for i in range(0, len(nums), per):
            out.append(" " + ", ".join(f"{n:>{width}}" for n in nums[i:i + per]) + ",")
    return out


def newfs_image(path: str, opts: NewfsOptions, fs: Superblock | None = None, *, zero: bool = False,
                lost_found: bool = True, window: Window | None = None,
                progress: Callable[[str, int, int], None] | None = None) -> Superblock:
    """Create (or overwrite) the image at ``path`` with a new file system; returns its superblock.
    ``progress(what, done, total)`` is told how the zeroing and the cylinder groups advance.

    The library entry of ``p2k newfs`` (and of makefs and the crash runner, which need an empty
    file system first); the host file is reached only through p2k.hyper. Given ``window`` (an
    existing partition, ``p2k newfs IMAGE:NAME``), the file system is written through it and can
    touch nothing outside; the caller closes it."""
    if fs is None:
        fs = plan(opts)
    nbytes = fs.fs_size * fs.fs_fsize
    if window is not None:
        write_fs(fs, window.pread, window.pwrite, window.fsync, lost_found=lost_found, progress=progress)
        return fs
    if not host_path_exists(path):
        create_host_file(path)
    host = HostFile(path, size=max(nbytes, opts.size))
    try:
        host.extend_to_window()
        if zero:
            chunk = bytes(1 << 20)
            for off in range(0, nbytes, len(chunk)):
                host.pwrite(off, chunk[:min(len(chunk), nbytes - off)])
                if progress is not None:
                    progress("zeroing", min(off + len(chunk), nbytes), nbytes)
        write_fs(fs, host.pread, host.pwrite, host.fsync, lost_found=lost_found, progress=progress)
    finally:
        host.close()
    return fs
