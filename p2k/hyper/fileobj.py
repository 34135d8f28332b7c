"""A host backend over a Python file-like object: images that are not host paths.

fsspec hands back file objects for ``memory://``, ``http(s)://``, ``s3://`` and the rest; wrapping
one here lets such an image be registered with etfs and read through the same window check and the
same buffer cache as a host file. It has ``HostFile``'s shape (window-relative ``pread``/``pwrite``,
``fsync``, ``size``, ``readonly``, the I/O counters), so nothing above this layer can tell the two
apart. The file object's own I/O (a socket for http, a bucket for s3) happens inside it, below this
layer, which keeps "only hyper touches the host" true.

A file object has one position, so ``seek`` + ``read`` is one critical section under a lock.
"""

from __future__ import annotations

import errno
import os
import threading
from typing import IO, Any


class FileObjectBackend:
    """A window ``[offset, offset + size)`` of a seekable binary file object."""

    is_regular = True

    def __init__(self, fileobj: IO[bytes] | Any, *, name: str = "<file object>", offset: int = 0,
                 size: int | None = None, readonly: bool = True, close_fileobj: bool = True) -> None:
        if offset < 0:
            raise OSError(errno.EINVAL, f"{name}: negative offset {offset}")
        self.fileobj = fileobj
        self.path = name
        self.readonly = readonly
        self.offset = offset
        self._lock = threading.Lock()
        self._close_fileobj = close_fileobj
        self.size = max(self.host_size() - offset, 0) if size is None else size
        self.reads = 0
        self.writes = 0
        self.bytes_read = 0
        self.bytes_written = 0

    def window(self, offset: int, size: int | None, *, close_fileobj: bool = False) -> FileObjectBackend:
        """Another window on the same file object (a partition of this image), sharing the object
        and its lock; it closes the object only if told to, since the two may live on apart."""
        sub = FileObjectBackend(self.fileobj, name=self.path, offset=self.offset + offset,
                                size=size, readonly=self.readonly, close_fileobj=close_fileobj)
        sub._lock = self._lock
        return sub

    def host_size(self) -> int:
        size = getattr(self.fileobj, "size", None)
        if isinstance(size, int):
            return size
        with self._lock:
            here = self.fileobj.tell()
            end = self.fileobj.seek(0, os.SEEK_END)
            self.fileobj.seek(here)
        return int(end)

    def extend_to_window(self) -> None:
        """Nothing to do: a file object's image is used at the size it has."""

    def _check(self, off: int, n: int) -> None:
        if off < 0 or n < 0 or off + n > self.size:
            raise OSError(errno.EIO, f"I/O at {off}+{n} outside the {self.size}-byte window of {self.path}")

    def pread(self, off: int, n: int) -> bytes:
        self._check(off, n)
        parts: list[bytes] = []
        with self._lock:
            try:
                self.fileobj.seek(self.offset + off)
                got = 0
                while got < n:
                    chunk = self.fileobj.read(n - got)
                    if not chunk:
                        break
                    parts.append(chunk)
                    got += len(chunk)
            except OSError:
                raise
            except Exception as e:
                # A network client's own error (aiohttp, botocore...) is, to the kernel above, a
                # failed read of its disk: EIO, which every layer knows how to report.
                raise OSError(errno.EIO, f"{self.path}: read at byte {self.offset + off} failed "
                                         f"({type(e).__name__}: {e})") from None
        data = b"".join(parts)
        self.reads += 1
        self.bytes_read += len(data)
        if len(data) < n:
            data += bytes(n - len(data))  # past the object's end reads as zeros, as on a sparse image
        return data

    def preadinto(self, off: int, buf: memoryview) -> None:
        buf[:] = self.pread(off, len(buf))

    def pwrite(self, off: int, data: bytes | bytearray | memoryview) -> None:
        if self.readonly:
            raise OSError(errno.EROFS, f"{self.path} is mapped read-only")
        self._check(off, len(data))
        with self._lock:
            self.fileobj.seek(self.offset + off)
            self.fileobj.write(bytes(data))
        self.writes += 1
        self.bytes_written += len(data)

    def fsync(self) -> None:
        if not self.readonly:
            with self._lock:
                self.fileobj.flush()

    def close(self) -> None:
        if self._close_fileobj and self.fileobj is not None:
            self.fileobj.close()
        self.fileobj = None
