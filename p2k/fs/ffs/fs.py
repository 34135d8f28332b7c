"""The FFS superblock (``struct fs``), its search and validation, and the geometry macros of fs.h.

The superblock is declared once, as a field list close to the C struct; a ``struct.Struct`` for each
byte order is generated from that list, so a big- and a little-endian image share one declaration and
the codec is a single C-level unpack. Every byte of the 1376-byte structure belongs to some field, so
``Superblock.encode()`` reproduces the on-disk bytes exactly (the write path relies on that).

The address macros keep their C names (``cgbase``, ``cgimin``, ``ino_to_fsba``, ``lblkno``, ...) and
take the superblock as first argument, so they can be checked against fs.h side by side.
"""

from __future__ import annotations

import errno
import struct

from p2k.ondisk import I32, I64, U8, U32, U64, Annotated, Fmt, Record

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

# ---- constants (fs.h) ----------------------------------------------------------------------------
SBLOCK_FLOPPY = 0
SBLOCK_UFS1 = 8192
SBLOCK_UFS2 = 65536
SBLOCK_PIGGY = 262144
SBLOCKSIZE = 8192
FS_MAXCONTIG = 16  # the largest cluster summary (fs.h)
SBLOCKSEARCH = (SBLOCK_UFS2, SBLOCK_UFS1, SBLOCK_FLOPPY, SBLOCK_PIGGY)
SBLOCK_STRUCT_SIZE = 1376  # sizeof(struct fs)

FS_UFS1_MAGIC = 0x00011954
FS_UFS2_MAGIC = 0x19540119
FS_UFS2EA_MAGIC = 0x19012038
FS_BAD_MAGIC = 0x19960408

MINBSIZE = 4096
MAXBSIZE = 65536
MAXFRAG = 8
DEV_BSIZE = 512
UFS_NDADDR = 12
UFS_NIADDR = 3
UFS_NXADDR = 2
UFS_ROOTINO = 2
UFS_WINO = 1
UFS_MAXNAMLEN = 255
MAXPATHLEN = 1024
CGSIZE_FIXED = 168  # offset of cg_space; maps start here

FS_44INODEFMT = 2
FS_42INODEFMT = -1

# fs_clean
FS_ISCLEAN = 0x01
FS_WASCLEAN = 0x02

# fs_flags (NetBSD names; FreeBSD disagrees above 0x80, see docs/ffs-format.md §8)
FS_UNCLEAN = 0x001
FS_DOSOFTDEP = 0x002
FS_NEEDSFSCK = 0x004
FS_SUJ = 0x008
FS_POSIX1EACLS = 0x010
FS_MULTILABEL = 0x020
FS_GJOURNAL = 0x040
FS_FLAGS_UPDATED = 0x080
FS_DOWAPBL = 0x100  # FreeBSD: FS_NFS4ACLS
FS_DOQUOTA2 = 0x200  # FreeBSD: FS_METACKHASH
FS_TRIM = 0x400
FS_NFS4ACLS = 0x800
FS_SWAPPED = 0x80000000  # in-core only

