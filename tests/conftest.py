"""Fixtures shared by the test modules: kernels that are halted afterwards, and a tmpfs mount."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

import p2k

# CI is deterministic: every property and fuzz test replays the same examples, so a red run means a
# change broke something, not that the dice found an old bug. P2K_FULL=1 explores at random.
settings.register_profile("p2k-ci", derandomize=True, database=None)
settings.register_profile("p2k-explore", derandomize=False)
settings.load_profile("p2k-explore" if os.environ.get("P2K_FULL") == "1" else "p2k-ci")


@pytest.fixture
def kernel() -> Iterator[p2k.Kernel]:
    """A fresh kernel with default parameters, independent of the RUMP_* environment."""
    k = p2k.Kernel(env={})
    try:
        yield k
    finally:
        k.halt(sync=False)


@pytest.fixture
def tmpfs(kernel: p2k.Kernel) -> p2k.Kernel:
    """``kernel`` with a tmpfs mounted on ``/mnt``."""
    kernel.sys.mkdir("/mnt", 0o755)
    kernel.sys.mount("tmpfs", "/mnt")
    return kernel


def errno_of(fn, *args, **kwargs) -> int:  # type: ignore[no-untyped-def]
    """The errno ``fn(*args)`` fails with; fails the test if the call succeeds."""
    try:
        fn(*args, **kwargs)
    except OSError as e:
        return e.errno
    raise AssertionError(f"{getattr(fn, '__name__', fn)}{args} succeeded")


def write_file(k: p2k.Kernel, path: str, data: bytes, mode: int = 0o644) -> None:
    fd = k.sys.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        assert k.sys.write(fd, data) == len(data)
    finally:
        k.sys.close(fd)


def read_file(k: p2k.Kernel, path: str) -> bytes:
    fd = k.sys.open(path, os.O_RDONLY)
    try:
        out = []
        while chunk := k.sys.read(fd, 1 << 20):
            out.append(chunk)
        return b"".join(out)
    finally:
        k.sys.close(fd)
