"""``k.sys.scandir``: each entry's stat is what ``lstat`` of its path says, mount points show the
mounted root, and the permission rules are lstat's (search) and listdir's (read)."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

import p2k
from p2k.fs.ffs.newfs import NewfsOptions, newfs_image
from p2k.vfs.lwproc import Cred


@pytest.fixture(params=["tmpfs", "ffs"])
def k(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[p2k.Kernel]:
    kern = p2k.Kernel()
    kern.sys.mkdir("/mnt", 0o755)
    if request.param == "tmpfs":
        kern.sys.mount("tmpfs", "/mnt", 0, {})
    else:
        img = tmp_path / "s.img"
        newfs_image(str(img), NewfsOptions(size=8 << 20, version=2))
        kern.etfs_register("/dev/dk", str(img), p2k.ETFS_BLK)
        kern.sys.mount("ffs", "/mnt", 0, {"fspec": "/dev/dk"})
    yield kern
    kern.halt()


def _populate(s: p2k.Kernel) -> None:
    sys = s.sys
    sys.mkdir("/mnt/d", 0o750)
    sys.symlink("target", "/mnt/d/link")
    fd = sys.open("/mnt/d/file", os.O_CREAT | os.O_WRONLY, 0o640)
    sys.write(fd, b"x" * 5000)
    sys.close(fd)
    sys.mkfifo("/mnt/d/fifo", 0o600)
    sys.mkdir("/mnt/d/sub", 0o700)
    sys.link("/mnt/d/file", "/mnt/d/hard")


def test_entries_are_lstat(k: p2k.Kernel) -> None:
    _populate(k)
    got = {e.name: e for e in k.sys.scandir("/mnt/d")}
    assert sorted(got) == sorted(k.sys.listdir("/mnt/d"))
    for name, e in got.items():
        assert e.path == f"/mnt/d/{name}"
        assert e.stat(follow_symlinks=False) == k.sys.lstat(e.path)
        assert e.is_dir() == (name == "sub") and e.is_symlink() == (name == "link")
    assert got["file"].inode() == got["hard"].inode() and got["file"].stat().st_nlink == 2
    with pytest.raises(OSError):
        got["link"].stat()  # would need to follow the link
    assert [e.name for e in k.sys.scandir(b"/mnt/d/")] == [os.fsencode(n) for n in k.sys.listdir("/mnt/d")]


def test_snapshot_then_fresh(k: p2k.Kernel) -> None:
    """A later scandir sees changes made since the last (nothing is cached between calls)."""
    _populate(k)
    before = {e.name: e.stat(follow_symlinks=False) for e in k.sys.scandir("/mnt/d")}
    k.sys.chmod("/mnt/d/file", 0o600)
    fd = k.sys.open("/mnt/d/file", os.O_WRONLY | os.O_APPEND)
    k.sys.write(fd, b"more")
    k.sys.close(fd)
    k.sys.unlink("/mnt/d/fifo")
    after = {e.name: e.stat(follow_symlinks=False) for e in k.sys.scandir("/mnt/d")}
    assert "fifo" in before and "fifo" not in after
    assert after["file"].st_size == before["file"].st_size + 4 == 5004
    assert after["file"].st_mode & 0o777 == 0o600 and after["hard"] == after["file"]


def test_mount_point_shows_mounted_root(k: p2k.Kernel) -> None:
    k.sys.mkdir("/mnt/mp", 0o755)
    k.sys.mount("tmpfs", "/mnt/mp", 0, {})
    k.sys.chmod("/mnt/mp", 0o711)
    (e,) = [e for e in k.sys.scandir("/mnt") if e.name == "mp"]
    assert e.stat() == k.sys.lstat("/mnt/mp")
    assert e.stat().st_dev != k.sys.lstat("/mnt").st_dev and e.stat().st_mode & 0o777 == 0o711


def test_permissions(k: p2k.Kernel) -> None:
    _populate(k)
    k.sys.chmod("/mnt/d", 0o744)  # others: read, no search
    user = k.newproc(cred=Cred(1000, 1000, ()))
    ents = {e.name: e for e in user.scandir("/mnt/d")}
    assert ents["sub"].is_dir() and ents["link"].is_symlink()  # names and types: readable
    with pytest.raises(PermissionError):
        ents["file"].stat(follow_symlinks=False)  # lstat("/mnt/d/file") would need search
    with pytest.raises(PermissionError):
        user.lstat("/mnt/d/file")
    k.sys.chmod("/mnt/d", 0o711)  # search, no read
    with pytest.raises(PermissionError):
        user.scandir("/mnt/d")
    with pytest.raises(OSError) as ei:
        k.sys.scandir("/mnt/d/file")
    assert ei.value.errno == errno.ENOTDIR


def _ffs_kernel(img: Path) -> p2k.Kernel:
    kern = p2k.Kernel()
    kern.etfs_register("/dev/dk", str(img), p2k.ETFS_BLK)
    kern.sys.mkdir("/mnt", 0o755)
    kern.sys.mount("ffs", "/mnt", 0, {"fspec": "/dev/dk"})
    return kern


def test_uncached_and_cached_inodes_ffs(tmp_path: Path) -> None:
    """Entries whose inodes are not in the vnode cache are read from the inode table without
    entering the cache; entries that are cached answer from the cache, including changes not yet
    written back (a stale on-disk copy must not be served)."""
    img = tmp_path / "u.img"
    newfs_image(str(img), NewfsOptions(size=8 << 20, version=1))
    k1 = _ffs_kernel(img)
    _populate(k1)
    for i in range(40):
        k1.sys.close(k1.sys.open(f"/mnt/d/n{i}", os.O_CREAT | os.O_WRONLY, 0o600 + i % 8))
    k1.halt()
    k2 = _ffs_kernel(img)
    try:
        k2.sys.listdir("/mnt/d")  # the directory itself (and the path to it) are cached
        before = k2.stats()["vnodes"]
        got = {e.name: e.stat(follow_symlinks=False) for e in k2.sys.scandir("/mnt/d")}
        assert k2.stats()["vnodes"] == before  # nothing entered the cache
        assert {n: k2.sys.lstat(f"/mnt/d/{n}") for n in got} == got
        # now cached and changed in core: scandir must show the change, not the disk's copy
        k2.sys.chmod("/mnt/d/n3", 0o640)
        k2.sys.utime("/mnt/d/n4", ns=(5_000_000_000, 7_000_000_000))
        again = {e.name: e.stat(follow_symlinks=False) for e in k2.sys.scandir("/mnt/d")}
        assert again["n3"].st_mode & 0o777 == 0o640
        assert again["n4"].st_mtime_ns == 7_000_000_000
        assert again == {n: k2.sys.lstat(f"/mnt/d/{n}") for n in got}
        k2.sysctl("kern.maxvnodes", 8)  # evict: written back, then read again uncached
        assert {e.name: e.stat(follow_symlinks=False) for e in k2.sys.scandir("/mnt/d")} == again
    finally:
        k2.halt()


def test_names_only_reads_no_inode(k: p2k.Kernel) -> None:
    """``stat=False``: names and d_type without loading an inode; ``stat()`` then takes the
    lstat on demand (and fails as lstat would without search permission)."""
    _populate(k)
    k.sysctl("kern.maxvnodes", 4)  # the entries' vnodes gone
    k.sysctl("kern.maxvnodes", 1000)
    k.sys.listdir("/mnt/d")  # the directory itself (and the path to it) cached
    before = k.stats()["vnodes"]
    (mp,) = [m for m in k.mounts if m.mountpoint_path == "/mnt"]

    def no_stat(inos: object) -> NoReturn:
        raise AssertionError("an inode was read")
    mp.vfs_stat_inodes = no_stat  # type: ignore[method-assign]
    ents = {e.name: e for e in k.sys.scandir("/mnt/d", stat=False)}
    del mp.vfs_stat_inodes
    assert k.stats()["vnodes"] == before
    assert sorted(ents) == sorted(k.sys.listdir("/mnt/d"))
    assert ents["sub"].is_dir() and ents["link"].is_symlink() and ents["file"].is_file()
    assert not ents["fifo"].is_file() and not ents["fifo"].is_dir()
    for e in ents.values():
        assert e.inode() == k.sys.lstat(e.path).st_ino
        assert e.stat(follow_symlinks=False) == k.sys.lstat(e.path)
    k.sys.chmod("/mnt/d", 0o744)
    user = k.newproc(cred=Cred(1000, 1000, ()))
    (e,) = [e for e in user.scandir("/mnt/d", stat=False) if e.name == "file"]
    assert e.is_file()
    with pytest.raises(PermissionError):
        e.stat()


def test_undecodable_names(k: p2k.Kernel) -> None:
    """Names that are not UTF-8 come back as ``os.fsdecode`` would give them (surrogateescape),
    the same as listdir's, entry by entry."""
    k.sys.mkdir("/mnt/u", 0o755)
    raw = [b"\xff\xfe", b"caf\xc3\xa9", b"\xc3", b"a\xe2\x82", b"\x80end", b"plain"]
    for n in raw:
        k.sys.close(k.sys.open(b"/mnt/u/" + n, os.O_CREAT | os.O_WRONLY, 0o644))
    got = [e.name for e in k.sys.scandir("/mnt/u")]
    assert got == k.sys.listdir("/mnt/u")
    assert sorted(got) == sorted(os.fsdecode(n) for n in raw)
    assert sorted(e.path for e in k.sys.scandir("/mnt/u/")) == sorted("/mnt/u/" + os.fsdecode(n) for n in raw)


