"""The mount daemon's life: serve FUSE until unmounted or signalled, then sync and halt the kernel.

rump_server and puffs servers detach once ready and leave a way to find them; here each running
mount holds an exclusive ``flock`` on a file of its own in a run directory (``RunDir``), named
after the mount point. ``p2k umount`` unmounts with fusermount3 and then waits for that lock to be
released, which happens only after the daemon has synced everything and halted its kernel — so
when ``p2k umount`` returns the image is clean. A plain ``fusermount3 -u`` ends the daemon the same
way (the FUSE session closes, the daemon syncs and exits); SIGINT, SIGTERM and SIGHUP unmount
first. SIGUSR1 writes the kernel's counters (``k.stats()`` plus the bridge's) as JSON to the stats
file: ``$P2K_STATS_FILE``, else ``<run dir>/mount-<hash>.stats``.

A background syncer writes dirty buffers back every ``SYNC_INTERVAL`` seconds so that a daemon
that dies loses little and leaves an image ``p2k fsck -y`` can repair.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

from p2k.hyper.console import console
from p2k.puffs.bridge import Bridge

try:  # the interpreter's own SHA-1: hashlib would load OpenSSL's libcrypto, 3.5 MiB of the daemon
    from _sha1 import sha1  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - an interpreter built without it
    from hashlib import sha1
from p2k.puffs.port import KernelPort

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from typing import Any

log = console("p2k.puffs")

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1)
"""What a daemon answers: SIGUSR1 writes the statistics, the others unmount and end it."""


def start_unsignalled(t: threading.Thread) -> None:
    """Start ``t`` with ``SIGNALS`` blocked (a thread inherits the mask of the one that starts
    it), so that they always go to the main thread. CPython runs a handler only once the main
    thread is back in Python code; a signal taken by another thread leaves the main thread
    asleep in whatever it was waiting for."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        t.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)

SYNC_INTERVAL = 10.0
TRANSPORTS = {"devfuse": "p2k.puffs.devfuse", "pyfuse3": "p2k.puffs.pyfuse3ops"}


