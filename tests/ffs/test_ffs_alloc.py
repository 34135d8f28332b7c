"""Unit tests of the block/fragment/inode allocator and the bitmap helpers under it.

The helpers in bitmap.py avoid per-bit Python loops; here every answer is compared with the plain
per-bit computation. The allocator runs on the read-write mount of a file system made by newfs,
and after every step the whole accounting — cg maps, cg_cs, cg_frsum, cluster map and sums, the
csum array, the superblock totals — is recounted bit by bit from the maps and must agree. At the
end everything taken is given back and the image must pass ``fsck -n``: what the allocator wrote
to disk is consistent, not only what it holds in memory.
"""

from __future__ import annotations

import errno
import random
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

import p2k
from p2k.fs.ffs.bitmap import frag_tables, get_bits, set_bits
from p2k.fs.ffs.ffs_alloc import Allocator
from p2k.fs.ffs.fs import cgbase
from p2k.fs.ffs.fsck import Options, fsck_device
from p2k.fs.ffs.newfs import NewfsOptions, newfs_image

KEY = "/dev/alloc0"


# ---- bitmap helpers against the per-bit truth ---------------------------------------------------------
def _bits(buf: bytes | bytearray, start: int, n: int) -> list[int]:
    return [buf[i >> 3] >> (i & 7) & 1 for i in range(start, start + n)]


def test_set_and_get_bits_match_per_bit_updates() -> None:
    rnd = random.Random(17)
    buf = bytearray(rnd.randbytes(64))
    truth = _bits(buf, 0, 512)
    for _ in range(2000):
        start = rnd.randrange(0, 500)
        n = rnd.randrange(0, 512 - start + 1)
        value = rnd.random() < 0.5
        set_bits(buf, 0, start, n, value)
        truth[start:start + n] = [int(value)] * n
        assert _bits(buf, 0, 512) == truth
        a = rnd.randrange(0, 511)
        k = rnd.randrange(1, min(64, 512 - a) + 1)
        assert get_bits(buf, 0, a, k) == sum(bit << i for i, bit in enumerate(truth[a:a + k]))


def test_set_bits_stays_inside_its_range_at_a_base_offset() -> None:
    buf = bytearray(b"\xaa" * 8)
    set_bits(buf, 2, 3, 9, True)  # bits 3..11 of the map that starts at byte 2
    assert buf[:2] == b"\xaa\xaa" and buf[4:] == b"\xaa" * 4
    assert _bits(buf, 16, 16) == [0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1]


@pytest.mark.parametrize("frag", [1, 2, 4, 8])
def test_frag_tables_agree_with_per_bit_counting(frag: int) -> None:
    t = frag_tables(frag)
    for pat in range(1 << frag):
        bits = [pat >> i & 1 for i in range(frag)]
        runs, run = [], 0
        for b in [*bits, 0]:
            if b:
                run += 1
            elif run:
                runs.append(run)
                run = 0
        assert t.runs[pat] == tuple(runs)
        assert t.popcount[pat] == sum(bits)
        for n in range(1, frag + 1):
            partial = 0 < pat < t.full
            assert t.fits[n][pat] == int(partial and max(runs, default=0) >= n)
            if max(runs, default=0) >= n:
                p = t.first_run(pat, n)
                assert all(bits[p:p + n]) and not any(all(bits[q:q + n]) for q in range(p))
    rnd = random.Random(frag)
    freemap = rnd.randbytes(40)
    nblocks = len(freemap) * 8 // frag - 3
    got = t.patterns(freemap, nblocks)
    want = bytes(sum(bit << i for i, bit in enumerate(_bits(freemap, b * frag, frag))) for b in range(nblocks))
    assert got == want


# ---- the allocator on a real mount ---------------------------------------------------------------------
class Mounted:
    def __init__(self, k: p2k.Kernel, image: Path) -> None:
        self.k = k
        self.image = image
        self.mp = k.mounts[0]
        alloc = self.mp.alloc  # type: ignore[attr-defined]
        assert isinstance(alloc, Allocator)
        self.alloc = alloc
        self.fs = alloc.fs
        self.frag = self.fs.fs_frag


