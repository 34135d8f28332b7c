"""Block and fragment allocation and freeing (NetBSD ``ffs_alloc.c`` + ``ffs_subr.c``).

Policy follows FFS: directories are spread over cylinder groups (``dirpref``), files and their
blocks stay near their parent and near the previous block (``ffs_blkpref``), a file's tail lives
in fragments of a partially used block, and a cg is chosen by NetBSD's hash order (preferred cg,
quadratic rehash, then brute force). Accounting is exact at every step: the cg maps, ``cg_cs``,
``cg_frsum``, the cluster map and ``cg_clustersum``, the in-core csum array (written back to the
summary area on sync) and ``fs_cstotal`` change together in one place (``_blk_acct``).

Speed comes from never looping per fragment in Python (``bitmap.py``): the free map of a cg is
turned into one byte per block with ``bytes.translate``, and free blocks or fragment runs are
found with ``bytes.find``. Inode allocation lives in ``ialloc.py`` (a mixin of the same class).

The cg header is always read through the buffer cache at ``cgtod`` with ``fs_cgsize`` bytes — the
same buffer the read path consults for ``cg_initediblk`` — and released with ``bdwrite`` (NetBSD
writes cgs delayed: fsck rebuilds bitmaps, and a bitmap is never written ahead of the inode that
stops using a block, see ``ffs_inode.truncate``).
"""

from __future__ import annotations

import errno
import struct

from p2k.fs.ffs.bitmap import frag_tables, get_bits, set_bits
from p2k.fs.ffs.cg import Cg, cg_layout_sane
from p2k.fs.ffs.fs import Superblock, cgbase, cgtod, decode_csums, dtog, dtogd, encode_csums, freespace
from p2k.fs.ffs.ialloc import InodeAlloc
from p2k.hyper import now_ns

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from collections.abc import Callable

    from p2k.fs.ffs.dinode import DinodeCodec
    from p2k.vfs.bufcache import BlockDevice, Buf, BufCache


_CS_NAMES = ("ndir", "nbfree", "nifree", "nffree")  # struct csum's order


