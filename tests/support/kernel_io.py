"""Small kernel file helpers the syscall tests share."""

from __future__ import annotations

import os

import p2k


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
    from p2k.kfile import open_kernel_file

    with open_kernel_file(k.sys, path, "rb") as f:
        return f.read()  # type: ignore[no-any-return]
