"""Syscall semantics: each call with its POSIX error cases, as root and as a user.

As NetBSD runs one vfs test suite over every file system, each test runs on tmpfs and on FFS
(UFS1 and UFS2, both byte orders, freshly made by ``p2k newfs``) mounted read-write at /mnt.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import time
from pathlib import Path

import pytest
from kernel_io import errno_of, read_file, write_file

import p2k
from p2k.vfs.lwproc import Cred

O_CREAT_RW = os.O_RDWR | os.O_CREAT


FILE_SYSTEMS = ["tmpfs", "ufs1-le", "ufs1-be", "ufs2-le", "ufs2-be"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One empty FFS image per variant, made once; each test mounts its own copy."""
    from p2k.cli.main import main

    d = tmp_path_factory.mktemp("syscalls")
    out = {}
    for name in FILE_SYSTEMS[1:]:
        version, order = name[3], name[-2:]
        img = d / f"{name}.img"
        assert main(["newfs", "-V", "0", "-O", version, "-B", order, "-s", "16m", str(img)]) == 0
        out[name] = img
    return out


@pytest.fixture(params=FILE_SYSTEMS)
def k(request: pytest.FixtureRequest, kernel: p2k.Kernel, pristine: dict[str, Path], tmp_path: Path) -> p2k.Kernel:
    kernel.sys.mkdir("/mnt", 0o755)
    if request.param == "tmpfs":
        kernel.sys.mount("tmpfs", "/mnt")
        return kernel
    img = tmp_path / "fs.img"
    shutil.copyfile(pristine[request.param], img)
    kernel.etfs_register("/dev/fsimage", str(img), p2k.ETFS_BLK)
    kernel.sys.mount("ffs", "/mnt", 0, {"fspec": "/dev/fsimage"})
    # newfs makes lost+found; the tests expect an empty root, as on tmpfs
    kernel.sys.rmdir("/mnt/lost+found")
    return kernel


# ---- open ------------------------------------------------------------------------------------------


def test_open_creat_excl(k: p2k.Kernel) -> None:
    fd = k.sys.open("/mnt/f", O_CREAT_RW | os.O_EXCL, 0o640)
    k.sys.close(fd)
    assert stat.S_IMODE(k.sys.stat("/mnt/f").st_mode) == 0o640
    assert errno_of(k.sys.open, "/mnt/f", O_CREAT_RW | os.O_EXCL) == errno.EEXIST
    # O_EXCL does not follow a symlink, even a dangling one.
    k.sys.symlink("nowhere", "/mnt/dangling")
    assert errno_of(k.sys.open, "/mnt/dangling", O_CREAT_RW | os.O_EXCL) == errno.EEXIST
    assert errno_of(k.sys.stat, "/mnt/nowhere") == errno.ENOENT
    # Without O_EXCL, O_CREAT through a dangling symlink creates its target.
    k.sys.close(k.sys.open("/mnt/dangling", O_CREAT_RW, 0o600))
    assert stat.S_ISREG(k.sys.stat("/mnt/nowhere").st_mode)
    # An existing directory: O_CREAT is EISDIR (POSIX), O_CREAT|O_EXCL is EEXIST.
    k.sys.mkdir("/mnt/d")
    assert errno_of(k.sys.open, "/mnt/d", os.O_RDONLY | os.O_CREAT) == errno.EISDIR
    assert errno_of(k.sys.open, "/mnt/d", os.O_RDONLY | os.O_CREAT | os.O_EXCL) == errno.EEXIST
    assert errno_of(k.sys.open, "/mnt/new/", O_CREAT_RW) == errno.EISDIR
    assert errno_of(k.sys.open, "/mnt/nodir/f", O_CREAT_RW) == errno.ENOENT
    assert errno_of(k.sys.open, "/mnt/f/x", O_CREAT_RW) == errno.ENOTDIR
    assert errno_of(k.sys.open, "/mnt/missing", os.O_RDONLY) == errno.ENOENT
    assert errno_of(k.sys.open, "/mnt/f", os.O_ACCMODE) == errno.EINVAL


def test_open_trunc_append(k: p2k.Kernel) -> None:
    write_file(k, "/mnt/f", b"0123456789")
    fd = k.sys.open("/mnt/f", os.O_WRONLY | os.O_APPEND)
    k.sys.lseek(fd, 0, os.SEEK_SET)
    assert k.sys.write(fd, b"ab") == 2
    assert k.sys.lseek(fd, 0, os.SEEK_CUR) == 12
    k.sys.pwrite(fd, b"Z", 0)  # pwrite ignores O_APPEND on BSD; Linux appends (see test_props)
    k.sys.close(fd)
    data = read_file(k, "/mnt/f")
    assert data[:10] in (b"Z123456789", b"0123456789") and data[10:12] == b"ab"
    fd = k.sys.open("/mnt/f", os.O_RDWR | os.O_TRUNC)
    assert k.sys.fstat(fd).st_size == 0
    assert k.sys.read(fd, 10) == b""
    k.sys.close(fd)
    # O_TRUNC with O_RDONLY on a writable file truncates too (the result is unspecified in POSIX;
    # Linux and NetBSD both truncate).
    write_file(k, "/mnt/f", b"abc")
    k.sys.close(k.sys.open("/mnt/f", os.O_RDONLY | os.O_TRUNC))
    assert k.sys.stat("/mnt/f").st_size == 0


def test_open_directory_nofollow(k: p2k.Kernel) -> None:
    write_file(k, "/mnt/f", b"x")
    k.sys.mkdir("/mnt/d")
    k.sys.symlink("f", "/mnt/lf")
    k.sys.symlink("d", "/mnt/ld")
    assert errno_of(k.sys.open, "/mnt/f", os.O_RDONLY | os.O_DIRECTORY) == errno.ENOTDIR
    k.sys.close(k.sys.open("/mnt/d", os.O_RDONLY | os.O_DIRECTORY))
    k.sys.close(k.sys.open("/mnt/ld", os.O_RDONLY | os.O_DIRECTORY))
    assert errno_of(k.sys.open, "/mnt/lf", os.O_RDONLY | os.O_NOFOLLOW) == errno.ELOOP
    assert errno_of(k.sys.open, "/mnt/ld", os.O_RDONLY | os.O_NOFOLLOW) == errno.ELOOP
    # O_NOFOLLOW only concerns the last component.
    k.sys.close(k.sys.open("/mnt/ld/../f", os.O_RDONLY | os.O_NOFOLLOW))
    assert errno_of(k.sys.open, "/mnt/d", os.O_WRONLY) == errno.EISDIR
    assert errno_of(k.sys.open, "/mnt/d", os.O_RDWR) == errno.EISDIR
    fd = k.sys.open("/mnt/d", os.O_RDONLY)
    assert errno_of(k.sys.read, fd, 1) == errno.EISDIR
    assert errno_of(k.sys.write, fd, b"x") == errno.EBADF
    k.sys.close(fd)


def test_access_modes_on_fds(k: p2k.Kernel) -> None:
    write_file(k, "/mnt/f", b"abc")
    ro = k.sys.open("/mnt/f", os.O_RDONLY)
    wo = k.sys.open("/mnt/f", os.O_WRONLY)
    assert errno_of(k.sys.write, ro, b"x") == errno.EBADF
    assert errno_of(k.sys.read, wo, 1) == errno.EBADF
    assert errno_of(k.sys.pread, wo, 1, 0) == errno.EBADF
    assert errno_of(k.sys.ftruncate, ro, 0) == errno.EINVAL
    assert errno_of(k.sys.pread, ro, 1, -1) == errno.EINVAL
    assert errno_of(k.sys.lseek, ro, -1, os.SEEK_SET) == errno.EINVAL
    assert errno_of(k.sys.lseek, ro, 0, 7) == errno.EINVAL
    assert k.sys.lseek(ro, -1, os.SEEK_END) == 2
    assert k.sys.read(ro, 10) == b"c"
    for fd in (ro, wo):
        k.sys.close(fd)
    assert errno_of(k.sys.close, ro) == errno.EBADF
    assert errno_of(k.sys.fstat, 12345) == errno.EBADF


