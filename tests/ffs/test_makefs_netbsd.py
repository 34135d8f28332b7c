"""``p2k makefs`` against NetBSD's makefs on the same tree: the same size, the same cylinder
groups and superblock, the same space used; they differ only where p2k says why.

What may differ, and why:
- ``fs_id``, ``fs_time`` and the cg times: when and by whom the image was made.
- Inode numbers and block placement, and with them how the free space splits into whole blocks
  and fragments: p2k writes the tree through the kernel's allocator (directories spread over the
  groups by ffs_dirpref, data near its inode), makefs hands out inodes in its walk order.
- Where makefs's own estimate leaves the tree without room (a small ``density``, ``minfree=0``,
  a tree smaller than one group's metadata), NetBSD's makefs fails; p2k grows the image by what
  is missing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from ffs_check import assert_consistent
from ffs_tree import make_tree

from p2k.cli.main import main
from p2k.fs.ffs.fs import find_superblock

pytestmark = pytest.mark.skipif(shutil.which("makefs") is None, reason="NetBSD makefs not installed")

GEOMETRY = ("fs_sblockloc", "fs_size", "fs_dsize", "fs_ncg", "fs_fpg", "fs_ipg", "fs_bsize", "fs_fsize",
            "fs_frag", "fs_sblkno", "fs_cblkno", "fs_iblkno", "fs_dblkno", "fs_cgsize", "fs_csaddr",
            "fs_cssize", "fs_sbsize", "fs_minfree", "fs_optim", "fs_maxbpg", "fs_maxcontig",
            "fs_contigsumsize", "fs_maxbsize", "fs_avgfilesize", "fs_avgfpdir", "fs_maxsymlinklen",
            "fs_nindir", "fs_inopb", "fs_magic")
CALC = re.compile(r"Calculated size of `[^']*': (\d+) bytes, (\d+) inodes")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tree(tmp_path_factory.mktemp("nb") / "tree", bigdir=600)


def _superblock(img: Path):  # type: ignore[no-untyped-def]
    data = img.read_bytes()
    return find_superblock(lambda off, n: data[off:off + n], len(data))


def _netbsd(img: Path, tree: Path, *opts: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["makefs", "-t", "ffs", *opts, str(img), str(tree)], capture_output=True, text=True)


def _p2k(img: Path, tree: Path, capsys: pytest.CaptureFixture[str], *opts: str) -> tuple[int, str]:
    rc = main(["makefs", "-t", "ffs", *opts, str(img), str(tree)])
    out = capsys.readouterr()
    return rc, out.out + out.err


@pytest.mark.parametrize("opts", [("-o", "version=1"), ("-o", "version=2"), ("-B", "be", "-o", "version=2"),
                                  ("-o", "version=1,bsize=16384,fsize=2048")])
def test_same_image_as_netbsd(tmp_path: Path, tree: Path, capsys: pytest.CaptureFixture[str],
                              opts: tuple[str, ...]) -> None:
    nb, pk = tmp_path / "nb.img", tmp_path / "p2k.img"
    res = _netbsd(nb, tree, *opts)
    assert res.returncode == 0, res.stderr
    rc, out = _p2k(pk, tree, capsys, *opts)
    assert rc == 0, out
    assert CALC.search(out).groups() == CALC.search(res.stdout).groups()  # type: ignore[union-attr]
    assert pk.stat().st_size == nb.stat().st_size
    a, b = _superblock(nb), _superblock(pk)
    assert {f: getattr(b, f) for f in GEOMETRY} == {f: getattr(a, f) for f in GEOMETRY}
    # the same inodes and directories in use, the same fragments free in all
    assert (b.fs_cs_ndir, b.fs_cs_nifree) == (a.fs_cs_ndir, a.fs_cs_nifree)
    assert b.fs_cs_nbfree * b.fs_frag + b.fs_cs_nffree == a.fs_cs_nbfree * a.fs_frag + a.fs_cs_nffree
    assert_consistent(pk)


@pytest.mark.parametrize("opts", [("-b", "1m"), ("-b", "10%"), ("-f", "100"), ("-f", "10%"), ("-M", "30m"),
                                  ("-o", "density=16384"), ("-o", "minfree=10,optimization=space"),
                                  ("-s", "30m")])
def test_sizing_options_as_netbsd(tmp_path: Path, tree: Path, capsys: pytest.CaptureFixture[str],
                                  opts: tuple[str, ...]) -> None:
    nb, pk = tmp_path / "nb.img", tmp_path / "p2k.img"
    res = _netbsd(nb, tree, *opts)
    assert res.returncode == 0, res.stderr
    rc, out = _p2k(pk, tree, capsys, *opts)
    assert rc == 0, out
    assert CALC.search(out).groups() == CALC.search(res.stdout).groups()  # type: ignore[union-attr]
    assert pk.stat().st_size == nb.stat().st_size
    a, b = _superblock(nb), _superblock(pk)
    assert (b.fs_ncg, b.fs_ipg, b.fs_fpg, b.fs_minfree, b.fs_optim) == (a.fs_ncg, a.fs_ipg, a.fs_fpg,
                                                                        a.fs_minfree, a.fs_optim)
    assert_consistent(pk)


def test_maxsize_refused_as_netbsd(tmp_path: Path, tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res = _netbsd(tmp_path / "nb.img", tree, "-m", "1m")
    assert res.returncode != 0 and "larger than the maxsize of 1048576" in res.stderr
    rc, out = _p2k(tmp_path / "p2k.img", tree, capsys, "-m", "1m")
    assert rc == 1
    assert "larger than the maxsize of 1048576" in out and "Traceback" not in out


@pytest.mark.parametrize("opt", ["minfree=0", "density=65536"])
def test_grows_where_netbsd_runs_out(tmp_path: Path, tree: Path, capsys: pytest.CaptureFixture[str],
                                     opt: str) -> None:
    """minfree=0 takes away the slack makefs's estimate relies on, a large density the inodes:
    NetBSD's makefs then fails (out of space writing the tree, or "N free inodes; M are
    required"); p2k's image is grown by what the tree really needs, and is whole."""
    res = _netbsd(tmp_path / "nb.img", tree, "-o", opt)
    rc, out = _p2k(tmp_path / "p2k.img", tree, capsys, "-o", opt)
    assert rc == 0, out
    assert_consistent(tmp_path / "p2k.img")
    if res.returncode == 0:  # a tree with slack enough: then the same size
        assert (tmp_path / "p2k.img").stat().st_size == (tmp_path / "nb.img").stat().st_size


def test_tiny_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A tree smaller than one cylinder group's metadata: NetBSD's mkfs exits ("Filesystem size
    N < minimum size of M"), p2k grows the image to the smallest that holds it."""
    tree = tmp_path / "t"
    (tree / "d").mkdir(parents=True)
    (tree / "d" / "f").write_text("x\n")
    res = _netbsd(tmp_path / "nb.img", tree)
    assert res.returncode != 0 and "minimum size" in res.stdout + res.stderr
    rc, out = _p2k(tmp_path / "p2k.img", tree, capsys)
    assert rc == 0, out
    assert_consistent(tmp_path / "p2k.img")
