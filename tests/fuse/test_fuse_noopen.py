"""Opens the host makes without asking (FUSE's no_open) on a read-only mount with no ACLs, and the
daemon still asked wherever an open could matter (a writable mount, a read-only one with ACLs).

Each test reads through the real /dev/fuse mount and compares with the tree the image was made
from (NetBSD makefs), reads as another user (setpriv) to show that the host's permission check at
open is still there, and reads the daemon's request counters to show which way the host went."""

from __future__ import annotations

import mmap
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fuse_harness import HAVE_MAKEFS, Mount, diff, ffs_rw_missing, make_ffs, make_tree, start_mount, stop

pytestmark = [pytest.mark.fuse, pytest.mark.skipif(not HAVE_MAKEFS, reason="makefs not installed")]

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
CAN_SWITCH = os.geteuid() == 0 and shutil.which("setpriv") is not None


@pytest.fixture
def base() -> Iterator[Path]:
    """Under /tmp itself, not pytest's private (0700) directory, so that nobody can reach it."""
    d = Path(tempfile.mkdtemp(prefix="p2k-noopen-"))
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _image(base: Path) -> tuple[Path, Path]:
    tree = base / "tree"
    make_tree(tree)
    (tree / "secret").write_bytes(b"s" * 5000)
    os.chmod(tree / "secret", 0o600)
    (tree / "open").write_bytes(b"o" * 5000)
    os.chmod(tree / "open", 0o644)
    return tree, make_ffs(base / "fs.img", tree, size="32m")


def _as_nobody_cat(path: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*NOBODY, "cat", str(path)], capture_output=True, timeout=30)


def _mount(base: Path, img: Path, opts: str) -> Mount:
    return start_mount(base / "mnt", "-t", "ffs", "-o", opts, str(img))


def test_read_only_mount_reads_without_opens(base: Path) -> None:
    tree, img = _image(base)
    m = _mount(base, img, "ro,allow_other")
    try:
        diff(tree, m.path)  # every file read and compared, small ones and 300 KB ones (worker path)
        big = next(p for p in sorted(tree.rglob("*.bin")) if p.stat().st_size == 300_000)
        with open(m.path / big.relative_to(tree), "rb") as f:
            with mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as mm:
                assert mm[:] == big.read_bytes()
            os.fsync(f.fileno())  # a handle of 0 the daemon never gave out: still answered
        if CAN_SWITCH:
            r = _as_nobody_cat(m.path / "secret")
            assert r.returncode != 0 and b"Permission denied" in r.stderr
            r = _as_nobody_cat(m.path / "open")
            assert r.returncode == 0 and r.stdout == b"o" * 5000, r.stderr
        st = m.stats()
        files = sum(1 for p in tree.rglob("*") if p.is_file() and not p.is_symlink())
        assert st["fuse_no_open"] == 1
        assert st.get("fuse_op_open", 0) <= 1 and st.get("fuse_op_release", 0) == 0, st
        assert st["fuse_op_read"] >= files - 1 and st["fuse_open_handles"] == 0
    finally:
        stop(m)


def _writable_image(base: Path) -> tuple[Path, Path]:
    why = ffs_rw_missing()
    if why:
        pytest.skip(why)
    return _image(base)


def test_writable_mount_still_opens_and_keeps_an_unlinked_open_file(base: Path) -> None:
    tree, img = _writable_image(base)
    m = _mount(base, img, "rw")
    try:
        diff(tree, m.path)
        with open(m.path / "open", "rb") as f:
            os.unlink(m.path / "open")
            assert f.read() == b"o" * 5000  # the open file keeps its inode until closed
        st = m.stats()
        assert st["fuse_no_open"] == 0
        assert st["fuse_op_open"] >= 60 and st["fuse_op_release"] >= 60, st
    finally:
        stop(m)


@pytest.mark.skipif(not CAN_SWITCH or shutil.which("setfacl") is None, reason="needs root, setpriv and acl")
def test_read_only_mount_with_acls_still_asks_at_open(base: Path) -> None:
    """A named user's ACL entry can deny what the mode's other bits allow, and the host checks only
    the mode: on such a mount every open must reach the kernel."""
    _, img = _writable_image(base)
    m = _mount(base, img, "rw,acls")
    try:
        subprocess.run(["setfacl", "-m", "u:65534:---", str(m.path / "open")], check=True)
        os.chmod(m.path, 0o755)
    finally:
        m.umount()
    m = _mount(base, img, "ro,acls,allow_other")
    try:
        r = _as_nobody_cat(m.path / "open")
        assert r.returncode != 0 and b"Permission denied" in r.stderr
        st = m.stats()
        assert st["fuse_no_open"] == 0 and st["fuse_op_open"] >= 1
    finally:
        stop(m)
