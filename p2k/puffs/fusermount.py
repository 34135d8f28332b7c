"""Mounting through ``fusermount3``, as libfuse does for an unprivileged daemon.

``fusermount3`` opens /dev/fuse, mounts it and passes the descriptor back over a socket named in
``_FUSE_COMMFD``; with ``auto_unmount`` it stays on as the watchdog that unmounts when the daemon
dies. The direct transport (``devfuse.py``) mounts this way; pyfuse3 has libfuse do the same.
"""

from __future__ import annotations

import os
import socket
import time


def _escape(opt: str) -> str:
    return opt.replace("\\", "\\\\").replace(",", "\\,")


class Helper:
    """``fusermount3`` run with ``posix_spawn`` (the subprocess module would add 0.6 MiB to the
    daemon's RSS): stdin and stdout to /dev/null, stderr to a pipe for the reason it failed."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        r, wr = os.pipe()
        actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                   (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0), (os.POSIX_SPAWN_DUP2, wr, 2)]
        try:
            self.pid = os.posix_spawnp("fusermount3", ["fusermount3", *args], env if env is not None else os.environ,
                                       file_actions=actions)
        except OSError as e:
            os.close(r)
            raise RuntimeError(f"cannot run fusermount3: {e.strerror}") from None
        finally:
            os.close(wr)
        self.errfd = r
        self.status: int | None = None

    def errors(self) -> str:
        """What it wrote to stderr (read to its end: only once it has exited or will)."""
        chunks = []
        while chunk := os.read(self.errfd, 4096):
            chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace").strip()

    def wait(self, timeout: float | None = None) -> int | None:
        """Its exit status, or None if it is still running after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.status is None:
            pid, status = os.waitpid(self.pid, 0 if deadline is None else os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
                os.close(self.errfd)
            elif time.monotonic() > deadline:  # type: ignore[operator]
                return None
            else:
                time.sleep(0.01)
        return self.status


def fusermount(mountpoint: str, options: set[str]) -> tuple[int, socket.socket, Helper]:
    """(/dev/fuse descriptor, the socket fusermount3 watches, fusermount3) for a new mount."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    theirs.set_inheritable(True)
    env = dict(os.environ, _FUSE_COMMFD=str(theirs.fileno()))
    opts = ",".join(sorted(_escape(o) for o in options))
    try:
        helper = Helper(["-o", opts, "--", mountpoint], env)
    finally:
        theirs.close()
    try:
        _, fds, _, _ = socket.recv_fds(ours, 1, 1)
    except OSError:
        fds = []
    if not fds:
        err = helper.errors()
        helper.wait()
        ours.close()
        raise RuntimeError(err.removeprefix("fusermount3: ") or "fusermount3 passed no descriptor")
    if "auto_unmount" not in options:
        helper.wait()
    return fds[0], ours, helper


def unmount(mountpoint: str) -> None:
    """A lazy unmount, as libfuse's on a signal: the mount goes now, busy files or not."""
    Helper(["-u", "-z", "--", mountpoint]).wait(timeout=30)