def test_bulk_lstat_is_getattr(k: p2k.Kernel) -> None:
    """The driver's ``vfs_stat_inodes`` (its own, or the generic one) against loading each inode
    and asking getattr, for every inode number up to past the highest in use."""
    from p2k.vfs.mount import Mount

    _populate(k)
    k.sys.mknod("/mnt/d/chr", stat.S_IFCHR | 0o600, os.makedev(5, 9))
    k.sys.unlink("/mnt/d/hard")
    k.sys.rmdir("/mnt/d/sub")  # a number freed
    (mp,) = [m for m in k.mounts if m.mountpoint_path == "/mnt"]
    inos = list(range(k.sys.lstat("/mnt/d/chr").st_ino + 3))

    def key(r: os.stat_result | OSError) -> object:
        return ("error", r.errno) if isinstance(r, OSError) else r
    k.sysctl("kern.maxvnodes", 4)  # nothing of /mnt/d cached: both paths read the file system
    assert [key(r) for r in mp.vfs_stat_inodes(inos)] == [key(r) for r in Mount.vfs_stat_inodes(mp, inos)]
    assert mp.vfs_stat_inodes([inos[-3]])[0].st_rdev == os.makedev(5, 9)  # type: ignore[union-attr]


def test_names_only_stat_lazily(k: p2k.Kernel) -> None:
    """``scandir(stat=False)`` gives names and recorded types without reading inodes; an entry's
    ``stat()`` is then an lstat taken when asked, so it shows a change made after the listing."""
    _populate(k)
    full = {e.name: e for e in k.sys.scandir("/mnt/d")}
    names = {e.name: e for e in k.sys.scandir("/mnt/d", stat=False)}
    assert sorted(names) == sorted(full)
    for name, e in names.items():
        assert (e.is_dir(), e.is_file(), e.is_symlink()) == (full[name].is_dir(), full[name].is_file(),
                                                            full[name].is_symlink())
    k.sys.chmod("/mnt/d/file", 0o604)
    assert names["file"].stat(follow_symlinks=False) == k.sys.lstat("/mnt/d/file")
    assert names["file"].stat(follow_symlinks=False).st_mode & 0o777 == 0o604
    k.sys.unlink("/mnt/d/fifo")
    with pytest.raises(FileNotFoundError):
        names["fifo"].stat(follow_symlinks=False)
    with pytest.raises(FileNotFoundError):
        names["fifo"].stat(follow_symlinks=False)  # the failure is kept, as a stat would be


def test_names_only_permissions(k: p2k.Kernel) -> None:
    """Listing names needs read permission only; the lazy stat needs search, as lstat does."""
    _populate(k)
    k.sys.chmod("/mnt/d", 0o744)
    user = k.newproc(cred=Cred(1000, 1000, ()))
    ents = {e.name: e for e in user.scandir("/mnt/d", stat=False)}
    assert ents["sub"].is_dir() and ents["link"].is_symlink() and ents["file"].is_file()
    with pytest.raises(PermissionError):
        ents["file"].stat(follow_symlinks=False)
    k.sys.chmod("/mnt/d", 0o711)
    with pytest.raises(PermissionError):
        user.scandir("/mnt/d", stat=False)