# ---- data ------------------------------------------------------------------------------------------


def test_read_write_seek_pread_pwrite(k: p2k.Kernel) -> None:
    fd = k.sys.open("/mnt/f", O_CREAT_RW, 0o644)
    assert k.sys.write(fd, b"hello world") == 11
    assert k.sys.read(fd, 5) == b""
    assert k.sys.lseek(fd, 6, os.SEEK_SET) == 6
    assert k.sys.read(fd, 100) == b"world"
    assert k.sys.pwrite(fd, b"W", 6) == 1
    assert k.sys.lseek(fd, 0, os.SEEK_CUR) == 11  # pwrite leaves the offset alone
    assert k.sys.pread(fd, 100, 0) == b"hello World"
    assert k.sys.write(fd, memoryview(b"!!")) == 2
    assert k.sys.write(fd, bytearray(b"")) == 0
    assert k.sys.fstat(fd).st_size == 13
    k.sys.close(fd)


def test_sparse_file_reads_zeros(k: p2k.Kernel) -> None:
    fd = k.sys.open("/mnt/sparse", O_CREAT_RW)
    big = 10 * (1 << 20) + 123
    k.sys.pwrite(fd, b"end", big)
    st = k.sys.fstat(fd)
    assert st.st_size == big + 3
    assert st.st_blocks * 512 < 1 << 20  # the hole takes no space
    assert k.sys.pread(fd, 4096, 5 << 20) == bytes(4096)
    assert k.sys.pread(fd, 10, big - 7) == bytes(7) + b"end"
    k.sys.ftruncate(fd, 1 << 30)
    assert k.sys.pread(fd, 8, (1 << 30) - 8) == bytes(8)
    k.sys.ftruncate(fd, 5)
    k.sys.ftruncate(fd, 100)
    assert k.sys.pread(fd, 200, 0) == bytes(100)  # truncated-away data does not come back
    k.sys.pwrite(fd, b"abc", 65534)  # straddles a page boundary
    assert k.sys.pread(fd, 5, 65533) == b"\0abc"
    k.sys.close(fd)


def test_truncate(k: p2k.Kernel) -> None:
    write_file(k, "/mnt/f", b"0123456789")
    k.sys.truncate("/mnt/f", 4)
    assert read_file(k, "/mnt/f") == b"0123"
    k.sys.truncate("/mnt/f", 6)
    assert read_file(k, "/mnt/f") == b"0123\0\0"
    k.sys.mkdir("/mnt/d")
    assert errno_of(k.sys.truncate, "/mnt/d", 0) == errno.EISDIR
    assert errno_of(k.sys.truncate, "/mnt/f", -1) == errno.EINVAL
    assert errno_of(k.sys.truncate, "/mnt/none", 0) == errno.ENOENT


# ---- dup, umask, cwd -------------------------------------------------------------------------------


def test_dup_and_dup2_share_the_offset(k: p2k.Kernel) -> None:
    write_file(k, "/mnt/f", b"abcdef")
    fd = k.sys.open("/mnt/f", os.O_RDONLY)
    d = k.sys.dup(fd)
    assert d != fd
    assert k.sys.read(fd, 2) == b"ab"
    assert k.sys.read(d, 2) == b"cd"
    assert k.sys.dup2(fd, 40) == 40
    assert k.sys.read(40, 2) == b"ef"
    assert k.sys.dup2(fd, fd) == fd
    other = k.sys.open("/mnt/f", os.O_RDONLY)
    assert k.sys.dup2(fd, other) == other  # dup2 closes the fd it replaces
    assert k.sys.lseek(other, 0, os.SEEK_CUR) == 6
    k.sys.close(fd)
    assert k.sys.lseek(d, 0, os.SEEK_CUR) == 6  # the file stays open through the other fds
    assert errno_of(k.sys.dup, fd) == errno.EBADF
    assert errno_of(k.sys.dup2, fd, 3) == errno.EBADF
    assert errno_of(k.sys.dup2, d, -1) == errno.EBADF
    for x in (d, 40, other):
        k.sys.close(x)
    assert k.stats()["vnodes_inuse"] == 2


def test_umask(k: p2k.Kernel) -> None:
    assert k.sys.umask(0o077) == 0o022
    k.sys.close(k.sys.open("/mnt/f", O_CREAT_RW, 0o666))
    k.sys.mkdir("/mnt/d", 0o777)
    k.sys.mkfifo("/mnt/p", 0o666)
    assert stat.S_IMODE(k.sys.stat("/mnt/f").st_mode) == 0o600
    assert stat.S_IMODE(k.sys.stat("/mnt/d").st_mode) == 0o700
    assert stat.S_IMODE(k.sys.stat("/mnt/p").st_mode) == 0o600
    assert k.sys.umask(0o1777) == 0o077
    assert k.sys.umask(0o022) == 0o777
    k.sys.symlink("x", "/mnt/l")
    assert stat.S_IMODE(k.sys.lstat("/mnt/l").st_mode) == 0o777  # umask does not apply to symlinks


def test_chdir_fchdir_getcwd(k: p2k.Kernel) -> None:
    assert k.sys.getcwd() == "/"
    k.sys.mkdir("/mnt/a")
    k.sys.mkdir("/mnt/a/b")
    k.sys.chdir("/mnt/a/b")
    assert k.sys.getcwd() == "/mnt/a/b"
    write_file(k, "rel", b"r")
    assert read_file(k, "/mnt/a/b/rel") == b"r"
    k.sys.chdir("../..")
    assert k.sys.getcwd() == "/mnt"
    k.sys.chdir("..")  # out of the mount
    assert k.sys.getcwd() == "/"
    fd = k.sys.open("/mnt/a", os.O_RDONLY | os.O_DIRECTORY)
    k.sys.fchdir(fd)
    assert k.sys.getcwd() == "/mnt/a"
    k.sys.close(fd)
    assert errno_of(k.sys.chdir, "/mnt/a/b/rel") == errno.ENOTDIR
    assert errno_of(k.sys.chdir, "/mnt/none") == errno.ENOENT
    fd = k.sys.open("/mnt/a/b/rel", os.O_RDONLY)
    assert errno_of(k.sys.fchdir, fd) == errno.ENOTDIR
    k.sys.close(fd)
    k.sys.chdir("/mnt/a/b")
    k.sys.unlink("rel")
    k.sys.rmdir("/mnt/a/b")
    assert errno_of(k.sys.getcwd) == errno.ENOENT
    assert errno_of(k.sys.open, "new", O_CREAT_RW) == errno.ENOENT  # no entries in a removed dir
    assert errno_of(k.sys.mkdir, "newdir") == errno.ENOENT
    assert errno_of(k.sys.symlink, "x", "newlink") == errno.ENOENT
    assert errno_of(k.sys.link, "/mnt/a", "newlink") == errno.ENOENT
    write_file(k, "/mnt/a/f", b"")
    assert errno_of(k.sys.link, "/mnt/a/f", "newlink") == errno.ENOENT
    assert errno_of(k.sys.rename, "/mnt/a/f", "moved") == errno.ENOENT
    assert k.sys.listdir(".") == []
    k.sys.chdir("/")


# ---- names -----------------------------------------------------------------------------------------


