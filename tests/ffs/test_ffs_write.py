"""FFS read-write: random workloads read back by independent readers, exact accounting after every
workload, the clean-flag protocol, ENOSPC without leaks, minfree, big directories, huge offsets.

Every workload ends with ``ffs_check`` (an independent recount of every bitmap and summary) and,
where the readers can see the image, The Sleuth Kit (UFS1 both byte orders, UFS2 at 65536) and
dissect.ffs (little-endian) must report exactly the tree p2k holds. ``P2K_FULL=1`` runs more seeds
and bigger sizes.
"""

from __future__ import annotations

import errno
import os
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest
from ffs_check import assert_consistent, count_image
from ffs_work import (
    HAVE_MAKEFS,
    HAVE_TSK,
    Workload,
    check_dissect,
    check_model,
    check_tsk,
    mount_rw,
    newfs,
    p2k_tree,
)

import p2k
from p2k.fs.ffs import fs as ffs_fs
from p2k.vfs.lwproc import Cred

FULL = os.environ.get("P2K_FULL") == "1"
SEEDS = range(6) if FULL else range(1)

CONFIGS = {
    "ufs1-le": (("-O", "1", "-B", "le"), {"tsk", "dissect"}),
    "ufs1-be": (("-O", "1", "-B", "be", "-b", "4096", "-f", "512"), {"tsk"}),
    "ufs2-le": (("-O", "2", "-B", "le"), {"tsk", "dissect"}),
    "ufs2-be": (("-O", "2", "-B", "be", "-b", "16384", "-f", "2048"), {"tsk"}),
}


def _sb(img: Path) -> ffs_fs.Superblock:
    raw = img.read_bytes()
    return ffs_fs.find_superblock(lambda o, n: raw[o:o + n], len(raw))


def _p2k_fsck_clean(img: Path) -> None:
    """Once ``p2k fsck`` exists, it must agree the image is clean."""
    try:
        from p2k.cli.main import main
    except ImportError:  # pragma: no cover
        return
    from p2k.cli import main as climain

    if "p2k.cli.fsck" not in climain.SUBCOMMAND_MODULES:
        return
    try:
        import p2k.cli.fsck  # noqa: F401
    except ImportError:
        return
    assert main(["fsck", "-n", "-f", str(img)]) == 0


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("cfg", sorted(CONFIGS))
def test_random_workload_read_back(tmp_path: Path, cfg: str, seed: int) -> None:
    args, readers = CONFIGS[cfg]
    img = newfs(tmp_path / "w.img", "48m" if FULL else "24m", *args)
    k = mount_rw(img, memlimit="2m" if seed % 2 else None)
    w = Workload(k, seed * 101 + len(cfg))
    try:
        for _ in range(3 if FULL else 2):
            w.run(250)
            check_model(p2k_tree(k), w)
            k.sys.sync()
    finally:
        k.halt()
    assert_consistent(img)
    _p2k_fsck_clean(img)
    k = mount_rw(img, ro=True)
    try:
        tree = p2k_tree(k)
    finally:
        k.halt()
    check_model(tree, w)
    if "tsk" in readers and HAVE_TSK:
        check_tsk(img, tree)
    if "dissect" in readers:
        check_dissect(img, tree)


