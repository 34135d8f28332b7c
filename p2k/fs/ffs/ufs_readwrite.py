"""FFS vnode operations for reading (NetBSD ``ufs_vnops.c``, ``ufs_lookup.c``, ``ffs_vnops.c``).

``FfsVnops`` is a mixin of ``FfsMount``: it reads ``self.fs``, ``self.dev``, ``self.bufcache``,
``self.bmapper`` and ``self.codec``, which ``vfs_start`` sets up. The write path adds its VOPs
beside these (or in a sibling mixin) and keeps the same helpers.

Data reads map the requested block range in one go and fetch each physically contiguous run with
one ``BufCache.read_extent`` call, so a sequential read is one host read per run, not per block.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from p2k.fs.ffs.dir import DT_WHT, parse_dirblock
from p2k.fs.ffs.fs import MAXPATHLEN, UFS_ROOTINO
from p2k.fs.ffs.inode import IFDIR, IFLNK
from p2k.vfs.vattr import Dirent, Vattr

log = logging.getLogger("p2k.ffs")

if TYPE_CHECKING:
    from p2k.fs.ffs.bmap import BlockMap
    from p2k.fs.ffs.dinode import DinodeCodec
    from p2k.fs.ffs.fs import Superblock
    from p2k.fs.ffs.inode import Inode
    from p2k.vfs.bufcache import BlockDevice, BufCache
    from p2k.vfs.vnode import Vnode

# A run at least this long bypasses the buffer cache on a miss: streaming a big file must not
# evict the metadata the cache is for (NetBSD keeps file data in the page cache, not in buffers).
# 128 KiB is what the FUSE bridge asks for per request; caching each such run block by block cost
# three times the host read itself (85 vs 28 us a request), and the host's page cache already keeps
# what a FUSE reader reads again.
STREAM_THRESHOLD = 128 * 1024
MAX_DIR_ERRORS = 100


class FfsVnops:
    fs: Superblock
    dev: BlockDevice
    bufcache: BufCache
    bmapper: BlockMap
    codec: DinodeCodec
    fsid: int
    oldfmt_dir: bool
    dir_errors: list[str]
    maxino: int
    mountpoint_path: str
    acls = False  # POSIX.1e ACLs enforced (FS_POSIX1EACLS or -o acls): see ffs_vnops

    # ---- data ------------------------------------------------------------------------------------
    def read_range(self, ip: Inode, offset: int, end: int) -> bytes:
        """Bytes ``[offset, end)`` of the file (``end`` ≤ size); holes read as zeros."""
        if end <= offset:
            return b""
        fs = self.fs
        bshift = fs.fs_bshift
        lbn0 = offset >> bshift
        lbn1 = (end - 1) >> bshift
        runs = self.bmapper.extents(ip, lbn0, lbn1 - lbn0 + 1)
        bsize = fs.fs_bsize
        read_extent = self.bufcache.read_extent
        dev = self.dev
        if len(runs) == 1:
            off, n = runs[0]
            data: bytes = bytes(n) if off < 0 else read_extent(dev, off, n, bsize, n < STREAM_THRESHOLD)
        else:
            parts = [bytes(n) if off < 0 else read_extent(dev, off, n, bsize, n < STREAM_THRESHOLD)
                     for off, n in runs]
            data = b"".join(parts)
        start = offset - (lbn0 << bshift)
        if start == 0 and len(data) == end - offset:
            return data
        return data[start:start + end - offset]

    def vop_read(self, vp: Vnode, offset: int, size: int) -> bytes:
        ip: Inode = vp.data  # type: ignore[assignment]
        if offset < 0:
            raise OSError(errno.EINVAL, "negative offset")
        if size <= 0 or offset >= ip.size:
            return b""
        return self.read_range(ip, offset, min(offset + size, ip.size))

    # ---- attributes ------------------------------------------------------------------------------
    def vop_getattr(self, vp: Vnode) -> Vattr:
        ip: Inode = vp.data  # type: ignore[assignment]
        g = 1_000_000_000
        mode = ip.mode
        # positional: this runs once per entry of a stat walk (order = Vattr's field order)
        va = Vattr(
            mode, ip.nlink, ip.uid, ip.gid, ip.size, ip.ino,
            ip.db[0] & 0xFFFFFFFFFFFFFFFF if mode & 0o170000 in (0o020000, 0o060000) else 0,
            ip.atime * g + ip.atimensec, ip.mtime * g + ip.mtimensec,
            ip.ctime * g + ip.ctimensec, ip.birthtime * g + ip.birthnsec,
            ip.blocks, self.fs.fs_bsize, ip.flags, ip.gen, self.fsid)
        if ip.extsize and self.acls:
            return self.acl_vattr(ip, va)  # type: ignore[attr-defined,no-any-return]  # ffs_vnops
        return va

    # ---- symbolic links --------------------------------------------------------------------------
    def vop_readlink(self, vp: Vnode) -> bytes:
        ip: Inode = vp.data  # type: ignore[assignment]
        if ip.mode & 0o170000 != IFLNK:
            raise OSError(errno.EINVAL, "not a symbolic link")
        isize = ip.size
        msl = self.fs.fs_maxsymlinklen
        # ufs_readlink: inline iff size < maxsymlinklen (strictly: a target of exactly 60/120
        # bytes lives in a block), or on old file systems with no blocks at all.
        if isize < msl or (msl == 0 and ip.blocks == 0):
            short = self.codec.shortlink(ip)
            if isize > len(short):
                raise OSError(errno.EIO, f"inode {ip.ino}: inline symlink of {isize} bytes")
            return short[:isize]
        if isize >= MAXPATHLEN:
            raise OSError(errno.EIO, f"inode {ip.ino}: symlink of {isize} bytes exceeds MAXPATHLEN")
        return self.read_range(ip, 0, isize)

    # ---- directories -----------------------------------------------------------------------------
    def _dir_bad(self, ip: Inode) -> Callable[[int, str], None]:
        def bad(off: int, why: str) -> None:
            # NetBSD's ufs_dirbad prints and carries on with the next chunk; we keep the message.
            msg = f"bad dir ino {ip.ino} at offset {off}: {why}"
            if len(self.dir_errors) < MAX_DIR_ERRORS and msg not in self.dir_errors:
                self.dir_errors.append(msg)
                log.warning("%s: %s", self.mountpoint_path, msg)  # the console line, once
        return bad

    def dir_blocks(self, ip: Inode, start: int = 0) -> Iterator[list[tuple[int, int, int, bytes, int]]]:
        """The parsed entries of each directory block from the one holding byte ``start`` on.

        Reads a block at a time through the buffer cache; entries are ``(offset, ino, type, name,
        reclen)`` with free slots (ino 0) included, exactly as ``dir.parse_dirblock`` returns them."""
        if ip.mode & 0o170000 != IFDIR:
            raise OSError(errno.ENOTDIR, f"inode {ip.ino} is not a directory")
        fs = self.fs
        bsize = fs.fs_bsize
        size = ip.size
        bad = self._dir_bad(ip)
        endian = fs.endian
        oldfmt = self.oldfmt_dir
        lbn = max(start, 0) >> fs.fs_bshift
        while (lbn << fs.fs_bshift) < size:
            base = lbn << fs.fs_bshift
            if self.bmapper.bmap(ip, lbn) == 0:
                # Directories have no holes (fsck: "DIRECTORY ... HAS A HOLE"); stopping here also
                # bounds the scan of a directory whose size field was corrupted upwards.
                raise OSError(errno.EIO, f"directory inode {ip.ino} has a hole at block {lbn}")
            data = self.read_range(ip, base, min(base + bsize, size))
            yield parse_dirblock(data, base, endian, oldfmt, bad)
            lbn += 1

    def dir_entries(self, ip: Inode, start: int = 0, *, free_slots: bool = False,
                    ) -> Iterator[tuple[int, int, int, bytes, int]]:
        """``(offset, ino, type, name, reclen)`` of every entry at or after byte ``start``;
        free slots only with ``free_slots``."""
        for ents in self.dir_blocks(ip, start):
            for ent in ents:
                if ent[0] >= start and (ent[1] or free_slots):
                    yield ent

    def sane_entries(self, ip: Inode, start: int = 0) -> Iterator[tuple[int, int, int, bytes, int]]:
        """The live entries a reader may act on: what ``dir_entries`` gives, less the records no
        sane directory holds — an empty name or one with "/", an inode number out of range, an
        entry naming the directory itself other than ".", a "." or ".." anywhere but first and
        second. Each is skipped with a console message (ufs_dirbad), so a walker can never loop
        through a directory into itself."""
        bad = self._dir_bad(ip)
        second = -1
        for ents in self.dir_blocks(ip, start):
            for off, ino, dtype, name, reclen in ents:
                if off == 0:
                    second = reclen
                if not ino or off < start or dtype == DT_WHT:
                    continue
                why = None
                if not name or b"/" in name:
                    why = f"bad name {name!r}"
                elif ino >= self.maxino or ino < UFS_ROOTINO:
                    why = f"inode number {ino} out of range"
                elif name == b".":
                    why = None if off == 0 and ino == ip.ino else "'.' that is not the first entry or not itself"
                elif name == b"..":
                    why = None if off == second else "'..' that is not the second entry"
                elif ino == ip.ino:
                    why = f"entry {name!r} names the directory itself"
                if why is not None:
                    bad(off, why)
                    continue
                yield off, ino, dtype, name, reclen

    def vop_readdir(self, vp: Vnode, cookie: int) -> Iterator[Dirent]:
        """Entries at byte offsets ≥ ``cookie``; each Dirent's cookie is the next entry's offset,
        so cookies survive reclaim and stay meaningful while entries are added or removed."""
        ip: Inode = vp.data  # type: ignore[assignment]
        for off, ino, dtype, name, reclen in self.sane_entries(ip, cookie):
            yield Dirent(ino, dtype, name, off + reclen)

    def vop_lookup(self, dvp: Vnode, name: bytes) -> int:
        ip: Inode = dvp.data  # type: ignore[assignment]
        cache = ip.dircache
        if cache is None:
            cache = {}
            for _, ino, _dtype, ename, _ in self.sane_entries(ip):
                if ename not in cache:
                    cache[ename] = ino
            ip.dircache = cache
        found = cache.get(name)
        if found is None:
            raise OSError(errno.ENOENT, f"{name.decode(errors='replace')}: no such entry")
        ino = found
        return ino