def test_mkdir_rmdir(k: p2k.Kernel) -> None:
    k.sys.mkdir("/mnt/d")
    st = k.sys.stat("/mnt/d")
    assert stat.S_ISDIR(st.st_mode) and st.st_nlink == 2
    assert k.sys.stat("/mnt").st_nlink == 3
    assert errno_of(k.sys.mkdir, "/mnt/d") == errno.EEXIST
    k.sys.mkdir("/mnt/e/")  # trailing slash is fine for mkdir
    write_file(k, "/mnt/d/f", b"")
    assert errno_of(k.sys.rmdir, "/mnt/d") == errno.ENOTEMPTY
    assert errno_of(k.sys.rmdir, "/mnt/d/f") == errno.ENOTDIR
    assert errno_of(k.sys.rmdir, "/mnt/d/.") == errno.EINVAL
    assert errno_of(k.sys.rmdir, "/mnt/none") == errno.ENOENT
    assert errno_of(k.sys.rmdir, "/mnt") == errno.EBUSY  # a mount point
    k.sys.unlink("/mnt/d/f")
    k.sys.rmdir("/mnt/d/")
    k.sys.rmdir("/mnt/e")
    assert k.sys.stat("/mnt").st_nlink == 2
    assert k.sys.listdir("/mnt") == []
    assert errno_of(k.sys.mkdir, "/mnt/x/y") == errno.ENOENT
    assert errno_of(k.sys.mkdir, "/mnt") == errno.EEXIST
    assert errno_of(k.sys.mkdir, "/") == errno.EEXIST


def test_unlink(k: p2k.Kernel) -> None:
    write_file(k, "/mnt/f", b"x")
    k.sys.mkdir("/mnt/d")
    assert errno_of(k.sys.unlink, "/mnt/d") == errno.EISDIR  # Linux's answer; BSD says EPERM
    assert errno_of(k.sys.unlink, "/mnt/f/") == errno.ENOTDIR
    assert errno_of(k.sys.unlink, "/mnt/none") == errno.ENOENT
    k.sys.symlink("f", "/mnt/l")
    k.sys.unlink("/mnt/l")  # removes the link, not its target
    assert read_file(k, "/mnt/f") == b"x"
    k.sys.unlink("/mnt/f")
    assert sorted(k.sys.listdir("/mnt")) == ["d"]


def test_link(k: p2k.Kernel) -> None:
    write_file(k, "/mnt/f", b"x")
    k.sys.link("/mnt/f", "/mnt/g")
    assert k.sys.stat("/mnt/f").st_nlink == 2
    assert k.sys.stat("/mnt/g").st_ino == k.sys.stat("/mnt/f").st_ino
    assert errno_of(k.sys.link, "/mnt/f", "/mnt/g") == errno.EEXIST
    k.sys.mkdir("/mnt/d")
    assert errno_of(k.sys.link, "/mnt/d", "/mnt/d2") == errno.EPERM
    assert errno_of(k.sys.link, "/mnt/none", "/mnt/x") == errno.ENOENT
    assert errno_of(k.sys.link, "/mnt/f", "/mnt/x/") == errno.ENOENT
    assert errno_of(k.sys.link, "/mnt/f", "/x") == errno.EXDEV
    k.sys.unlink("/mnt/f")
    assert read_file(k, "/mnt/g") == b"x"
    assert k.sys.stat("/mnt/g").st_nlink == 1
    # link does not follow a symlink source (POSIX leaves it open; Linux and NetBSD agree)
    k.sys.symlink("g", "/mnt/l")
    k.sys.link("/mnt/l", "/mnt/l2")
    assert stat.S_ISLNK(k.sys.lstat("/mnt/l2").st_mode)


def test_symlink_readlink(k: p2k.Kernel) -> None:
    k.sys.symlink("target/with/parts", "/mnt/l")
    assert k.sys.readlink("/mnt/l") == "target/with/parts"
    assert k.sys.readlink(b"/mnt/l") == b"target/with/parts"
    st = k.sys.lstat("/mnt/l")
    assert stat.S_ISLNK(st.st_mode) and st.st_size == len("target/with/parts")
    assert errno_of(k.sys.stat, "/mnt/l") == errno.ENOENT
    assert errno_of(k.sys.symlink, "x", "/mnt/l") == errno.EEXIST
    assert errno_of(k.sys.symlink, "", "/mnt/empty") == errno.ENOENT
    write_file(k, "/mnt/f", b"")
    assert errno_of(k.sys.readlink, "/mnt/f") == errno.EINVAL
    assert errno_of(k.sys.readlink, "/mnt/none") == errno.ENOENT
    k.sys.symlink("/mnt/f", "/mnt/abs")
    assert stat.S_ISREG(k.sys.stat("/mnt/abs").st_mode)


def test_symlink_loop_limit(k: p2k.Kernel) -> None:
    write_file(k, "/mnt/end", b"reached")
    prev = "end"
    for i in range(32):
        k.sys.symlink(prev, f"/mnt/s{i}")
        prev = f"s{i}"
    assert read_file(k, "/mnt/s31") == b"reached"  # 32 links followed
    k.sys.symlink("s31", "/mnt/s32")
    assert errno_of(k.sys.stat, "/mnt/s32") == errno.ELOOP  # the 33rd is one too many
    k.sys.lstat("/mnt/s32")
    k.sys.symlink("self", "/mnt/self")
    assert errno_of(k.sys.open, "/mnt/self", os.O_RDONLY) == errno.ELOOP
    assert errno_of(k.sys.stat, "/mnt/self/x") == errno.ELOOP


def test_trailing_slash_rules(k: p2k.Kernel) -> None:
    write_file(k, "/mnt/f", b"")
    k.sys.mkdir("/mnt/d")
    k.sys.symlink("d", "/mnt/ld")
    k.sys.symlink("f", "/mnt/lf")
    assert errno_of(k.sys.stat, "/mnt/f/") == errno.ENOTDIR
    assert errno_of(k.sys.lstat, "/mnt/f/") == errno.ENOTDIR
    assert errno_of(k.sys.stat, "/mnt/lf/") == errno.ENOTDIR
    assert stat.S_ISDIR(k.sys.stat("/mnt/d/").st_mode)
    assert stat.S_ISDIR(k.sys.stat("/mnt/d//").st_mode)
    assert stat.S_ISDIR(k.sys.lstat("/mnt/ld/").st_mode)  # a trailing slash follows the link
    assert errno_of(k.sys.open, "/mnt/f/", os.O_RDONLY) == errno.ENOTDIR
    assert errno_of(k.sys.mknod, "/mnt/n/", stat.S_IFIFO | 0o644) in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR)
    assert errno_of(k.sys.symlink, "x", "/mnt/sl/") in (errno.ENOENT, errno.ENOTDIR, errno.EEXIST)
    assert errno_of(k.sys.rename, "/mnt/f", "/mnt/g/") == errno.ENOTDIR
    assert errno_of(k.sys.rename, "/mnt/f/", "/mnt/g") == errno.ENOTDIR
    k.sys.rename("/mnt/d/", "/mnt/e/")
    assert stat.S_ISDIR(k.sys.stat("/mnt/e").st_mode)
    assert errno_of(k.sys.rmdir, "/mnt/f/") == errno.ENOTDIR
    assert k.sys.listdir("/mnt/e/") == []


def test_name_too_long(k: p2k.Kernel) -> None:
    assert errno_of(k.sys.open, "/mnt/" + "n" * 256, O_CREAT_RW) == errno.ENAMETOOLONG
    assert errno_of(k.sys.mkdir, "/mnt/" + "n" * 256) == errno.ENAMETOOLONG
    assert errno_of(k.sys.stat, "/mnt/" + "n" * 256) == errno.ENAMETOOLONG
    k.sys.close(k.sys.open("/mnt/" + "n" * 255, O_CREAT_RW))
    deep = "/mnt/" + "/".join(["d"] * 520)
    assert len(deep) >= 1024
    assert errno_of(k.sys.stat, deep) == errno.ENAMETOOLONG
    assert errno_of(k.sys.symlink, "x" * 1024, "/mnt/long") == errno.ENAMETOOLONG
    assert errno_of(k.sys.stat, "") == errno.ENOENT