@pytest.mark.skipif(not HAVE_MAKEFS, reason="NetBSD makefs not installed")
@pytest.mark.parametrize("version,endian", [(1, "le"), (1, "be"), (2, "le")])
def test_makefs_image_modified(tmp_path: Path, version: int, endian: str) -> None:
    """A real makefs image, mounted read-write and changed, reads back right elsewhere."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(30):
        (src / f"f{i}").write_bytes(os.urandom(i * 997))
    (src / "d").mkdir()
    (src / "d" / "inner").write_text("inner\n")
    os.symlink("f1", src / "ln")
    img = tmp_path / "mk.img"
    subprocess.run(["makefs", "-t", "ffs", "-B", endian, "-o", f"version={version},density=4096", "-s", "16m",
                    str(img), str(src)], check=True, capture_output=True)
    k = mount_rw(img)
    try:
        k.sys.unlink("/mnt/f3")
        k.sys.rename("/mnt/d", "/mnt/d2")
        k.sys.truncate("/mnt/f20", 5)
        Workload(k, 7).run(200)
        tree = p2k_tree(k)
    finally:
        k.halt()
    assert_consistent(img)
    sb = _sb(img)
    assert sb.fs_clean & ffs_fs.FS_ISCLEAN
    if HAVE_TSK and version == 1:  # TSK cannot find UFS2 at 8192, where makefs puts it
        check_tsk(img, tree)
    if endian == "le":
        check_dissect(img, tree)


def test_clean_flag_protocol(tmp_path: Path) -> None:
    img = newfs(tmp_path / "c.img", "8m")
    assert _sb(img).fs_clean & ffs_fs.FS_ISCLEAN
    k = mount_rw(img)
    try:
        sb = _sb(img)  # on disk while mounted read-write: unclean, remembered as was-clean
        assert not sb.fs_clean & ffs_fs.FS_ISCLEAN and sb.fs_clean & ffs_fs.FS_WASCLEAN
        k.sys.mkdir("/mnt/x")
    finally:
        k.halt()
    sb = _sb(img)
    assert sb.fs_clean == ffs_fs.FS_ISCLEAN
    # a crash (the image as it is while mounted) is unclean: p2k refuses read-write, as NetBSD
    k = mount_rw(img)
    try:
        k.sys.mkdir("/mnt/y")
        crashed = tmp_path / "crashed.img"
        shutil.copy(img, crashed)
    finally:
        k.halt()
    assert not _sb(crashed).fs_clean & ffs_fs.FS_ISCLEAN
    with pytest.raises(OSError) as ei:
        mount_rw(crashed)
    assert ei.value.errno == errno.EROFS and "not clean" in str(ei.value)
    mount_rw(crashed, ro=True).halt()


def test_flags_cleared_before_first_write(tmp_path: Path) -> None:
    """An empty WAPBL log's flag, soft updates and FreeBSD check-hashes are dropped at rw mount."""
    img = newfs(tmp_path / "f.img", "8m")
    raw = bytearray(img.read_bytes())
    sb = ffs_fs.find_superblock(lambda o, n: bytes(raw[o:o + n]), len(raw))
    blksz = 512
    addr = (len(raw) - 8 * blksz) // blksz  # last sectors: free space of a fresh file system
    sb.fs_flags = ffs_fs.FS_DOWAPBL | ffs_fs.FS_DOSOFTDEP
    sb.fs_journal_version, sb.fs_journal_location = 1, 2
    sb.fs_journal_addr, sb.fs_journal_blksz = addr, blksz
    raw[sb.loc:sb.loc + sb.fs_sbsize] = sb.encode()
    hdr = struct.Struct(sb.endian + "IiII8xQIIIIqq")
    raw[addr * blksz:addr * blksz + 64] = hdr.pack(0x5741424C, 64, 0, 1, 0, 0, 1, 9, 9, 0, 0)
    img.write_bytes(raw)
    k = mount_rw(img)
    try:
        on_disk = _sb(img)
        assert not on_disk.fs_flags & (ffs_fs.FS_DOWAPBL | ffs_fs.FS_DOSOFTDEP)
    finally:
        k.halt()
    # FreeBSD check-hashes: cleared, not refused
    sb = _sb(img)
    sb.fs_flags |= 0x200
    sb.fs_metackhash = 0x1F
    raw = bytearray(img.read_bytes())
    raw[sb.loc:sb.loc + sb.fs_sbsize] = sb.encode()
    img.write_bytes(raw)
    mount_rw(img).halt()
    sb = _sb(img)
    assert sb.fs_metackhash == 0 and not sb.fs_flags & 0x200
    assert_consistent(img)


