"""Phase 1's common case without a per-inode object: a regular file or directory with only direct
blocks, each one in range and not claimed yet, and the block count right.

Profiling phase 1 on 100,000 small files put three quarters of fsck's time into decoding each
inode into an ``Inode``, walking it with ``ckinode`` and a closure per block, and the size rules.
Almost every inode of a healthy file system is the simple kind above, so a whole inode-table
chunk is unpacked with one ``iter_unpack`` (the dinode codec's own struct, so the field layout is
declared once) and each inode is handled from its tuple with a handful of integer tests. Anything
that is not plainly fine — an indirect block, an extended attribute area, a symlink or device, a
zero link count, a bad or already claimed address, a wrong count — is handed to the full
``check_inode`` *before* anything is recorded for it, so the outcome is exactly the slow path's.
"""

from __future__ import annotations

from collections.abc import Callable

from p2k.fs.ffs.dinode import UFS1_FIELDS, UFS2_FIELDS
from p2k.fs.ffs.fs import UFS_NDADDR
from p2k.fs.ffs.fsck.ctx import Ctx
from p2k.fs.ffs.fsck.state import DSTATE, FSTATE
from p2k.fs.ffs.inode import IFDIR, IFMT, IFREG


def _indexes(fields: tuple[tuple[str, str], ...]) -> dict[str, int]:
    """Position of each field's first value in the codec struct's flat tuple."""
    out = {}
    i = 0
    for name, fmt in fields:
        out[name] = i
        i += int(fmt[:-1]) if fmt[:-1].isdigit() and fmt[-1] != "s" else 1
    return out


class FastScan:
    """Scan inode-table chunks; ``slow(buf, off, ino)`` is called for every inode not handled."""

    def __init__(self, ctx: Ctx, maxsize: int, slow: Callable[[bytes, int, int], None],
                 partial: Callable[[int], None]) -> None:
        fs = ctx.fs
        self.ctx = ctx
        self.maxsize = maxsize
        self.slow = slow
        self.partial = partial
        ix = _indexes(UFS2_FIELDS if fs.ufs2 else UFS1_FIELDS)
        self.ix = (ix["mode"], ix["nlink"], ix["size"], ix["blocks"], ix["db"], ix["ib"], ix.get("extsize"))
        self.st = ctx.codec.st

    def scan(self, buf: bytes, ino0: int) -> None:
        """Pass 1 over one inode block's worth of dinodes, the common shapes inline.

        Over 80 lines on purpose: this loop runs once per inode of the file system, and every
        helper call or attribute lookup inside it is paid a million times on a big image. The two
        shapes handled here (a file or directory of at most one block, and one of direct blocks
        only) are written out in full; anything else goes to ``slow``, the full check.
        """
        ctx = self.ctx
        fs, st = ctx.fs, ctx.st
        i_mode, i_nlink, i_size, i_blocks, i_db, i_ib, i_ext = self.ix
        db_end = i_db + UFS_NDADDR
        ib_end = i_ib + 3
        bsize, bshift, fsize, frag = fs.fs_bsize, fs.fs_bshift, fs.fs_fsize, fs.fs_frag
        maxdirect = min(UFS_NDADDR * bsize, self.maxsize)
        maxf = st.maxfsblock
        spf = fsize // 512
        bm = st.blockmap
        statemap, typemap, lncnt, dirs = st.statemap, st.typemap, st.lncnt, st.dirs
        isize = ctx.isize
        nfiles = nblks = 0
        for i, v in enumerate(self.st.iter_unpack(buf)):
            ino = ino0 + i
            mode = v[i_mode]
            if mode == 0:
                if ino >= 2 and (v[i_size] or any(v[i_db:ib_end])):
                    self.partial(ino)
                continue
            if ino < 2:
                continue
            t = mode & IFMT
            size = v[i_size]
            nlink = v[i_nlink]
            if (t != IFREG and t != IFDIR) or nlink <= 0 or size > maxdirect or v[i_ib] or v[i_ib + 1] \
                    or v[i_ib + 2] or (i_ext is not None and v[i_ext]) or (t == IFDIR and (not size or not v[i_db])):
                self.slow(buf, i * isize, ino)
                continue
            if size <= bsize:
                # one block at most (most files): no loop, no list
                a = v[i_db]
                if any(v[i_db + 1:db_end]):
                    self.slow(buf, i * isize, ino)
                    continue
                counted = 0
                if a:
                    n = ((size + fsize - 1) // fsize) if size < bsize else frag
                    mask = ((1 << n) - 1) << (a & 7)
                    if a < 0 or a + n > maxf or (a & (frag - 1)) + n > frag or bm[a >> 3] & mask \
                            or n * spf != v[i_blocks]:
                        self.slow(buf, i * isize, ino)
                        continue
                    bm[a >> 3] |= mask
                    counted = n
                elif v[i_blocks]:
                    self.slow(buf, i * isize, ino)
                    continue
                nblks += counted
                nfiles += 1
                lncnt[ino] = nlink
                typemap[ino] = mode >> 12
                if t == IFDIR:
                    statemap[ino] = DSTATE
                    dirs.append(ino)
                else:
                    statemap[ino] = FSTATE
                continue
            ndb = (size + bsize - 1) >> bshift
            if any(v[i_db + ndb:db_end]):
                self.slow(buf, i * isize, ino)
                continue
            counted = 0
            claimed = []
            last = ndb - 1
            for j in range(ndb):
                a = v[i_db + j]
                if not a:
                    continue
                n = frag
                if j == last and size & (bsize - 1):
                    n = ((size & (bsize - 1)) + fsize - 1) // fsize
                mask = ((1 << n) - 1) << (a & 7)
                if a < 0 or a + n > maxf or (a & (frag - 1)) + n > frag or bm[a >> 3] & mask:
                    counted = -1
                    break
                bm[a >> 3] |= mask  # claimed now: a second pointer to it in this inode is caught
                claimed.append((a >> 3, mask))
                counted += n
            if counted < 0 or counted * spf != v[i_blocks]:
                for byte, mask in claimed:  # undo: the full check starts from the map as it was
                    bm[byte] &= ~mask & 0xFF
                self.slow(buf, i * isize, ino)
                continue
            nblks += counted
            nfiles += 1
            lncnt[ino] = nlink
            typemap[ino] = mode >> 12
            if t == IFDIR:
                statemap[ino] = DSTATE
                dirs.append(ino)
            else:
                statemap[ino] = FSTATE
        st.n_files += nfiles
        st.n_blks += nblks