# ---- rename ----------------------------------------------------------------------------------------


def test_rename_files(k: p2k.Kernel) -> None:
    write_file(k, "/mnt/a", b"A")
    write_file(k, "/mnt/b", b"B")
    ino_a = k.sys.stat("/mnt/a").st_ino
    k.sys.rename("/mnt/a", "/mnt/b")  # replaces b
    assert k.sys.listdir("/mnt") == ["b"]
    assert read_file(k, "/mnt/b") == b"A" and k.sys.stat("/mnt/b").st_ino == ino_a
    k.sys.mkdir("/mnt/d")
    k.sys.rename("/mnt/b", "/mnt/d/c")
    assert read_file(k, "/mnt/d/c") == b"A"
    assert errno_of(k.sys.rename, "/mnt/none", "/mnt/x") == errno.ENOENT
    assert errno_of(k.sys.rename, "/mnt/d/c", "/mnt/none/x") == errno.ENOENT
    assert errno_of(k.sys.rename, "/mnt/d/c", "/mnt/d") == errno.EISDIR
    assert errno_of(k.sys.rename, "/mnt/d", "/mnt/d/c") == errno.EINVAL  # into itself, as Linux
    k.sys.rename("/mnt/d/c", "/mnt/d/c")  # to itself: nothing happens
    assert read_file(k, "/mnt/d/c") == b"A"


def test_rename_hard_links_to_one_file_is_a_noop(k: p2k.Kernel) -> None:
    write_file(k, "/mnt/a", b"A")
    k.sys.link("/mnt/a", "/mnt/b")
    k.sys.rename("/mnt/a", "/mnt/b")
    assert sorted(k.sys.listdir("/mnt")) == ["a", "b"]  # POSIX: both names stay
    assert k.sys.stat("/mnt/a").st_nlink == 2


def test_rename_directories(k: p2k.Kernel) -> None:
    for d in ("/mnt/a", "/mnt/a/sub", "/mnt/empty", "/mnt/full"):
        k.sys.mkdir(d)
    write_file(k, "/mnt/full/f", b"")
    write_file(k, "/mnt/a/sub/f", b"deep")
    assert errno_of(k.sys.rename, "/mnt/a", "/mnt/full") == errno.ENOTEMPTY
    assert errno_of(k.sys.rename, "/mnt/a", "/mnt/a/sub/x") == errno.EINVAL
    assert errno_of(k.sys.rename, "/mnt/a", "/mnt/a/sub") == errno.EINVAL  # own subtree comes first
    assert errno_of(k.sys.rename, "/mnt/a/.", "/mnt/b") == errno.EINVAL
    assert errno_of(k.sys.rename, "/mnt/a", "/mnt/b/..") == errno.EINVAL
    nlink_root = k.sys.stat("/mnt").st_nlink
    k.sys.rename("/mnt/a", "/mnt/empty")  # a directory over an empty directory
    assert sorted(k.sys.listdir("/mnt")) == ["empty", "full"]
    assert read_file(k, "/mnt/empty/sub/f") == b"deep"
    assert k.sys.stat("/mnt").st_nlink == nlink_root - 1
    k.sys.rename("/mnt/empty/sub", "/mnt/full/sub")
    assert k.sys.stat("/mnt/empty").st_nlink == 2
    assert k.sys.stat("/mnt/full").st_nlink == 3
    k.sys.chdir("/mnt/full/sub")
    assert k.sys.getcwd() == "/mnt/full/sub"
    assert k.sys.stat("..").st_ino == k.sys.stat("/mnt/full").st_ino
    k.sys.chdir("/")
    assert errno_of(k.sys.rename, "/mnt", "/mnt2") in (errno.EBUSY, errno.EXDEV)  # a mount point
    assert errno_of(k.sys.rename, "/mnt/full", "/mnt/full/sub/x") == errno.EINVAL


def test_rename_across_mounts_is_exdev(k: p2k.Kernel) -> None:
    write_file(k, "/mnt/f", b"x")
    k.sys.mkdir("/other")
    write_file(k, "/rootfile", b"r")
    assert errno_of(k.sys.rename, "/mnt/f", "/other/f") == errno.EXDEV
    assert errno_of(k.sys.rename, "/rootfile", "/mnt/r") == errno.EXDEV
    assert errno_of(k.sys.link, "/rootfile", "/mnt/r") == errno.EXDEV


def test_rename_flags(k: p2k.Kernel) -> None:
    write_file(k, "/mnt/a", b"A")
    write_file(k, "/mnt/b", b"B")
    assert errno_of(k.sys.rename, "/mnt/a", "/mnt/b", p2k.RENAME_NOREPLACE) == errno.EEXIST
    if not k.mounts[-1].supports_exchange:  # FFS: EINVAL, as Linux file systems without exchange
        assert errno_of(k.sys.rename, "/mnt/a", "/mnt/b", p2k.RENAME_EXCHANGE) == errno.EINVAL
        assert read_file(k, "/mnt/a") == b"A" and read_file(k, "/mnt/b") == b"B"
        return
    k.sys.rename("/mnt/a", "/mnt/b", p2k.RENAME_EXCHANGE)
    assert read_file(k, "/mnt/a") == b"B" and read_file(k, "/mnt/b") == b"A"
    assert errno_of(k.sys.rename, "/mnt/a", "/mnt/c", p2k.RENAME_EXCHANGE) == errno.ENOENT
    assert errno_of(k.sys.rename, "/mnt/a", "/mnt/b", 3) == errno.EINVAL


# ---- attributes and times --------------------------------------------------------------------------


def test_stat_fields(k: p2k.Kernel) -> None:
    before = time.time_ns()
    write_file(k, "/mnt/f", b"12345")
    st = k.sys.stat("/mnt/f")
    assert stat.S_ISREG(st.st_mode) and st.st_size == 5 and st.st_nlink == 1
    assert st.st_uid == 0 and st.st_gid == 0
    assert before - 10**9 <= st.st_mtime_ns <= time.time_ns() + 10**9
    assert st.st_dev == k.sys.stat("/mnt").st_dev != k.sys.stat("/").st_dev
    fd = k.sys.open("/mnt/f", os.O_RDONLY)
    assert k.sys.fstat(fd) == st
    k.sys.close(fd)
    sv = k.sys.statvfs("/mnt")
    assert sv.f_namemax == 255 and sv.f_bsize > 0 and sv.f_files >= sv.f_ffree


def test_chmod_chown(k: p2k.Kernel) -> None:
    write_file(k, "/mnt/f", b"")
    k.sys.chmod("/mnt/f", 0o4755)
    assert stat.S_IMODE(k.sys.stat("/mnt/f").st_mode) == 0o4755
    k.sys.chown("/mnt/f", 1000, 1001)
    st = k.sys.stat("/mnt/f")
    assert (st.st_uid, st.st_gid) == (1000, 1001)
    assert stat.S_IMODE(st.st_mode) == 0o755  # chown clears set-uid
    k.sys.chmod("/mnt/f", 0o6755)
    k.sys.chown("/mnt/f", -1, -1)  # even no change drops set-uid and set-gid (Linux)
    assert stat.S_IMODE(k.sys.stat("/mnt/f").st_mode) == 0o755
    k.sys.chown("/mnt/f", -1, 5)
    assert (k.sys.stat("/mnt/f").st_uid, k.sys.stat("/mnt/f").st_gid) == (1000, 5)
    k.sys.symlink("f", "/mnt/l")
    k.sys.lchown("/mnt/l", 7, 7)
    assert k.sys.lstat("/mnt/l").st_uid == 7 and k.sys.stat("/mnt/l").st_uid == 1000
    fd = k.sys.open("/mnt/f", os.O_RDONLY)
    k.sys.fchmod(fd, 0o600)
    k.sys.fchown(fd, 0, 0)
    assert k.sys.fstat(fd).st_mode == stat.S_IFREG | 0o600
    k.sys.close(fd)
    assert errno_of(k.sys.chmod, "/mnt/none", 0o644) == errno.ENOENT