# ---- the declaration -------------------------------------------------------------------------------
class Fs(Record):
    """``struct fs`` as it lies on disk: every one of its 1376 bytes belongs to a field, in order.
    Fields the kernel keeps only in core (``fs_incore``) and spares are byte strings, so that
    ``encode()`` gives back exactly the bytes that were read."""

    fs_firstfield: I32
    fs_unused_1: I32
    fs_sblkno: I32
    fs_cblkno: I32
    fs_iblkno: I32
    fs_dblkno: I32
    fs_old_cgoffset: I32
    fs_old_cgmask: I32
    fs_old_time: I32
    fs_old_size: I32
    fs_old_dsize: I32
    fs_ncg: U32
    fs_bsize: I32
    fs_fsize: I32
    fs_frag: I32
    fs_minfree: I32
    fs_old_rotdelay: I32
    fs_old_rps: I32
    fs_bmask: I32
    fs_fmask: I32
    fs_bshift: I32
    fs_fshift: I32
    fs_maxcontig: I32
    fs_maxbpg: I32
    fs_fragshift: I32
    fs_fsbtodb: I32
    fs_sbsize: I32
    fs_spare1: Annotated[bytes, Fmt("8s")]
    fs_nindir: I32
    fs_inopb: I32
    fs_old_nspf: I32
    fs_optim: I32
    fs_old_npsect: I32
    fs_old_interleave: I32
    fs_old_trackskew: I32
    fs_id0: I32
    fs_id1: I32
    fs_old_csaddr: I32
    fs_cssize: I32
    fs_cgsize: I32
    fs_spare2: I32
    fs_old_nsect: I32
    fs_old_spc: I32
    fs_old_ncyl: I32
    fs_old_cpg: I32
    fs_ipg: U32
    fs_fpg: I32
    fs_old_cs_ndir: I32
    fs_old_cs_nbfree: I32
    fs_old_cs_nifree: I32
    fs_old_cs_nffree: I32
    fs_fmod: U8
    fs_clean: U8
    fs_ronly: U8
    fs_old_flags: U8
    fs_fsmnt: Annotated[bytes, Fmt("468s")]
    fs_volname: Annotated[bytes, Fmt("32s")]
    fs_swuid: U64
    fs_pad: I32
    fs_cgrotor: I32
    fs_incore: Annotated[bytes, Fmt("128s")]
    fs_old_cpc: I32
    fs_maxbsize: I32
    fs_journal_version: U8
    fs_journal_location: U8
    fs_journal_reserved: Annotated[bytes, Fmt("2s")]
    fs_journal_flags: U32
    fs_journal_addr: U64
    fs_journal_count: U64
    fs_journal_blksz: U64
    fs_journal_ino: U64
    fs_quota_magic: U32
    fs_quota_flags: U8
    fs_quota_reserved: Annotated[bytes, Fmt("3s")]
    fs_quotafile0: U64
    fs_quotafile1: U64
    fs_sparecon64: Annotated[bytes, Fmt("72s")]
    fs_sblockloc: I64
    fs_cs_ndir: I64
    fs_cs_nbfree: I64
    fs_cs_nifree: I64
    fs_cs_nffree: I64
    fs_cs_spare: Annotated[bytes, Fmt("32s")]
    fs_time: I64
    fs_size: I64
    fs_dsize: I64
    fs_csaddr: I64
    fs_pendingblocks: I64
    fs_pendinginodes: U32
    fs_snapinum: Annotated[bytes, Fmt("80s")]
    fs_avgfilesize: I32
    fs_avgfpdir: I32
    fs_save_cgsize: I32
    # FreeBSD only (NetBSD keeps them spare): the last mount or fsck time, whose change makes an
    # SU+J journal stale; the SU+J free list; the check-hashes
    fs_mtime: I64
    fs_sujfree: I32
    fs_sparecon32: Annotated[bytes, Fmt("84s")]
    fs_ckhash: U32
    fs_metackhash: U32
    fs_flags: U32
    fs_contigsumsize: I32
    fs_maxsymlinklen: I32
    fs_old_inodefmt: I32
    fs_maxfilesize: U64
    fs_qbmask: U64
    fs_qfmask: U64
    fs_state: I32
    fs_old_postblformat: I32
    fs_old_nrpos: I32
    fs_spare5: Annotated[bytes, Fmt("8s")]
    fs_magic: U32


SB_FIELDS = Fs.FIELDS
SB_NAMES = tuple(name for name, _ in SB_FIELDS)
SB_STRUCTS = Fs.STRUCTS
FS_MAGIC_OFFSET = Fs.OFFSETS["fs_magic"]
assert Fs.SIZE == SBLOCK_STRUCT_SIZE
_FLAGS_AT = SB_NAMES.index("fs_flags")  # no repeated field precedes it, so it is also its value index


class Csum(Record):
    """``struct csum``: one per cylinder group, in the summary area at ``fs_csaddr``
    (``fs_cssize`` bytes, rounded up to a fragment)."""

    cs_ndir: I32
    cs_nbfree: I32
    cs_nifree: I32
    cs_nffree: I32


