"""stat and lstat of a file whose vnode is not cached answer from the file system without loading
a vnode (namei's ``stat_only``): the same result as through a loaded vnode, the cache left as it
was, symbolic links followed where they must be, and never an old copy of a changed inode."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

import p2k
from p2k.fs.ffs.newfs import NewfsOptions, newfs_image
from p2k.vfs.mount import Mount


@pytest.fixture(params=["tmpfs", "ffs1", "ffs2"])
def k(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[p2k.Kernel]:
    kern = p2k.Kernel(env={})
    kern.sys.mkdir("/mnt", 0o755)
    if request.param == "tmpfs":
        kern.sys.mount("tmpfs", "/mnt", 0, {})
    else:
        img = tmp_path / "s.img"
        newfs_image(str(img), NewfsOptions(size=8 << 20, version=int(request.param[-1])))
        kern.etfs_register("/dev/dk", str(img), p2k.ETFS_BLK)
        kern.sys.mount("ffs", "/mnt", 0, {"fspec": "/dev/dk"})
    s = kern.sys
    s.mkdir("/mnt/d", 0o755)
    s.mkdir("/mnt/d/sub", 0o700)
    fd = s.open("/mnt/d/f", os.O_CREAT | os.O_WRONLY, 0o640)
    s.write(fd, b"x" * 3000)
    s.close(fd)
    s.symlink("f", "/mnt/d/lnk")
    s.symlink("sub", "/mnt/d/dlnk")
    s.mknod("/mnt/d/dev", stat.S_IFCHR | 0o600, os.makedev(3, 4))
    yield kern
    kern.halt()


def _evict(k: p2k.Kernel) -> None:
    k.sysctl("kern.maxvnodes", 4)
    k.sysctl("kern.maxvnodes", 1000)


def _cached(k: p2k.Kernel, path: str) -> os.stat_result:
    """The stat through a loaded vnode: fstat of an open descriptor."""
    fd = k.sys.open(path, os.O_RDONLY)
    try:
        return k.sys.fstat(fd)
    finally:
        k.sys.close(fd)


def test_same_answer_cache_untouched(k: p2k.Kernel) -> None:
    s = k.sys
    names = ["f", "sub", "dev"]
    _evict(k)
    s.listdir("/mnt/d")  # the directory (and the path to it) cached
    before = k.stats()["vnodes"]
    got = {n: s.lstat(f"/mnt/d/{n}") for n in names + ["lnk", "dlnk"]}
    fd = s.open("/mnt/d", os.O_RDONLY)
    by_fd = {n: s.lstat(n, dir_fd=fd) for n in names}
    s.close(fd)
    assert k.stats()["vnodes"] == before  # no vnode loaded for any of them
    assert by_fd == {n: got[n] for n in names}
    for n in ("f", "sub"):
        assert got[n] == _cached(k, f"/mnt/d/{n}")
    (mp,) = [m for m in k.mounts if m.mountpoint_path == "/mnt"]
    assert [got["dev"]] == Mount.vfs_stat_inodes(mp, [got["dev"].st_ino])  # load + getattr
    assert got["dev"].st_rdev == os.makedev(3, 4)
    assert stat.S_ISLNK(got["lnk"].st_mode) and got["lnk"].st_size == 1


def test_symbolic_links_followed(k: p2k.Kernel) -> None:
    s = k.sys
    _evict(k)
    assert s.stat("/mnt/d/lnk") == s.lstat("/mnt/d/f")  # stat follows an uncached link
    _evict(k)
    assert s.stat("/mnt/d/dlnk/") == s.lstat("/mnt/d/sub")
    _evict(k)
    assert s.lstat("/mnt/d/dlnk/") == s.lstat("/mnt/d/sub")  # a trailing slash follows too
    _evict(k)
    with pytest.raises(OSError) as ei:
        s.lstat("/mnt/d/f/")
    assert ei.value.errno == errno.ENOTDIR
    with pytest.raises(FileNotFoundError):
        s.lstat("/mnt/d/none")


def test_never_an_old_copy(k: p2k.Kernel) -> None:
    """Changes made through the kernel show in the next stat whether the vnode is still cached
    (the change only in core) or was reclaimed (written back to its block) in between."""
    s = k.sys
    for rnd in range(4):
        fd = s.open("/mnt/d/f", os.O_WRONLY | os.O_APPEND)
        s.write(fd, b"y" * (100 * rnd + 7))
        s.close(fd)
        s.chmod("/mnt/d/f", 0o600 + rnd)
        s.utime("/mnt/d/f", ns=(rnd * 10**9, (rnd + 5) * 10**9 + 11))
        if rnd % 2:
            _evict(k)
        st = s.lstat("/mnt/d/f")
        assert st == _cached(k, "/mnt/d/f")
        assert st.st_mode & 0o777 == 0o600 + rnd and st.st_mtime_ns == (rnd + 5) * 10**9 + 11
    assert s.lstat("/mnt/d/f").st_size == 3000 + sum(100 * r + 7 for r in range(4))


def test_mount_point_and_permissions(k: p2k.Kernel) -> None:
    from p2k.vfs.lwproc import Cred

    s = k.sys
    s.mount("tmpfs", "/mnt/d/sub", 0, {})
    s.chmod("/mnt/d/sub", 0o751)
    _evict(k)
    st = s.lstat("/mnt/d/sub")
    assert st.st_mode & 0o777 == 0o751 and st.st_dev != s.lstat("/mnt/d").st_dev
    s.unmount("/mnt/d/sub")
    s.chmod("/mnt/d", 0o700)
    _evict(k)
    user = k.newproc(cred=Cred(1000, 1000, ()))
    with pytest.raises(PermissionError):
        user.lstat("/mnt/d/f")