def test_utimensat(k: p2k.Kernel) -> None:
    write_file(k, "/mnt/f", b"")
    k.sys.utimensat("/mnt/f", 1_000_000_123, 2_000_000_456)
    st = k.sys.stat("/mnt/f")
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_123, 2_000_000_456)
    ctime = st.st_ctime_ns
    k.sys.utimensat("/mnt/f", p2k.UTIME_OMIT, 3_000_000_789)
    st = k.sys.stat("/mnt/f")
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_123, 3_000_000_789)
    assert st.st_ctime_ns >= ctime
    t0 = time.time_ns()
    k.sys.utimensat("/mnt/f", p2k.UTIME_NOW, p2k.UTIME_OMIT)
    st = k.sys.stat("/mnt/f")
    assert st.st_atime_ns >= t0 - 10**9 and st.st_mtime_ns == 3_000_000_789
    k.sys.utimensat("/mnt/f", p2k.UTIME_OMIT, p2k.UTIME_OMIT)
    assert k.sys.stat("/mnt/f").st_mtime_ns == 3_000_000_789
    k.sys.utimensat("/mnt/f")
    assert k.sys.stat("/mnt/f").st_mtime_ns >= t0 - 10**9
    k.sys.utime("/mnt/f", ns=(5, 6))
    assert (k.sys.stat("/mnt/f").st_atime_ns, k.sys.stat("/mnt/f").st_mtime_ns) == (5, 6)
    k.sys.symlink("f", "/mnt/l")
    k.sys.utimensat("/mnt/l", 7, 8, follow_symlinks=False)
    assert k.sys.lstat("/mnt/l").st_mtime_ns == 8 and k.sys.stat("/mnt/l").st_mtime_ns == 6
    fd = k.sys.open("/mnt/f", os.O_RDONLY)
    k.sys.futimens(fd, 9, 10)
    assert k.sys.fstat(fd).st_mtime_ns == 10
    k.sys.close(fd)


def test_timestamps_follow_posix(k: p2k.Kernel) -> None:
    k.sys.mkdir("/mnt/d")
    k.sys.utimensat("/mnt/d", 1, 1)
    write_file(k, "/mnt/d/f", b"x")
    d = k.sys.stat("/mnt/d")
    assert d.st_mtime_ns > 1 and d.st_ctime_ns >= d.st_mtime_ns  # creating an entry marks the dir
    k.sys.utimensat("/mnt/d/f", 1, 1)
    st0 = k.sys.stat("/mnt/d/f")
    fd = k.sys.open("/mnt/d/f", os.O_RDWR)
    k.sys.write(fd, b"y")
    st1 = k.sys.fstat(fd)
    assert st1.st_mtime_ns > 1 and st1.st_ctime_ns > st0.st_ctime_ns - 1 and st1.st_atime_ns == 1
    k.sys.pread(fd, 1, 0)
    assert k.sys.fstat(fd).st_atime_ns > 1  # read marks access
    k.sys.close(fd)
    k.sys.utimensat("/mnt/d/f", 1, 1)
    k.sys.chmod("/mnt/d/f", 0o600)
    st2 = k.sys.stat("/mnt/d/f")
    assert st2.st_mtime_ns == 1 and st2.st_ctime_ns > 1  # chmod changes ctime only
    k.sys.utimensat("/mnt/d", 1, 1)
    k.sys.unlink("/mnt/d/f")
    assert k.sys.stat("/mnt/d").st_mtime_ns > 1


def test_access(k: p2k.Kernel) -> None:
    write_file(k, "/mnt/f", b"", mode=0o644)
    assert k.sys.access("/mnt/f", os.R_OK | os.W_OK)
    assert not k.sys.access("/mnt/f", os.X_OK)  # root too needs some x bit to execute
    assert k.sys.access("/mnt", os.X_OK)
    assert not k.sys.access("/mnt/none", os.F_OK)
    assert errno_of(k.sys.check_access, "/mnt/f", 0o10) == errno.EINVAL


