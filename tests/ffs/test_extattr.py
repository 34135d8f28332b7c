"""Extended attributes on UFS2 through ``k.sys``: both byte orders, both ext blocks filled,
values from empty to the largest that fits, replace, delete, the BSD errors; then the image is
checked by fsck, by the independent recount and by TSK/dissect.ffs; and the attributes a FreeBSD
kernel wrote read back as the fixture's README lists them."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from ffs_check import assert_consistent
from ffs_work import HAVE_TSK, check_dissect, check_tsk, mount_rw, newfs, p2k_tree
from paths import SHARED

import p2k
from p2k.cli.main import main
from p2k.fs.ffs.extattr import max_value, record_size
from p2k.vfs.extattr import ENOATTR, EXTATTR_NAMESPACE_SYSTEM, EXTATTR_NAMESPACE_USER, XATTR_CREATE, XATTR_REPLACE
from p2k.vfs.lwproc import Cred

U, S = EXTATTR_NAMESPACE_USER, EXTATTR_NAMESPACE_SYSTEM
FIXTURE = SHARED / "fixtures" / "freebsd" / "ufs-little.img.zst"


def _errno(fn, *a):  # type: ignore[no-untyped-def]
    with pytest.raises(OSError) as ei:
        fn(*a)
    return ei.value.errno


def _fsck_clean(img: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fsck", "-fn", str(img)]) == 0
    out = capsys.readouterr().out
    assert "INCORRECT" not in out and "DUP" not in out and "BAD" not in out, out


@pytest.mark.parametrize("endian", ["le", "be"])
def test_fill_both_blocks_replace_delete(tmp_path: Path, endian: str, capsys: pytest.CaptureFixture[str]) -> None:
    img = newfs(tmp_path / "x.img", "32m", "-O", "2", "-B", endian, "-b", "8192", "-f", "1024")
    k = mount_rw(img)
    s = k.sys
    fd = s.open("/mnt/f", os.O_CREAT | os.O_RDWR, 0o644)
    s.write(fd, b"file data " * 3000)
    s.close(fd)
    assert s.extattr_list_file("/mnt/f", U) == []
    # thousands of names until the area (2 x 8 KiB) is full: ENOSPC, as FreeBSD
    names, used = [], 0
    while True:
        n = b"attr%d" % len(names)
        v = b"v%d" % len(names)
        try:
            s.extattr_set_file("/mnt/f", U, n, v)
        except OSError as e:
            assert e.errno == errno.ENOSPC
            break
        names.append(n)
        used += record_size(n, len(v))
    assert used <= 2 * 8192 < used + record_size(b"attr%d" % len(names), 8)
    assert len(names) > 600
    st = s.stat("/mnt/f")
    assert st.st_blocks == (-(-len(b"file data " * 3000) // 1024) * 1024 + 2 * 8192) // 512
    assert s.extattr_list_file("/mnt/f", U) == names
    assert s.extattr_get_file("/mnt/f", U, names[123]) == b"v123"
    # replace in place, delete, the Linux flags
    s.extattr_set_file("/mnt/f", U, names[5], b"")
    assert s.extattr_get_file("/mnt/f", U, names[5]) == b""
    s.extattr_delete_file("/mnt/f", U, names[6])
    assert _errno(s.extattr_get_file, "/mnt/f", U, names[6]) == ENOATTR
    assert _errno(s.extattr_delete_file, "/mnt/f", U, names[6]) == ENOATTR
    assert _errno(s.extattr_set_file, "/mnt/f", U, names[7], b"x", XATTR_CREATE) == errno.EEXIST
    assert _errno(s.extattr_set_file, "/mnt/f", U, b"nope", b"x", XATTR_REPLACE) == ENOATTR
    # namespaces are separate; the system one is root's
    s.extattr_set_file("/mnt/f", S, names[0], b"sys")
    assert s.extattr_get_file("/mnt/f", U, names[0]) == b"v0"
    # the largest value on a second file; one byte more does not fit
    fd = s.open("/mnt/g", os.O_CREAT | os.O_RDWR, 0o644)
    most = max_value(k.mounts[0].fs, b"big")
    big = (bytes(range(256)) * (most // 256 + 1))[:most]
    s.extattr_set_fd(fd, U, b"big", big)
    assert _errno(s.extattr_set_fd, fd, U, b"big2", b"") == errno.ENOSPC
    assert _errno(s.extattr_set_fd, fd, U, b"big", big + b"123456789") == errno.ENOSPC
    assert _errno(s.extattr_set_fd, fd, U, b"x" * 256, b"") == errno.ENAMETOOLONG
    assert _errno(s.extattr_set_fd, fd, U, b"", b"") == errno.EINVAL
    s.close(fd)
    # a symlink's own attributes (the _link form), a fast symlink keeps its target
    s.symlink("f", "/mnt/ln")
    s.extattr_set_link("/mnt/ln", U, b"l", b"link attr")
    assert s.extattr_list_file("/mnt/ln", U)[:1] == [names[0]]
    assert s.extattr_get_link("/mnt/ln", U, b"l") == b"link attr"
    # a removed file gives its ext blocks back (fsck would see leaked blocks otherwise)
    fd = s.open("/mnt/gone", os.O_CREAT | os.O_RDWR, 0o644)
    s.extattr_set_fd(fd, U, b"x", b"y" * 9000)
    s.close(fd)
    s.unlink("/mnt/gone")
    tree = p2k_tree(k)
    k.halt()
    k = mount_rw(img, ro=True)
    assert k.sys.extattr_get_file("/mnt/g", U, b"big") == big
    assert k.sys.extattr_list_file("/mnt/f", U) == [n for n in names if n != names[6]]
    assert k.sys.readlink("/mnt/ln") == "f"
    assert _errno(k.sys.extattr_set_file, "/mnt/f", U, b"n", b"") == errno.EROFS
    k.halt()
    _fsck_clean(img, capsys)
    assert_consistent(img)
    if HAVE_TSK:
        check_tsk(img, tree)
    if endian == "le":
        check_dissect(img, tree)


def test_permissions(tmp_path: Path) -> None:
    k = mount_rw(newfs(tmp_path / "p.img", "16m", "-O", "2"))
    s = k.sys
    for name, mode in (("r", 0o644), ("none", 0o600)):
        fd = s.open(f"/mnt/{name}", os.O_CREAT | os.O_RDWR, mode)
        s.close(fd)
        s.extattr_set_file(f"/mnt/{name}", U, b"a", b"1")
    nobody = k.newproc(cred=Cred(65534, 65534))
    assert nobody.extattr_get_file("/mnt/r", U, b"a") == b"1"
    assert _errno(nobody.extattr_set_file, "/mnt/r", U, b"a", b"2") == errno.EACCES
    assert _errno(nobody.extattr_delete_file, "/mnt/r", U, b"a") == errno.EACCES
    assert _errno(nobody.extattr_get_file, "/mnt/none", U, b"a") == errno.EACCES
    assert _errno(nobody.extattr_list_file, "/mnt/none", U) == errno.EACCES
    assert _errno(nobody.extattr_get_file, "/mnt/r", S, b"a") == errno.EPERM
    assert _errno(nobody.extattr_set_file, "/mnt/r", 7, b"a", b"") == errno.EINVAL
    k.halt()


def test_ufs1_and_tmpfs(tmp_path: Path) -> None:
    k = mount_rw(newfs(tmp_path / "u1.img", "8m", "-O", "1"))
    fd = k.sys.open("/mnt/f", os.O_CREAT | os.O_RDWR, 0o644)
    assert _errno(k.sys.extattr_set_fd, fd, U, b"a", b"") == errno.EOPNOTSUPP
    assert _errno(k.sys.extattr_list_fd, fd, U) == errno.EOPNOTSUPP
    k.sys.close(fd)
    k.halt()
    k = p2k.Kernel()
    k.sys.mkdir("/t", 0o755)
    k.sys.mount("tmpfs", "/t", 0, {})
    fd = k.sys.open("/t/f", os.O_CREAT | os.O_RDWR, 0o644)
    k.sys.extattr_set_fd(fd, U, b"a", b"tmp")
    assert k.sys.extattr_get_file("/t/f", U, b"a") == b"tmp"
    assert _errno(k.sys.extattr_set_fd, fd, U, b"b", bytes(70000)) == errno.EINVAL
    k.sys.close(fd)
    k.sys.unlink("/t/f")
    k.halt()


@pytest.fixture(scope="module")
def freebsd_img(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not FIXTURE.exists():
        pytest.skip(f"FreeBSD fixture not present ({FIXTURE})")
    if shutil.which("zstd") is None:
        pytest.skip("zstd not installed")
    out = tmp_path_factory.mktemp("fbsd") / "ufs-little.img"
    subprocess.run(["zstd", "-q", "-d", "-o", str(out), str(FIXTURE)], check=True)
    return out


def test_freebsd_fixture_attributes(freebsd_img: Path) -> None:
    """The README's list: xattrs, xattrs2 (2,297 names), xattrs3 (63,999 bytes), file1 none."""
    k = mount_rw(freebsd_img, ro=True)
    s = k.sys
    assert s.extattr_list_file("/mnt/xattrs", U) == [b"test"]
    assert s.extattr_get_file("/mnt/xattrs", U, b"test") == b"testvalue"
    names = s.extattr_list_file("/mnt/xattrs2", U)
    assert names == [b"attr%d" % i for i in range(1, 2298)]
    for i in (1, 1000, 2297):
        assert s.extattr_get_file("/mnt/xattrs2", U, b"attr%d" % i) == b"value%d" % i
    big = "\n".join(f"{i:015x}" for i in range(4000)).encode()
    assert len(big) == 63999
    assert s.extattr_get_file("/mnt/xattrs3", U, b"big") == big
    assert s.extattr_list_file("/mnt/file1", U) == []
    assert s.extattr_list_file("/mnt/xattrs", S) == []
    k.halt()


