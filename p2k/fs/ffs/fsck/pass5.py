"""Phase 5 - Check Cyl groups (fsck_ffs pass5.c).

Each cylinder group is rebuilt in core from what phases 1-4 established — the inode map from the
inode states, the fragment map from the in-core block map, the free counts, the fragment-run
summary (``cg_frsum``), the cluster map and its summary — and compared with the one on disk,
then the per-cg summaries of the csum area and the superblock totals. Everything is computed with
byte operations: maps are cut out of the in-core bitmaps as big integers, counts come from
``int.bit_count`` and a ``Counter`` of map bytes against per-byte tables, never a loop per bit.
"""

from __future__ import annotations

import struct
from collections import Counter

from p2k.fs.ffs.cg import CG_MAGIC, Cg, cg_layout, cg_layout_sane, cg_magic_ok
from p2k.fs.ffs.fs import cgbase, cgtod
from p2k.fs.ffs.fsck.ctx import Ctx
from p2k.fs.ffs.fsck.setup import write_csum
from p2k.fs.ffs.fsck.state import DCLEAR, DFOUND, DSTATE, USTATE

MAX_DETAIL = 10


def pack01(b: bytes | bytearray, nbytes: int) -> bytes:
    """Bytes of 0/1 (one per bit) → a little-endian bitmap of ``nbytes`` bytes."""
    b = bytes(b) + bytes(-len(b) % 8)
    val = 0
    for k in range(8):
        val |= int.from_bytes(b[k::8], "little") << k
    return val.to_bytes(max(nbytes, len(b) // 8), "little")[:nbytes]


def _byte_tables(frag: int) -> tuple[list[int], list[list[int]], list[bytes]]:
    """Per map byte: fully free blocks in it, fragment runs by length, and per block position a
    translate table giving 1 when that block is fully free."""
    per = 8 // frag
    full = (1 << frag) - 1
    nbfree = [0] * 256
    runs = [[0] * 8 for _ in range(256)]
    blk = [bytearray(256) for _ in range(per)]
    for v in range(256):
        for j in range(per):
            bits = (v >> (j * frag)) & full
            if bits == full:
                nbfree[v] += 1
                blk[j][v] = 1
                continue
            run = 0
            for k in range(frag + 1):
                if k < frag and bits >> k & 1:
                    run += 1
                elif run:
                    runs[v][run] += 1
                    run = 0
    return nbfree, runs, [bytes(t) for t in blk]


_USED = bytes(0 if i in (0, USTATE) else 1 for i in range(256))


class _Fixer:
    """dofix(): each kind of message is asked once; the answer holds for every cylinder group."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.answers: dict[str, bool] = {}

    def __call__(self, msg: str, **info: object) -> bool:
        if msg not in self.answers:
            self.answers[msg] = self.ctx.rep.ask(msg, "SALVAGE", preen_action="SALVAGED", kind=msg, **info)
        return self.answers[msg]


_HDR_FIELDS = ("cg_magic", "cg_cgx", "cg_ndblk", "cg_cs_ndir", "cg_cs_nbfree", "cg_cs_nifree",
               "cg_cs_nffree", "cg_frsum", "cg_rotor", "cg_frotor", "cg_irotor", "cg_nclusterblks",
               "cg_niblk", "cg_initediblk", "cg_old_niblk")


def pass5(ctx: Ctx) -> list[int]:
    """Returns the recomputed totals (ndir, nbfree, nifree, nffree)."""
    fs, rep, io = ctx.fs, ctx.rep, ctx.io
    rep.phase = "Phase 5"
    tables = _byte_tables(fs.fs_frag)
    fix = _Fixer(ctx)
    total = [0, 0, 0, 0]
    csum_dirty = False
    for c in range(fs.fs_ncg):
        rep.progress(c, fs.fs_ncg)
        cs_new = _check_cg(ctx, c, tables, fix)
        for i in range(4):
            total[i] += cs_new[i]
        if ctx.csum[c] != cs_new and fix("FREE BLK COUNT(S) WRONG IN SUPERBLK", cg=c, field="cs_*"):
            ctx.csum[c] = cs_new
            csum_dirty = True
    rep.progress_done()
    if csum_dirty:
        write_csum(io, fs, ctx.csum)
    if list(fs.cstotal) != total and fix("FREE BLK COUNT(S) WRONG IN SUPERBLK", field="fs_cstotal"):
        fs.fs_cs_ndir, fs.fs_cs_nbfree, fs.fs_cs_nifree, fs.fs_cs_nffree = total
        ctx.sbdirty = True
    return total


def _read_cg(ctx: Ctx, c: int) -> tuple[bytearray, Cg, Cg, bool]:
    """(buffer, header as found, header to be, whether the group must be rebuilt). A group whose
    magic or map offsets are wrong is rebuilt from the superblock's geometry (fsck_ffs pass5
    builds every header that way), never copied from another group: one-group file systems have
    no other to copy from, and a map written through a wrong offset would overwrite the header."""
    fs, rep = ctx.fs, ctx.rep
    buf = bytearray(ctx.io.read(cgtod(fs, c) * fs.fs_fsize, fs.fs_cgsize))
    old = Cg(bytes(buf), fs.endian)
    rebuild = False
    if not cg_magic_ok(buf, fs.endian):
        rep.fatal(f"CG {c}: PASS5: BAD MAGIC NUMBER", cg=c, field="cg_magic")
        rebuild = True
    elif not cg_layout_sane(old, fs):
        rep.warn(f"CG {c}: BAD MAP OFFSETS", cg=c, field="cg_iusedoff/cg_freeoff/cg_cluster*off",
                 kind="cg map offsets")
        rebuild = True
    if rebuild:
        buf = bytearray(fs.fs_cgsize)
        new = Cg(bytes(buf), fs.endian)
        for name, val in cg_layout(fs).items():
            setattr(new, name, val)
        if fs.ufs2:
            new.cg_initediblk = ctx.st.inosused_limit[c] if c < len(ctx.st.inosused_limit) else fs.fs_ipg
        else:
            new.cg_old_ncyl = old.cg_old_ncyl if 0 < old.cg_old_ncyl <= max(fs.fs_old_cpg, 1) else 1
        return buf, old, new, True
    new = Cg(bytes(buf), fs.endian)
    if fs.ufs2:
        # phase 1 read as far as the inode map showed inodes in use: all of those are initialised
        scanned = ctx.st.inosused_limit[c]
        new.cg_initediblk = fs.fs_ipg if old.cg_initediblk > fs.fs_ipg else max(old.cg_initediblk, scanned)
    return buf, old, new, False


def _check_cg(ctx: Ctx, c: int, tables: tuple[list[int], list[list[int]], list[bytes]],
              fix: _Fixer) -> list[int]:
    """Rebuild cylinder group ``c`` in core and repair the one on disk; its (ndir, nbfree, nifree,
    nffree)."""
    fs, st, io = ctx.fs, ctx.st, ctx.io
    frag, ipg, fpg = fs.fs_frag, fs.fs_ipg, fs.fs_fpg
    nbfree_t, runs_t, blk_t = tables
    per = 8 // frag
    buf, old, new, rebuild = _read_cg(ctx, c)
    base = cgbase(fs, c)
    ndblk = min(fpg, st.maxfsblock - base)
    new.cg_magic, new.cg_cgx, new.cg_ndblk = CG_MAGIC, c, ndblk
    if fs.ufs2:
        new.cg_niblk = ipg
    else:
        new.cg_old_niblk = ipg
    # inode map and counts
    states = st.statemap[c * ipg:(c + 1) * ipg]
    used01 = bytearray(states.translate(_USED))
    if c == 0:
        used01[0] = used01[1] = 1
    ino_map = pack01(used01, (ipg + 7) // 8)
    ndir = states.count(DSTATE) + states.count(DFOUND) + states.count(DCLEAR)
    nifree = ipg - used01.count(1)
    # fragment map: the complement of the in-core use map over this group's fragments
    lo, sh = base >> 3, base & 7
    used_int = int.from_bytes(st.blockmap[lo:(base + ndblk + 7) // 8 + 1], "little") >> sh
    free_int = ~used_int & ((1 << ndblk) - 1)
    free_map = free_int.to_bytes((fpg + 7) // 8, "little")
    counts = Counter(free_map)
    nbfree = sum(nbfree_t[v] * n for v, n in counts.items())
    nffree = free_int.bit_count() - nbfree * frag
    frsum = [0] * 8
    for v, n in counts.items():
        if v and v != 255:
            r = runs_t[v]
            for k in range(1, frag):
                if r[k]:
                    frsum[k] += r[k] * n
    new.cg_cs_ndir, new.cg_cs_nbfree, new.cg_cs_nifree, new.cg_cs_nffree = ndir, nbfree, nifree, nffree
    new.cg_frsum = frsum
    if old.cg_rotor >= ndblk or rebuild:
        new.cg_rotor = 0
    if old.cg_frotor >= ndblk or rebuild:
        new.cg_frotor = 0
    if old.cg_irotor >= ipg or rebuild:
        new.cg_irotor = 0
    cluster = None
    if fs.fs_contigsumsize > 0:
        new.cg_nclusterblks = ndblk // frag
        blk01 = bytearray(len(free_map) * per)
        for j in range(per):
            blk01[j::per] = free_map.translate(blk_t[j])
        del blk01[new.cg_nclusterblks:]
        csum = [0] * (fs.fs_contigsumsize + 1)
        for run in bytes(blk01).split(b"\0"):
            if run:
                csum[min(len(run), fs.fs_contigsumsize)] += 1
        cluster = (csum, pack01(blk01, (fpg // frag + 7) // 8))
    write = False
    if rebuild or any(getattr(old, f) != getattr(new, f) for f in _HDR_FIELDS):
        if fix("SUMMARY INFORMATION BAD", cg=c, field="cg header"):
            new.encode_into(buf)
            write = True
    if rebuild:
        # a rebuilt header only makes sense with its maps: both or neither
        if write:
            _store_maps(ctx, new, buf, ino_map, free_map, cluster)
    elif (not _compare_maps(ctx, c, old, buf, ino_map, free_map, cluster)
          and fix("BLK(S) MISSING IN BIT MAPS", cg=c, field="cg maps")):
        _store_maps(ctx, new, buf, ino_map, free_map, cluster)
        write = True
    if write:
        io.write(cgtod(fs, c) * fs.fs_fsize, buf)
    return [ndir, nbfree, nifree, nffree]


def _map_slices(fs: object, cg: Cg, ipg: int, fpg: int, frag: int, contig: int) -> dict[str, tuple[int, int]]:
    out = {"ino": (cg.cg_iusedoff, (ipg + 7) // 8), "frag": (cg.cg_freeoff, (fpg + 7) // 8)}
    if contig > 0:
        out["csum"] = (cg.cg_clustersumoff, 4 * (contig + 1))
        out["cmap"] = (cg.cg_clusteroff, (fpg // frag + 7) // 8)
    return out


def _compare_maps(ctx: Ctx, c: int, old: Cg, buf: bytearray, ino_map: bytes, free_map: bytes,
                  cluster: tuple[list[int], bytes] | None) -> bool:
    fs, rep = ctx.fs, ctx.rep
    sl = _map_slices(fs, old, fs.fs_ipg, fs.fs_fpg, fs.fs_frag, fs.fs_contigsumsize)
    ok = True
    o, n = sl["ino"]
    disk = bytes(buf[o:o + n])
    if disk != ino_map:
        ok = False
        _detail(rep, c * fs.fs_ipg, disk, ino_map, "INODE")
    o, n = sl["frag"]
    disk = bytes(buf[o:o + n])
    if disk != free_map:
        ok = False
        # free maps: a bit set on disk but clear in core is a used frag marked free, and so on
        _detail(rep, cgbase(fs, c), free_map, disk, "FRAG")
    if cluster is not None:
        o, n = sl["csum"]
        # cg_clustersum[0] is unused (makefs leaves junk there): compare from index 1
        want = struct.pack(f"{fs.endian}{len(cluster[0]) - 1}i", *cluster[0][1:])
        o2, n2 = sl["cmap"]
        if bytes(buf[o + 4:o + n]) != want or bytes(buf[o2:o2 + n2]) != cluster[1]:
            ok = False
    return ok


def _detail(rep: object, first: int, disk_used: bytes, core_used: bytes, what: str) -> None:
    """Name the first few differing bits (inode maps: 1 = used; frag maps passed inverted)."""
    a = int.from_bytes(disk_used, "little")
    b = int.from_bytes(core_used, "little")
    diff = a ^ b
    shown = 0
    while diff and shown < MAX_DETAIL:
        low = diff & -diff
        i = low.bit_length() - 1
        if b & low:
            msg = f"ALLOCATED {what} {first + i} MARKED FREE"
        else:
            msg = f"UNALLOCATED {what} {first + i} MARKED USED"
        rep.warn(msg, kind=msg.split(" ", 2)[0].lower() + " " + what.lower(), number=first + i)  # type: ignore[attr-defined]
        diff ^= low
        shown += 1


def _store_maps(ctx: Ctx, new: Cg, buf: bytearray, ino_map: bytes, free_map: bytes,
                cluster: tuple[list[int], bytes] | None) -> None:
    fs = ctx.fs
    sl = _map_slices(fs, new, fs.fs_ipg, fs.fs_fpg, fs.fs_frag, fs.fs_contigsumsize)
    o, n = sl["ino"]
    buf[o:o + n] = ino_map
    o, n = sl["frag"]
    buf[o:o + n] = free_map
    if cluster is not None:
        o, n = sl["csum"]
        buf[o + 4:o + n] = struct.pack(f"{fs.endian}{len(cluster[0]) - 1}i", *cluster[0][1:])
        o, n = sl["cmap"]
        buf[o:o + n] = cluster[1]