def test_mknod_mkfifo(k: p2k.Kernel) -> None:
    k.sys.mkfifo("/mnt/p", 0o640)
    assert stat.S_ISFIFO(k.sys.stat("/mnt/p").st_mode)
    k.sys.mknod("/mnt/c", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    st = k.sys.stat("/mnt/c")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    k.sys.mknod("/mnt/r", 0o600)
    assert stat.S_ISREG(k.sys.stat("/mnt/r").st_mode)
    assert errno_of(k.sys.mknod, "/mnt/p", stat.S_IFIFO | 0o600) == errno.EEXIST
    assert errno_of(k.sys.mknod, "/mnt/dd", stat.S_IFDIR | 0o700) in (errno.EPERM, errno.EINVAL)


def test_getdents(k: p2k.Kernel) -> None:
    k.sys.mkdir("/mnt/d")
    write_file(k, "/mnt/f", b"")
    k.sys.symlink("f", "/mnt/l")
    fd = k.sys.open("/mnt", os.O_RDONLY | os.O_DIRECTORY)
    ents = []
    while batch := k.sys.getdents(fd, 2):
        assert len(batch) <= 2
        ents.extend(batch)
    k.sys.close(fd)
    got = {(e.name, e.type, e.ino) for e in ents}
    root_ino = k.sys.stat("/mnt").st_ino
    assert got == {
        (b".", 4, root_ino), (b"..", 4, root_ino),
        (b"d", 4, k.sys.stat("/mnt/d").st_ino),
        (b"f", 8, k.sys.stat("/mnt/f").st_ino),
        (b"l", 10, k.sys.lstat("/mnt/l").st_ino),
    }
    f = k.sys.open("/mnt/f", os.O_RDONLY)
    assert errno_of(k.sys.getdents, f) == errno.ENOTDIR
    k.sys.close(f)


def test_getdents_resumes_across_the_drivers_batches(k: p2k.Kernel) -> None:
    # vop_readdir hands getdents a directory block (FFS) or 512 entries (tmpfs) at a time; a count
    # that ends inside a batch must resume at the next entry, whatever the count
    k.sys.mkdir("/mnt/big")
    names = {f"entry-with-a-longish-name-{i:04}".encode() for i in range(1300)}
    for n in names:
        k.sys.close(k.sys.open(b"/mnt/big/" + n, O_CREAT_RW))
    for count in (7, 100, 511, 512, 513, 5000):
        fd = k.sys.open("/mnt/big", os.O_RDONLY | os.O_DIRECTORY)
        seen: list[bytes] = []
        while batch := k.sys.getdents(fd, count):
            assert len(batch) <= count
            seen += [e.name for e in batch]
        k.sys.close(fd)
        assert sorted(seen) == sorted(names | {b".", b".."}), count


def test_readdir_survives_removal_during_listing(k: p2k.Kernel) -> None:
    for i in range(100):
        write_file(k, f"/mnt/f{i:03}", b"")
    fd = k.sys.open("/mnt", os.O_RDONLY)
    first = k.sys.getdents(fd, 30)
    for i in range(0, 100, 2):
        k.sys.unlink(f"/mnt/f{i:03}")
    rest = []
    while batch := k.sys.getdents(fd, 30):
        rest.extend(batch)
    k.sys.close(fd)
    names = [e.name for e in first + rest if e.name not in (b".", b"..")]
    assert len(names) == len(set(names))  # nothing twice
    survivors = {f"f{i:03}".encode() for i in range(1, 100, 2)}
    assert survivors <= set(names)  # nothing that stayed is skipped


def test_fsync_sync_reboot(k: p2k.Kernel) -> None:
    fd = k.sys.open("/mnt/f", O_CREAT_RW)
    k.sys.write(fd, b"x")
    k.sys.fsync(fd)
    k.sys.fdatasync(fd)
    k.sys.close(fd)
    k.sys.sync()
    k.sys.reboot()
    assert k.stats()["mounts"] == 0
    assert errno_of(k.sys.stat, "/mnt/f") == errno.ENOENT


# ---- mounts ----------------------------------------------------------------------------------------


def test_mount_point_crossing_both_ways(k: p2k.Kernel) -> None:
    write_file(k, "/mnt/inside", b"in")
    root = k.sys.stat("/")
    mnt_root = k.sys.stat("/mnt")
    assert mnt_root.st_ino == 2 and mnt_root.st_dev != root.st_dev
    assert k.sys.stat("/mnt/..").st_ino == root.st_ino
    assert k.sys.stat("/mnt/../mnt/inside").st_size == 2
    assert read_file(k, "/mnt/../mnt/./inside") == b"in"
    k.sys.mkdir("/mnt/sub")
    k.sys.mount("tmpfs", "/mnt/sub")
    write_file(k, "/mnt/sub/deeper", b"deep")
    assert k.sys.stat("/mnt/sub/..").st_dev == mnt_root.st_dev
    assert k.sys.stat("/mnt/sub/../..").st_ino == root.st_ino
    assert k.sys.stat("/..").st_ino == root.st_ino  # never above the root
    k.sys.chdir("/mnt/sub")
    assert read_file(k, "../inside") == b"in"
    assert read_file(k, "../../mnt/sub/deeper") == b"deep"
    k.sys.symlink("../inside", "/mnt/sub/up")
    assert read_file(k, "/mnt/sub/up") == b"in"
    k.sys.chdir("/")
    assert errno_of(k.sys.unmount, "/mnt") == errno.EBUSY  # something is mounted below
    k.sys.unmount("/mnt/sub")
    assert k.sys.listdir("/mnt/sub") == []
    assert errno_of(k.sys.unmount, "/mnt/sub") == errno.EINVAL
    assert errno_of(k.sys.unmount, "/") == errno.EINVAL
    k.sys.unmount("/mnt")
    assert k.sys.listdir("/mnt") == []


def test_mount_errors(k: p2k.Kernel) -> None:
    write_file(k, "/file", b"")
    assert errno_of(k.sys.mount, "tmpfs", "/file") == errno.ENOTDIR
    assert errno_of(k.sys.mount, "tmpfs", "/none") == errno.ENOENT
    assert errno_of(k.sys.mount, "tmpfs", "/mnt") == errno.EBUSY  # already a mount point
    assert errno_of(k.sys.mount, "nosuchfs", "/mnt") in (errno.ENODEV, errno.EOPNOTSUPP, errno.EINVAL)
    k.sys.mkdir("/m1")
    assert errno_of(k.sys.mount, "tmpfs", "/m1", 0, {"size": "lots"}) == errno.EINVAL
    assert k.stats()["mounts"] == 1
    user = k.newproc(cred=Cred(1000, 1000, ()))
    k.sys.mkdir("/m2")
    assert errno_of(user.mount, "tmpfs", "/m2") == errno.EPERM
    assert errno_of(user.unmount, "/mnt") == errno.EPERM


def test_unmount_busy_and_forced(k: p2k.Kernel) -> None:
    fd = k.sys.open("/mnt/f", O_CREAT_RW)
    assert errno_of(k.sys.unmount, "/mnt") == errno.EBUSY
    k.sys.close(fd)
    k.sys.chdir("/mnt")
    assert errno_of(k.sys.unmount, "/mnt") == errno.EBUSY  # a cwd is a use, too
    k.sys.chdir("/")
    k.sys.unmount("/mnt")
    k.sys.mount("tmpfs", "/mnt")
    fd = k.sys.open("/mnt/f", O_CREAT_RW)
    k.sys.unmount("/mnt", p2k.MNT_FORCE)
    assert errno_of(k.sys.write, fd, b"x") == errno.EIO
    k.sys.close(fd)
    assert k.stats()["mounts"] == 0


def test_read_only_mount(k: p2k.Kernel) -> None:
    k.sys.mkdir("/ro")
    k.sys.mount("tmpfs", "/ro", p2k.MNT_RDONLY)
    assert errno_of(k.sys.open, "/ro/f", O_CREAT_RW) == errno.EROFS
    assert errno_of(k.sys.mkdir, "/ro/d") == errno.EROFS
    assert errno_of(k.sys.symlink, "x", "/ro/l") == errno.EROFS
    assert errno_of(k.sys.mkfifo, "/ro/p") == errno.EROFS
    assert errno_of(k.sys.chmod, "/ro", 0o700) == errno.EROFS
    assert errno_of(k.sys.chown, "/ro", 1, 1) == errno.EROFS
    assert errno_of(k.sys.utimensat, "/ro", 1, 1) == errno.EROFS
    assert errno_of(k.sys.open, "/ro", os.O_RDWR) == errno.EISDIR
    assert not k.sys.access("/ro", os.W_OK)
    k.sys.close(k.sys.open("/ro", os.O_RDONLY))
    assert k.sys.statvfs("/ro").f_flag & 1
    k.sys.unmount("/ro")


def test_read_only_remount_keeps_files_unwritable(k: p2k.Kernel) -> None:
    # A file system that has files: mount read-write, fill, then check each write path on a
    # read-only mount of a fresh tmpfs stacked on top of a directory with content.
    write_file(k, "/mnt/f", b"x")
    k.sys.mkdir("/mnt/ro")
    k.sys.mount("tmpfs", "/mnt/ro", p2k.MNT_RDONLY)
    assert errno_of(k.sys.rename, "/mnt/ro", "/mnt/ro2") in (errno.EBUSY, errno.EXDEV)
    assert errno_of(k.sys.link, "/mnt/f", "/mnt/ro/f") == errno.EXDEV
    assert errno_of(k.sys.truncate, "/mnt/ro", 0) == errno.EISDIR
    k.sys.unmount("/mnt/ro")


# ---- tmpfs limits ----------------------------------------------------------------------------------


def test_tmpfs_size_limit(k: p2k.Kernel) -> None:
    k.sys.mkdir("/small")
    k.sys.mount("tmpfs", "/small", 0, {"size": "256k"})
    fd = k.sys.open("/small/f", O_CREAT_RW)
    assert errno_of(k.sys.write, fd, bytes(512 * 1024)) == errno.ENOSPC
    written = 0
    with pytest.raises(OSError) as ei:
        for _ in range(100):
            written += k.sys.write(fd, bytes(16 * 1024))
    assert ei.value.errno == errno.ENOSPC
    assert 128 * 1024 <= written <= 256 * 1024
    assert k.sys.fstat(fd).st_size == written
    k.sys.ftruncate(fd, 0)
    assert k.sys.write(fd, bytes(128 * 1024)) == 128 * 1024  # the space came back
    k.sys.close(fd)
    sv = k.sys.statvfs("/small")
    assert sv.f_blocks * sv.f_frsize == 256 * 1024


def test_tmpfs_nodes_limit(k: p2k.Kernel) -> None:
    k.sys.mkdir("/few")
    k.sys.mount("tmpfs", "/few", 0, {"nodes": 5})
    made = []
    with pytest.raises(OSError) as ei:
        for i in range(10):
            k.sys.close(k.sys.open(f"/few/f{i}", O_CREAT_RW))
            made.append(i)
    assert ei.value.errno == errno.ENOSPC
    assert len(made) == 4  # the root directory is a node too
    assert errno_of(k.sys.mkdir, "/few/d") == errno.ENOSPC
    assert errno_of(k.sys.symlink, "x", "/few/l") == errno.ENOSPC
    k.sys.unlink("/few/f0")
    k.sys.mkdir("/few/d")
    assert k.sys.statvfs("/few").f_files == 5


def test_memlimit_bounds_tmpfs() -> None:
    k = p2k.Kernel(memlimit="1m", env={})
    try:
        k.sys.mkdir("/mnt")
        k.sys.mount("tmpfs", "/mnt")
        fd = k.sys.open("/mnt/f", O_CREAT_RW)
        total = 0
        with pytest.raises(OSError) as ei:
            for _ in range(64):
                total += k.sys.write(fd, bytes(64 * 1024))
        assert ei.value.errno == errno.ENOSPC
        assert 512 * 1024 <= total <= 1 << 20
        assert k.stats()["mem_used"] <= 1 << 20
        # Metadata is charged too: files alone cannot exhaust the host either.
        k.sys.ftruncate(fd, 0)
        k.sys.close(fd)
        with pytest.raises(OSError) as ei:
            for i in range(100_000):
                k.sys.mkdir(f"/mnt/d{i}")
        assert ei.value.errno == errno.ENOSPC
        assert k.stats()["mem_used"] <= 1 << 20
    finally:
        k.halt()


# ---- etfs ------------------------------------------------------------------------------------------


def test_etfs_key_reads_host_file(k: p2k.Kernel, tmp_path: Path) -> None:
    host = tmp_path / "host.bin"
    host.write_bytes(b"host file contents" + bytes(1000))
    k.sys.mkdir("/dev")
    write_file(k, "/dev/plain", b"a real file in /dev")
    k.etfs_register("/dev/dk", str(host), p2k.ETFS_REG)
    assert k.sys.listdir("/dev") == ["plain"]  # keys are not listed
    st = k.sys.stat("/dev/dk")
    assert stat.S_ISREG(st.st_mode) and st.st_size == 1018
    fd = k.sys.open("/dev/dk", os.O_RDONLY)
    assert k.sys.read(fd, 18) == b"host file contents"
    assert errno_of(k.etfs_remove, "/dev/dk") == errno.EBUSY
    k.sys.close(fd)
    fd = k.sys.open("//dev/dk", os.O_RDWR)
    k.sys.pwrite(fd, b"HOST", 0)
    k.sys.close(fd)
    assert host.read_bytes()[:4] == b"HOST"
    k.etfs_remove("/dev/dk")
    assert errno_of(k.sys.stat, "/dev/dk") == errno.ENOENT
    assert k.sys.listdir("/dev") == ["plain"]
    assert errno_of(k.etfs_remove, "/dev/dk") == errno.ENOENT


def test_etfs_block_key_and_window(k: p2k.Kernel, tmp_path: Path) -> None:
    host = tmp_path / "disk.img"
    host.write_bytes(bytes(range(256)) * 16)
    k.etfs_register("/dk1", str(host), p2k.ETFS_BLK, size=512, offset=1024)
    st = k.sys.stat("/dk1")
    assert stat.S_ISBLK(st.st_mode) and st.st_size == 512
    fd = k.sys.open("/dk1", os.O_RDWR)
    assert k.sys.pread(fd, 4, 0) == bytes([0, 1, 2, 3])
    assert k.sys.pread(fd, 100, 510) == bytes([254, 255])  # the window ends at 512
    assert errno_of(k.sys.pwrite, fd, b"x", 512) == errno.ENOSPC
    k.sys.close(fd)
    k.etfs_remove("/dk1")


# ---- non-root credentials --------------------------------------------------------------------------

USER = Cred(1000, 1000, ())
OTHER = Cred(1001, 1001, ())


@pytest.fixture
def user(k: p2k.Kernel) -> p2k.vfs.syscalls.Syscalls:
    k.sys.chmod("/mnt", 0o1777)
    return k.newproc(cred=USER)


def test_search_permission_on_every_component(k: p2k.Kernel, user: p2k.vfs.syscalls.Syscalls) -> None:
    k.sys.mkdir("/mnt/a")
    k.sys.mkdir("/mnt/a/b")
    write_file(k, "/mnt/a/b/f", b"readable", mode=0o644)
    assert user.stat("/mnt/a/b/f").st_size == 8
    k.sys.chmod("/mnt/a", 0o754)  # readable, not searchable by others
    assert errno_of(user.stat, "/mnt/a/b/f") == errno.EACCES
    assert errno_of(user.stat, "/mnt/a/b") == errno.EACCES
    assert errno_of(user.open, "/mnt/a/b/f", os.O_RDONLY) == errno.EACCES
    assert user.listdir("/mnt/a") == ["b"]  # listing needs r only
    k.sys.chmod("/mnt/a", 0o711)
    assert errno_of(user.listdir, "/mnt/a") == errno.EACCES
    assert read_file_as(user, "/mnt/a/b/f") == b"readable"
    k.sys.chmod("/mnt/a/b/f", 0o600)
    assert errno_of(user.open, "/mnt/a/b/f", os.O_RDONLY) == errno.EACCES
    assert errno_of(user.open, "/mnt/a/b/new", O_CREAT_RW) == errno.EACCES
    k.sys.chmod("/mnt/a/b", 0o700)
    assert errno_of(user.chdir, "/mnt/a/b") == errno.EACCES
    assert errno_of(user.check_access, "/mnt/a/b/f", os.F_OK) == errno.EACCES
    # A symlink's target is walked with the same checks.
    k.sys.symlink("/mnt/a/b/f", "/mnt/link")
    assert errno_of(user.stat, "/mnt/link") == errno.EACCES
    user.lstat("/mnt/link")


def read_file_as(s: p2k.vfs.syscalls.Syscalls, path: str) -> bytes:
    fd = s.open(path, os.O_RDONLY)
    try:
        return s.read(fd, 1 << 20)
    finally:
        s.close(fd)


def test_user_creates_own_files(k: p2k.Kernel, user: p2k.vfs.syscalls.Syscalls) -> None:
    fd = user.open("/mnt/mine", O_CREAT_RW, 0o666)
    user.write(fd, b"m")
    user.close(fd)
    st = k.sys.stat("/mnt/mine")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1000, 0o644)
    user.mkdir("/mnt/mydir")
    assert k.sys.stat("/mnt/mydir").st_uid == 1000
    k.sys.mkdir("/mnt/rootdir", 0o755)
    assert errno_of(user.mkdir, "/mnt/rootdir/x") == errno.EACCES
    assert errno_of(user.mknod, "/mnt/dev", stat.S_IFCHR | 0o600, 0) == errno.EPERM
    write_file(k, "/mnt/rootfile", b"", mode=0o644)
    assert errno_of(user.open, "/mnt/rootfile", os.O_WRONLY) == errno.EACCES
    assert errno_of(user.truncate, "/mnt/rootfile", 0) == errno.EACCES
    assert errno_of(user.open, "/mnt/rootfile", os.O_RDONLY | os.O_TRUNC) == errno.EACCES