def test_parsed_big_areas_are_bounded(tmp_path: Path) -> None:
    """Parsed areas beyond 4 KiB stay cached for the last 16 files only (memory stays bounded);
    the others read the same after being parsed again."""
    from p2k.fs.ffs.ffs_vnops import BIG_AREAS

    k = mount_rw(newfs(tmp_path / "m.img", "32m", "-O", "2"))
    s = k.sys
    fds = []
    for i in range(BIG_AREAS + 8):
        fd = s.open(f"/mnt/f{i}", os.O_CREAT | os.O_RDWR, 0o644)
        s.extattr_set_fd(fd, U, b"big", bytes([i]) * 6000)
        fds.append(fd)
    parsed = [s.proc.fdt.get(fd).vp.data.ea is not None for fd in fds]
    assert sum(parsed) == BIG_AREAS and parsed[-1] and not parsed[0]
    for i, fd in enumerate(fds):
        assert s.extattr_get_fd(fd, U, b"big") == bytes([i]) * 6000
        s.close(fd)
    k.halt()


def test_acl_inheritance_and_enforcement(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A directory's default ACL becomes a new file's access ACL (mode limited by it) and a new
    directory's default ACL too; the access ACL is enforced for a named user; all through k.sys
    on a mount with ACLs enforced (-o acls)."""
    from p2k.vfs import acl

    img = newfs(tmp_path / "a.img", "16m", "-O", "2")
    k = p2k.Kernel(env={})
    k.etfs_register("/dev/dk", str(img), p2k.ETFS_BLK)
    k.sys.mkdir("/mnt", 0o755)
    k.sys.mount("ffs", "/mnt", 0, {"fspec": "/dev/dk", "acls": ""})
    s = k.sys
    x = acl.ACL_UNDEFINED_ID
    s.umask(0)  # the umask still applies before inheritance (POSIX would skip it): see ffs_vnops
    s.mkdir("/mnt/d", 0o777)
    default = [(acl.ACL_USER_OBJ, x, 7), (acl.ACL_USER, 1000, 6), (acl.ACL_GROUP_OBJ, x, 5),
               (acl.ACL_MASK, x, 6), (acl.ACL_OTHER, x, 0)]
    s.acl_set_file("/mnt/d", acl.ACL_TYPE_DEFAULT, default)
    s.close(s.open("/mnt/d/f", os.O_CREAT | os.O_WRONLY, 0o666))
    s.mkdir("/mnt/d/sub", 0o777)
    assert s.stat("/mnt/d/f").st_mode & 0o777 == 0o660  # 666 limited by rwx, mask rw-, other ---
    got = s.acl_get_file("/mnt/d/f", acl.ACL_TYPE_ACCESS)
    assert got is not None and (acl.ACL_USER, 1000, 6) in got and (acl.ACL_MASK, x, 6) in got
    assert s.acl_get_file("/mnt/d/sub", acl.ACL_TYPE_DEFAULT) == default
    user = k.newproc(cred=Cred(1000, 1000))
    other = k.newproc(cred=Cred(1001, 1001))
    s.chmod("/mnt/d", 0o755)
    user.close(user.open("/mnt/d/f", os.O_RDWR))  # granted by the named entry, not by the mode
    assert _errno(other.open, "/mnt/d/f", os.O_RDONLY) == errno.EACCES
    s.chmod("/mnt/d/f", 0o640)  # the mask follows the group bits: now r-- for user 1000
    assert _errno(user.open, "/mnt/d/f", os.O_RDWR) == errno.EACCES
    user.close(user.open("/mnt/d/f", os.O_RDONLY))
    k.halt()
    assert main(["fsck", "-fn", str(img)]) == 0
    assert "INCORRECT" not in capsys.readouterr().out


def test_tmpfs_enforces_acls_with_the_option() -> None:
    from p2k.vfs import acl

    x = acl.ACL_UNDEFINED_ID
    for opts, enforced in (({"acls": ""}, True), ({}, False)):
        k = p2k.Kernel(env={})
        k.sys.mkdir("/t", 0o755)
        k.sys.mount("tmpfs", "/t", 0, opts)
        k.sys.close(k.sys.open("/t/f", os.O_CREAT | os.O_WRONLY, 0o644))
        k.sys.acl_set_file("/t/f", acl.ACL_TYPE_ACCESS, [(acl.ACL_USER_OBJ, x, 6), (acl.ACL_USER, 1000, 0),
                                                          (acl.ACL_GROUP_OBJ, x, 4), (acl.ACL_MASK, x, 4),
                                                          (acl.ACL_OTHER, x, 4)])
        user = k.newproc(cred=Cred(1000, 1000))
        if enforced:
            assert _errno(user.open, "/t/f", os.O_RDONLY) == errno.EACCES
        else:
            user.close(user.open("/t/f", os.O_RDONLY))  # stored, not enforced: the mode applies
        k.halt()


def test_ufs2ea_magic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """NetBSD 10's UFS2EA (FS_UFS2EA_MAGIC) keeps its attributes in the same ext area."""
    import struct

    from p2k.fs.ffs.fs import FS_UFS2_MAGIC, FS_UFS2EA_MAGIC

    img = newfs(tmp_path / "ea.img", "16m", "-O", "2")
    with open(img, "r+b") as f:
        f.seek(65536 + 1372)
        assert struct.unpack("<i", f.read(4))[0] == FS_UFS2_MAGIC
        f.seek(65536 + 1372)
        f.write(struct.pack("<i", FS_UFS2EA_MAGIC))
    k = mount_rw(img)
    assert k.mounts[0].fs.ea
    k.sys.close(k.sys.open("/mnt/f", os.O_CREAT | os.O_WRONLY, 0o644))
    k.sys.extattr_set_file("/mnt/f", U, b"netbsd", b"10")
    k.halt()
    k = mount_rw(img, ro=True)
    assert k.sys.extattr_get_file("/mnt/f", U, b"netbsd") == b"10"
    k.halt()
    assert main(["fsck", "-fn", str(img)]) == 0
    assert "INCORRECT" not in capsys.readouterr().out
