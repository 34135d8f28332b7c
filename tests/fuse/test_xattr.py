"""Extended attributes and ACLs through the mount, with the host's own tools: getfattr/setfattr
(attr), getfacl/setfacl (acl), Python's os.*xattr for the flags and the size probe; ACLs enforced
for a non-owner (setpriv) and still there after a remount; fsck clean afterwards."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from fuse_harness import Mount, make_ffs, start_mount, stop

from p2k.cli.main import main

pytestmark = [pytest.mark.fuse, pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("getfattr") is None or shutil.which("getfacl") is None
    or shutil.which("setpriv") is None, reason="needs root, attr, acl and setpriv")]

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _run(*cmd: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(list(cmd), capture_output=True, text=True)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


def test_xattr_round_trip(work: Path) -> None:
    f = work / "f"
    f.write_bytes(b"contents")
    assert os.listxattr(f) == []
    _run("setfattr", "-n", "user.color", "-v", "blue", str(f))
    assert _run("getfattr", "--only-values", "-n", "user.color", str(f)).stdout == "blue"
    os.setxattr(f, "user.empty", b"")
    os.setxattr(f, "user.bin", bytes(range(256)) * 16)
    assert sorted(os.listxattr(f)) == ["user.bin", "user.color", "user.empty"]
    assert os.getxattr(f, "user.empty") == b""
    assert os.getxattr(f, "user.bin") == bytes(range(256)) * 16
    with pytest.raises(OSError) as ei:
        os.setxattr(f, "user.color", b"red", os.XATTR_CREATE)
    assert ei.value.errno == errno.EEXIST
    with pytest.raises(OSError) as ei:
        os.setxattr(f, "user.none", b"red", os.XATTR_REPLACE)
    assert ei.value.errno == errno.ENODATA
    os.setxattr(f, "user.color", b"red", os.XATTR_REPLACE)
    assert os.getxattr(f, "user.color") == b"red"
    os.removexattr(f, "user.color")
    with pytest.raises(OSError) as ei:
        os.getxattr(f, "user.color")
    assert ei.value.errno == errno.ENODATA
    with pytest.raises(OSError) as ei:
        os.setxattr(f, "trusted.x", b"1")
    assert ei.value.errno == errno.EOPNOTSUPP
    # size probe and ERANGE (the C API: getfattr asks with size 0 first)
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    n = libc.getxattr(str(f).encode(), b"user.bin", None, 0)
    assert n == 4096
    buf = ctypes.create_string_buffer(10)
    assert libc.getxattr(str(f).encode(), b"user.bin", buf, 10) == -1 and ctypes.get_errno() == errno.ERANGE
    # many names, listed and read back by getfattr -d
    for i in range(300):
        os.setxattr(f, f"user.n{i}", f"v{i}".encode())
    dump = _run("getfattr", "-d", str(f)).stdout
    assert 'user.n299="v299"' in dump and 'user.n0="v0"' in dump
    assert f.read_bytes() == b"contents"


def test_acl_round_trip(work: Path) -> None:
    d = work / "d"
    d.mkdir()
    f = work / "f"
    f.write_text("x")
    os.chmod(f, 0o640)
    _run("setfacl", "-m", "u:65534:rw,g:65534:r", str(f))
    out = _run("getfacl", "-n", "-p", str(f)).stdout
    assert "user:65534:rw-" in out and "group:65534:r--" in out and "mask::rw-" in out
    assert oct(os.stat(f).st_mode & 0o777) == "0o660"  # the mask is the group class
    _run("setfacl", "-d", "-m", "u:65534:rx", str(d))
    assert "default:user:65534:r-x" in _run("getfacl", "-n", "-p", str(d)).stdout
    _run("setfacl", "-b", str(f))
    out = _run("getfacl", "-n", "-p", str(f)).stdout
    assert "user:65534" not in out and "mask" not in out


@pytest.fixture
def acl_mount() -> Mount:  # type: ignore[misc]
    base = Path(tempfile.mkdtemp(prefix="p2k-acl-"))
    os.chmod(base, 0o755)
    img = make_ffs(base / "fs.img", size="32m")
    m = start_mount(base / "mnt", "-t", "ffs", "-o", "allow_other,rw,acls", str(img))
    os.chmod(m.path, 0o755)
    try:
        yield m
    finally:
        stop(m)
        shutil.rmtree(base, ignore_errors=True)


def test_acl_enforced_and_kept(acl_mount: Mount, capsys: pytest.CaptureFixture[str]) -> None:
    f = acl_mount.path / "f"
    f.write_text("secret\n")
    os.chmod(f, 0o644)
    assert _run(*NOBODY, "cat", str(f)).stdout == "secret\n"
    _run("setfacl", "-m", "u:65534:---", str(f))
    r = _run(*NOBODY, "cat", str(f), ok=False)
    assert r.returncode != 0 and "Permission denied" in r.stderr
    r = _run(*NOBODY, "setfacl", "-m", "u:65534:rw", str(f), ok=False)
    assert r.returncode != 0  # only the owner sets ACLs
    os.setxattr(f, "user.keep", b"me")
    d = acl_mount.path / "inherit"
    d.mkdir()
    _run("setfacl", "-d", "-m", "u:65534:rwx", str(d))
    (d / "new").write_text("x")
    (d / "sub").mkdir()
    assert "user:65534:rw" in _run("getfacl", "-n", "-p", str(d / "new")).stdout
    assert "default:user:65534:rwx" in _run("getfacl", "-n", "-p", str(d / "sub")).stdout
    img = acl_mount.path.parent / "fs.img"
    acl_mount.umount()
    assert main(["fsck", "-fn", str(img)]) == 0
    assert "INCORRECT" not in capsys.readouterr().out
    m = start_mount(acl_mount.path, "-t", "ffs", "-o", "allow_other,rw,acls", str(img))
    try:
        assert "user:65534:---" in _run("getfacl", "-n", "-p", str(f)).stdout
        assert os.getxattr(f, "user.keep") == b"me"
        assert _run(*NOBODY, "cat", str(f), ok=False).returncode != 0
        _run("setfacl", "-x", "u:65534", str(f))
        assert _run(*NOBODY, "cat", str(f)).stdout == "secret\n"
    finally:
        m.umount()


@pytest.mark.parametrize("endian", ["le", "be"])
def test_fill_both_ext_blocks_through_the_mount(tmp_path: Path, endian: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Over a thousand names on one file until the area (two 16 KiB blocks) is full, values from
    empty to the largest that fits on another; after unmounting, fsck is clean and TSK (and
    dissect.ffs, little-endian only) read every file's data unchanged."""
    from ffs_work import HAVE_TSK, check_dissect, check_tsk, mount_rw, p2k_tree

    img = tmp_path / "x.img"
    assert main(["newfs", "-O", "2", "-B", endian, "-b", "16384", "-f", "2048", "-s", "32m", str(img)]) == 0
    m = start_mount(tmp_path / "m", "-t", "ffs", "-o", "rw", str(img))
    try:
        f, g = m.path / "many", m.path / "big"
        f.write_bytes(b"many names\n" * 100)
        g.write_bytes(b"one big value\n")
        n = 0
        while True:
            try:
                os.setxattr(f, f"user.n{n}", f"v{n}".encode())
            except OSError as e:
                assert e.errno == errno.ENOSPC
                break
            n += 1
        assert n > 1000
        names = os.listxattr(f)
        assert len(names) == n and names[0] == "user.n0" and names[-1] == f"user.n{n - 1}"
        assert os.getxattr(f, f"user.n{n // 2}") == f"v{n // 2}".encode()
        os.setxattr(g, "user.empty", b"")
        most = 32768 - 16 - 8  # the area less the empty record (16) and the big one's header (8)
        big = os.urandom(most)
        with pytest.raises(OSError) as ei:
            os.setxattr(g, "user.b", big + os.urandom(8))
        assert ei.value.errno == errno.ENOSPC
        os.setxattr(g, "user.b", big)
        assert os.getxattr(g, "user.b") == big and os.getxattr(g, "user.empty") == b""
        os.setxattr(g, "user.b", b"smaller now", os.XATTR_REPLACE)
        os.removexattr(g, "user.empty")
    finally:
        m.umount()
    assert main(["fsck", "-fn", str(img)]) == 0
    assert "INCORRECT" not in capsys.readouterr().out
    k = mount_rw(img, ro=True)
    assert len(k.sys.extattr_list_file("/mnt/many", 1)) == n
    assert k.sys.extattr_get_file("/mnt/big", 1, b"b") == b"smaller now"
    tree = p2k_tree(k)
    k.halt()
    if HAVE_TSK:
        check_tsk(img, tree)
    if endian == "le":
        check_dissect(img, tree)