def test_sticky_directory(k: p2k.Kernel, user: p2k.vfs.syscalls.Syscalls) -> None:
    other = k.newproc(cred=OTHER)
    write_file(k, "/mnt/rootfile", b"")
    k.sys.chmod("/mnt/rootfile", 0o666)
    user.close(user.open("/mnt/userfile", O_CREAT_RW, 0o666))
    assert errno_of(other.unlink, "/mnt/userfile") == errno.EPERM
    assert errno_of(other.rename, "/mnt/userfile", "/mnt/stolen") == errno.EPERM
    assert errno_of(user.unlink, "/mnt/rootfile") == errno.EPERM
    other.close(other.open("/mnt/otherfile", O_CREAT_RW))
    assert errno_of(user.rename, "/mnt/userfile", "/mnt/otherfile") == errno.EPERM  # target too
    user.rename("/mnt/userfile", "/mnt/userfile2")
    user.unlink("/mnt/userfile2")
    # The directory's owner may remove anything in it.
    k.sys.chown("/mnt", 1001, 1001)
    other.unlink("/mnt/rootfile")
    # Without the sticky bit, write permission on the directory is enough.
    k.sys.chmod("/mnt", 0o777)
    user.unlink("/mnt/otherfile")


def test_setgid_directory(k: p2k.Kernel, user: p2k.vfs.syscalls.Syscalls) -> None:
    k.sys.mkdir("/mnt/shared", 0o2777)
    k.sys.chown("/mnt/shared", 0, 50)
    k.sys.chmod("/mnt/shared", 0o2777)
    user.close(user.open("/mnt/shared/f", O_CREAT_RW, 0o644))
    user.mkdir("/mnt/shared/sub", 0o755)
    assert k.sys.stat("/mnt/shared/f").st_gid == 50
    sub = k.sys.stat("/mnt/shared/sub")
    assert sub.st_gid == 50 and sub.st_mode & stat.S_ISGID  # a new directory inherits set-gid
    user.close(user.open("/mnt/plain", O_CREAT_RW))
    assert k.sys.stat("/mnt/plain").st_gid == 1000  # the caller's group elsewhere
    # A user not in group 50 cannot make its file there set-gid.
    user.chmod("/mnt/shared/f", 0o2755)
    assert stat.S_IMODE(k.sys.stat("/mnt/shared/f").st_mode) == 0o755  # set-gid silently dropped
    member = k.newproc(cred=Cred(1000, 1000, (50,)))
    member.chmod("/mnt/shared/f", 0o2755)
    assert k.sys.stat("/mnt/shared/f").st_mode & stat.S_ISGID


