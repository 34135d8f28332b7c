"""Drivespecs given to a real server (``disklabel=``, ``size=host``, ``offset=``, ``type=reg``) and
``-r``: a client reading half a gigabyte through a server limited to 16 MiB of kernel memory."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from server_harness import ServerProc, start

import p2k
from p2k.etfs import build_disklabel
from p2k.etfs.disklabel import FS_BSDFFS, FS_OTHER, LABEL_BYTE_OFFSET

MiB = 1 << 20


def _read_all(c: object, path: str, chunk: int = 8 * MiB) -> tuple[int, str]:
    s = c.sys  # type: ignore[attr-defined]
    fd = s.open(path, os.O_RDONLY)
    h = hashlib.sha256()
    n = 0
    while data := s.read(fd, chunk):
        h.update(data)
        n += len(data)
    s.close(fd)
    return n, h.hexdigest()


def test_disklabel_offset_and_size_host(tmp_path: Path, servers: list[ServerProc]) -> None:
    img = tmp_path / "labelled.img"
    sec = 512
    label = build_disklabel([(2048, 2048, FS_BSDFFS), (1024, 4096, FS_OTHER)])
    with open(img, "wb") as f:
        f.truncate(6 * MiB)
        f.seek(LABEL_BYTE_OFFSET)
        f.write(label)
        f.seek(2048 * sec)
        f.write(b"A" * MiB)
        f.seek(4096 * sec)
        f.write(b"B" * (MiB // 2))
        f.seek(5 * MiB)
        f.write(b"C" * MiB)
    s = start(tmp_path, "unix://s.sock",
              "-d", f"key=/dev/pa,hostpath={img},disklabel=a",
              "-d", f"key=/dev/pb,hostpath={img},disklabel=b,type=chr",
              "-d", f"key=/dev/win,hostpath={img},offset=5m,size=1m",
              "-d", f"key=/dev/whole,hostpath={img},size=host",
              "-d", f"key=/dev/grown,hostpath={tmp_path / 'new.img'},size=2m")
    servers.append(s)
    with s.connect() as c:
        for key, size, fill in (("/dev/pa", MiB, b"A"), ("/dev/pb", MiB // 2, b"B"), ("/dev/win", MiB, b"C")):
            assert _read_all(c, key) == (size, hashlib.sha256(fill * size).hexdigest()), key
        assert _read_all(c, "/dev/whole")[0] == 6 * MiB
        assert _read_all(c, "/dev/grown")[0] == 2 * MiB
        fd = c.sys.open("/dev/win", os.O_RDWR)
        c.sys.pwrite(fd, b"written through the server", 100)
        c.sys.fsync(fd)
        c.sys.close(fd)
    assert s.halt().returncode == 0
    with open(img, "rb") as f:
        f.seek(5 * MiB + 100)
        assert f.read(26) == b"written through the server"
    assert (tmp_path / "new.img").stat().st_size == 2 * MiB  # rump_server grows a new file to size


@pytest.mark.parametrize("kind", ["reg", "blk"])
def test_small_memory_limit_bounds_the_cache(tmp_path: Path, servers: list[ServerProc], kind: str) -> None:
    big = tmp_path / "big.img"
    size = 512 * MiB if kind == "reg" else 64 * MiB
    with open(big, "wb") as f:
        f.truncate(size)  # sparse: the host pays nothing for the zeros
        f.seek(size - 5)
        f.write(b"tail!")
    s = start(tmp_path, "unix://m.sock", "-r", "16m", "-d", f"key=/dev/big,hostpath={big},size=host,type={kind}")
    servers.append(s)
    with s.connect() as c:
        n, _ = _read_all(c, "/dev/big")
        assert n == size
        fd = c.sys.open("/dev/big", os.O_RDONLY)
        assert c.sys.pread(fd, 5, size - 5) == b"tail!"
        c.sys.close(fd)
        st = c.stats()
    assert st["mem_limit"] == 16 * MiB
    assert st["mem_peak"] <= 16 * MiB
    assert st["buf_bytes"] <= 16 * MiB
    assert s.halt().returncode == 0


def test_small_memory_limit_bounds_the_cache_on_ffs(tmp_path: Path, servers: list[ServerProc]) -> None:
    """The same through FFS and the buffer cache: 512 MiB read by a client of a ``-r 16m`` server."""
    if shutil.which("makefs") is None:
        pytest.skip("makefs not installed")
    src = tmp_path / "src"
    src.mkdir()
    size = 512 * MiB
    block = bytes(range(256)) * (MiB // 256)
    with open(src / "big", "wb") as f:
        for _ in range(size // MiB):
            f.write(block)
    img = tmp_path / "ffs.img"
    subprocess.run(["makefs", "-t", "ffs", "-B", "le", "-o", "version=2,bsize=32768,fsize=4096",
                    "-s", f"{size // MiB + 32}m", str(img), str(src)], check=True, capture_output=True)
    (src / "big").unlink()
    s = start(tmp_path, "unix://f.sock", "-r", "16m", "-d", f"key=/dev/dk,hostpath={img},size=host")
    servers.append(s)
    with s.connect() as c:
        c.sys.mkdir("/mnt", 0o755)
        c.sys.mount("ffs", "/mnt", p2k.MNT_RDONLY, {"fspec": "/dev/dk"})
        n, digest = _read_all(c, "/mnt/big")
        st = c.stats()
    assert n == size
    assert digest == hashlib.sha256(block * (size // MiB)).hexdigest()
    assert st["buf_misses"] > 0  # the data did go through the buffer cache
    assert st["mem_peak"] <= 16 * MiB
    assert st["buf_bytes"] <= 16 * MiB
    assert s.halt().returncode == 0
