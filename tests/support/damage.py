"""Walking damaged images under a timer, and where each kind of metadata lies in a pristine image."""

from __future__ import annotations

import os
import signal
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ffs_tree import mount_image

from p2k.fs.ffs.fs import cgtod, ino_to_fsba, ino_to_fsbo


class Hang(BaseException):
    """Not an Exception: the VOP boundary turns every Exception inside a VOP into EIO, and a
    timer firing inside a looping VOP must still end the test."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    def fire(*_: object) -> None:
        raise Hang(f"no result after {seconds} s")
    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def tolerant_walk(img: Path) -> tuple[int, int]:
    """Mount and visit everything; returns (nodes visited, OSErrors seen). Anything that is not an
    OSError propagates and fails the test."""
    errors = 0
    try:
        k = mount_image(img)
    except OSError:
        return 0, 1
    sys_ = k.sys
    visited = 0
    seen: set[int] = set()
    stack = [b"/mnt"]
    try:
        while stack:
            path = stack.pop()
            try:
                st = sys_.lstat(path)
            except OSError:
                errors += 1
                continue
            visited += 1
            try:
                if stat.S_ISLNK(st.st_mode):
                    sys_.readlink(path)
                elif stat.S_ISREG(st.st_mode):
                    fd = sys_.open(path, os.O_RDONLY)
                    try:
                        for off in (0, 1 << 20, max(st.st_size - 4096, 0)):
                            sys_.pread(fd, 1 << 20, off)
                    finally:
                        sys_.close(fd)
                elif stat.S_ISDIR(st.st_mode) and st.st_ino not in seen:
                    seen.add(st.st_ino)
                    stack.extend(path + b"/" + n for n in sys_.listdir(path) if b"/" not in n)
            except OSError:
                errors += 1
    finally:
        try:
            k.halt()
        except OSError:
            pass
    return visited, errors


def regions(img: Path) -> dict[str, list[tuple[int, int]]]:
    """Byte ranges of each kind of metadata in a pristine image, found with p2k itself."""
    k = mount_image(img)
    try:
        mp = k.mounts[0]
        fs = mp.fs
        f = fs.fs_fsize

        def ip_of(path: str):  # noqa: ANN202
            return mp.vfs_loadvnode(k.sys.lstat(path).st_ino)[0]

        inode_blocks = []
        for p in ("/mnt", "/mnt/sub", "/mnt/f1m", "/mnt/link1000"):
            ino = k.sys.lstat(p).st_ino
            inode_blocks.append((ino_to_fsba(fs, ino) * f + ino_to_fsbo(fs, ino) * fs.inode_size,
                                 fs.inode_size))
        dirs = [(ip_of(p).db[0] * f, fs.fs_bsize) for p in ("/mnt", "/mnt/sub", "/mnt/bigdir")]
        return {
            "superblock": [(fs.loc, 1376)],
            "cg": [(cgtod(fs, c) * f, fs.fs_cgsize) for c in range(fs.fs_ncg)],
            "inode": inode_blocks,
            "indirect": [(ip_of("/mnt/f1m").ib[0] * f, fs.fs_bsize)],
            "directory": dirs,
        }
    finally:
        k.halt()


