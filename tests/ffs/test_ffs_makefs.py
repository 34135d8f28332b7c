"""``p2k makefs``: the image holds exactly the host tree (as p2k and the independent readers see it),
its accounting is exact, and the computed size leaves room to work in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ffs_check import assert_consistent
from ffs_tree import make_tree, mount_image, p2k_snapshot, snapshot
from ffs_work import HAVE_TSK, check_dissect, check_tsk, mount_rw, p2k_tree

from p2k.cli.main import main

FULL = os.environ.get("P2K_FULL") == "1"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tree(tmp_path_factory.mktemp("mk") / "tree", bigdir=10_000 if FULL else 1500)


def _same_as_host(img: Path, tree: Path) -> None:
    want = snapshot(tree)
    k = mount_image(img)
    try:
        got = p2k_snapshot(k)
    finally:
        k.halt()  # type: ignore[attr-defined]
    assert set(got) == set(want)
    for p, w in want.items():
        g = got[p]
        assert (g.mode, g.uid, g.gid, g.size, g.target, g.digest, g.rdev) == \
            (w.mode, w.uid, w.gid, w.size, w.target, w.digest, w.rdev), p
        assert g.mtime_ns == w.mtime_ns, p
        assert g.nlink == w.nlink, p
    # hard links are one inode
    groups: dict[tuple[int, int], set[int]] = {}
    for p, w in want.items():
        groups.setdefault(w.ino_key, set()).add(got[p].ino_key[1])
    assert all(len(v) == 1 for v in groups.values())


@pytest.mark.parametrize("args", [("-o", "version=1", "-B", "le"), ("-o", "version=1", "-B", "be"),
                                  ("-o", "version=2", "-B", "le"),
                                  ("-o", "version=2,bsize=4096,fsize=512,sblockloc=65536", "-B", "be")])
def test_makefs_tree(tmp_path: Path, tree: Path, args: tuple[str, ...]) -> None:
    img = tmp_path / "p.img"
    assert main(["makefs", "-t", "ffs", *args, str(img), str(tree)]) == 0
    assert_consistent(img)
    _same_as_host(img, tree)
    k = mount_rw(img, ro=True)
    try:
        t = p2k_tree(k)
        # makefs puts even a UFS2 superblock at 8192; sblockloc=65536 asks for newfs's place
        assert k.mounts[0].fs.fs_sblockloc == (65536 if "sblockloc=65536" in args[1] else 8192)
    finally:
        k.halt()
    if HAVE_TSK and ("version=1" in args[1] or "sblockloc=65536" in args[1]):
        check_tsk(img, t, max_icat=25)  # TSK looks for a UFS2 superblock only at 65536
    if "le" in args:
        check_dissect(img, t)


def test_makefs_size_and_options(tmp_path: Path, tree: Path) -> None:
    img = tmp_path / "s.img"
    assert main(["makefs", "-t", "ffs", "-s", "40m", "-o", "version=2,bsize=16384,fsize=2048,density=2048,"
                 "minfree=8", str(img), str(tree)]) == 0
    assert img.stat().st_size == 40 << 20
    k = mount_rw(img)
    try:
        fs = k.mounts[0].fs
        assert (fs.fs_bsize, fs.fs_fsize, fs.fs_minfree, fs.fs_sblockloc) == (16384, 2048, 8, 8192)
        # the computed or given size leaves room: a further 1 MiB file fits
        fd = k.sys.open("/mnt/more", os.O_WRONLY | os.O_CREAT, 0o644)
        assert k.sys.write(fd, os.urandom(1 << 20)) == 1 << 20
        k.sys.close(fd)
    finally:
        k.halt()
    assert_consistent(img)
    img2 = tmp_path / "auto.img"
    assert main(["makefs", "-t", "ffs", str(img2), str(tree)]) == 0
    k = mount_rw(img2)
    try:
        # sized as NetBSD makefs sizes it (tests/ffs/test_makefs_netbsd.py compares the two): the
        # minfree reserve is what is left over, usable by root only, and a few inodes
        sv = k.sys.statvfs("/mnt")
        assert sv.f_bfree > 0 and sv.f_ffree > 0
    finally:
        k.halt()


def test_makefs_bad_option(tmp_path: Path, tree: Path) -> None:
    assert main(["makefs", "-t", "ffs", "-o", "nonsense=1", str(tmp_path / "x.img"), str(tree)]) == 1


def test_many_small_files_fit_with_the_computed_size(tmp_path: Path) -> None:
    """makefs's size estimate (NetBSD's makefs shares it and fails with ENOSPC on this tree) falls
    a few fragments short when hundreds of tiny files share blocks: p2k grows the image and
    writes it again, so the command a user runs with no -s succeeds."""
    import contextlib
    import io

    from p2k.cli.main import main

    tree = tmp_path / "d"
    tree.mkdir()
    for i in range(200):
        (tree / f"f{i}").write_text(f"file {i}\n")
    img = tmp_path / "small.img"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["makefs", "-t", "ffs", str(img), str(tree)]) == 0
    assert "Calculated size" in out.getvalue()
    k = mount_image(img)
    try:
        assert sorted(k.sys.listdir("/mnt")) == sorted(f"f{i}" for i in range(200))
        fd = k.sys.open("/mnt/f199", os.O_RDONLY)
        assert k.sys.read(fd, 100) == b"file 199\n"
        k.sys.close(fd)
    finally:
        k.halt()
    assert_consistent(img)
