"""Corrupt and hostile images: never a hang, never an exception other than OSError.

Real makefs images are damaged in the superblock, a cylinder-group header, inode blocks, an
indirect block and directory blocks — random byte flips (seeded, so failures reproduce) plus the
classic hostile cases (reclen 0, an entry crossing a 512-byte chunk, a directory cycle, an
indirect block pointing at itself, addresses outside the file system, absurd sizes). Each damaged
image is mounted and walked completely (lstat, readdir, readlink, read) under a timer; every
failure must be an OSError, and undamaged parts of the tree must stay readable.
``P2K_FULL=1`` multiplies the number of random trials.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import stat
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from ffs_tree import make_tree, makefs, mount_image

from p2k.fs.ffs.fs import cgtod, ino_to_fsba, ino_to_fsbo

pytestmark = pytest.mark.skipif(shutil.which("makefs") is None, reason="NetBSD makefs not installed")
TRIALS = 60 if os.environ.get("P2K_FULL") == "1" else 12
TIMEOUT_S = 10


class Hang(BaseException):  # not an Exception: the VOP boundary must not turn it into EIO
    pass


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


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("corrupt")
    tree = make_tree(d / "tree", bigdir=200, dindir_size=0, devices=False)
    return {
        "ufs1-le": makefs(d / "u1.img", tree, version=1, endian="le", bsize=4096, fsize=512),
        "ufs2-be": makefs(d / "u2.img", tree, version=2, endian="be", bsize=8192, fsize=1024),
    }


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


def run_damaged(tmp: Path, src: Path, patches: list[tuple[int, bytes]]) -> tuple[int, int]:
    dst = tmp / "damaged.img"
    shutil.copy(src, dst)
    with open(dst, "r+b") as fh:
        for off, data in patches:
            fh.seek(off)
            fh.write(data)
    with deadline(TIMEOUT_S):
        return tolerant_walk(dst)


@pytest.mark.parametrize("kind", ["superblock", "cg", "inode", "indirect", "directory"])
@pytest.mark.parametrize("name", ["ufs1-le", "ufs2-be"])
def test_random_flips(tmp_path: Path, images: dict[str, Path], name: str, kind: str) -> None:
    img = images[name]
    raw = img.read_bytes()
    rng = random.Random(f"{name}/{kind}")
    spans = regions(img)[kind]
    for _ in range(TRIALS):
        patches = []
        for _ in range(rng.choice((1, 2, 4, 16))):
            start, length = rng.choice(spans)
            off = start + rng.randrange(length)
            patches.append((off, bytes([raw[off] ^ rng.randrange(1, 256)])))
        run_damaged(tmp_path, img, patches)


def _dirent_patches(img: Path, path: str) -> tuple[int, str, list[tuple[int, int, int]]]:
    """(byte offset of the first dir block, byte order, [(entry offset, ino, reclen)])."""
    k = mount_image(img)
    try:
        mp = k.mounts[0]
        ip = mp.vfs_loadvnode(k.sys.lstat(path).st_ino)[0]
        ents = [(off, ino, reclen) for off, ino, _, _, reclen in mp.dir_entries(ip) if off < 512]
        return ip.db[0] * mp.fs.fs_fsize, mp.fs.endian, ents
    finally:
        k.halt()


@pytest.mark.parametrize("name", ["ufs1-le", "ufs2-be"])
def test_hostile_directories(tmp_path: Path, images: dict[str, Path], name: str) -> None:
    img = images[name]
    base, e, ents = _dirent_patches(img, "/mnt/sub")
    third = ents[2][0]
    cases = {
        "reclen 0": [(base + third + 4, struct.pack(e + "H", 0))],
        "reclen crosses chunk": [(base + third + 4, struct.pack(e + "H", 1024))],
        "reclen not aligned": [(base + third + 4, struct.pack(e + "H", 13))],
        "ino out of range": [(base + third, struct.pack(e + "I", 0x7FFFFFF0))],
        "cycle: entry points at root": [(base + third, struct.pack(e + "I", 2))],
        "dot-dot points at itself": [(base + ents[1][0], struct.pack(e + "I", ents[0][1]))],
        "namlen 255 in short record": [(base + third + 7, b"\xff")],
    }
    for why, patches in cases.items():
        visited, _ = run_damaged(tmp_path, img, patches)
        assert visited > 50, why  # the rest of the tree stays readable


@pytest.mark.parametrize("name", ["ufs1-le", "ufs2-be"])
def test_hostile_inodes_and_indirects(tmp_path: Path, images: dict[str, Path], name: str) -> None:
    img = images[name]
    k = mount_image(img)
    try:
        mp = k.mounts[0]
        fs = mp.fs
        ino = k.sys.lstat("/mnt/f1m").st_ino
        ip = mp.vfs_loadvnode(ino)[0]
        ioff = ino_to_fsba(fs, ino) * fs.fs_fsize + ino_to_fsbo(fs, ino) * fs.inode_size
        ind = ip.ib[0] * fs.fs_fsize
    finally:
        k.halt()
    e = fs.endian
    ptr = "q" if fs.ufs2 else "i"
    ib_off = ioff + (208 if fs.ufs2 else 88)
    db_off = ioff + (112 if fs.ufs2 else 40)
    size_off = ioff + (16 if fs.ufs2 else 8)
    cases = {
        "indirect points at itself": [(ind, struct.pack(e + ptr, ip.ib[0]) * 8)],
        "indirect entries out of range": [(ind + 16, struct.pack(e + ptr, 0x3FFFFFF0) * 4)],
        "negative address": [(db_off, struct.pack(e + ptr, -5))],
        "double indirect = single indirect": [(ib_off + struct.calcsize(ptr), struct.pack(e + ptr, ip.ib[0]))],
        "size 2^62": [(size_off, struct.pack(e + "Q", 1 << 62))],
        "size 2^64-1": [(size_off, struct.pack(e + "Q", (1 << 64) - 1))],
        "mode 0o170644": [(ioff, struct.pack(e + "H", 0o170644))],
        "unaligned indirect": [(ib_off, struct.pack(e + ptr, ip.ib[0] + 1))],
    }
    for why, patches in cases.items():
        visited, _ = run_damaged(tmp_path, img, patches)
        assert visited > 50, why


def test_truncated_and_garbage_images(tmp_path: Path, images: dict[str, Path]) -> None:
    raw = images["ufs1-le"].read_bytes()
    for n in (0, 100, 8192 + 1000, 65536, len(raw) // 2):
        p = tmp_path / f"trunc{n}.img"
        p.write_bytes(raw[:n])
        with deadline(TIMEOUT_S):
            tolerant_walk(p)
    p = tmp_path / "garbage.img"
    p.write_bytes(random.Random(1).randbytes(1 << 20))
    with pytest.raises(OSError):
        mount_image(p)
