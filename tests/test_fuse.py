"""Real mounts through /dev/fuse: host programs use a p2k mount as they use any directory.

Each mount is a ``p2k mount -f`` subprocess; tests use ordinary file calls and host tools (cp,
diff, tar, git, gcc, find) and unmount with ``p2k umount``. Everything runs on tmpfs; the FFS
variants run when the FFS driver mounts read-write and are skipped, saying why, until then.
The helpers here are imported by the other ``test_fuse_*`` modules.
"""

from __future__ import annotations

import errno
import json
import mmap
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.fuse

REPO = Path(__file__).resolve().parents[1]
P2K = str(Path(sys.executable).with_name("p2k"))
HAVE_FUSE = os.path.exists("/dev/fuse") and shutil.which("fusermount3") is not None
HAVE_MAKEFS = shutil.which("makefs") is not None

if not HAVE_FUSE:
    pytest.skip("no /dev/fuse or fusermount3", allow_module_level=True)


class Mount:
    """A running ``p2k mount -f`` and its mount point."""

    def __init__(self, path: Path, proc: subprocess.Popen[bytes], stats_file: Path) -> None:
        self.path = path
        self.proc = proc
        self.stats_file = stats_file

    def stats(self) -> dict[str, int]:
        """The daemon's kernel counters (SIGUSR1 → JSON in the stats file)."""
        before = self.stats_file.stat().st_mtime_ns if self.stats_file.exists() else 0
        self.stats_file.unlink(missing_ok=True)
        os.kill(self.proc.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not self.stats_file.exists():
            assert time.monotonic() < deadline, "daemon wrote no stats"
            time.sleep(0.02)
        del before
        return json.loads(self.stats_file.read_text())

    def umount(self, timeout: float = 60) -> None:
        r = subprocess.run([P2K, "umount", str(self.path)], capture_output=True, text=True, timeout=timeout)
        assert r.returncode == 0, r.stderr
        assert self.proc.wait(timeout=timeout) == 0, self.proc.stderr.read() if self.proc.stderr else ""
        assert not os.path.ismount(self.path)


def start_mount(mnt: Path, *args: str, timeout: float = 30) -> Mount:
    """``p2k mount -f ARGS MNT`` in the background; returns once the mount point is live."""
    mnt.mkdir(parents=True, exist_ok=True)
    stats = mnt.parent / f".{mnt.name}.stats"
    env = dict(os.environ, P2K_STATS_FILE=str(stats))
    proc = subprocess.Popen([P2K, "mount", "-f", *args, str(mnt)], stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + timeout
    while not os.path.ismount(mnt):
        if proc.poll() is not None:
            raise AssertionError(f"p2k mount exited {proc.returncode}: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("mount did not become ready")
        time.sleep(0.02)
    return Mount(mnt, proc, stats)


def stop(m: Mount) -> None:
    """Teardown that never leaves a mount behind, whatever state the test left it in."""
    if m.proc.poll() is None:
        subprocess.run(["fusermount3", "-u", "-z", str(m.path)], capture_output=True)
        try:
            m.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            m.proc.kill()
            m.proc.wait()
    elif os.path.ismount(m.path) or _stale(m.path):
        subprocess.run(["fusermount3", "-u", "-z", str(m.path)], capture_output=True)


def _stale(p: Path) -> bool:
    try:
        os.stat(p)
    except OSError as e:
        return e.errno == errno.ENOTCONN
    return False


# ---- FFS images -----------------------------------------------------------------------------------
def make_ffs(img: Path, tree: Path | None = None, size: str = "64m", free_inodes: int = 1000) -> Path:
    src = tree or Path(tempfile.mkdtemp(prefix="p2k-empty-"))
    subprocess.run(["makefs", "-t", "ffs", "-B", "le", "-o", "version=2,bsize=16384,fsize=2048",
                    "-s", size, "-f", str(free_inodes), str(img), str(src)], check=True, capture_output=True)
    return img


_FFS_RW: list[str | None] = []


def ffs_rw_missing() -> str | None:
    """Why an FFS image cannot be mounted read-write yet (None when it can)."""
    if not _FFS_RW:
        if not HAVE_MAKEFS:
            _FFS_RW.append("makefs not installed")
        else:
            import p2k

            with tempfile.TemporaryDirectory() as d:
                img = make_ffs(Path(d) / "probe.img", size="4m")
                k = p2k.Kernel()
                try:
                    k.etfs_register("/dev/dk", str(img), p2k.ETFS_BLK)
                    k.sys.mkdir("/mnt", 0o755)
                    k.sys.mount("ffs", "/mnt", 0, {"fspec": "/dev/dk"})
                    fd = k.sys.open("/mnt/probe", os.O_CREAT | os.O_WRONLY, 0o644)
                    k.sys.write(fd, b"x")
                    k.sys.close(fd)
                    _FFS_RW.append(None)
                except (OSError, NotImplementedError) as e:
                    _FFS_RW.append(f"FFS is read-only so far ({e})")
                finally:
                    k.halt(sync=False)
    return _FFS_RW[0]


FS_KINDS = ["tmpfs", "ffs"]


@pytest.fixture(scope="module", params=FS_KINDS)
def fsmount(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mount]:
    """A writable mount shared by a module's tests (each test works in a directory of its own)."""
    # Under /tmp itself, not pytest's private (0700) directory, so that other users can reach it.
    base = Path(tempfile.mkdtemp(prefix=f"p2k-fuse-{request.param}-"))
    os.chmod(base, 0o755)
    if request.param == "ffs":
        why = ffs_rw_missing()
        if why:
            pytest.skip(why)
        args = ["-t", "ffs", "-o", "allow_other,rw", str(make_ffs(base / "fs.img", size="256m", free_inodes=30000))]
    else:
        args = ["-t", "tmpfs", "-o", "allow_other", "none"]
    m = start_mount(base / "mnt", *args)
    os.chmod(m.path, 0o755)
    try:
        yield m
    finally:
        stop(m)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def work(fsmount: Mount, request: pytest.FixtureRequest) -> Path:
    d = fsmount.path / request.node.name.replace("[", "_").replace("]", "")
    d.mkdir()
    return d


def make_tree(root: Path, nfiles: int = 60) -> None:
    """Files of awkward sizes, nested directories, symlinks, a hard link, modes and times."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(nfiles):
        sub = root / f"d{i % 5}" / f"e{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        size = (0, 1, 511, 4096, 65537, 300_000)[i % 6]
        (sub / f"f{i}.bin").write_bytes(os.urandom(size))
        os.chmod(sub / f"f{i}.bin", (0o644, 0o600, 0o755, 0o4755)[i % 4])
        os.utime(sub / f"f{i}.bin", ns=(1_600_000_000_123_456_789 + i, 1_600_000_000_987_654_321 + i))
    os.symlink("d0/e0/f0.bin", root / "link")
    os.symlink("nowhere", root / "dangling")
    os.link(root / "d1/e1/f1.bin", root / "hard")
    (root / "empty").mkdir()


def diff(a: Path, b: Path) -> None:
    r = subprocess.run(["diff", "-r", "--no-dereference", str(a), str(b)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


# ---- host tools ----------------------------------------------------------------------------------
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


def test_fusermount_u_and_sigterm_end_the_daemon(tmp_path: Path) -> None:
    m = start_mount(tmp_path / "a", "-t", "tmpfs", "none")
    try:
        subprocess.run(["fusermount3", "-u", str(m.path)], check=True)
        assert m.proc.wait(timeout=30) == 0
    finally:
        stop(m)
    m = start_mount(tmp_path / "b", "-t", "tmpfs", "none")
    try:
        m.proc.send_signal(signal.SIGTERM)
        assert m.proc.wait(timeout=30) == 0
        assert not os.path.ismount(m.path)
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