class Allocator(InodeAlloc):
    """Allocation state of one read-write mount: the superblock, csum array and cg buffers."""

    def __init__(self, fs: Superblock, dev: BlockDevice, bufcache: BufCache, codec: DinodeCodec) -> None:
        self.fs = fs
        self.dev = dev
        self.bufcache = bufcache
        self.codec = codec
        self.t = frag_tables(fs.fs_frag)
        self.ncg = fs.fs_ncg
        self._orders: dict[int, list[int]] = {}
        raw = bufcache.read(dev, fs.fs_csaddr << fs.fs_fshift, fs.fs_cssize)
        self.csum = decode_csums(raw, self.ncg, fs.endian)  # ndir, nbfree, nifree, nffree per cg
        self.csum_dirty = False
        self.contigdirs = [0] * self.ncg
        self.cluster = fs.fs_contigsumsize > 0
        self._cgs: dict[int, tuple[Buf, Cg]] = {}
        self.note_new: Callable[[int], None] = lambda addr: None  # the mount's ordered-write hook

    # ---- cg buffers and counters -----------------------------------------------------------------
    def cg(self, c: int) -> tuple[Buf, Cg]:
        """The cg's buffer and its decoded header. The decoded form is kept while the buffer
        stays the same object (every change goes through it and is encoded back by ``put``), so
        the common case costs one dictionary lookup instead of a decode."""
        fs = self.fs
        bp = self.bufcache.bread(self.dev, cgtod(fs, c) << fs.fs_fshift, fs.fs_cgsize)
        hit = self._cgs.get(c)
        if hit is not None and hit[0] is bp and hit[1].buf is bp.data:
            return bp, hit[1]
        cg = Cg(bp.data, fs.endian)
        cg.check(c, fs.fs_ipg, fs.fs_fpg, fs.fs_cgsize)
        if not cg_layout_sane(cg, fs):  # the cluster map too: a bad offset must not be written through
            raise OSError(errno.EIO, f"cg {c}: map offsets overlap or leave the cylinder group block")
        self._cgs[c] = (bp, cg)
        return bp, cg

    def put(self, bp: Buf, cg: Cg) -> None:
        t = now_ns() // 1_000_000_000
        if self.fs.ufs2:
            cg.cg_time = t
        else:
            cg.cg_old_time = t & 0x7FFFFFFF
        cg.encode_into(bp.data)
        self.bufcache.bdwrite(bp)
        self.fs.dirty = True

    def _cs(self, c: int, cg: Cg, ndir: int = 0, nbfree: int = 0, nifree: int = 0, nffree: int = 0) -> None:
        """One change to the summary counts, kept in step in its three homes: the cg header, the
        in-core csum array and the superblock's totals."""
        fs = self.fs
        cs = self.csum[c]
        for k, d in enumerate((ndir, nbfree, nifree, nffree)):
            if d:
                name = _CS_NAMES[k]
                setattr(cg, "cg_cs_" + name, getattr(cg, "cg_cs_" + name) + d)
                setattr(fs, "fs_cs_" + name, getattr(fs, "fs_cs_" + name) + d)
                cs[k] += d
        self.csum_dirty = True

    def csum_bytes(self) -> bytes:
        return encode_csums(self.csum, self.fs.endian, self.fs.fs_cssize)

    # ---- accounting of one block's fragment pattern ----------------------------------------------
    def _blk_acct(self, c: int, cg: Cg, pattern: int, sign: int) -> None:
        """Add (sign=1) or remove (sign=-1) the contribution of a block with free-bit ``pattern``:
        a wholly free block counts in nbfree, a partial one in nffree and cg_frsum."""
        t = self.t
        if pattern == t.full:
            self._cs(c, cg, nbfree=sign)
            return
        if pattern == 0:
            return
        self._cs(c, cg, nffree=sign * t.popcount[pattern])
        for r in t.runs[pattern]:
            cg.cg_frsum[r] += sign

    def _cluster(self, cg: Cg, blk: int, n: int, free: bool) -> None:
        """ffs_clusteracct for a run of ``n`` blocks becoming free or allocated."""
        if not self.cluster or not cg.cg_clusteroff:
            return
        buf = cg.buf
        off = cg.cg_clusteroff
        csz = self.fs.fs_contigsumsize
        nblks = cg.cg_nclusterblks
        set_bits(buf, off, blk, n, free)  # type: ignore[arg-type]
        back = 0
        i = blk - 1
        while i >= 0 and back < csz and buf[off + (i >> 3)] >> (i & 7) & 1:
            back += 1
            i -= 1
        forw = 0
        i = blk + n
        while i < nblks and forw < csz and buf[off + (i >> 3)] >> (i & 7) & 1:
            forw += 1
            i += 1
        sign = 1 if free else -1
        sumoff = cg.cg_clustersumoff
        endian = self.fs.endian

        def bump(k: int, d: int) -> None:
            v = struct.unpack_from(endian + "i", buf, sumoff + 4 * k)[0]
            struct.pack_into(endian + "i", buf, sumoff + 4 * k, v + d)

        bump(min(back + n + forw, csz), sign)
        if back:
            bump(back, -sign)
        if forw:
            bump(forw, -sign)

    def _pattern(self, cg: Cg, blk: int) -> int:
        frag = self.t.frag
        return get_bits(cg.buf, cg.cg_freeoff, blk * frag, frag)

    # ---- space checks ----------------------------------------------------------------------------
    def check_space(self, nfrags: int, root: bool) -> None:
        """ENOSPC when the request would dip into the minfree reserve (non-root) or exceed the
        free space (anyone), as ffs_alloc checks before searching."""
        fs = self.fs
        if root:
            if fs.fs_cs_nbfree * fs.fs_frag + fs.fs_cs_nffree < nfrags:
                raise OSError(errno.ENOSPC, "file system full")
        elif freespace(fs, fs.fs_minfree) - nfrags < 0:
            raise OSError(errno.ENOSPC, "file system full (minfree reserve)")

    def _cg_order(self, start: int) -> list[int]:
        """ffs_hashalloc's order: preferred cg, quadratic rehash, then brute force. The same few
        starting groups are asked for on every allocation: each order is built once."""
        order = self._orders.get(start)
        if order is None:
            order = self._orders[start] = self._hash_order(start)
        return order

    def _hash_order(self, start: int) -> list[int]:
        n = self.ncg
        order = [start]
        seen = {start}
        i = 1
        c = start
        while i < n:
            c = (c + i) % n
            if c not in seen:
                order.append(c)
                seen.add(c)
            i *= 2
        c = (start + 2) % n
        for _ in range(n):
            if c not in seen:
                order.append(c)
                seen.add(c)
            c = (c + 1) % n
        return order

    # ---- blocks ----------------------------------------------------------------------------------
    def blkpref_cg(self, ino: int, lbn: int) -> int:
        """The cg where a file's run of blocks starting at ``lbn`` should begin (ffs_blkpref with
        no usable previous block): the inode's cg for the first blocks, then a cg with at least
        average free space, moving on every ``fs_maxbpg`` blocks so big files spread."""
        fs = self.fs
        icg = ino // fs.fs_ipg
        if lbn < 12:
            return icg
        start = (icg + lbn // max(fs.fs_maxbpg, 1)) % self.ncg
        avg = fs.fs_cs_nbfree // self.ncg
        for c in list(range(start, self.ncg)) + list(range(start)):
            if self.csum[c][1] >= avg:
                return c
        return start

    def alloc_blocks(self, pref: int, cgpref: int, count: int, root: bool) -> tuple[int, int]:
        """A run of up to ``count`` contiguous free blocks, at ``pref`` (a fragment address) if it
        is free, else the next free block after it in its cg, else in another cg.
        Returns (first fragment address, number of blocks)."""
        fs = self.fs
        self.check_space(fs.fs_frag, root)
        frag = fs.fs_frag
        start_cg = dtog(fs, pref) if 0 < pref < fs.fs_size else cgpref
        for c in self._cg_order(start_cg):
            if self.csum[c][1] <= 0:
                continue
            bp, cg = self.cg(c)
            nblk = -(-cg.cg_ndblk // frag)
            freeblk = self.t.patterns(cg.blksfree(fs.fs_fpg), nblk).translate(self.t.is_full)
            if 0 < pref < fs.fs_size and dtog(fs, pref) == c:
                hint = dtogd(fs, pref) // frag
            else:
                hint = cg.cg_rotor // frag if cg.cg_rotor < cg.cg_ndblk else 0
            b = freeblk.find(b"\x01", hint)
            if b < 0:
                b = freeblk.find(b"\x01")
            if b < 0:  # summary said free blocks exist; the map disagrees
                raise OSError(errno.EIO, f"cg {c}: free block count {cg.cg_cs_nbfree} but none in map")
            end = freeblk.find(b"\x00", b)
            if end < 0:
                end = nblk
            n = min(end - b, count)
            set_bits(bp.data, cg.cg_freeoff, b * frag, n * frag, False)
            self._cs(c, cg, nbfree=-n)
            self._cluster(cg, b, n, free=False)
            cg.cg_rotor = (b + n - 1) * frag
            self.put(bp, cg)
            return cgbase(fs, c) + b * frag, n
        raise OSError(errno.ENOSPC, "file system full")

    def alloc_frags(self, pref: int, cgpref: int, n: int, root: bool) -> int:
        """A run of ``n`` (< frag) fragments inside one block: best fit among partially free
        blocks (cg_frsum), else split a free block (ffs_alloccg)."""
        fs = self.fs
        t = self.t
        frag = fs.fs_frag
        self.check_space(n, root)
        start_cg = dtog(fs, pref) if 0 < pref < fs.fs_size else cgpref
        for c in self._cg_order(start_cg):
            cs = self.csum[c]
            if cs[1] <= 0 and cs[3] < n:
                continue
            bp, cg = self.cg(c)
            allocsiz = next((k for k in range(n, frag) if cg.cg_frsum[k] > 0), frag)
            if allocsiz == frag and cg.cg_cs_nbfree <= 0:
                continue
            nblk = -(-cg.cg_ndblk // frag)
            pats = t.patterns(cg.blksfree(fs.fs_fpg), nblk)
            hint = dtogd(fs, pref) // frag if 0 < pref < fs.fs_size and dtog(fs, pref) == c else 0
            if allocsiz == frag:
                ok = pats.translate(t.is_full)
            else:
                ok = pats.translate(t.fits[allocsiz])
            b = ok.find(b"\x01", hint)
            if b < 0:
                b = ok.find(b"\x01")
            if b < 0:
                raise OSError(errno.EIO, f"cg {c}: fragment summary disagrees with the map")
            pat = pats[b]
            pos = t.first_run(pat, n) if allocsiz == frag else self._best_run(pat, allocsiz, n)
            self._blk_acct(c, cg, pat, -1)
            if pat == t.full:
                self._cluster(cg, b, 1, free=False)
            newpat = pat & ~(((1 << n) - 1) << pos)
            set_bits(bp.data, cg.cg_freeoff, b * frag + pos, n, False)
            self._blk_acct(c, cg, newpat, 1)
            cg.cg_frotor = b * frag
            self.put(bp, cg)
            return cgbase(fs, c) + b * frag + pos
        raise OSError(errno.ENOSPC, "file system full")

    def _best_run(self, pat: int, allocsiz: int, n: int) -> int:
        """Start of the first free run of exactly ``allocsiz`` (else ≥ allocsiz) fragments."""
        frag = self.t.frag
        i = 0
        first_fit = -1
        while i < frag:
            if pat >> i & 1:
                j = i
                while j < frag and pat >> j & 1:
                    j += 1
                if j - i == allocsiz:
                    return i
                if j - i >= n and first_fit < 0:
                    first_fit = i
                i = j
            else:
                i += 1
        return first_fit

    def extend_frags(self, addr: int, old: int, new: int) -> bool:
        """ffs_fragextend: grow the run at ``addr`` from ``old`` to ``new`` fragments in place
        when the fragments after it (in the same block) are free."""
        fs = self.fs
        frag = fs.fs_frag
        if (addr % frag) + new > frag:
            return False
        c = dtog(fs, addr)
        if self.csum[c][3] < new - old:
            return False
        bp, cg = self.cg(c)
        d = dtogd(fs, addr)
        if d + new > cg.cg_ndblk:
            return False
        b = d // frag
        pat = self._pattern(cg, b)
        pos = d % frag
        want = ((1 << (new - old)) - 1) << (pos + old)
        if pat & want != want:
            return False
        self._blk_acct(c, cg, pat, -1)
        set_bits(bp.data, cg.cg_freeoff, d + old, new - old, False)
        self._blk_acct(c, cg, pat & ~want, 1)
        self.put(bp, cg)
        return True

    def free(self, addr: int, nfrags: int) -> None:
        """ffs_blkfree: release ``nfrags`` fragments at ``addr`` (a full block or a run inside one)."""
        fs = self.fs
        frag = fs.fs_frag
        if addr <= 0 or addr + nfrags > fs.fs_size:
            raise OSError(errno.EIO, f"freeing bad block {addr}")
        c = dtog(fs, addr)
        bp, cg = self.cg(c)
        d = dtogd(fs, addr)
        b = d // frag
        if nfrags == frag and d % frag == 0:
            if self._pattern(cg, b):
                raise OSError(errno.EIO, f"freeing free block {addr}")
            set_bits(bp.data, cg.cg_freeoff, d, frag, True)
            self._cs(c, cg, nbfree=1)
            self._cluster(cg, b, 1, free=True)
        else:
            pat = self._pattern(cg, b)
            bits = ((1 << nfrags) - 1) << (d % frag)
            if pat & bits:
                raise OSError(errno.EIO, f"freeing free fragment {addr}")
            self._blk_acct(c, cg, pat, -1)
            set_bits(bp.data, cg.cg_freeoff, d, nfrags, True)
            newpat = pat | bits
            self._blk_acct(c, cg, newpat, 1)
            if newpat == self.t.full:
                self._cluster(cg, b, 1, free=True)
        self.put(bp, cg)

    def free_blocks(self, addrs: list[int]) -> None:
        """Free many full blocks at once, a run per cg at a time (truncating a big file)."""
        fs = self.fs
        frag = fs.fs_frag
        addrs = sorted(addrs)
        i = 0
        while i < len(addrs):
            c = dtog(fs, addrs[i])
            bp, cg = self.cg(c)
            while i < len(addrs) and dtog(fs, addrs[i]) == c:
                j = i + 1
                while j < len(addrs) and addrs[j] == addrs[j - 1] + frag and dtog(fs, addrs[j]) == c:
                    j += 1
                d = dtogd(fs, addrs[i])
                n = j - i
                if get_bits(bp.data, cg.cg_freeoff, d, n * frag):
                    raise OSError(errno.EIO, f"freeing free block near {addrs[i]}")
                set_bits(bp.data, cg.cg_freeoff, d, n * frag, True)
                self._cs(c, cg, nbfree=n)
                self._cluster(cg, d // frag, n, free=True)
                i = j
            self.put(bp, cg)


__all__ = ["Allocator", "frag_tables", "get_bits", "set_bits"]
