"""``p2k newfs`` and the fs-utils write commands: NetBSD's defaults by size, every option that
applies, images the independent readers accept, and a recount that matches from the start."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ffs_check import assert_consistent, count_image
from ffs_work import HAVE_TSK, check_dissect, check_tsk, mount_rw, p2k_tree

from p2k.cli.main import main
from p2k.fs.ffs import fs as ffs_fs
from p2k.fs.ffs.newfs import NewfsOptions, plan


def _sb(img: Path) -> ffs_fs.Superblock:
    raw = img.read_bytes()
    return ffs_fs.find_superblock(lambda o, n: raw[o:o + n], len(raw))


@pytest.mark.parametrize("size,fsize,bsize", [(8 << 20, 512, 4096), (64 << 20, 1024, 8192),
                                              (1100 << 20, 2048, 16384)])
def test_defaults_by_size(size: int, fsize: int, bsize: int) -> None:
    fs = plan(NewfsOptions(size=size))
    assert (fs.fs_fsize, fs.fs_bsize, fs.fs_minfree, fs.fs_optim) == (fsize, bsize, 5, 0)
    assert fs.fs_ncg >= 4  # MINCYLGRPS
    assert fs.fs_ipg * fs.fs_ncg >= size // (4 * fsize) * 9 // 10  # one inode per 4 fragments
    assert fs.fs_maxcontig == 65536 // bsize and fs.fs_contigsumsize == min(fs.fs_maxcontig, 16)
    ffs_fs.validate(fs)


@pytest.mark.parametrize("version,endian", [(1, "le"), (1, "be"), (2, "le"), (2, "be")])
def test_newfs_image(tmp_path: Path, version: int, endian: str) -> None:
    img = tmp_path / "n.img"
    assert main(["newfs", "-V", "0", "-O", str(version), "-B", endian, "-s", "32m", str(img)]) == 0
    assert img.stat().st_size == 32 << 20
    sb = _sb(img)
    assert sb.loc == (65536 if version == 2 else 8192) and sb.fs_sblockloc == sb.loc
    assert sb.endian == ("<" if endian == "le" else ">") and sb.fs_clean == ffs_fs.FS_ISCLEAN
    assert_consistent(img)
    k = mount_rw(img, ro=True)
    try:
        tree = p2k_tree(k)
    finally:
        k.halt()
    assert set(tree) == {"", "lost+found"}
    assert tree["lost+found"]["ino"] == 3 and tree["lost+found"]["mode"] == 0o40700
    assert tree["lost+found"]["size"] == sb.fs_bsize  # a whole block, room for fsck
    assert tree[""]["nlink"] == 3
    if HAVE_TSK:
        check_tsk(img, tree)
    if endian == "le":
        check_dissect(img, tree)
    # every backup superblock is a copy of the primary's geometry
    raw = img.read_bytes()
    for c in range(sb.fs_ncg):
        off = ffs_fs.cgsblock(sb, c) * sb.fs_fsize
        alt = ffs_fs.Superblock.decode(raw[off:off + sb.fs_sbsize], sb.endian, off)
        assert (alt.fs_fpg, alt.fs_ipg, alt.fs_ncg, alt.fs_size) == (sb.fs_fpg, sb.fs_ipg, sb.fs_ncg, sb.fs_size)


def test_newfs_options(tmp_path: Path) -> None:
    img = tmp_path / "o.img"
    assert main(["newfs", "-V", "0", "-O", "2", "-b", "32768", "-f", "4096", "-i", "65536", "-m", "7",
                 "-o", "space", "-s", "65536s", str(img)]) == 0
    sb = _sb(img)
    assert (sb.fs_bsize, sb.fs_fsize, sb.fs_minfree, sb.fs_optim) == (32768, 4096, 7, 1)
    assert sb.fs_size * sb.fs_fsize <= 32 << 20
    assert sb.fs_ipg * sb.fs_ncg <= (32 << 20) // 65536 + sb.fs_inopb * sb.fs_ncg
    assert_consistent(img)
    img2 = tmp_path / "n.img"
    assert main(["newfs", "-V", "0", "-n", "100", "-s", "16m", str(img2)]) == 0
    sb2 = _sb(img2)
    assert 100 <= sb2.fs_ipg * sb2.fs_ncg <= 100 + sb2.fs_inopb * sb2.fs_ncg
    assert_consistent(img2)


def test_newfs_dry_run_and_listing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = tmp_path / "dry.img"
    assert main(["newfs", "-N", "-s", "64m", str(img)]) == 0
    out = capsys.readouterr().out
    assert not img.exists()
    assert "block size 8192, fragment size 1024" in out
    assert "super-block backups (for fsck_ffs -b #) at:" in out
    assert " 32," in out  # the first backup of an 8192-byte UFS1 superblock with 1 KiB fragments


def test_newfs_errors(tmp_path: Path) -> None:
    assert main(["newfs", "-s", "24k", str(tmp_path / "tiny.img")]) == 1
    assert main(["newfs", "-V", "0", "-s", "64k", str(tmp_path / "small.img")]) == 0
    assert_consistent(tmp_path / "small.img")
    assert main(["newfs", "-b", "3000", "-s", "8m", str(tmp_path / "b.img")]) == 1
    assert main(["newfs", str(tmp_path / "nosize.img")]) == 1


def test_newfs_replaces_an_old_file_system(tmp_path: Path) -> None:
    """A UFS1 newfs over a UFS2 image: the old superblock at 65536 must not be found first."""
    img = tmp_path / "re.img"
    assert main(["newfs", "-V", "0", "-O", "2", "-s", "16m", str(img)]) == 0
    assert main(["newfs", "-V", "0", "-O", "1", str(img)]) == 0
    sb = _sb(img)
    assert not sb.ufs2 and sb.loc == 8192
    assert_consistent(img)


def test_fsutils_write_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    img = str(tmp_path / "u.img")
    assert main(["newfs", "-V", "0", "-s", "16m", img]) == 0
    assert main(["mkdir", "-p", img, "/a/b/c"]) == 0
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"hello\n")))
    assert main(["write", img, "/a/b/c/f"]) == 0
    assert main(["ln", "-s", img, "c/f", "/a/b/l"]) == 0
    assert main(["ln", img, "/a/b/c/f", "/a/h"]) == 0
    assert main(["chmod", img, "600", "/a/h"]) == 0
    assert main(["chown", img, "5:6", "/a/h"]) == 0
    assert main(["touch", img, "/a/t"]) == 0
    assert main(["mv", img, "/a/t", "/a/b"]) == 0
    k = mount_rw(img, ro=True)
    try:
        s = k.sys
        st = s.stat("/mnt/a/h")
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid, st.st_nlink) == (0o600, 5, 6, 2)
        assert s.readlink("/mnt/a/b/l") == "c/f"
        assert s.read(s.open("/mnt/a/b/l", os.O_RDONLY), 100) == b"hello\n"
        assert sorted(s.listdir("/mnt/a/b")) == ["c", "l", "t"]
    finally:
        k.halt()
    assert main(["rm", img, "/a/b"]) == 1  # a directory without -r
    assert main(["rm", "-r", img, "/a/b"]) == 0
    assert main(["rmdir", img, "/a"]) == 1  # not empty: /a/h
    assert main(["rm", img, "/a/h"]) == 0
    assert main(["rmdir", img, "/a"]) == 0
    assert main(["cp", img, __file__, ":/copied.py"]) == 0
    r = subprocess.run([sys.executable, "-m", "p2k.cli.main", "cat", img, "/copied.py"], capture_output=True)
    assert r.stdout == Path(__file__).read_bytes()
    assert_consistent(img)
    rc = count_image(img)
    assert rc.inodes == 3  # root, lost+found, copied.py