def _fill(s: object, prefix: str, size: int) -> int:
    """Create files until ENOSPC; returns bytes written."""
    total = 0
    i = 0
    while True:
        path = f"{prefix}/f{i}"
        try:
            fd = s.open(path, os.O_WRONLY | os.O_CREAT, 0o644)  # type: ignore[attr-defined]
        except OSError as e:
            assert e.errno == errno.ENOSPC
            return total
        try:
            n = s.write(fd, os.urandom(size))  # type: ignore[attr-defined]
            total += n
            if n < size:
                return total
        except OSError as e:
            assert e.errno == errno.ENOSPC
            return total
        finally:
            s.close(fd)  # type: ignore[attr-defined]
        i += 1


@pytest.mark.parametrize("version", [1, 2])
def test_enospc_delete_refill_no_leak(tmp_path: Path, version: int) -> None:
    img = newfs(tmp_path / "full.img", "6m", "-O", str(version), "-b", "4096", "-f", "512")
    before = count_image(img)
    k = mount_rw(img)
    try:
        k.sys.mkdir("/mnt/d")
        first = _fill(k.sys, "/mnt/d", 150_000)
        sv = k.sys.statvfs("/mnt")
        assert sv.f_bfree * sv.f_frsize < 150_000 + 64 * 4096
        names = k.sys.listdir("/mnt/d")
        for n in names:
            k.sys.unlink(f"/mnt/d/{n}")
        k.sys.rmdir("/mnt/d")
        k.sys.mkdir("/mnt/d")
        second = _fill(k.sys, "/mnt/d", 150_000)
        assert abs(second - first) <= 64 * 1024
        for n in k.sys.listdir("/mnt/d"):
            k.sys.unlink(f"/mnt/d/{n}")
        k.sys.rmdir("/mnt/d")
    finally:
        k.halt()
    after = count_image(img)
    assert not after.problems, after.problems[:10]
    assert (after.nbfree, after.nffree, after.nifree, after.inodes) == \
        (before.nbfree, before.nffree, before.nifree, before.inodes)


def test_minfree_reserve_for_non_root(tmp_path: Path) -> None:
    img = newfs(tmp_path / "m.img", "6m", "-m", "10")
    k = mount_rw(img)
    try:
        k.sys.mkdir("/mnt/u")
        k.sys.chmod("/mnt/u", 0o777)
        user = k.newproc(cred=Cred(1000, 1000))
        user.mkdir("/mnt/u/x")
        _fill(user, "/mnt/u/x", 64 * 1024)
        sv = k.sys.statvfs("/mnt")
        assert sv.f_bavail * sv.f_frsize < 16 * 1024  # the user got (almost) all of it ...
        assert sv.f_bfree >= sv.f_blocks // 10  # ... but not the 10 % reserve
        fd = k.sys.open("/mnt/rootfile", os.O_WRONLY | os.O_CREAT, 0o644)
        assert k.sys.write(fd, b"r" * 100_000) == 100_000  # root may use the reserve
        k.sys.close(fd)
    finally:
        k.halt()
    assert_consistent(img)


