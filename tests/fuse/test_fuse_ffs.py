"""FFS images through FUSE: a read-only walk under a tiny vnode cache, and (once the FFS write path
exists) the round trips of the issue — copy in, unmount, fsck clean, remount, compare again.

The images are made by the real NetBSD ``makefs -t ffs``, so what the host sees is compared with a
tree that never went through p2k.
"""

from __future__ import annotations

import os
import subprocess
import threading
import warnings
from pathlib import Path

import pytest
from fuse_harness import HAVE_MAKEFS, P2K, diff, ffs_rw_missing, make_ffs, make_tree, start_mount, stop

pytestmark = [pytest.mark.fuse, pytest.mark.skipif(not HAVE_MAKEFS, reason="makefs not installed")]

NFILES = 10_000


def content(i: int) -> bytes:
    return f"file {i}\n".encode() * (1 + i % 7)


@pytest.fixture(scope="module")
def many_files_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("many")
    tree = base / "tree"
    for d in range(100):
        sub = tree / f"dir{d:03d}"
        sub.mkdir(parents=True)
        for j in range(NFILES // 100):
            i = d * 100 + j
            (sub / f"f{i:05d}").write_bytes(content(i))
    return make_ffs(base / "many.img", tree, size="64m")


def test_nvnodes_bounded_while_find_walks(many_files_image: Path, tmp_path: Path) -> None:
    """RUMP_NVNODES=64 while find walks 10,000 files: the vnode count stays near 64 (plus those
    in use by requests in flight) although the host remembers every name, and content is right."""
    m = start_mount(tmp_path / "mnt", "-o", "ro,nvnodes=64", str(many_files_image))
    try:
        peak = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], m.stats()["vnodes"])
                done.wait(0.05)

        t = threading.Thread(target=sample)
        t.start()
        try:
            out = subprocess.run(["find", str(m.path), "-type", "f"], capture_output=True, text=True,
                                 check=True).stdout.split()
        finally:
            done.set()
            t.join()
        assert len(out) == NFILES
        st = m.stats()
        assert st["maxvnodes"] == 64
        assert peak[0] <= 64 + 8 and st["vnodes"] <= 64 + 8, (peak, st)
        assert st["reclaims"] > NFILES // 2
        assert st["fuse_known_inodes"] > 64  # the host's dentry cache is not what bounds us
        for i in range(0, NFILES, 37):
            assert (m.path / f"dir{i // 100:03d}" / f"f{i:05d}").read_bytes() == content(i)
        assert m.stats()["vnodes"] <= 64 + 8
        m.umount()
    finally:
        stop(m)


def test_read_only_image_matches_its_source(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, 40)
    img = make_ffs(tmp_path / "ro.img", src, size="32m")
    m = start_mount(tmp_path / "mnt", "-o", "ro", str(img))
    try:
        diff(src, m.path)
        with pytest.raises(OSError):
            (m.path / "new").write_text("x")
        m.umount()
    finally:
        stop(m)


@pytest.fixture
def rw_image(tmp_path: Path) -> Path:
    why = ffs_rw_missing()
    if why:
        pytest.skip(why)
    return make_ffs(tmp_path / "rw.img", size="128m", free_inodes=20000)


def fsck_clean(img: Path) -> None:
    """``p2k fsck -n`` finds nothing to fix (checked once ``p2k fsck`` exists; until then the
    round trip still runs, with a warning)."""
    r = subprocess.run([P2K, "fsck", "-n", str(img)], capture_output=True, text=True, timeout=120)
    if "invalid choice: 'fsck'" in r.stderr:
        warnings.warn("p2k fsck not available yet: image consistency not checked", stacklevel=2)
        return
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def test_ffs_cp_a_unmount_fsck_remount(rw_image: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src)
    m = start_mount(tmp_path / "mnt", "-o", "rw", str(rw_image))
    try:
        subprocess.run(["cp", "-a", str(src), str(m.path / "copy")], check=True)
        diff(src, m.path / "copy")
        subprocess.run(["tar", "-C", str(tmp_path), "-cf", str(m.path / "t.tar"), "src"], check=True)
        m.umount()
    finally:
        stop(m)
    fsck_clean(rw_image)
    m = start_mount(tmp_path / "mnt", "-o", "rw", str(rw_image))
    try:
        diff(src, m.path / "copy")
        (tmp_path / "x").mkdir()
        subprocess.run(["tar", "-C", str(tmp_path / "x"), "-xpf", str(m.path / "t.tar")], check=True)
        diff(src, tmp_path / "x" / "src")
        m.umount()
    finally:
        stop(m)
    fsck_clean(rw_image)


def test_ffs_git_and_build_survive_remount(rw_image: Path, tmp_path: Path) -> None:
    m = start_mount(tmp_path / "mnt", "-o", "rw", str(rw_image))
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@e", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@e", HOME=str(tmp_path))
    try:
        w = m.path / "proj"
        w.mkdir()
        (w / "main.c").write_text('#include <stdio.h>\nint main(void){puts("hi");}\n')
        subprocess.run(["gcc", "-c", "-o", str(w / "main.o"), str(w / "main.c")], check=True)
        subprocess.run(["gcc", "-o", str(w / "prog"), str(w / "main.o")], check=True)
        for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "c"]):
            subprocess.run(["git", "-C", str(w), *cmd], check=True, env=env, capture_output=True)
        m.umount()
    finally:
        stop(m)
    fsck_clean(rw_image)
    m = start_mount(tmp_path / "mnt", "-o", "rw", str(rw_image))
    try:
        w = m.path / "proj"
        assert subprocess.run([str(w / "prog")], capture_output=True, text=True).stdout == "hi\n"
        subprocess.run(["git", "-C", str(w), "fsck", "--strict"], check=True, env=env, capture_output=True)
        m.umount()
    finally:
        stop(m)


def test_drivespec_mount_and_umount_errors(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, 10)
    img = make_ffs(tmp_path / "d.img", src, size="16m")
    m = start_mount(tmp_path / "mnt", "-o", "ro", "-d", f"key=/dev/dk,hostpath={img},size=host")
    try:
        diff(src, m.path)
        m.proc.send_signal(__import__("signal").SIGINT)
        assert m.proc.wait(timeout=30) == 0
        assert not os.path.ismount(m.path)
    finally:
        stop(m)
    r = subprocess.run([P2K, "umount", str(m.path)], capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.strip().endswith("not a mount point (EINVAL)"), r.stderr


def test_killed_daemon_leaves_unclean_image_mounted_read_only(rw_image: Path, tmp_path: Path) -> None:
    """kill -9: the mount point is reported stale with the command that clears it; the image is
    not clean, so a later mount without ``rw`` falls back to read-only and says why."""
    m = start_mount(tmp_path / "mnt", str(rw_image))
    try:
        (m.path / "f").write_text("x")
        m.proc.kill()
        m.proc.wait()
        r = subprocess.run([P2K, "mount", str(rw_image), str(m.path)], capture_output=True, text=True)
        assert r.returncode == 1 and f"fusermount3 -u {m.path}" in r.stderr, r.stderr
        subprocess.run([P2K, "umount", str(m.path)], check=True, capture_output=True)
        r = subprocess.run([P2K, "mount", str(rw_image), str(m.path)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "read-only" in r.stderr, r.stderr
        assert os.statvfs(m.path).f_flag & os.ST_RDONLY
        subprocess.run([P2K, "umount", str(m.path)], check=True, capture_output=True, timeout=60)
    finally:
        stop(m)
