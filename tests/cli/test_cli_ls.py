"""``p2k ls`` lays a listing out as NetBSD's ls (and so fs-utils' fsu_ls) does: columns as wide as
the listing's widest value, "total" in 512-byte blocks (BLOCKSIZE honoured) and only for a
directory with entries, a heading for a directory only when something came before it or there
are several operands, a device's "major, minor" in the size column."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import p2k

pytestmark = pytest.mark.skipif(shutil.which("makefs") is None, reason="NetBSD makefs not installed")


def ls(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "p2k", "ls", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def img(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("ls")
    tree = work / "tree"
    (tree / "d" / "sub").mkdir(parents=True)
    (tree / "e").mkdir()
    (tree / "d" / "small").write_bytes(b"x" * 5)
    (tree / "d" / "big").write_bytes(b"y" * 123456)
    os.symlink("small", tree / "d" / "link")
    for i in range(12):  # a link count of two digits for the directory
        (tree / "d" / "sub" / f"s{i}").mkdir()
    if os.geteuid() == 0:
        (tree / "dev").mkdir()
        os.mknod(tree / "dev" / "null", 0o20666, os.makedev(1, 3))
        os.mknod(tree / "dev" / "sda1", 0o60660, os.makedev(8, 1))
        (tree / "dev" / "plain").write_bytes(b"z" * 7)
        os.chmod(tree / "dev" / "null", 0o666)  # mknod's mode went through the umask
        os.chmod(tree / "dev" / "sda1", 0o660)
    out = work / "ls.img"
    subprocess.run(["makefs", "-t", "ffs", "-s", "8m", str(out), str(tree)], check=True, capture_output=True)
    return out


def _blocks(img: Path, d: str) -> dict[str, os.stat_result]:
    k = p2k.Kernel(env={})
    try:
        k.etfs_register("/dev/dk", str(img), p2k.ETFS_BLK, readonly=True)
        k.sys.mkdir("/mnt", 0o755)
        k.sys.mount("ffs", "/mnt", p2k.MNT_RDONLY, {"fspec": "/dev/dk"})
        return {n: k.sys.lstat(f"/mnt{d}/{n}") for n in k.sys.listdir(f"/mnt{d}")}
    finally:
        k.halt()


def test_long_listing_columns_and_total(img: Path) -> None:
    r = ls("-l", str(img), "/d")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    stats = _blocks(img, "/d")
    assert lines[0] == f"total {sum(s.st_blocks for s in stats.values())}"  # 512-byte blocks
    body = dict(zip(["big", "link", "small", "sub"], lines[1:], strict=True))
    # the name starts in the same column on every line: the columns before it are padded alike
    assert len({ln.index(" " + name, 40) for name, ln in body.items()}) == 1
    assert " 123456 " in body["big"] and "      5 " in body["small"]  # size column: 6 wide
    assert body["sub"].startswith("drwxr-xr-x  14 ")  # nlink column: 2 wide
    assert body["small"].startswith("-rw-r--r--   1 0  0  ")  # one-digit owners: no padding
    assert body["link"].endswith(" link -> small")
    r = ls("-l", str(img), "/d", env={"BLOCKSIZE": "1k"})
    assert r.stdout.splitlines()[0] == f"total {-(-sum(s.st_blocks for s in stats.values()) // 2)}"


def test_headings_and_empty_directories(img: Path) -> None:
    r = ls("-lR", str(img), "/d")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith("total ") and "\n\n/d/sub:\ntotal " in out  # no heading for the first
    assert "\n\n/d/sub/s0:\n\n/d/sub/s1:\n" in out  # an empty directory: heading alone, no total
    r = ls(str(img), "/e", "/d/small", "/d/sub/s0")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "/d/small\n\n/e:\n\n/d/sub/s0:\n"  # files first, then each directory named


@pytest.mark.skipif(os.geteuid() != 0, reason="device nodes need root to make")
def test_device_numbers_in_the_size_column(img: Path) -> None:
    r = ls("-l", str(img), "/dev")
    assert r.returncode == 0, r.stderr
    lines = dict(zip(["null", "plain", "sda1"], r.stdout.splitlines()[1:], strict=True))
    assert lines["null"].startswith("crw-rw-rw-  1 0  0  1, 3 ")
    assert lines["sda1"].startswith("brw-rw----  1 0  0  8, 1 ")
    assert lines["plain"].startswith("-rw-r--r--  1 0  0     7 ")  # as wide as "8, 1"
    r = ls("-li", str(img), "/dev")
    inos = [ln.split()[0] for ln in r.stdout.splitlines()[1:]]
    assert len({len(i) for i in inos}) == 1 and all(i.isdigit() for i in inos)
