"""An independent recount of an FFS image: every bitmap and summary rebuilt from the inodes.

This is the test oracle of the write path, so it shares no code with the allocator: it reads the
image file directly (only the read-path codecs for the superblock, cg header and dinodes are
reused), walks every allocated inode and every directory from the root, and then compares what it
derived with what is on disk:

- no block claimed twice or out of range, ``di_blocks`` equals the sectors an inode holds,
  only the last direct block may be a fragment run, directories are multiples of 512 bytes;
- link counts equal the references found by the directory walk, every allocated inode is
  reachable, every entry names an allocated inode of the right type;
- per cg: inode map, fragment map, ``cg_cs`` (ndir, nbfree, nifree, nffree), ``cg_frsum``, cluster
  map and ``cg_clustersum``; the summary area; ``fs_cstotal`` and (UFS1) its ``fs_old_*`` twin.

``check_image(path)`` returns a list of problems (empty when consistent);
``assert_consistent(path)`` raises AssertionError listing them. ``count_image(path)`` returns the
recount itself (files, dirs, free blocks/frags) for leak tests.
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass, field

from p2k.fs.ffs.cg import Cg
from p2k.fs.ffs.dinode import DinodeCodec
from p2k.fs.ffs.dir import parse_dirblock
from p2k.fs.ffs.fs import (
    FS_44INODEFMT,
    cgbase,
    cgdmin,
    cgimin,
    cgsblock,
    cgtod,
    find_superblock,
)

_UNPACK = [bytes((b >> i) & 1 for i in range(8)) for b in range(256)]
_FLIP = bytes([1, 0] + [0] * 254)


def _bits(raw: bytes, n: int) -> bytes:
    return b"".join(_UNPACK[b] for b in raw)[:n]


@dataclass
class Recount:
    problems: list[str] = field(default_factory=list)
    inodes: int = 0
    dirs: int = 0
    nbfree: int = 0
    nffree: int = 0
    nifree: int = 0


def count_image(path: str | os.PathLike[str]) -> Recount:
    rc = Recount()
    p = rc.problems.append
    with open(path, "rb") as fh:
        def pread(off: int, n: int) -> bytes:
            fh.seek(off)
            return fh.read(n)

        size = os.fstat(fh.fileno()).st_size
        fs = find_superblock(pread, size)
        codec = DinodeCodec(fs.ufs2, fs.endian, not fs.ufs2 and fs.fs_old_inodefmt < FS_44INODEFMT)
        fsize, bsize, frag, ipg, fpg = fs.fs_fsize, fs.fs_bsize, fs.fs_frag, fs.fs_ipg, fs.fs_fpg
        isize = fs.inode_size
        ptr = struct.Struct(f"{fs.endian}{fs.fs_nindir}{'q' if fs.ufs2 else 'i'}")
        used = bytearray(fs.fs_size)
        nindir = fs.fs_nindir
        cgs: list[Cg] = []
        for c in range(fs.fs_ncg):
            cgs.append(Cg(bytearray(pread(cgtod(fs, c) * fsize, fs.fs_cgsize)), fs.endian))
            base = cgbase(fs, c)
            lo = 0 if c == 0 else cgsblock(fs, c) - base
            hi = cgdmin(fs, c) - base
            if c == 0:
                hi += -(-fs.fs_cssize // fsize)
            used[base + lo:base + hi] = b"\x01" * (hi - lo)
        inodes: dict[int, object] = {}
        blocks_of: dict[int, list[tuple[int, int]]] = {}

        def claim(ino: int, addr: int, n: int) -> bool:
            if addr <= 0 or addr + n > fs.fs_size:
                p(f"inode {ino}: block {addr} out of range")
                return False
            if any(used[addr:addr + n]):
                p(f"inode {ino}: block {addr} ({n} frags) claimed twice or metadata")
            used[addr:addr + n] = b"\x01" * n
            return True

        for c in range(fs.fs_ncg):
            n_inited = cgs[c].cg_initediblk if fs.ufs2 else ipg
            nblk = -(-n_inited // fs.fs_inopb)
            for ib in range(nblk):
                raw = pread((cgimin(fs, c) + ib * frag) * fsize, bsize)
                for k in range(fs.fs_inopb):
                    ino = c * ipg + ib * fs.fs_inopb + k
                    if ino < 2 or ino % ipg >= n_inited:
                        continue
                    ip = codec.decode(raw, k * isize, ino)
                    if ip.mode == 0:
                        continue
                    inodes[ino] = ip
                    kind = ip.mode & 0o170000
                    lst: list[tuple[int, int]] = []
                    sectors = 0
                    if fs.ufs2:  # the extended-attribute area: up to 2 blocks, the last a fragment run
                        left = ip.extsize
                        if left > 2 * bsize:
                            p(f"inode {ino}: ext area of {left} bytes")
                        for a in ip.extb:
                            if left <= 0:
                                if a:
                                    p(f"inode {ino}: ext block {a} past the ext area")
                                continue
                            sz = bsize if left >= bsize else -(-left // fsize) * fsize
                            if a and claim(ino, a, sz // fsize):
                                sectors += sz // 512
                            left -= bsize
                    fast = kind == stat.S_IFLNK and ip.size < fs.fs_maxsymlinklen and ip.blocks == sectors
                    if kind in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK) and not fast:
                        nlbn = -(-ip.size // bsize)
                        for lbn in range(12):
                            a = ip.db[lbn]
                            if not a:
                                continue
                            if lbn >= nlbn:
                                p(f"inode {ino}: block {lbn} past the end of the file")
                            sz = bsize if lbn < nlbn - 1 or ip.size % bsize == 0 else \
                                -(-(ip.size % bsize) // fsize) * fsize
                            if claim(ino, a, sz // fsize):
                                lst.append((lbn, a))
                                sectors += sz // 512

                        isdir = kind == stat.S_IFDIR

                        def walk(addr: int, level: int, base: int, ino: int = ino,
                                 lst: list[tuple[int, int]] = lst, isdir: bool = isdir) -> int:
                            if not claim(ino, addr, frag):
                                return 0
                            s = bsize // 512
                            per = nindir ** level
                            for i, q in enumerate(ptr.unpack(pread(addr * fsize, bsize))):
                                if q:
                                    if level == 0:
                                        if claim(ino, q, frag):
                                            s += bsize // 512
                                            if isdir:
                                                lst.append((base + i, q))
                                    else:
                                        s += walk(q, level - 1, base + i * per)
                            return s

                        base = 12
                        for level in range(3):
                            if ip.ib[level]:
                                sectors += walk(ip.ib[level], level, base)
                            base += nindir ** (level + 1)
                    if sectors != ip.blocks:
                        p(f"inode {ino}: di_blocks {ip.blocks} but holds {sectors} sectors")
                    if kind == stat.S_IFDIR and ip.size % 512:
                        p(f"directory {ino}: size {ip.size} not a multiple of 512")
                    blocks_of[ino] = lst
        # directory walk from the root: references and connectivity
        refs: dict[int, int] = {}
        seen: set[int] = set()
        stack = [2]
        while stack:
            d = stack.pop()
            if d in seen:
                continue
            seen.add(d)
            ip = inodes.get(d)
            if ip is None:
                p(f"directory {d} is not allocated")
                continue
            dmap = dict(blocks_of.get(d, []))
            for lbn in range(-(-ip.size // bsize)):  # type: ignore[attr-defined]
                a = dmap.get(lbn)
                if a is None:
                    p(f"directory {d}: hole at block {lbn}")
                    continue
                n = min(bsize, ip.size - lbn * bsize)  # type: ignore[attr-defined]
                for _off, eino, dtype, name, _ in parse_dirblock(pread(a * fsize, n), lbn * bsize, fs.endian,
                                                                  False, lambda o, w, d=d: p(f"dir {d}: {w} at {o}")):
                    if not eino:
                        continue
                    if name == b"." and eino != d:
                        p(f"dir {d}: '.' is {eino}")
                    refs[eino] = refs.get(eino, 0) + 1
                    child = inodes.get(eino)
                    if child is None:
                        p(f"dir {d}: entry {name!r} names free inode {eino}")
                        continue
                    if dtype != (child.mode >> 12) & 15:  # type: ignore[attr-defined]
                        p(f"dir {d}: entry {name!r} has type {dtype}")
                    if name not in (b".", b"..") and child.mode & 0o170000 == stat.S_IFDIR:  # type: ignore[attr-defined]
                        stack.append(eino)
        for ino, ip in inodes.items():
            if refs.get(ino, 0) != ip.nlink:  # type: ignore[attr-defined]
                p(f"inode {ino}: nlink {ip.nlink} but {refs.get(ino, 0)} references")  # type: ignore[attr-defined]
        # cylinder groups
        t_nb = t_nf = t_ni = t_nd = 0
        csum = struct.unpack_from(f"{fs.endian}{4 * fs.fs_ncg}i", pread(fs.fs_csaddr * fsize, fs.fs_cssize))
        for c, cg in enumerate(cgs):
            base = cgbase(fs, c)
            nd = cg.cg_ndblk
            want_free = bytes(used[base:base + nd]).translate(_FLIP)
            have_free = _bits(bytes(cg.blksfree(fpg)), nd)
            if want_free != have_free:
                bad = [i for i in range(nd) if want_free[i] != have_free[i]]
                p(f"cg {c}: fragment map wrong at {len(bad)} frags, first {base + bad[0]} "
                  f"(map says {'free' if have_free[bad[0]] else 'used'})")
            nb = nf = 0
            frsum = [0] * 8
            clusters = bytearray()
            for b in range(nd // frag):
                pat = want_free[b * frag:(b + 1) * frag]
                if pat.count(1) == frag:
                    nb += 1
                    clusters.append(1)
                    continue
                clusters.append(0)
                nf += pat.count(1)
                for run in pat.split(b"\x00"):
                    if run:
                        frsum[len(run)] += 1
            if nd % frag:
                tail = want_free[nd // frag * frag:]
                nf += tail.count(1)
                for run in tail.split(b"\x00"):
                    if run:
                        frsum[len(run)] += 1
            ni = nd_ = 0
            want_used = bytearray(ipg)
            for i in range(ipg):
                ino = c * ipg + i
                if ino < 2 or ino in inodes:
                    want_used[i] = 1
                    if ino in inodes and inodes[ino].mode & 0o170000 == stat.S_IFDIR:  # type: ignore[attr-defined]
                        nd_ += 1
                else:
                    ni += 1
            if _bits(bytes(cg.inosused()), ipg) != bytes(want_used):
                p(f"cg {c}: inode map wrong")
            got = (cg.cg_cs_ndir, cg.cg_cs_nbfree, cg.cg_cs_nifree, cg.cg_cs_nffree)
            if got != (nd_, nb, ni, nf):
                p(f"cg {c}: cg_cs {got} but recount {(nd_, nb, ni, nf)}")
            if tuple(csum[4 * c:4 * c + 4]) != (nd_, nb, ni, nf):
                p(f"cg {c}: summary area {csum[4 * c:4 * c + 4]} but recount {(nd_, nb, ni, nf)}")
            if cg.cg_frsum[1:frag] != frsum[1:frag]:
                p(f"cg {c}: cg_frsum {cg.cg_frsum[1:frag]} but recount {frsum[1:frag]}")
            if fs.fs_contigsumsize > 0 and cg.cg_clusteroff:
                have = _bits(bytes(cg.buf[cg.cg_clusteroff:cg.cg_clusteroff + (cg.cg_nclusterblks + 7) // 8]),
                             cg.cg_nclusterblks)
                if have != bytes(clusters[:cg.cg_nclusterblks]):
                    p(f"cg {c}: cluster map wrong")
                csz = fs.fs_contigsumsize
                want_sum = [0] * (csz + 1)
                for run in bytes(clusters[:cg.cg_nclusterblks]).split(b"\x00"):
                    if run:
                        want_sum[min(len(run), csz)] += 1
                have_sum = list(struct.unpack_from(f"{fs.endian}{csz}i", cg.buf, cg.cg_clustersumoff + 4))
                if have_sum != want_sum[1:]:
                    p(f"cg {c}: cluster summary {have_sum} but recount {want_sum[1:]}")
            t_nb += nb
            t_nf += nf
            t_ni += ni
            t_nd += nd_
        if fs.cstotal != (t_nd, t_nb, t_ni, t_nf):
            p(f"fs_cstotal {fs.cstotal} but recount {(t_nd, t_nb, t_ni, t_nf)}")
        if not fs.ufs2:
            old = (fs.fs_old_cs_ndir, fs.fs_old_cs_nbfree, fs.fs_old_cs_nifree, fs.fs_old_cs_nffree)
            if old != (t_nd, t_nb, t_ni, t_nf):
                p(f"fs_old_cstotal {old} but recount {(t_nd, t_nb, t_ni, t_nf)}")
            if (fs.fs_old_size, fs.fs_old_dsize, fs.fs_old_csaddr) != (fs.fs_size, fs.fs_dsize, fs.fs_csaddr):
                p("UFS1 fs_old_size/dsize/csaddr out of step with the 64-bit fields")
        rc.inodes, rc.dirs, rc.nbfree, rc.nffree, rc.nifree = len(inodes), t_nd, t_nb, t_nf, t_ni
    return rc


def check_image(path: str | os.PathLike[str]) -> list[str]:
    return count_image(path).problems


def assert_consistent(path: str | os.PathLike[str]) -> None:
    problems = check_image(path)
    assert not problems, f"{path}: {len(problems)} problem(s):\n" + "\n".join(problems[:40])