def decode_csums(raw: bytes | bytearray | memoryview, ncg: int, endian: str) -> list[list[int]]:
    """``[ndir, nbfree, nifree, nffree]`` per cg; groups past the end of ``raw`` read as zero."""
    n = min(ncg, len(raw) // Csum.SIZE)
    st = Csum.STRUCTS[endian]
    return [list(st.unpack_from(raw, i * Csum.SIZE)) for i in range(n)] + [[0, 0, 0, 0] for _ in range(ncg - n)]


def encode_csums(csum: list[list[int]], endian: str, cssize: int = 0) -> bytes:
    """The summary area's bytes, zero-padded to ``cssize``."""
    st = Csum.STRUCTS[endian]
    return b"".join(st.pack(*cs) for cs in csum).ljust(cssize, b"\0")


def _ilog2(n: int) -> int:
    return n.bit_length() - 1


class Superblock(Fs):
    """The decoded superblock plus what the kernel derives from it at mount time.

    The ``fs_*`` attributes are the on-disk fields (``Fs``). Derived, in-core only: ``endian``
    ('<' or '>'), ``ufs2`` (UFS2 or UFS2EA), ``ea`` (the FFSv2ea magic), ``loc`` (byte offset where it
    was found), ``raw_tail`` (the bytes after the struct up to ``fs_sbsize``, kept for a faithful
    write-back), ``dirty`` (the write path sets it; vfs_sync writes the superblock).
    """

    endian: str
    ufs2: bool
    ea: bool
    loc: int
    raw_tail: bytes
    dirty: bool

    @classmethod
    def decode(cls, buf: bytes | bytearray | memoryview, endian: str = "<",  # type: ignore[override]
               loc: int = 0) -> Superblock:
        """The superblock at the start of ``buf``; its call sites name a byte order and a location,
        not an offset into ``buf``, hence the signature that differs from ``Record.decode``."""
        sb = super().decode(buf, 0, endian)
        sb.endian = endian
        sb.loc = loc
        sb.raw_tail = bytes(buf[SBLOCK_STRUCT_SIZE:])
        sb.dirty = False
        sb.ea = sb.fs_magic == FS_UFS2EA_MAGIC
        sb.ufs2 = sb.fs_magic in (FS_UFS2_MAGIC, FS_UFS2EA_MAGIC)
        return sb

    @classmethod
    def new(cls, endian: str) -> Superblock:
        """An all-zero superblock of byte order ``endian`` (newfs fills it in)."""
        return cls.decode(bytes(SBLOCK_STRUCT_SIZE), endian)

    def encode(self, endian: str | None = None) -> bytes:
        """The on-disk bytes (``fs_sbsize`` of them); in-core-only state is masked out as NetBSD does."""
        vals = self.values()
        vals[_FLAGS_AT] &= ~FS_SWAPPED
        body = SB_STRUCTS[endian or self.endian].pack(*vals)
        return (body + self.raw_tail)[: max(self.fs_sbsize, SBLOCK_STRUCT_SIZE)]

    @property
    def cstotal(self) -> tuple[int, int, int, int]:
        """(ndir, nbfree, nifree, nffree) for the whole file system."""
        return (self.fs_cs_ndir, self.fs_cs_nbfree, self.fs_cs_nifree, self.fs_cs_nffree)

    @property
    def inode_size(self) -> int:
        return 256 if self.ufs2 else 128


# ---- geometry macros (fs.h), all addresses in fragments unless the name says bytes --------------
def cgbase(fs: Superblock, c: int) -> int:
    return fs.fs_fpg * c


def cgstart(fs: Superblock, c: int) -> int:
    # Tests fs.ufs2, never fs_magic == FS_UFS2_MAGIC: UFS2EA must not fall into the UFS1 branch.
    if fs.ufs2:
        return cgbase(fs, c)
    return cgbase(fs, c) + fs.fs_old_cgoffset * (c & ~fs.fs_old_cgmask)


def cgsblock(fs: Superblock, c: int) -> int:
    return cgstart(fs, c) + fs.fs_sblkno


def cgtod(fs: Superblock, c: int) -> int:
    return cgstart(fs, c) + fs.fs_cblkno


def cgimin(fs: Superblock, c: int) -> int:
    return cgstart(fs, c) + fs.fs_iblkno


def cgdmin(fs: Superblock, c: int) -> int:
    return cgstart(fs, c) + fs.fs_dblkno


def dtog(fs: Superblock, d: int) -> int:
    return d // fs.fs_fpg


def dtogd(fs: Superblock, d: int) -> int:
    return d % fs.fs_fpg


def ino_to_cg(fs: Superblock, ino: int) -> int:
    return ino // fs.fs_ipg


def ino_to_fsba(fs: Superblock, ino: int) -> int:
    return cgimin(fs, ino // fs.fs_ipg) + blkstofrags(fs, (ino % fs.fs_ipg) // fs.fs_inopb)


def ino_to_fsbo(fs: Superblock, ino: int) -> int:
    return ino % fs.fs_inopb


def fsbtodb(fs: Superblock, f: int) -> int:
    return f << fs.fs_fsbtodb


def dbtofsb(fs: Superblock, d: int) -> int:
    return d >> fs.fs_fsbtodb


def blkoff(fs: Superblock, pos: int) -> int:
    return pos & fs.fs_qbmask


def fragoff(fs: Superblock, pos: int) -> int:
    return pos & fs.fs_qfmask


def lblkno(fs: Superblock, pos: int) -> int:
    return pos >> fs.fs_bshift


def lblktosize(fs: Superblock, b: int) -> int:
    return b << fs.fs_bshift


def numfrags(fs: Superblock, n: int) -> int:
    return n >> fs.fs_fshift


def blkroundup(fs: Superblock, n: int) -> int:
    return (n + fs.fs_qbmask) & ~fs.fs_qbmask


def fragroundup(fs: Superblock, n: int) -> int:
    return (n + fs.fs_qfmask) & ~fs.fs_qfmask


def fragstoblks(fs: Superblock, f: int) -> int:
    return f >> fs.fs_fragshift


def blkstofrags(fs: Superblock, b: int) -> int:
    return b << fs.fs_fragshift


def fragnum(fs: Superblock, f: int) -> int:
    return f & (fs.fs_frag - 1)


def blknum(fs: Superblock, f: int) -> int:
    return f & ~(fs.fs_frag - 1)


def sblksize(fs: Superblock, size: int, lbn: int) -> int:
    """ffs ``sblksize``: bytes of logical block ``lbn`` in a file of ``size`` bytes."""
    if lbn >= UFS_NDADDR or size >= (lbn + 1) << fs.fs_bshift:
        return fs.fs_bsize
    return fragroundup(fs, blkoff(fs, size))


def blksize(fs: Superblock, ip: Any, lbn: int) -> int:
    """ffs ``blksize(fs, ip, lbn)``: uses the in-core inode's ``size``."""
    return sblksize(fs, ip.size, lbn)


def freespace(fs: Superblock, percentreserved: int) -> int:
    return (blkstofrags(fs, fs.fs_cs_nbfree) + fs.fs_cs_nffree
            - (fs.fs_dsize * percentreserved) // 100)


def maxfilesize(fs: Superblock) -> int:
    """The largest file the block map can address, as fsck computes it (fs_maxfilesize)."""
    bsize, nindir = fs.fs_bsize, fs.fs_nindir
    return bsize * UFS_NDADDR - 1 + sum(bsize * nindir ** k for k in (1, 2, 3))


# ---- search and validation ---------------------------------------------------------------------
_MAGICS = {FS_UFS1_MAGIC, FS_UFS2_MAGIC, FS_UFS2EA_MAGIC}


def _einval(msg: str) -> OSError:
    return OSError(errno.EINVAL, msg)


def oldfscompat_read(fs: Superblock) -> None:
    """A 4.4BSD-layout UFS1 superblock (no FS_FLAGS_UPDATED) keeps its sizes only in the fs_old_*
    fields; copy them into the 64-bit fields as NetBSD's ffs_oldfscompat_read does, so that the rest
    of the driver reads one set of names. The write path must copy them back (and keep both in step
    on updated UFS1, docs/ffs-format.md §3)."""
    if fs.ufs2 or fs.fs_old_flags & FS_FLAGS_UPDATED:
        return
    fs.fs_flags = fs.fs_old_flags & ~FS_FLAGS_UPDATED
    fs.fs_maxbsize = fs.fs_bsize
    fs.fs_time = fs.fs_old_time
    fs.fs_size = fs.fs_old_size
    fs.fs_dsize = fs.fs_old_dsize
    fs.fs_csaddr = fs.fs_old_csaddr
    fs.fs_sblockloc = SBLOCK_UFS1
    fs.fs_cs_ndir = fs.fs_old_cs_ndir
    fs.fs_cs_nbfree = fs.fs_old_cs_nbfree
    fs.fs_cs_nifree = fs.fs_old_cs_nifree
    fs.fs_cs_nffree = fs.fs_old_cs_nffree
    fs.fs_pendingblocks = 0
    fs.fs_pendinginodes = 0


def validate(fs: Superblock, devsize: int | None = None) -> None:
    """Raise EINVAL unless the geometry is self-consistent (NetBSD ffs_superblock_validate plus the
    checks that keep a hostile image from driving later loops or address math into nonsense)."""
    bsize, fsize, frag = fs.fs_bsize, fs.fs_fsize, fs.fs_frag
    if not (SBLOCK_STRUCT_SIZE <= fs.fs_sbsize <= SBLOCKSIZE):
        raise _einval(f"superblock size {fs.fs_sbsize} out of range")
    if not (MINBSIZE <= bsize <= MAXBSIZE) or bsize & (bsize - 1):
        raise _einval(f"bad block size {bsize}")
    if fsize < DEV_BSIZE or fsize > bsize or fsize & (fsize - 1):
        raise _einval(f"bad fragment size {fsize}")
    if frag != bsize // fsize or frag > MAXFRAG:
        raise _einval(f"bad frags per block {frag}")
    if (fs.fs_bshift != _ilog2(bsize) or fs.fs_fshift != _ilog2(fsize)
            or fs.fs_fragshift != _ilog2(frag) or fs.fs_fsbtodb != _ilog2(fsize // DEV_BSIZE)):
        raise _einval("block/fragment shifts disagree with the sizes")
    if fs.fs_bmask != ~(bsize - 1) or fs.fs_fmask != ~(fsize - 1):
        raise _einval("block/fragment masks disagree with the sizes")
    if fs.fs_inopb != bsize // fs.inode_size:
        raise _einval(f"bad inodes per block {fs.fs_inopb}")
    if fs.fs_nindir != bsize // (8 if fs.ufs2 else 4):
        raise _einval(f"bad pointers per indirect block {fs.fs_nindir}")
    if not (CGSIZE_FIXED <= fs.fs_cgsize <= bsize):
        raise _einval(f"bad cylinder group size {fs.fs_cgsize}")
    if min(fs.fs_size, fs.fs_cssize, fs.fs_ipg, fs.fs_fpg, fs.fs_ncg, fs.fs_maxbpg) <= 0:
        raise _einval("zero size, csum size, inodes/group, frags/group, group count or maxbpg")
    if fs.fs_ipg % fs.fs_inopb:
        raise _einval(f"inodes per group {fs.fs_ipg} not a multiple of {fs.fs_inopb}")
    if fs.fs_fpg % frag or fs.fs_fpg > fs.fs_cgsize * 8:
        raise _einval(f"bad frags per group {fs.fs_fpg}")
    if fs.fs_ncg != -(-fs.fs_size // fs.fs_fpg):
        raise _einval(f"group count {fs.fs_ncg} disagrees with size {fs.fs_size}/{fs.fs_fpg}")
    if not (0 < fs.fs_sblkno < fs.fs_cblkno < fs.fs_iblkno < fs.fs_dblkno <= fs.fs_fpg):
        raise _einval("cylinder group layout out of order")
    if fs.fs_dblkno - fs.fs_iblkno != fs.fs_ipg // fs.fs_inopb * frag:
        raise _einval("inode table size disagrees with inodes per group")
    if not fs.ufs2 and fs.fs_old_cgmask != -1 and fs.fs_old_cgoffset:
        # Rotating cg starts: the last cg's metadata must still lie inside its group.
        if cgdmin(fs, fs.fs_ncg - 1) > cgbase(fs, fs.fs_ncg - 1) + fs.fs_fpg:
            raise _einval("rotated cylinder group start out of range")
    if fs.fs_csaddr <= 0 or fs.fs_csaddr + fs.fs_cssize // fsize > fs.fs_size:
        raise _einval(f"summary area at {fs.fs_csaddr} outside the file system")
    if devsize is not None and fs.fs_size * fsize > devsize + bsize:
        raise _einval(f"file system of {fs.fs_size * fsize} bytes larger than device ({devsize})")
    if not (0 <= fs.fs_contigsumsize <= FS_MAXCONTIG):
        raise _einval(f"cluster summary size {fs.fs_contigsumsize} out of range")
    if not (0 <= fs.fs_minfree <= 99):
        raise _einval(f"impossible minfree {fs.fs_minfree}")


def _candidate(buf: bytes, loc: int) -> Superblock | None:
    if len(buf) < SBLOCK_STRUCT_SIZE:
        return None
    for endian in "<>":
        magic = int.from_bytes(buf[FS_MAGIC_OFFSET:FS_MAGIC_OFFSET + 4], "little" if endian == "<" else "big")
        if magic in _MAGICS:
            return Superblock.decode(buf, endian, loc)
    return None


def superblock_candidates(pread: Callable[[int, int], bytes], devsize: int) -> Iterator[tuple[int, Superblock]]:
    """The superblocks at the standard locations, in NetBSD's search order, that the location
    rules allow (not yet validated): a UFS1 magic at 65536 is the first alternate of a 64 KiB-block
    UFS1 and is skipped; a UFS2 (or updated UFS1) superblock whose ``fs_sblockloc`` is not where it
    was found is an alternate and is skipped. Shared by the mount and by fsck."""
    for loc in SBLOCKSEARCH:
        if loc + SBLOCK_STRUCT_SIZE > devsize:
            continue
        buf = pread(loc, min(SBLOCKSIZE, devsize - loc))
        fs = _candidate(buf, loc)
        if fs is None:
            continue
        if not fs.ufs2 and loc == SBLOCK_UFS2:
            continue
        if (fs.ufs2 or fs.fs_old_flags & FS_FLAGS_UPDATED) and fs.fs_sblockloc != loc:
            continue
        oldfscompat_read(fs)
        fs.raw_tail = bytes(buf[SBLOCK_STRUCT_SIZE:max(fs.fs_sbsize, SBLOCK_STRUCT_SIZE)])
        yield loc, fs


def find_superblock(pread: Callable[[int, int], bytes], devsize: int) -> Superblock:
    """Search SBLOCKSEARCH in NetBSD's order and return the first acceptable, validated superblock.

    ``pread(off, n)`` reads the device (through the buffer cache). Rules (docs/ffs-format.md §2): a UFS1
    magic at 65536 is the first alternate of a 64 KiB-block UFS1 and is skipped; a UFS2 (or updated
    UFS1) superblock whose ``fs_sblockloc`` is not where it was found is an alternate and is skipped.
    """
    reasons: list[str] = []
    for loc, fs in superblock_candidates(pread, devsize):
        try:
            validate(fs, devsize)
        except OSError as e:
            reasons.append(f"at {loc}: {e.strerror}")
            continue
        # The 64-bit masks are derived values; old (4.2-format) superblocks do not carry them.
        fs.fs_qbmask = fs.fs_bsize - 1
        fs.fs_qfmask = fs.fs_fsize - 1
        return fs
    why = "; ".join(reasons) if reasons else "bad magic number"
    raise OSError(errno.EINVAL, f"no valid FFS superblock found ({why})")


def probe(pread: Callable[[int, int], bytes], devsize: int) -> str | None:
    """``"FFSv2 LE"`` (version and byte order) if a valid FFS superblock is where the kernel looks,
    else None: what ``p2k parts`` shows, and how an image argument without a partition name picks
    its file system. A sniff of possibly hostile bytes: whatever fails to decode is "not an FFS"."""
    try:
        fs = find_superblock(pread, devsize)
    except (OSError, ValueError, ArithmeticError, IndexError, KeyError, struct.error):
        return None
    return f"FFSv{2 if fs.ufs2 else 1} {'LE' if fs.endian == '<' else 'BE'}"