def test_big_directory_is_indexed(tmp_path: Path) -> None:
    """Creating, looking up and removing in a huge directory costs what it costs in a small one."""
    n = 100_000 if FULL else 20_000
    img = newfs(tmp_path / "big.img", "64m", "-n", str(n + 1000))
    k = mount_rw(img)
    s = k.sys
    try:
        s.mkdir("/mnt/big")

        def batch(lo: int, hi: int) -> float:
            t = time.perf_counter()
            for i in range(lo, hi):
                s.close(s.open(f"/mnt/big/entry{i:06d}", os.O_WRONLY | os.O_CREAT, 0o644))
            return time.perf_counter() - t

        early = batch(0, 1000)
        batch(1000, n - 1000)
        late = batch(n - 1000, n)
        assert late < early * 3 + 0.05
        t = time.perf_counter()
        for i in range(0, n, n // 1000):
            s.stat(f"/mnt/big/entry{i:06d}")
            s.unlink(f"/mnt/big/entry{i:06d}")
        assert time.perf_counter() - t < early * 4 + 0.1
        assert len(s.listdir("/mnt/big")) == n - 1000
    finally:
        k.halt()
    assert_consistent(img)


@pytest.mark.parametrize("version", [1, 2])
def test_largest_file_offsets(tmp_path: Path, version: int) -> None:
    img = newfs(tmp_path / "h.img", "8m", "-O", str(version), "-b", "4096", "-f", "512")
    k = mount_rw(img)
    try:
        mp = k.mounts[0]
        top = mp.maxfilesize
        fd = k.sys.open("/mnt/huge", os.O_RDWR | os.O_CREAT, 0o644)
        assert k.sys.pwrite(fd, b"end", top - 3) == 3  # the very last bytes: triple indirect
        assert k.sys.fstat(fd).st_size == top
        assert k.sys.pread(fd, 3, top - 3) == b"end"
        with pytest.raises(OSError) as ei:
            k.sys.pwrite(fd, b"x", top)
        assert ei.value.errno == errno.EFBIG
        k.sys.pwrite(fd, b"mid", 5_000_000)
        k.sys.ftruncate(fd, 5_000_001)
        assert k.sys.pread(fd, 10, 4_999_999) == b"\0m"
        k.sys.ftruncate(fd, 0)
        k.sys.close(fd)
    finally:
        k.halt()
    assert_consistent(img)


def test_fsync_reaches_the_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    img = newfs(tmp_path / "s.img", "8m")
    k = mount_rw(img)
    try:
        dev = k.mounts[0].dev
        calls = []
        real = dev.fsync
        monkeypatch.setattr(dev, "fsync", lambda: (calls.append(1), real())[1])
        fd = k.sys.open("/mnt/f", os.O_WRONLY | os.O_CREAT, 0o644)
        k.sys.write(fd, b"durable")
        k.sys.fsync(fd)
        assert calls
        # what fsync returned for is on disk now, whatever happens to the kernel afterwards
        k.sys.close(fd)
    finally:
        k.halt(sync=False)
    copy = tmp_path / "copy.img"
    shutil.copy(img, copy)
    k = mount_rw(copy, ro=True)
    try:
        assert k.sys.read(k.sys.open("/mnt/f", os.O_RDONLY), 100) == b"durable"
    finally:
        k.halt()


def test_timestamps(tmp_path: Path) -> None:
    img = newfs(tmp_path / "t.img", "8m", "-O", "2")
    k = mount_rw(img)
    s = k.sys
    try:
        s.mkdir("/mnt/d")
        d0 = s.stat("/mnt/d")
        time.sleep(0.01)
        fd = s.open("/mnt/d/f", os.O_WRONLY | os.O_CREAT, 0o644)
        st0 = s.fstat(fd)
        d1 = s.stat("/mnt/d")
        assert d1.st_mtime_ns > d0.st_mtime_ns and d1.st_ctime_ns > d0.st_ctime_ns
        time.sleep(0.01)
        s.write(fd, b"abc")
        st1 = s.fstat(fd)
        assert st1.st_mtime_ns > st0.st_mtime_ns and st1.st_ctime_ns > st0.st_ctime_ns
        time.sleep(0.01)
        s.chmod("/mnt/d/f", 0o600)
        st2 = s.stat("/mnt/d/f")
        assert st2.st_ctime_ns > st1.st_ctime_ns and st2.st_mtime_ns == st1.st_mtime_ns
        rfd = s.open("/mnt/d/f", os.O_RDONLY)
        s.read(rfd, 10)
        s.close(rfd)
        assert s.stat("/mnt/d/f").st_atime_ns > st2.st_atime_ns  # a read marks the access time
        s.utime("/mnt/d/f", ns=(1_000_000_123, 2_000_000_456))
        st3 = s.stat("/mnt/d/f")
        assert (st3.st_atime_ns, st3.st_mtime_ns) == (1_000_000_123, 2_000_000_456)
        s.close(fd)
    finally:
        k.halt()
    k = mount_rw(img, ro=True)
    try:
        st = k.sys.stat("/mnt/d/f")
        assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_123, 2_000_000_456)
    finally:
        k.halt()


