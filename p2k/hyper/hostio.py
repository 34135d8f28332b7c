"""Host file I/O at byte offsets, confined to a window of the host file.

This is the only place that reads or writes host files. The window check lives here, at the
lowest level, so that no bug above (a corrupt block pointer, a hostile remote request) can reach
bytes of the host file outside ``[offset, offset + size)``.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod


class HostFile:
    """An open host file seen through a window; offsets given to it are window-relative."""

    def __init__(self, path: str, *, offset: int = 0, size: int | None = None, readonly: bool = False,
                 create: bool = False) -> None:
        flags = os.O_RDONLY if readonly else os.O_RDWR
        if create and not readonly:
            flags |= os.O_CREAT
        flags |= getattr(os, "O_CLOEXEC", 0)
        self.path = path
        self.readonly = readonly
        self.fd = os.open(path, flags, 0o666)
        st = os.fstat(self.fd)
        self.is_regular = stat_mod.S_ISREG(st.st_mode)
        if offset < 0:
            os.close(self.fd)
            raise OSError(errno.EINVAL, f"{path}: negative offset {offset}")
        self.offset = offset
        if size is None:
            host_size = self.host_size()
            size = max(host_size - offset, 0)
        self.size = size
        self.reads = 0
        self.writes = 0
        self.bytes_read = 0
        self.bytes_written = 0

    def host_size(self) -> int:
        st = os.fstat(self.fd)
        if self.is_regular:
            return st.st_size
        # Block devices report 0 in st_size; seeking to the end gives their size.
        return os.lseek(self.fd, 0, os.SEEK_END)

    def extend_to_window(self) -> None:
        """Grow a too-short regular file to cover the window, as rump_server does."""
        end = self.offset + self.size
        if self.is_regular and not self.readonly and self.host_size() < end:
            os.ftruncate(self.fd, end)

    def _check(self, off: int, n: int) -> None:
        if off < 0 or n < 0 or off + n > self.size:
            raise OSError(errno.EIO, f"I/O at {off}+{n} outside the {self.size}-byte window of {self.path}")

    def pread(self, off: int, n: int) -> bytes:
        self._check(off, n)
        data = os.pread(self.fd, n, self.offset + off)
        self.reads += 1
        self.bytes_read += len(data)
        if len(data) < n:
            # Past the host file's end reads as zeros, as on a sparse image.
            data += bytes(n - len(data))
        return data

    def preadinto(self, off: int, buf: memoryview) -> None:
        n = len(buf)
        self._check(off, n)
        got = os.preadv(self.fd, [buf], self.offset + off)
        self.reads += 1
        self.bytes_read += got
        if got < n:
            buf[got:] = bytes(n - got)

    def pwrite(self, off: int, data: bytes | bytearray | memoryview) -> None:
        if self.readonly:
            raise OSError(errno.EROFS, f"{self.path} is mapped read-only")
        n = len(data)
        self._check(off, n)
        done = 0
        view = memoryview(data)
        while done < n:
            done += os.pwrite(self.fd, view[done:], self.offset + off + done)
        self.writes += 1
        self.bytes_written += n

    def fsync(self) -> None:
        if not self.readonly:
            os.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def create_host_file(path: str, mode: int = 0o644) -> None:
    """Create ``path`` as an empty regular file if it does not exist; leave an existing one alone.

    rump_server creates a missing drive image with mode 0644; going through ``O_CREAT`` (rather than
    a chmod afterwards) lets the kernel apply the process umask, exactly as the C open(2) does.
    ``O_RDWR`` is asked for, as rump_server does, so that an existing image the user cannot write
    fails here with EACCES instead of later, in the middle of a mount.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), mode)
    os.close(fd)


def host_path_exists(path: str) -> bool:
    """Whether ``path`` names something on the host (following symlinks)."""
    return os.path.exists(path)
