"""``readinto``/``preadinto`` (the server's shared-arena reads) give exactly what ``read``/``pread``
give — tmpfs's own page copy, and the generic ``vop_readinto`` of FFS and etfs devices — and move
the file offset the same way."""

from __future__ import annotations

import errno
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

import p2k
from p2k.fs.tmpfs.node import PAGE_SIZE


def _check_same(k: p2k.Kernel, path: str, size: int, rnd: random.Random) -> None:
    fd = k.sys.open(path, os.O_RDONLY)
    fd2 = k.sys.open(path, os.O_RDONLY)
    buf = bytearray(3 * PAGE_SIZE + 64)
    for _ in range(300):
        off = rnd.randrange(0, size + 2 * PAGE_SIZE)
        n = rnd.choice([0, 1, rnd.randrange(1, 3 * PAGE_SIZE), PAGE_SIZE, 3 * PAGE_SIZE])
        buf[:] = b"\xee" * len(buf)
        got = k.sys.preadinto(fd, memoryview(buf)[:n], off)
        want = k.sys.pread(fd, n, off)
        assert bytes(buf[:got]) == want and buf[n:] == b"\xee" * (len(buf) - n), (off, n)
    while True:  # sequential: the offset advances by what was read
        n = rnd.randrange(1, 2 * PAGE_SIZE)
        got = k.sys.readinto(fd2, memoryview(buf)[:n])
        want = k.sys.pread(fd, n, k.sys.lseek(fd2, 0, os.SEEK_CUR) - got)
        assert bytes(buf[:got]) == want
        if not got:
            break
    assert k.sys.lseek(fd2, 0, os.SEEK_CUR) == size
    whole = bytearray(size + 100)  # every run whole: FFS reads them straight from the host file
    assert k.sys.preadinto(fd, memoryview(whole), 0) == size
    assert bytes(whole[:size]) == k.sys.pread(fd, size, 0)
    k.sys.close(fd)
    k.sys.close(fd2)


def test_tmpfs_holes_partial_pages_and_eof() -> None:
    rnd = random.Random(15)
    k = p2k.Kernel(env={})
    try:
        k.sys.mkdir("/mnt", 0o755)
        k.sys.mount("tmpfs", "/mnt")
        fd = k.sys.open("/mnt/f", os.O_CREAT | os.O_WRONLY, 0o644)
        for _ in range(40):  # scattered writes leave holes and short pages
            k.sys.pwrite(fd, os.urandom(rnd.randrange(1, PAGE_SIZE)), rnd.randrange(0, 12 * PAGE_SIZE))
        k.sys.ftruncate(fd, 14 * PAGE_SIZE + 77)  # a hole to the end
        k.sys.close(fd)
        _check_same(k, "/mnt/f", 14 * PAGE_SIZE + 77, rnd)
        wfd = k.sys.open("/mnt/f", os.O_WRONLY)
        with pytest.raises(OSError) as ei:
            k.sys.readinto(wfd, memoryview(bytearray(10)))
        assert ei.value.errno == errno.EBADF
        dfd = k.sys.open("/mnt", os.O_RDONLY)
        with pytest.raises(OSError) as ei:
            k.sys.preadinto(dfd, memoryview(bytearray(10)), 0)
        assert ei.value.errno == errno.EISDIR
        rfd = k.sys.open("/mnt/f", os.O_RDONLY)
        with pytest.raises(OSError) as ei:
            k.sys.preadinto(rfd, memoryview(bytearray(10)), -1)
        assert ei.value.errno == errno.EINVAL
    finally:
        k.halt(sync=False)


def test_generic_readinto_ffs_and_etfs(tmp_path: Path) -> None:
    """FFS and etfs devices have no readinto of their own: the generic one over ``vop_read``."""
    if shutil.which("makefs") is None:
        pytest.skip("NetBSD makefs(8) is not installed")
    rnd = random.Random(16)
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(os.urandom(700_001))
    img = tmp_path / "ffs.img"
    subprocess.run(["makefs", "-t", "ffs", "-B", "le", "-s", "8m", str(img), str(src)], check=True,
                   capture_output=True)
    k = p2k.Kernel(env={})
    try:
        k.etfs_register("/dev/dk", str(img), p2k.ETFS_BLK, readonly=True)
        k.etfs_register("/dev/reg", str(src / "f"), p2k.ETFS_REG)
        k.sys.mkdir("/ffs", 0o755)
        k.sys.mount("ffs", "/ffs", p2k.MNT_RDONLY, {"fspec": "/dev/dk"})
        _check_same(k, "/ffs/f", 700_001, rnd)
        _check_same(k, "/dev/reg", 700_001, rnd)
    finally:
        k.halt(sync=False)


def test_ffs_readinto_sees_dirty_buffers(tmp_path: Path) -> None:
    """On a read-write FFS mount, data written but not yet synced sits in dirty buffers: a big
    readinto, which reads the rest straight from the host file, must take those over the disk."""
    if shutil.which("makefs") is None:
        pytest.skip("NetBSD makefs(8) is not installed")
    (tmp_path / "empty").mkdir()
    img = tmp_path / "rw.img"
    subprocess.run(["makefs", "-t", "ffs", "-B", "le", "-o", "version=2,bsize=16384,fsize=2048", "-s", "16m",
                    "-f", "100", str(img), str(tmp_path / "empty")], check=True, capture_output=True)
    k = p2k.Kernel(env={})
    try:
        k.etfs_register("/dev/dk", str(img), p2k.ETFS_BLK)
        k.sys.mkdir("/ffs", 0o755)
        try:
            k.sys.mount("ffs", "/ffs", 0, {"fspec": "/dev/dk"})
        except OSError as e:
            pytest.skip(f"FFS cannot be mounted read-write here ({e})")
        want = bytearray(os.urandom(3 << 20))
        fd = k.sys.open("/ffs/f", os.O_CREAT | os.O_RDWR, 0o644)
        k.sys.write(fd, want)
        k.sys.fsync(fd)
        k.sys.pwrite(fd, b"D" * 100_000, 1_000_000)  # now dirty in the cache, old on the disk
        want[1_000_000:1_100_000] = b"D" * 100_000
        assert k.bufcache.dirty_bytes > 0
        got = bytearray(len(want))
        assert k.sys.preadinto(fd, memoryview(got), 0) == len(want)
        assert got == want
        got2 = bytearray(2 << 20)
        assert k.sys.preadinto(fd, memoryview(got2), 12345) == 2 << 20
        assert got2 == want[12345:12345 + (2 << 20)]
        k.sys.close(fd)
    finally:
        k.halt(sync=False)
