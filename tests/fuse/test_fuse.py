"""Real mounts through /dev/fuse: host programs use a p2k mount as they use any directory.

Each mount is a ``p2k mount -f`` subprocess; tests use ordinary file calls and host tools (cp,
diff, tar, git, gcc, find) and unmount with ``p2k umount``. Everything runs on tmpfs; the FFS
variants run when the FFS driver mounts read-write and are skipped, saying why, until then.
The mount helpers are in tests/support/fuse_harness.py.
"""

from __future__ import annotations

import errno
import mmap
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from fuse_harness import (
    P2K,
    Mount,
    _stale,
    diff,
    make_tree,
    start_mount,
    stop,
)

pytestmark = pytest.mark.fuse


def test_cp_a_and_diff(work: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src)
    subprocess.run(["cp", "-a", str(src), str(work / "copy")], check=True)
    diff(src, work / "copy")
    for rel in ("d0/e0/f0.bin", "d3/e0/f3.bin"):
        a, b = os.lstat(src / rel), os.lstat(work / "copy" / rel)
        assert (a.st_mode, a.st_mtime_ns, a.st_size) == (b.st_mode, b.st_mtime_ns, b.st_size)
    assert os.stat(work / "copy/hard").st_nlink == 2
    subprocess.run(["cp", "-a", str(work / "copy"), str(tmp_path / "back")], check=True)
    diff(src, tmp_path / "back")


def test_tar_extract_and_create(work: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, 30)
    subprocess.run(["tar", "-C", str(tmp_path), "-cf", str(tmp_path / "a.tar"), "src"], check=True)
    subprocess.run(["tar", "-C", str(work), "-xpf", str(tmp_path / "a.tar")], check=True)
    diff(src, work / "src")
    subprocess.run(["tar", "-C", str(work), "-cf", str(work / "b.tar"), "src"], check=True)
    (tmp_path / "out").mkdir()
    subprocess.run(["tar", "-C", str(tmp_path / "out"), "-xpf", str(work / "b.tar")], check=True)
    diff(src, tmp_path / "out" / "src")


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_git_init_and_commit(work: Path) -> None:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@e", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@e", HOME=str(work))

    def git(*a: str) -> str:
        return subprocess.run(["git", "-C", str(work), *a], check=True, capture_output=True, text=True,
                              env=env).stdout

    git("init", "-q")
    (work / "hello.txt").write_text("hello\n")
    (work / "sub").mkdir()
    (work / "sub/x.py").write_text("print(1)\n")
    git("add", "-A")
    git("commit", "-q", "-m", "first")
    (work / "hello.txt").write_text("hello again\n")
    git("commit", "-q", "-am", "second")
    assert git("log", "--oneline").count("\n") == 2
    git("fsck", "--strict")
    assert git("status", "--porcelain") == ""


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_build_c_program(work: Path) -> None:
    (work / "main.c").write_text('#include <stdio.h>\nint sq(int);\nint main(void){printf("%d\\n", sq(7));}\n')
    (work / "sq.c").write_text("int sq(int x){return x*x;}\n")
    for c in ("main", "sq"):
        subprocess.run(["gcc", "-O1", "-c", "-o", str(work / f"{c}.o"), str(work / f"{c}.c")], check=True)
    subprocess.run(["gcc", "-o", str(work / "prog"), str(work / "main.o"), str(work / "sq.o")], check=True)
    assert subprocess.run([str(work / "prog")], capture_output=True, text=True, check=True).stdout == "49\n"


# ---- POSIX details -------------------------------------------------------------------------------
def test_name_too_long_and_namemax(work: Path) -> None:
    assert os.statvfs(work).f_namemax == 255
    for make in (lambda p: open(p, "w"), os.mkdir, lambda p: os.symlink("x", p)):
        with pytest.raises(OSError) as ei:
            make(work / ("n" * 256))
        assert ei.value.errno == errno.ENAMETOOLONG
    (work / ("n" * 255)).write_bytes(b"ok")
    assert os.listdir(work) == ["n" * 255]


def test_write_past_eof_leaves_zero_hole(work: Path) -> None:
    p = work / "holey"
    with open(p, "wb") as f:
        f.write(b"head")
        f.seek(1_000_000)
        f.write(b"tail")
    data = p.read_bytes()
    assert len(data) == 1_000_004 and data[:4] == b"head" and data[-4:] == b"tail"
    assert data[4:1_000_000] == bytes(999_996)
    os.truncate(p, 10)
    os.truncate(p, 5000)
    assert p.read_bytes() == b"head" + bytes(4996)


def test_truncate_past_max_is_efbig(work: Path, fsmount: Mount) -> None:
    p = work / "big"
    p.write_bytes(b"x")
    if "p2k-fuse-ffs" not in str(fsmount.path):
        pytest.skip("tmpfs files may be as large as off_t allows")
    with pytest.raises(OSError) as ei:
        os.truncate(p, (1 << 63) - 1)
    assert ei.value.errno == errno.EFBIG
    assert p.read_bytes() == b"x"


def test_times_keep_nanoseconds(work: Path) -> None:
    p = work / "t"
    p.write_bytes(b"")
    os.utime(p, ns=(1_234_567_890_123_456_789, 1_111_111_111_222_222_222))
    st = os.stat(p)
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_234_567_890_123_456_789, 1_111_111_111_222_222_222)