def test_rename_directories_link_counts(tmp_path: Path) -> None:
    img = newfs(tmp_path / "r.img", "8m")
    k = mount_rw(img)
    s = k.sys
    try:
        s.mkdir("/mnt/a")
        s.mkdir("/mnt/b")
        s.mkdir("/mnt/a/x")
        s.mkdir("/mnt/b/y")
        s.rename("/mnt/a/x", "/mnt/b/x")  # across parents
        assert (s.stat("/mnt/a").st_nlink, s.stat("/mnt/b").st_nlink) == (2, 4)
        s.rename("/mnt/b/x", "/mnt/b/y")  # over an empty directory, same parent
        assert s.stat("/mnt/b").st_nlink == 3
        s.mkdir("/mnt/a/z")
        s.rename("/mnt/b/y", "/mnt/a/z")  # over an empty directory in another parent
        assert (s.stat("/mnt/a").st_nlink, s.stat("/mnt/b").st_nlink) == (3, 2)
        assert s.stat("/mnt/a/z/..").st_ino == s.stat("/mnt/a").st_ino
        fd = s.open("/mnt/a/f", os.O_WRONLY | os.O_CREAT, 0o644)
        s.close(fd)
        s.link("/mnt/a/f", "/mnt/b/g")
        s.rename("/mnt/a/f", "/mnt/b/g")  # two names of one file: nothing happens
        assert s.stat("/mnt/b/g").st_nlink == 2
    finally:
        k.halt()
    assert_consistent(img)


def test_unlinked_open_file_freed_on_last_close(tmp_path: Path) -> None:
    img = newfs(tmp_path / "u.img", "8m")
    before = count_image(img)
    k = mount_rw(img)
    try:
        fd = k.sys.open("/mnt/tmp", os.O_RDWR | os.O_CREAT, 0o644)
        k.sys.write(fd, os.urandom(500_000))
        k.sys.unlink("/mnt/tmp")
        assert len(k.sys.pread(fd, 600_000, 0)) == 500_000
        k.sys.close(fd)
    finally:
        k.halt()
    after = count_image(img)
    assert not after.problems
    assert (after.nbfree, after.nffree, after.nifree) == (before.nbfree, before.nffree, before.nifree)


def test_readonly_mount_refuses_writes(tmp_path: Path) -> None:
    img = newfs(tmp_path / "ro.img", "8m")
    k = mount_rw(img, ro=True)
    try:
        with pytest.raises(OSError) as ei:
            k.sys.mkdir("/mnt/x")
        assert ei.value.errno == errno.EROFS
    finally:
        k.halt()
    assert p2k is not None


def test_directory_compaction(tmp_path: Path) -> None:
    """Scattered free space in a chunk is squeezed together for a long name instead of the
    directory growing; every name stays findable and the directory stays well-formed."""
    img = newfs(tmp_path / "dc.img", "8m")
    k = mount_rw(img)
    s = k.sys
    try:
        s.mkdir("/mnt/d")
        names = [f"n{i:02d}_" + "y" * 20 for i in range(40)]  # 36-byte entries: several chunks
        for n in names:
            s.close(s.open(f"/mnt/d/{n}", os.O_WRONLY | os.O_CREAT, 0o644))
        size0 = s.stat("/mnt/d").st_size
        for n in names[::2]:  # every other entry: free space in 36-byte pieces, chunk starts too
            s.unlink(f"/mnt/d/{n}")
        longs = ["L" * 200 + str(i) for i in range(3)]  # one 212-byte entry per chunk
        for n in longs:
            s.close(s.open(f"/mnt/d/{n}", os.O_WRONLY | os.O_CREAT, 0o644))
        assert s.stat("/mnt/d").st_size == size0  # compacted, not grown
        assert sorted(s.listdir("/mnt/d")) == sorted(names[1::2] + longs)
        for n in names[1::2] + longs:
            s.stat(f"/mnt/d/{n}")
    finally:
        k.halt()
    assert_consistent(img)
    k = mount_rw(img, ro=True)
    try:
        assert sorted(k.sys.listdir("/mnt/d")) == sorted(names[1::2] + longs)
    finally:
        k.halt()
