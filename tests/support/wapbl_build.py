"""Writing WAPBL logs in tests, record by record, as NetBSD's vfs_wapbl.c lays them out.

``LogWriter`` appends block lists (each followed by the copies of its blocks, padded to a log
block), revocation lists and inode lists at the head of the circular area, wrapping at its end,
and ``commit`` writes a commit header (generation ``g`` in slot ``g % 2``). ``journaled_image``
makes a small p2k-newfs image with an end-of-partition log after the file system, so the tests do
not depend on the NetBSD fixtures.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from ffs_work import newfs

from p2k.fs.ffs import fs as ffs_fs
from p2k.fs.ffs.wapbl import (
    WAPBL_WC_BLOCKS,
    WAPBL_WC_HEADER,
    WAPBL_WC_INODES,
    WAPBL_WC_REVOCATIONS,
    Replay,
    WcBlock,
    WcHeader,
    WcInode,
    WcList,
    open_log,
)

LOGBLK = 512
FS_SIZE = "4m"
LOG_BYTES = 64 * 1024


def file_pread(img: Path) -> Callable[[int, int], bytes]:
    """Reads of ``img`` at an offset, without holding the image in memory (the fixtures are 32 MiB,
    and a test process that grew by them inflates every child it forks afterwards)."""
    def pread(off: int, n: int) -> bytes:
        with open(img, "rb") as f:
            f.seek(off)
            return f.read(n)
    return pread


def file_sha(img: Path) -> str:
    with open(img, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def superblock(img: Path) -> ffs_fs.Superblock:
    return ffs_fs.find_superblock(file_pread(img), img.stat().st_size)


def open_log_of(img: Path) -> Replay:
    sb = superblock(img)
    return open_log(sb, file_pread(img), img.stat().st_size, sb.fs_ncg * sb.fs_ipg)


def write_sb(img: Path, sb: ffs_fs.Superblock) -> None:
    with open(img, "r+b") as f:
        f.seek(sb.loc)
        f.write(sb.encode())


def journaled_image(path: Path, *extra: str) -> tuple[Path, int]:
    """A newfs image plus a 64 KiB end-of-partition log, FS_DOWAPBL set; returns (image, log offset)."""
    newfs(path, FS_SIZE, *extra)
    sb = superblock(path)
    log_off = sb.fs_size * sb.fs_fsize
    with open(path, "r+b") as f:
        f.truncate(log_off + LOG_BYTES)
    sb.fs_flags |= ffs_fs.FS_DOWAPBL
    sb.fs_journal_version, sb.fs_journal_location = 1, 1
    sb.fs_journal_addr, sb.fs_journal_count, sb.fs_journal_blksz = log_off // LOGBLK, LOG_BYTES // LOGBLK, LOGBLK
    write_sb(path, sb)
    return path, log_off


class LogWriter:
    def __init__(self, img: Path, log_off: int, *, start: int | None = None, endian: str = "<") -> None:
        self.img = img
        self.log_off = log_off
        self.endian = endian
        self.circ_off = 2 * LOGBLK
        self.circ_size = LOG_BYTES - self.circ_off
        self.tail = self.head = start if start is not None else self.circ_off
        self.gen = 0

    def _put(self, data: bytes) -> None:
        """Append at the head, wrapping at the end of the circular area."""
        with open(self.img, "r+b") as f:
            end = self.circ_off + self.circ_size
            while data:
                chunk = data[:end - self.head]
                f.seek(self.log_off + self.head)
                f.write(chunk)
                data = data[len(chunk):]
                self.head += len(chunk)
                if self.head >= end:
                    self.head = self.circ_off

    def _list(self, kind: int, length: int, count: int, flag: int, entries: bytes) -> bytes:
        return (WcList(kind, length, count, flag).encode(self.endian) + entries).ljust(LOGBLK, b"\0")

    def blocks(self, blocks: list[tuple[int, bytes]]) -> None:
        """A block list: (device byte offset, contents) — contents a multiple of 512 bytes."""
        entries = b"".join(WcBlock(off // 512, 0, len(d)).encode(self.endian) for off, d in blocks)
        body = b"".join(d for _, d in blocks)
        pad = -len(body) % LOGBLK
        self._put(self._list(WAPBL_WC_BLOCKS, LOGBLK + len(body) + pad, len(blocks), 0, entries)
                  + body + b"\0" * pad)

    def revoke(self, runs: list[tuple[int, int]]) -> None:
        entries = b"".join(WcBlock(off // 512, 0, n).encode(self.endian) for off, n in runs)
        self._put(self._list(WAPBL_WC_REVOCATIONS, LOGBLK, len(runs), 0, entries))

    def inodes(self, inos: list[tuple[int, int]], clear: bool = True) -> None:
        entries = b"".join(WcInode(i, m).encode(self.endian) for i, m in inos)
        self._put(self._list(WAPBL_WC_INODES, LOGBLK, len(inos), int(clear), entries))

    def header(self, gen: int, head: int, tail: int) -> bytes:
        return WcHeader(WAPBL_WC_HEADER, LOGBLK, 0, gen, [0, 0], 0, 0, 1, 9, 9, head, tail,
                        self.circ_off, self.circ_size).encode(self.endian).ljust(LOGBLK, b"\0")

    def commit(self, gen: int | None = None) -> None:
        """A commit header for the records so far (head and tail as they stand)."""
        self.gen = self.gen + 1 if gen is None else gen
        empty = self.head == self.tail
        raw = self.header(self.gen, 0 if empty else self.head, 0 if empty else self.tail)
        with open(self.img, "r+b") as f:
            f.seek(self.log_off + (self.gen % 2) * LOGBLK)
            f.write(raw)
