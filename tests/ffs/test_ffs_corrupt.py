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
import struct
from pathlib import Path

import pytest
from ffs_tree import make_tree, makefs, mount_image

from p2k.fs.ffs.fs import ino_to_fsba, ino_to_fsbo

pytestmark = pytest.mark.skipif(shutil.which("makefs") is None, reason="NetBSD makefs not installed")
TRIALS = 60 if os.environ.get("P2K_FULL") == "1" else 12
TIMEOUT_S = 10


from damage import Hang, deadline, regions, tolerant_walk  # noqa: E402,F401


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("corrupt")
    tree = make_tree(d / "tree", bigdir=200, dindir_size=0, devices=False)
    return {
        "ufs1-le": makefs(d / "u1.img", tree, version=1, endian="le", bsize=4096, fsize=512),
        "ufs2-be": makefs(d / "u2.img", tree, version=2, endian="be", bsize=8192, fsize=1024),
    }


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
