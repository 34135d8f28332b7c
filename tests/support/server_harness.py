"""Real server processes for the server tests: start ``rump_server`` as a user would, find it, stop it.

Servers are started through the same entry points as the console scripts (``main_server``), in a
fresh interpreter, so the tests exercise option parsing, detaching and signal handling for real.
Every server a test starts is killed afterwards if it is still there, by its own pid.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2k.client import Client, connect

ENTRY = {
    "rump_server": "from p2k.cli.server import main_server as m",
    "rump_allserver": "from p2k.cli.server import main_allserver as m",
    "rump.halt": "from p2k.cli.halt import main as m",
    "rump.sysctl": "from p2k.cli.sysctl import main as m",
    "p2k": "from p2k.cli.main import main as m",
    # fsck alone, so that another subcommand being broken in the tree cannot hide its verdict.
    "p2k fsck": ("import argparse, p2k.cli.fsck as f; a = argparse.ArgumentParser(); f.register(a.add_subparsers());"
                 " m = lambda: (lambda ns: ns.func(ns))(a.parse_args(['fsck', *sys.argv[1:]]))"),
}


def command(prog: str, *args: str) -> list[str]:
    """argv running ``prog`` with ``args`` in a fresh interpreter."""
    return [sys.executable, "-c", f"import sys; {ENTRY[prog]}; sys.exit(m())", *args]


def run(prog: str, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(command(prog, *args), env=full_env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (our own child, not yet reaped) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return False


def wait_gone(pid: int, timeout: float = 20) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    return False


class ServerProc:
    """A running server: its URL, pid and working directory."""

    def __init__(self, url: str, pid: int, cwd: Path, popen: subprocess.Popen[bytes] | None = None,
                 log: Path | None = None) -> None:
        self.url = url
        self.pid = pid
        self.cwd = cwd
        self.popen = popen
        self.log = log

    def connect(self, **kwargs: object) -> Client:
        return connect(self.url, **kwargs)  # type: ignore[arg-type]

    def halt(self, *flags: str) -> subprocess.CompletedProcess[str]:
        return run("rump.halt", *flags, env={"RUMP_SERVER": self.url}, cwd=self.cwd)

    def kill(self) -> None:
        if pid_alive(self.pid):
            os.kill(self.pid, signal.SIGKILL)
        if self.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(5)


def start(cwd: Path, url: str, *args: str, prog: str = "rump_server", foreground: bool = False) -> ServerProc:
    """Start a server the way a script would; returns once the URL accepts connections."""
    if not foreground:
        r = run(prog, *args, url, cwd=cwd)
        assert r.returncode == 0, f"{prog} failed: {r.stderr}"
        with connect(_abs_url(url, cwd)) as c:  # detached: the URL must work right away
            pid = c.stats()["pid"]
        return ServerProc(_abs_url(url, cwd), pid, cwd)
    log = cwd / f"server-{time.monotonic_ns()}.log"
    with open(log, "wb") as lf:
        p = subprocess.Popen(command(prog, "-s", *args, url), cwd=cwd, stdout=lf, stderr=lf)
    end = time.monotonic() + 30
    while True:
        try:
            with connect(_abs_url(url, cwd), timeout=5):
                break
        except OSError:
            if p.poll() is not None or time.monotonic() > end:
                raise AssertionError(f"server did not come up: {log.read_text()}") from None
            time.sleep(0.05)
    return ServerProc(_abs_url(url, cwd), p.pid, cwd, p, log)


def _abs_url(url: str, cwd: Path) -> str:
    if url.startswith("unix://") and not url.startswith("unix:///"):
        return "unix://" + str(cwd / url[len("unix://"):])
    return url


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[ServerProc]]:
    """A list the test appends its servers to; all are killed at the end if still running."""
    started: list[ServerProc] = []
    try:
        yield started
    finally:
        for s in started:
            s.kill()


@pytest.fixture
def server(tmp_path: Path, servers: list[ServerProc]) -> ServerProc:
    """A detached rump_server on a relative unix socket, with a tmpfs mounted on /mnt."""
    s = start(tmp_path, "unix://sock")
    servers.append(s)
    with s.connect() as c:
        c.sys.mkdir("/mnt", 0o755)
        c.sys.mount("tmpfs", "/mnt")
    return s


def make_ffs_image(img: Path, size_mib: int = 64) -> str | None:
    """Make an empty FFS image: ``p2k newfs`` when it exists, else NetBSD's makefs(8) with room for
    inodes. Returns why neither works, or None."""
    r = run("p2k", "newfs", "-s", f"{size_mib}m", str(img))
    if r.returncode == 0 and img.exists():
        return None
    if shutil.which("makefs") is None:
        return f"neither p2k newfs nor makefs available ({(r.stderr.strip().splitlines() or ['?'])[-1]})"
    empty = img.parent / f"{img.name}.empty"
    empty.mkdir(exist_ok=True)
    m = subprocess.run(["makefs", "-t", "ffs", "-B", "le", "-o", "version=2,bsize=16384,fsize=2048",
                        "-s", f"{size_mib}m", "-f", "4000", str(img), str(empty)], capture_output=True, text=True)
    return None if m.returncode == 0 else f"makefs failed: {m.stderr.strip()}"


def ffs_rw_unavailable(tmp_path: Path) -> str | None:
    """Why an FFS image cannot be made and written yet (None once it can)."""
    img = tmp_path / "probe.img"
    reason = make_ffs_image(img, 8)
    if reason:
        return reason
    import p2k

    k = p2k.Kernel(env={})
    try:
        k.etfs_register("/dev/probe", str(img), p2k.ETFS_BLK)
        k.sys.mkdir("/mnt", 0o755)
        k.sys.mount("ffs", "/mnt", 0, {"fspec": "/dev/probe"})
        fd = k.sys.open("/mnt/probe", os.O_WRONLY | os.O_CREAT, 0o644)
        k.sys.write(fd, b"x")
        k.sys.close(fd)
    except OSError as e:
        return f"FFS is not writable yet ({e})"
    finally:
        k.halt(sync=False)
    img.unlink()
    return None