class RunDir:
    """The directory where running mounts register themselves (one lock file per mount point)."""

    def __init__(self, base: str | None = None) -> None:
        if base is None:
            base = os.environ.get("P2K_RUNDIR")
        if base is None:
            if os.geteuid() == 0:
                base = "/run/p2k" if os.path.isdir("/run") else f"/tmp/p2k-{os.geteuid()}"
            else:
                xdg = os.environ.get("XDG_RUNTIME_DIR")
                base = os.path.join(xdg, "p2k") if xdg else f"/tmp/p2k-{os.geteuid()}"
        self.base = base  # a str, not a Path: pathlib costs the daemon 0.8 MiB of resident size

    def path(self, mountpoint: str, suffix: str = "lock") -> str:
        key = sha1(os.path.realpath(mountpoint).encode("utf-8", "surrogateescape")).hexdigest()[:16]
        return os.path.join(self.base, f"mount-{key}.{suffix}")

    def claim(self, mountpoint: str) -> int:
        """Take the mount point's lock for this process; EBUSY if a live daemon holds it."""
        os.makedirs(self.base, mode=0o700, exist_ok=True)
        fd = os.open(self.path(mountpoint), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OSError(errno.EBUSY, "a p2k daemon already serves this mount point", mountpoint) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n{os.path.realpath(mountpoint)}\n".encode())
        return fd

    def owner(self, mountpoint: str) -> int | None:
        """The pid of the live daemon serving ``mountpoint``, or None."""
        try:
            fd = os.open(self.path(mountpoint), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.pread(fd, 4096, 0).decode(errors="replace")
                return int(text.split()[0]) if text.split() else None
            return None  # nobody holds it: the daemon is gone
        finally:
            os.close(fd)

    def wait_released(self, mountpoint: str, timeout: float) -> bool:
        """Wait until no daemon holds the lock of ``mountpoint``; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.owner(mountpoint) is not None:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True


class MountDaemon:
    """Serves one kernel's mounted tree at a host mount point: ``kernel_path`` in ``kernel`` (this
    process's kernel, halted when the daemon ends), or whatever ``make_port`` returns (a server's
    tree: then ``kernel`` is None, and ending the daemon releases the connection, not the server).
    The port is made inside ``run`` so that a failure to make it still halts the kernel.
    ``transport`` is ``devfuse`` (the direct /dev/fuse loop, devfuse.py) or ``pyfuse3``."""

    sync_interval = SYNC_INTERVAL

    def __init__(self, kernel: Any, kernel_path: str, mountpoint: str, fuse_options: set[str], *,
                 rundir: RunDir | None = None, stats_file: str | None = None, attr_timeout: float = 1.0,
                 make_port: Callable[[], KernelPort] | None = None, transport: str = "devfuse",
                 busy_poll_us: int | None = None) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, not {transport!r}")
        self.kernel = kernel
        self.make_port = make_port
        self.kernel_path = kernel_path
        self.mountpoint = os.path.abspath(mountpoint)
        self.fuse_options = fuse_options
        self.rundir = rundir or RunDir()
        self.stats_file = stats_file or os.environ.get("P2K_STATS_FILE") or self.rundir.path(self.mountpoint, "stats")
        self.attr_timeout = attr_timeout
        self.transport = transport
        self.busy_poll_us = busy_poll_us  # devfuse only, None: its default (busypoll.BUSY_POLL_US)
        self.signalled = False
        self.mounted = False
        self.bridge: Bridge | None = None
        self.ready: Callable[[], None] = lambda: None

    def run(self, on_ready: Callable[[], None]) -> None:
        """Mount, call ``on_ready``, serve until unmounted or signalled; then sync and halt.
        The kernel is halted whatever happens, so the image is left as clean as it can be."""
        lockfd = self.rundir.claim(self.mountpoint)
        self.ready = on_ready
        try:
            port = self.make_port() if self.make_port is not None else None
            self.bridge = Bridge(self.kernel, self.kernel_path, attr_timeout=self.attr_timeout, port=port)
            __import__(TRANSPORTS[self.transport])  # not importlib's: its package imports warnings
            serve = sys.modules[TRANSPORTS[self.transport]].serve
            serve(self.bridge, self.mountpoint, self.fuse_options, self)
        finally:
            if self.bridge is not None:
                self.bridge.close()
            if self.kernel is not None:
                self.kernel.halt()
            try:  # not contextlib.suppress: the daemon's modules keep contextlib out (p2k.hints says why)
                os.unlink(self.rundir.path(self.mountpoint))
            except OSError:
                pass
            os.close(lockfd)

    def on_signal(self, sig: int) -> bool:
        """A signal reached the transport's loop: SIGUSR1 writes the statistics (in a thread of
        its own, the loop may be inside the kernel); True for the others: unmount and end."""
        if sig == signal.SIGUSR1:
            start_unsignalled(threading.Thread(target=self.write_stats, name="p2k-stats"))
            return False
        log.info("signal %d: unmounting %s", sig, self.mountpoint)
        self.signalled = True
        return True

    def sync_once(self) -> None:
        """The periodic write-back (run in a thread by the transport every ``sync_interval``)."""
        assert self.bridge is not None
        try:
            self.bridge.sync()
        except OSError as e:
            log.error("periodic sync failed: %s", e)

    def stats(self) -> dict[str, int]:
        out = dict(self.kernel.stats()) if self.kernel is not None else {}
        if self.bridge is not None:
            out.update(self.bridge.stats())
        return out

    def write_stats(self) -> None:
        import json  # written at unmount and on request: not worth the daemon's start-up

        tmp = f"{self.stats_file}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(self.stats(), f)
        os.replace(tmp, self.stats_file)