def test_rename_flags_and_fallocate(work: Path) -> None:
    import ctypes

    (work / "a").write_text("a")
    (work / "b").write_text("b")
    libc = ctypes.CDLL(None, use_errno=True)
    at = -100  # AT_FDCWD
    rc = libc.renameat2(at, bytes(work / "a"), at, bytes(work / "b"), 1)  # RENAME_NOREPLACE
    assert rc == -1 and ctypes.get_errno() == errno.EEXIST
    rc = libc.renameat2(at, bytes(work / "a"), at, bytes(work / "b"), 2)  # RENAME_EXCHANGE
    if rc == 0:
        assert (work / "a").read_text() == "b"
    else:
        assert ctypes.get_errno() == errno.EINVAL
    with open(work / "a", "r+b") as f:
        with pytest.raises(OSError) as ei:
            _fallocate(f.fileno(), 3, 0, 4096)  # PUNCH_HOLE | KEEP_SIZE
        assert ei.value.errno == errno.EOPNOTSUPP


def _fallocate(fd: int, mode: int, off: int, length: int) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.fallocate(fd, mode, ctypes.c_long(off), ctypes.c_long(length)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def test_large_directory_lists_completely(work: Path) -> None:
    names = {f"entry-{i:05d}-{'x' * (i % 40)}" for i in range(3000)}
    for n in names:
        os.close(os.open(work / n, os.O_CREAT | os.O_WRONLY, 0o644))
    assert set(os.listdir(work)) == names
    # Remove every other entry while listing: nothing listed twice, survivors all seen.
    seen: list[str] = []
    with os.scandir(work) as it:
        for i, e in enumerate(it):
            seen.append(e.name)
            if i % 2 == 0:
                os.unlink(work / e.name)
    assert len(seen) == len(set(seen))
    assert set(os.listdir(work)) <= set(seen)


def test_mmap_read(work: Path) -> None:
    data = os.urandom(300_000)
    (work / "m").write_bytes(data)
    with open(work / "m", "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        assert mm[:] == data
        assert mm[123_456:123_460] == data[123_456:123_460]


def _worker(args: tuple[str, int]) -> str:
    base, n = args
    import hashlib

    p = Path(base) / f"w{n}"
    data = hashlib.sha256(str(n).encode()).digest() * 8192  # 256 KiB
    for rnd in range(5):
        with open(p, "wb") as f:
            for off in range(0, len(data), 65536):
                f.write(data[off:off + 65536])
        assert p.read_bytes() == data, f"worker {n} round {rnd}"
        os.stat(Path(base))
        os.listdir(base)
    return "ok"


def test_concurrent_readers_and_writers(work: Path) -> None:
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(4) as pool:
        assert pool.map(_worker, [(str(work), n) for n in range(8)]) == ["ok"] * 8
    # One reader streaming a big file does not stall stat on another.
    (work / "big").write_bytes(os.urandom(32 << 20))
    reader = subprocess.Popen(["sh", "-c", f"cat {work / 'big'} > /dev/null"])
    t0 = time.monotonic()
    for _ in range(50):
        os.stat(work / "w0")
    assert time.monotonic() - t0 < 5
    reader.wait()


def test_unmount_while_busy(tmp_path: Path) -> None:
    m = start_mount(tmp_path / "mnt", "-t", "tmpfs", "none")
    try:
        f = open(m.path / "busy", "w")
        f.write("data")
        r = subprocess.run([P2K, "umount", str(m.path)], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and "busy" in r.stderr.lower(), r.stderr
        assert r.stderr.count("\n") == 1
        f.close()
        assert (m.path / "busy").read_text() == "data"
        m.umount()
    finally:
        stop(m)


def test_fusermount_u_ends_the_daemon(tmp_path: Path) -> None:
    """(SIGTERM: test_fuse_transport.test_stop_signal_as_soon_as_mounted_unmounts_cleanly.)"""
    m = start_mount(tmp_path / "a", "-t", "tmpfs", "none")
    try:
        subprocess.run(["fusermount3", "-u", str(m.path)], check=True)
        assert m.proc.wait(timeout=30) == 0
    finally:
        stop(m)


def test_detached_mount_and_errors(tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run([P2K, "mount", "-t", "tmpfs", "none", str(mnt)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    try:
        assert os.path.ismount(mnt)
        (mnt / "f").write_text("x")
        r = subprocess.run([P2K, "mount", "-t", "tmpfs", "none", str(mnt)], capture_output=True, text=True)
        assert r.returncode != 0 and r.stderr.count("\n") == 1 and "already" in r.stderr
    finally:
        r = subprocess.run([P2K, "umount", str(mnt)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert not os.path.ismount(mnt)
    r = subprocess.run([P2K, "mount", str(tmp_path / "missing.img"), str(mnt)], capture_output=True, text=True)
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "missing.img" in r.stderr


def test_stale_mount_is_reported(tmp_path: Path) -> None:
    m = start_mount(tmp_path / "mnt", "-t", "tmpfs", "none")
    try:
        m.proc.kill()
        m.proc.wait()
        r = subprocess.run([P2K, "mount", "-t", "tmpfs", "none", str(m.path)], capture_output=True, text=True)
        assert r.returncode != 0 and f"fusermount3 -u {m.path}" in r.stderr, r.stderr
        r = subprocess.run([P2K, "umount", str(m.path)], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert not _stale(m.path) and not os.path.ismount(m.path)
    finally:
        stop(m)
