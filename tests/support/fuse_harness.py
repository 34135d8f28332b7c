"""Real FUSE mounts for tests: start ``p2k mount -f``, wait for it, stop it; the tmpfs/FFS fixtures."""

from __future__ import annotations

import contextlib
import errno
import json
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

P2K = str(Path(sys.executable).with_name("p2k"))
HAVE_FUSE = os.path.exists("/dev/fuse") and shutil.which("fusermount3") is not None
HAVE_MAKEFS = shutil.which("makefs") is not None

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


@contextlib.contextmanager
def mounted(kind: str) -> Iterator[Mount]:
    """A writable mount of ``kind``: "tmpfs", "ffs" (an image), or "remote" (``p2k mount --server``
    exporting the tmpfs of a rump_server, every request sent with its caller's credentials)."""
    # Under /tmp itself, not pytest's private (0700) directory, so that other users can reach it.
    base = Path(tempfile.mkdtemp(prefix=f"p2k-fuse-{kind}-"))
    os.chmod(base, 0o755)
    server = None
    try:
        if kind == "ffs":
            why = ffs_rw_missing()
            if why:
                pytest.skip(why)
            args = ["-t", "ffs", "-o", "allow_other,rw", str(make_ffs(base / "fs.img", size="256m", free_inodes=30000))]
        elif kind == "remote":
            from server_harness import start

            server = start(base, "unix://sock")
            with server.connect() as c:
                c.sys.mkdir("/mnt", 0o755)
                c.sys.mount("tmpfs", "/mnt")
            args = ["-o", "allow_other", "--server", server.url, "/mnt"]
        else:
            args = ["-t", "tmpfs", "-o", "allow_other", "none"]
        m = start_mount(base / "mnt", *args)
        os.chmod(m.path, 0o755)
        try:
            yield m
        finally:
            stop(m)
    finally:
        if server is not None:
            server.kill()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module", params=FS_KINDS)
def fsmount(request: pytest.FixtureRequest) -> Iterator[Mount]:
    """A writable mount shared by a module's tests (each test works in a directory of its own)."""
    with mounted(request.param) as m:
        yield m


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