def test_freebsd_fixture_through_the_mount(tmp_path: Path) -> None:
    """getfattr on a mounted FreeBSD-written image shows the attributes its README lists."""
    from paths import SHARED

    fixture = SHARED / "fixtures" / "freebsd" / "ufs-little.img.zst"
    if not fixture.exists() or shutil.which("zstd") is None:
        pytest.skip("FreeBSD fixture or zstd not present")
    img = tmp_path / "fbsd.img"
    subprocess.run(["zstd", "-q", "-d", "-o", str(img), str(fixture)], check=True)
    m = start_mount(tmp_path / "m", "-t", "ffs", "-o", "ro", str(img))
    try:
        assert _run("getfattr", "--only-values", "-n", "user.test", str(m.path / "xattrs")).stdout == "testvalue"
        dump = _run("getfattr", "-d", str(m.path / "xattrs2")).stdout
        assert dump.count("\nuser.attr") == 2297 and 'user.attr2297="value2297"' in dump
        big = os.getxattr(m.path / "xattrs3", "user.big")
        assert big == "\n".join(f"{i:015x}" for i in range(4000)).encode()
        assert os.listxattr(m.path / "file1") == []
        with pytest.raises(OSError) as ei:
            os.setxattr(m.path / "file1", "user.x", b"1")
        assert ei.value.errno == errno.EROFS
    finally:
        stop(m)