@pytest.fixture(params=[(1, "<"), (2, ">")], ids=["ufs1-le", "ufs2-be"])
def mounted(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Mounted]:
    version, endian = request.param
    image = tmp_path / "alloc.img"
    newfs_image(str(image), NewfsOptions(size=6 << 20, version=version, endian=endian, bsize=4096, fsize=512))
    k = p2k.Kernel(env={})
    try:
        k.etfs_register(KEY, str(image), p2k.ETFS_BLK)
        k.sys.mkdir("/mnt", 0o755)
        k.sys.mount("ffs", "/mnt", 0, {"fspec": KEY})
        with k.lock:
            yield Mounted(k, image)
    finally:
        k.halt(sync=False)


def recount(m: Mounted) -> tuple[int, int, int]:
    """Recount every cg from its maps, bit by bit, and check it against all the counters; returns
    the totals (free blocks, free fragments, free inodes)."""
    fs, alloc, frag = m.fs, m.alloc, m.frag
    totals = [0, 0, 0]
    for c in range(fs.fs_ncg):
        bp, cg = alloc.cg(c)
        buf = bytes(bp.data)
        nblk = -(-cg.cg_ndblk // frag)
        nbfree = nffree = 0
        frsum = [0] * frag
        free_blocks = []
        for b in range(nblk):
            bits = _bits(buf[cg.cg_freeoff:], b * frag, frag)
            if all(bits):
                nbfree += 1
                free_blocks.append(b)
                continue
            nffree += sum(bits)
            run = 0
            for bit in [*bits, 0]:
                if bit:
                    run += 1
                elif run:
                    frsum[run] += 1
                    run = 0
        nifree = fs.fs_ipg - sum(_bits(buf[cg.cg_iusedoff:], 0, fs.fs_ipg))
        assert (cg.cg_cs_nbfree, cg.cg_cs_nffree, cg.cg_cs_nifree) == (nbfree, nffree, nifree), f"cg {c}"
        assert cg.cg_frsum[1:frag] == frsum[1:], f"cg {c} frsum"
        assert alloc.csum[c][1:] == [nbfree, nifree, nffree], f"csum {c}"
        csz = fs.fs_contigsumsize
        if csz > 0 and cg.cg_clusteroff:
            assert [b for b in range(cg.cg_nclusterblks) if _bits(buf[cg.cg_clusteroff:], b, 1)[0]] == free_blocks
            want = [0] * (csz + 1)
            run = 0
            for b in range(cg.cg_nclusterblks + 1):
                if b in free_blocks:
                    run += 1
                elif run:
                    want[min(run, csz)] += 1
                    run = 0
            got = list(struct.unpack_from(f"{fs.endian}{csz}i", buf, cg.cg_clustersumoff + 4))
            assert got == want[1:], f"cg {c} clustersum"
        totals[0] += nbfree
        totals[1] += nffree
        totals[2] += nifree
    assert (fs.fs_cs_nbfree, fs.fs_cs_nffree, fs.fs_cs_nifree) == tuple(totals)
    return totals[0], totals[1], totals[2]


def _is_free(m: Mounted, addr: int, n: int) -> list[int]:
    fs = m.fs
    c = addr // fs.fs_fpg
    bp, cg = m.alloc.cg(c)
    return _bits(bytes(bp.data[cg.cg_freeoff:]), addr - cgbase(fs, c), n)


def _fsck_clean(m: Mounted) -> None:
    m.k.halt()  # sync, unmount, release the image
    k = p2k.Kernel(env={})
    try:
        dev = k.etfs_register(KEY, str(m.image), p2k.ETFS_BLK, readonly=True)
        res = fsck_device(dev, Options(mode="n", force=True), str(m.image))
    finally:
        k.halt(sync=False)
    assert (res.code, res.findings) == (0, []), res.lines


def test_blocks_come_from_the_free_map_and_go_back(mounted: Mounted) -> None:
    m = mounted
    before = recount(m)
    addr, n = m.alloc.alloc_blocks(0, 0, 4, root=True)
    assert n >= 1 and addr % m.frag == 0
    assert _is_free(m, addr, n * m.frag) == [0] * (n * m.frag)
    after = recount(m)
    assert after[0] == before[0] - n and after[1] == before[1]
    # asking at the block just taken gives another block, never the same one
    other, _ = m.alloc.alloc_blocks(addr, 0, 1, root=True)
    assert not addr <= other < addr + n * m.frag
    recount(m)
    m.alloc.free(other, m.frag)
    with pytest.raises(OSError) as e:
        m.alloc.free(other, m.frag)
    assert e.value.errno == errno.EIO  # the second free of the same block is refused
    m.alloc.free_blocks([addr + i * m.frag for i in range(n)])
    assert recount(m) == before
    _fsck_clean(m)


def test_fragments_best_fit_extend_and_coalesce(mounted: Mounted) -> None:
    m = mounted
    frag = m.frag
    before = recount(m)
    a, _ = m.alloc.alloc_blocks(0, 0, 1, root=True)
    m.alloc.free(a + 3, frag - 3)  # a partly used block: 3 fragments held, a run of frag-3 free
    after = recount(m)
    assert (after[0], after[1]) == (before[0] - 1, before[1] + frag - 3)
    # best fit: a request that run fits exactly goes there, not into a whole free block
    b = m.alloc.alloc_frags(a, 0, frag - 3, root=True)
    assert b == a + 3
    assert recount(m)[:2] == (before[0] - 1, before[1])
    m.alloc.free(b, frag - 3)
    # in-place extension into the free fragments that follow, and its limit at the block's end
    assert m.alloc.extend_frags(a, 3, frag - 1)
    assert _is_free(m, a, frag) == [0] * (frag - 1) + [1]
    assert not m.alloc.extend_frags(a, frag - 1, frag + 1)
    recount(m)
    with pytest.raises(OSError) as e:
        m.alloc.free(a + frag - 1, 1)  # already free
    assert e.value.errno == errno.EIO
    m.alloc.free(a, frag - 1)  # the block is whole again: a free block, not frag free fragments
    assert recount(m) == before
    _fsck_clean(m)


def test_random_allocations_keep_every_counter_exact(mounted: Mounted) -> None:
    m = mounted
    frag = m.frag
    before = recount(m)
    rnd = random.Random(5)
    held: list[tuple[int, int]] = []  # (address, fragments)
    for step in range(300):
        if held and rnd.random() < 0.4:
            addr, n = held.pop(rnd.randrange(len(held)))
            m.alloc.free(addr, n)
        elif rnd.random() < 0.5:
            n = rnd.randrange(1, frag)
            held.append((m.alloc.alloc_frags(rnd.choice([0, *[a for a, _ in held]]), 0, n, root=True), n))
        else:
            addr, got = m.alloc.alloc_blocks(0, rnd.randrange(m.fs.fs_ncg), 1, root=True)
            held.append((addr, got * frag))
        if step % 25 == 0:
            recount(m)
    taken = {a + i for a, n in held for i in range(n)}
    assert len(taken) == sum(n for _, n in held), "a fragment was handed out twice"
    recount(m)
    for addr, n in held:
        m.alloc.free(addr, n)
    assert recount(m) == before
    _fsck_clean(m)


def test_minfree_reserve_and_a_full_file_system(mounted: Mounted) -> None:
    m = mounted
    fs, frag = m.fs, m.frag
    before = recount(m)
    held = []
    while True:  # a user may not dip into the minfree reserve
        try:
            held.append(m.alloc.alloc_blocks(0, 0, 1, root=False))
        except OSError as e:
            assert e.errno == errno.ENOSPC
            break
    reserve = fs.fs_dsize * fs.fs_minfree // 100
    assert fs.fs_cs_nbfree * frag + fs.fs_cs_nffree < reserve + frag
    while True:  # root may, until nothing is left
        try:
            held.append(m.alloc.alloc_blocks(0, 0, 1, root=True))
        except OSError as e:
            assert e.errno == errno.ENOSPC
            break
    assert fs.fs_cs_nbfree == 0
    recount(m)
    m.alloc.free_blocks([a + i * frag for a, n in held for i in range(n)])
    assert recount(m) == before
    _fsck_clean(m)


def test_inodes_are_allocated_and_freed_with_their_counts(mounted: Mounted) -> None:
    m = mounted
    fs = m.fs
    before = recount(m)
    ndir = fs.fs_cs_ndir
    d = m.alloc.alloc_inode(2, isdir=True)
    f = m.alloc.alloc_inode(d, isdir=False)
    assert d > 2 and f > 2 and d != f
    assert f // fs.fs_ipg == d // fs.fs_ipg  # a file goes to its parent directory's cg
    assert recount(m)[2] == before[2] - 2 and fs.fs_cs_ndir == ndir + 1
    m.alloc.free_inode(f, isdir=False)
    with pytest.raises(OSError) as e:
        m.alloc.free_inode(f, isdir=False)
    assert e.value.errno == errno.EIO
    m.alloc.free_inode(d, isdir=True)
    assert recount(m) == before and fs.fs_cs_ndir == ndir
    _fsck_clean(m)
