"""Python file objects over a kernel's file descriptors.

``open_image`` paths and the fsspec file system both hand out ordinary ``io`` objects, so that
``TextIOWrapper``, ``csv``, pandas and ``shutil.copyfileobj`` work on files inside an image. The
raw layer keeps its own offset and uses ``pread``/``pwrite``, so one descriptor is not disturbed by
another reader of the same kernel, and ``io``'s buffering sits on top as it does for host files.
"""

from __future__ import annotations

import io
import os
from typing import IO, Any

_FLAGS = {
    "r": os.O_RDONLY,
    "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
    "x": os.O_WRONLY | os.O_CREAT | os.O_EXCL,
}


class KernelRawFile(io.RawIOBase):
    """An unbuffered binary file on a kernel descriptor (``sys`` is ``k.sys`` or a client's)."""

    def __init__(self, sys: Any, path: str, flags: int, perm: int = 0o644, name: str | None = None) -> None:
        super().__init__()
        self.sys = sys
        self.fd = sys.open(path, flags, perm)
        self.name = name or path
        self._flags = flags
        self._pos = sys.fstat(self.fd).st_size if flags & os.O_APPEND else 0

    def readable(self) -> bool:
        return (self._flags & os.O_ACCMODE) in (os.O_RDONLY, os.O_RDWR)

    def writable(self) -> bool:
        return (self._flags & os.O_ACCMODE) in (os.O_WRONLY, os.O_RDWR)

    def seekable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        view = memoryview(buf).cast("B")
        data = self.sys.pread(self.fd, len(view), self._pos)
        view[:len(data)] = data
        self._pos += len(data)
        return len(data)

    def write(self, data: Any) -> int:
        payload = bytes(data)
        if self._flags & os.O_APPEND:
            self._pos = self.sys.fstat(self.fd).st_size
        n = self.sys.pwrite(self.fd, payload, self._pos)
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self.sys.fstat(self.fd).st_size + offset
        else:
            raise ValueError(f"invalid whence ({whence})")
        if pos < 0:
            raise OSError(22, "negative seek position")
        self._pos = pos
        return pos

    def tell(self) -> int:
        return self._pos

    def truncate(self, size: int | None = None) -> int:
        size = self._pos if size is None else size
        self.sys.ftruncate(self.fd, size)
        return size

    @property
    def size(self) -> int:
        return self.sys.fstat(self.fd).st_size

    def close(self) -> None:
        if not self.closed:
            try:
                self.sys.close(self.fd)
            finally:
                super().close()


def open_kernel_file(sys: Any, path: str, mode: str = "rb", *, encoding: str | None = None,
                     perm: int = 0o644, name: str | None = None) -> IO[Any]:
    """``open()`` for a kernel path: the modes of the built-in (``r w a x``, ``b``, ``+``)."""
    kinds = set(mode) & set("rwax")
    if len(kinds) != 1 or set(mode) - set("rwaxbt+"):
        raise ValueError(f"invalid mode: {mode!r}")
    flags = _FLAGS[kinds.pop()]
    if "+" in mode:
        flags = (flags & ~os.O_ACCMODE) | os.O_RDWR
    raw = KernelRawFile(sys, path, flags, perm, name)
    buffered: io.BufferedIOBase
    if "+" in mode:
        buffered = io.BufferedRandom(raw)
    elif raw.writable():
        buffered = io.BufferedWriter(raw)
    else:
        buffered = io.BufferedReader(raw)
    if "b" in mode:
        return buffered
    return io.TextIOWrapper(buffered, encoding=encoding or "utf-8")
