"""Kernel-level properties: isolation of kernels, the vnode cache bound and reclaim, sysctl, stats."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import pytest
from kernel_io import errno_of, read_file, write_file

import p2k


def _host_listing() -> set[str]:
    return set(os.listdir(os.getcwd())) | set(os.listdir(tempfile.gettempdir()))


# ---- isolation -------------------------------------------------------------------------------------


def test_two_kernels_share_no_files_fds_or_mounts() -> None:
    before = _host_listing()
    a, b = p2k.Kernel(env={}), p2k.Kernel(env={})
    try:
        fd = a.sys.open("/x", os.O_RDWR | os.O_CREAT, 0o644)
        assert a.sys.write(fd, b"only in a") == 9
        a.sys.mkdir("/mnt")
        a.sys.mount("tmpfs", "/mnt")
        write_file(a, "/mnt/inner", b"mounted")

        assert errno_of(b.sys.stat, "/x") == errno.ENOENT
        assert errno_of(b.sys.stat, "/mnt") == errno.ENOENT
        assert errno_of(b.sys.read, fd, 1) == errno.EBADF
        assert errno_of(b.sys.close, fd) == errno.EBADF
        assert b.sys.listdir("/") == []
        assert b.stats()["mounts"] == 0 and a.stats()["mounts"] == 1

        # The same names in b are b's own.
        b.sys.mkdir("/mnt")
        write_file(b, "/mnt/inner", b"b's file on b's root")
        assert read_file(a, "/mnt/inner") == b"mounted"
        assert read_file(b, "/mnt/inner") == b"b's file on b's root"
        assert a.sys.pread(fd, 100, 0) == b"only in a"
        assert errno_of(b.sys.unmount, "/mnt") == errno.EINVAL  # b's /mnt is no mount point
        a.sys.close(fd)
        assert sorted(a.sys.listdir("/")) == ["mnt", "x"]
    finally:
        a.halt()
        b.halt()
    assert _host_listing() == before
    assert not Path("/x").exists() and not Path("/mnt/inner").exists()


def test_fds_are_per_process_context(kernel: p2k.Kernel) -> None:
    fd = kernel.sys.open("/f", os.O_RDWR | os.O_CREAT)
    empty = kernel.newproc(flags=0x1000)  # RFCFDG: a fresh, empty table
    copy = kernel.newproc()  # RFFDG: a copy
    assert errno_of(empty.read, fd, 1) == errno.EBADF
    kernel.sys.write(fd, b"abc")
    assert copy.lseek(fd, 0, os.SEEK_CUR) == 3  # the copied fd shares the open file and offset
    copy.close(fd)
    assert kernel.sys.lseek(fd, 0, os.SEEK_CUR) == 3
    kernel.sys.close(fd)
    kernel.release_proc(empty)
    kernel.release_proc(copy)


# ---- vnode cache -----------------------------------------------------------------------------------

NFILES = 10_000
NDIRS = 50


def _populate(k: p2k.Kernel) -> list[str]:
    k.sys.mkdir("/mnt")
    k.sys.mount("tmpfs", "/mnt")
    paths = []
    for d in range(NDIRS):
        k.sys.mkdir(f"/mnt/d{d}")
    for i in range(NFILES):
        p = f"/mnt/d{i % NDIRS}/f{i}"
        fd = k.sys.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        k.sys.write(fd, b"content %d" % i)
        k.sys.close(fd)
        paths.append(p)
    return paths


def _check_bound(k: p2k.Kernel, limit: int) -> None:
    s = k.stats()
    assert s["vnodes"] <= limit + s["vnodes_inuse"], s
    assert s["vnodes"] == s["vnodes_inuse"] + s["vnodes_free"]


def _walk_bounded(k: p2k.Kernel, limit: int) -> None:
    paths = _populate(k)
    _check_bound(k, limit)
    reclaims0 = k.stats()["reclaims"]
    assert reclaims0 > 0  # creating 10,000 files through 16 vnodes already recycled some
    seen = 0
    for d in range(NDIRS):
        for name in k.sys.listdir(f"/mnt/d{d}"):
            st = k.sys.stat(f"/mnt/d{d}/{name}")
            assert st.st_size == len(b"content ") + len(name) - 1
            seen += 1
            if seen % 97 == 0:
                _check_bound(k, limit)
    assert seen == NFILES
    # stat of a file not in the cache leaves the cache alone (namei's stat_only); opening each
    # file to read it cycles all of them through it
    for i, p in enumerate(paths):
        assert read_file(k, p) == b"content %d" % i
    assert k.stats()["reclaims"] >= reclaims0 + NFILES
    _check_bound(k, limit)


def test_walk_keeps_vnode_cache_bounded() -> None:
    k = p2k.Kernel(nvnodes=16, env={})
    try:
        assert k.sysctl("kern.maxvnodes") == 16
        _walk_bounded(k, 16)
    finally:
        k.halt()


def test_rump_nvnodes_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUMP_NVNODES", "16")
    k = p2k.rump_init()
    try:
        assert k.stats()["maxvnodes"] == 16
        _walk_bounded(k, 16)
    finally:
        k.halt()


def test_sysctl_maxvnodes_shrinks_cache_while_running(tmpfs: p2k.Kernel) -> None:
    k = tmpfs
    for i in range(300):
        write_file(k, f"/mnt/f{i}", b"x")
    for i in range(300):
        k.sys.stat(f"/mnt/f{i}")
    s = k.stats()
    assert s["vnodes"] >= 300 and s["reclaims"] == 0
    assert k.sysctl("kern.maxvnodes", 20) == 20
    s = k.stats()
    assert s["vnodes"] <= 20 + s["vnodes_inuse"]
    assert s["reclaims"] >= 280
    assert errno_of(k.sysctl, "kern.maxvnodes", 0) == errno.EINVAL
    assert k.sysctl("kern.maxvnodes") == 20
    for i in range(300):
        assert read_file(k, f"/mnt/f{i}") == b"x"


def test_vnode_in_use_is_never_reclaimed() -> None:
    k = p2k.Kernel(nvnodes=4, env={})
    try:
        k.sys.mkdir("/mnt")
        k.sys.mount("tmpfs", "/mnt")
        fds = []
        for i in range(8):
            fd = k.sys.open(f"/mnt/held{i}", os.O_RDWR | os.O_CREAT, 0o600)
            k.sys.write(fd, b"held %d" % i)
            fds.append(fd)
        held = [k.sys.proc.fdt.get(fd).vp for fd in fds]
        for i in range(500):
            write_file(k, f"/mnt/churn{i}", b"c")
            k.sys.stat(f"/mnt/churn{i}")
        s = k.stats()
        assert s["reclaims"] >= 490
        assert s["vnodes_inuse"] >= 8 + 2  # 8 fds, the root and the covered /mnt
        assert s["vnodes"] <= 4 + s["vnodes_inuse"]
        assert not any(vp.reclaimed for vp in held)
        # An unlinked file that is still open keeps its data until the last close.
        k.sys.unlink("/mnt/held0")
        for i in range(100):
            k.sys.stat(f"/mnt/churn{i}")
        assert k.sys.pread(fds[0], 100, 0) == b"held 0"
        for i, fd in enumerate(fds):
            assert k.sys.pread(fd, 100, 0) == b"held %d" % i
            k.sys.close(fd)
        assert held[0].reclaimed  # last close of an unlinked file reclaims at once
        assert k.stats()["vnodes_inuse"] == 2
    finally:
        k.halt()


def test_cwd_holds_its_vnode(tmpfs: p2k.Kernel) -> None:
    k = tmpfs
    k.sysctl("kern.maxvnodes", 2)
    k.sys.mkdir("/mnt/a")
    k.sys.chdir("/mnt/a")
    cwd = k.sys.proc.cwd
    for i in range(50):
        write_file(k, f"/mnt/x{i}", b"")
    assert not cwd.reclaimed
    write_file(k, "rel", b"relative")
    assert read_file(k, "/mnt/a/rel") == b"relative"
    assert k.sys.getcwd() == "/mnt/a"


def test_stats_keys(kernel: p2k.Kernel) -> None:
    s = kernel.stats()
    for key in ("vnodes", "vnodes_inuse", "vnodes_free", "reclaims", "buf_hits", "buf_misses",
                "buf_bytes", "buf_dirty_bytes", "buf_writes"):
        assert isinstance(s[key], int) and s[key] >= 0, key
    assert s["maxvnodes"] == 1024
    assert s["vnodes_inuse"] == 1  # the root, held for the kernel's life


def test_halt_unmounts_and_refuses_nothing_twice(kernel: p2k.Kernel) -> None:
    kernel.sys.mkdir("/mnt")
    kernel.sys.mount("tmpfs", "/mnt")
    fd = kernel.sys.open("/mnt/f", os.O_RDWR | os.O_CREAT)
    kernel.sys.write(fd, b"x")
    kernel.halt()
    assert kernel.stats()["mounts"] == 0
    kernel.halt()  # a second halt is a no-op


def test_forced_unmount_leaves_dead_vnodes_that_release_cleanly(tmpfs: p2k.Kernel) -> None:
    k = tmpfs
    k.sys.mkdir("/mnt/d")
    fd = k.sys.open("/mnt/f", os.O_RDWR | os.O_CREAT)
    k.sys.write(fd, b"data")
    other = k.newproc()
    other.chdir("/mnt/d")
    assert errno_of(k.sys.unmount, "/mnt") == errno.EBUSY
    k.sys.unmount("/mnt", p2k.MNT_FORCE)
    assert k.sys.listdir("/mnt") == []  # the covered directory shows again
    assert errno_of(k.sys.read, fd, 1) == errno.EIO
    assert errno_of(k.sys.fstat, fd) == errno.EBADF
    assert errno_of(other.listdir, ".") in (errno.EBADF, errno.ENOENT)
    k.sys.close(fd)
    k.release_proc(other)
    assert k.stats()["vnodes_inuse"] == 1


def test_lookup_of_root_keeps_reference_counts(kernel: p2k.Kernel) -> None:
    root = kernel.rootvnode
    before = root.usecount
    for path in ("/", "//", "/.", "/..", "/./"):
        kernel.sys.stat(path)
        kernel.sys.chdir(path)
        assert root.usecount == before, path
    assert kernel.stats()["vnodes_inuse"] == 1


def test_deep_walk_with_a_one_vnode_cache() -> None:
    """The directories a lookup passes through are not referenced, so the cache must not trim
    them away mid-walk; it catches up when the lookup ends."""
    k = p2k.Kernel(nvnodes=1, env={})
    try:
        k.sys.mkdir("/mnt")
        k.sys.mount("tmpfs", "/mnt")
        path = "/mnt"
        for i in range(12):
            path += f"/d{i}"
            k.sys.mkdir(path)
        k.sys.symlink("../../d0/d1/d2", "/mnt/d0/d1/up")
        write_file(k, path + "/f", b"deep")
        k.sys.symlink(path + "/f", "/mnt/abs")
        for p in (path + "/f", "/mnt/abs", "/mnt/d0/d1/up/d3/../d3/d4/d5/d6/d7/d8/d9/d10/d11/f"):
            assert read_file(k, p) == b"deep", p
            _check_bound(k, 1)
        s = k.stats()
        assert s["vnodes"] <= 1 + s["vnodes_inuse"] and s["reclaims"] > 20
    finally:
        k.halt()


def test_a_failing_inactive_leaves_the_vnode_cache_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last vrele calls the driver's inactive; on a damaged image that can fail with EIO. The
    error reaches the caller, and the vnode is still cached as a free one: the next vget of the
    same inode must work (it used to find it neither referenced nor on the free list: KeyError,
    found by the fsck campaign)."""
    k = p2k.Kernel(env={})
    try:
        k.sys.mkdir("/mnt", 0o755)
        k.sys.mount("tmpfs", "/mnt")
        write_file(k, "/mnt/f", b"data")
        vp = k.sys.lookup("/mnt/f")
        mp = vp.mount

        def failing(vp: object) -> bool:
            raise OSError(errno.EIO, "inactive failed")

        monkeypatch.setattr(mp, "vop_inactive", failing)
        with pytest.raises(OSError):
            k.vcache.vrele(vp)
        monkeypatch.undo()
        again = k.vcache.vget(mp, vp.ino)
        assert again is vp and vp.usecount == 1
        k.vcache.vrele(again)
        assert read_file(k, "/mnt/f") == b"data"
    finally:
        k.halt(sync=False)


def test_reclaim_takes_the_least_recently_used_vnode() -> None:
    """The free list is a plain dict until the cache first fills, an OrderedDict after (an
    eviction in constant time); either way the vnode reclaimed is the one unused longest."""
    k = p2k.Kernel(nvnodes=10, env={})
    try:
        k.sys.mkdir("/d")
        for i in range(6):
            write_file(k, f"/d/f{i}", b"x")
        vc = k.vcache
        assert type(vc._free) is dict  # nothing reclaimed yet
        ino = [k.sys.stat(f"/d/f{i}").st_ino for i in range(6)]
        k.sys.stat("/d/f0")  # f0 used again: now the newest of the six
        vnode = {vp.ino: vp for vp in vc._table.values()}
        for i in range(4):  # four more files: the cache goes past ten vnodes, the oldest go
            write_file(k, f"/d/g{i}", b"x")
        assert type(vc._free) is not dict and vc.reclaims > 0
        gone = [i for i in range(6) if vnode[ino[i]].reclaimed]
        assert gone and gone == list(range(1, 1 + len(gone))), gone  # f1, then f2...; f0 last
    finally:
        k.halt()