def test_only_owner_may_chmod_and_chown_rules(k: p2k.Kernel, user: p2k.vfs.syscalls.Syscalls) -> None:
    other = k.newproc(cred=OTHER)
    user.close(user.open("/mnt/f", O_CREAT_RW, 0o644))
    assert errno_of(other.chmod, "/mnt/f", 0o777) == errno.EPERM
    user.chmod("/mnt/f", 0o600)
    assert stat.S_IMODE(k.sys.stat("/mnt/f").st_mode) == 0o600
    assert errno_of(user.chown, "/mnt/f", 1001, -1) == errno.EPERM  # cannot give it away
    assert errno_of(user.chown, "/mnt/f", -1, 50) == errno.EPERM  # not in group 50
    user.chown("/mnt/f", 1000, 1000)  # no change is fine
    user.chown("/mnt/f", -1, -1)
    assert errno_of(other.chown, "/mnt/f", -1, 1001) == errno.EPERM
    member = k.newproc(cred=Cred(1000, 1000, (50,)))
    member.chown("/mnt/f", -1, 50)
    assert k.sys.stat("/mnt/f").st_gid == 50
    user.chmod("/mnt/f", 0o1644)  # sticky on a file: kept, as Linux does (NetBSD: EFTYPE)
    assert stat.S_IMODE(k.sys.stat("/mnt/f").st_mode) == 0o1644
    assert errno_of(other.utimensat, "/mnt/f", 1, 1) == errno.EPERM
    assert errno_of(other.utimensat, "/mnt/f") == errno.EACCES
    user.utimensat("/mnt/f", 1, 1)


def test_write_by_non_owner_clears_setuid(k: p2k.Kernel, user: p2k.vfs.syscalls.Syscalls) -> None:
    write_file(k, "/mnt/suid", b"prog")
    k.sys.chmod("/mnt/suid", 0o6777)
    fd = user.open("/mnt/suid", os.O_WRONLY)
    user.write(fd, b"evil")
    user.close(fd)
    assert stat.S_IMODE(k.sys.stat("/mnt/suid").st_mode) == 0o777
    k.sys.chmod("/mnt/suid", 0o4777)
    fd = k.sys.open("/mnt/suid", os.O_WRONLY)
    k.sys.write(fd, b"root may")
    k.sys.close(fd)
    assert stat.S_IMODE(k.sys.stat("/mnt/suid").st_mode) == 0o4777  # root's write keeps it
    k.sys.chmod("/mnt/suid", 0o4777)
    fd = user.open("/mnt/suid", os.O_WRONLY)
    user.ftruncate(fd, 0)
    user.close(fd)
    assert stat.S_IMODE(k.sys.stat("/mnt/suid").st_mode) == 0o777  # truncate too, as Linux
    k.sys.chmod("/mnt/suid", 0o6777)
    user.close(user.open("/mnt/suid", os.O_RDONLY | os.O_TRUNC))
    assert stat.S_IMODE(k.sys.stat("/mnt/suid").st_mode) == 0o777
    k.sys.chmod("/mnt/suid", 0o2767)  # set-gid without group execute is a locking mark: kept
    user.truncate("/mnt/suid", 0)
    fd = user.open("/mnt/suid", os.O_WRONLY)
    user.write(fd, b"x")
    assert user.write(fd, b"") == 0
    user.close(fd)
    assert stat.S_IMODE(k.sys.stat("/mnt/suid").st_mode) == 0o2767


def test_rename_directory_needs_write_on_it(k: p2k.Kernel, user: p2k.vfs.syscalls.Syscalls) -> None:
    k.sys.mkdir("/mnt/rootdir", 0o755)
    k.sys.chown("/mnt/rootdir", 1000, 1000)
    user.mkdir("/mnt/a")
    user.mkdir("/mnt/b")
    user.rename("/mnt/a", "/mnt/b/a")
    assert errno_of(user.rename, "/mnt/b/a", "/mnt/nope/a") == errno.ENOENT
    k.sys.chmod("/mnt/b/a", 0o555)
    assert errno_of(user.rename, "/mnt/b/a", "/mnt/a") == errno.EACCES  # its ".." must change
    user.rename("/mnt/b/a", "/mnt/b/a2")  # same parent: ".." stays, no write on it needed


def test_linux_order_of_errors(k: p2k.Kernel) -> None:
    """Cases the host comparison found, kept as plain tests."""
    k.sys.mkdir("/mnt/a", 0o4755)
    assert stat.S_IMODE(k.sys.stat("/mnt/a").st_mode) == 0o755  # mkdir drops set-uid
    k.sys.mkdir("/mnt/t", 0o1777)
    assert stat.S_IMODE(k.sys.stat("/mnt/t").st_mode) == 0o1755  # and keeps sticky
    write_file(k, "/mnt/f", b"")
    assert errno_of(k.sys.rename, "/mnt/f/", "/mnt/none/x") == errno.ENOENT
    assert errno_of(k.sys.open, "/mnt/new", os.O_RDWR | os.O_CREAT | os.O_DIRECTORY) == errno.EINVAL
    k.sys.symlink("self", "/mnt/self")
    assert errno_of(k.sys.rmdir, "/mnt/self/") == errno.ENOTDIR
    assert errno_of(k.sys.unlink, "/mnt/self/") == errno.ENOTDIR
    k.sys.symlink("nowhere", "/mnt/dangling")
    assert errno_of(k.sys.mkdir, "/mnt/dangling/") == errno.EEXIST
    assert errno_of(k.sys.stat, "/mnt/nowhere") == errno.ENOENT
    assert errno_of(k.sys.link, "/mnt/a", "/mnt/f") == errno.EEXIST
    assert errno_of(k.sys.link, "/mnt/a", "/mnt/g") == errno.EPERM
    assert errno_of(k.sys.open, "/mnt/f/", os.O_RDWR | os.O_CREAT) == errno.EISDIR
    k.sys.symlink("a", "/mnt/la")
    k.sys.rename("/mnt/la", "/mnt/lb")  # the link moves, not its target
    assert k.sys.readlink("/mnt/lb") == "a" and stat.S_ISDIR(k.sys.stat("/mnt/a").st_mode)
    assert errno_of(k.sys.rename, "/mnt/lb/", "/mnt/lc") == errno.ENOTDIR
