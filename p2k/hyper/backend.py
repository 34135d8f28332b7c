"""Host backends: where an image's bytes come from, behind one small interface.

Everything above ``p2k.hyper`` sees an image as a ``Backend`` — a flat run of bytes with a size, a
read-only flag, ``pread``/``pwrite`` at byte offsets, ``flush`` and ``close`` — and never learns
whether the bytes sit in a raw host file, inside a qcow2 or an xz stream, or behind a Python
file-like object (an fsspec remote file). A ``Window`` then confines I/O to ``[offset, offset +
size)`` of a backend: that is the one place where the bound check lives, so nothing above — a
corrupt block pointer, a hostile remote request, a partition map that lies — can reach bytes of the
image outside the window it was given.

To add a backend, subclass ``Backend`` and implement ``size``, ``pread`` and, if it can write,
``pwrite``/``flush``; ``FileObjBackend`` already adapts any seekable binary file-like object.
"""

from __future__ import annotations

import _thread
import errno
import io
import os
import stat as stat_mod
from abc import ABC, abstractmethod

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import IO

    from p2k.hyper.mem import MemAccount


class Backend(ABC):
    """An image as a flat run of bytes. Reads past ``size()`` return zeros (as a sparse file
    does); a backend that cannot write has ``readonly`` set and ``pwrite`` fails with EROFS."""

    name: str = "?"
    """How messages name the image (its host path, or a description)."""
    kind: str = "raw"
    """What the bytes are stored as: ``raw``, ``qcow2``, ``vmdk``, ``gzip``, ``fileobj``..."""
    readonly: bool = True
    is_regular: bool = False
    """True only for a regular host file, which may be grown to cover a window (rump_server's
    behaviour for a drivespec whose size exceeds the file)."""

    @abstractmethod
    def size(self) -> int:
        """Current size in bytes."""

    @abstractmethod
    def pread(self, off: int, n: int) -> bytes:
        """Up to ``n`` bytes at ``off``; fewer only at the end of the image."""

    def preadinto(self, off: int, buf: memoryview) -> int:
        """Fill ``buf`` from ``off``; returns how many bytes came from the image."""
        data = self.pread(off, len(buf))
        buf[:len(data)] = data
        return len(data)

    def pwrite(self, off: int, data: bytes | bytearray | memoryview) -> None:
        raise OSError(errno.EROFS, f"{self.name} is a {self.kind} image, which p2k reads only")

    def flush(self) -> None:
        """Make written bytes durable (fsync for a host file); nothing to do for a read-only one."""
        return None

    def grow(self, size: int) -> None:
        """Extend to at least ``size`` bytes; only a writable regular file can."""
        raise OSError(errno.EINVAL, f"{self.name}: cannot grow a {self.kind} image")

    def attach_mem(self, mem: MemAccount) -> None:
        """Charge what this backend keeps in memory to ``mem``, a kernel's account, from now until
        ``close``. The backend is opened before the kernel that will use it knows it (the image is
        resolved, partitions and all, first), so the account comes afterwards, when the kernel
        registers it (``p2k.etfs.EtfsRegistry``); a backend nobody attaches (``p2k parts``, fsck)
        keeps to its own fixed caps. ENOMEM when what it holds cannot fit in the limit. A raw
        file holds nothing: the host's page cache is not the kernel's memory."""
        return None

    def close(self) -> None:
        """Release host resources; idempotent."""
        return None


class RawFileBackend(Backend):
    """A raw image in a host file (or a block device): p2k's original and fastest path."""

    kind = "raw"

    def __init__(self, path: str, *, readonly: bool = False, create: bool = False) -> None:
        flags = os.O_RDONLY if readonly else os.O_RDWR
        if create and not readonly:
            flags |= os.O_CREAT
        self.name = path
        self.readonly = readonly
        self.fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o666)
        self.is_regular = stat_mod.S_ISREG(os.fstat(self.fd).st_mode)

    def size(self) -> int:
        if self.is_regular:
            return os.fstat(self.fd).st_size
        # Block devices report 0 in st_size; seeking to the end gives their size.
        return os.lseek(self.fd, 0, os.SEEK_END)

    def pread(self, off: int, n: int) -> bytes:
        return os.pread(self.fd, n, off)

    def preadinto(self, off: int, buf: memoryview) -> int:
        return os.preadv(self.fd, [buf], off)

    def pwrite(self, off: int, data: bytes | bytearray | memoryview) -> None:
        if self.readonly:
            raise OSError(errno.EROFS, f"{self.name} is mapped read-only")
        view = memoryview(data)
        done = 0
        while done < len(view):
            done += os.pwrite(self.fd, view[done:], off + done)

    def flush(self) -> None:
        if not self.readonly:
            os.fsync(self.fd)

    def grow(self, size: int) -> None:
        if self.is_regular and not self.readonly and self.size() < size:
            os.ftruncate(self.fd, size)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class FileObjBackend(Backend):
    """Any seekable binary file-like object as a backend (a container reader, an fsspec file).

    Calls are serialised with a lock, since seek-then-read on one object is not atomic and a
    kernel's threads may read at once. Writes are allowed only when ``readonly`` is False and the
    object is writable.
    """

    def __init__(self, fileobj: IO[bytes], name: str, *, kind: str = "fileobj", readonly: bool = True,
                 size: int | None = None, closers: tuple[object, ...] = (), close_fileobj: bool = True) -> None:
        self.fileobj = fileobj
        self.name = name
        self.kind = kind
        self.readonly = readonly or not _writable(fileobj)
        known = getattr(fileobj, "size", None)  # fsspec files know their size without a seek
        self._size = size if size is not None else known if isinstance(known, int) else None
        self._closers = list(closers or ((fileobj,) if close_fileobj else ()))
        self._lock = _thread.allocate_lock()  # threading.Lock, without importing threading
        self.resident = 0
        """Bytes the decoding library keeps while the image is open (its index, caches and buffers),
        as the opener estimates them (``p2k.hyper.containers`` says how); charged by ``attach_mem``."""
        self.fit: Callable[[int], int] | None = None
        """For a reader that can trade memory for speed: given the bytes it may keep, lowers the
        library's knobs to fit and returns the new ``resident``."""
        self._mem: MemAccount | None = None

    def size(self) -> int:
        if self._size is None:
            with self._lock:
                self._size = self.fileobj.seek(0, io.SEEK_END)
        return self._size

    def pread(self, off: int, n: int) -> bytes:
        n = max(0, min(n, self.size() - off))
        if n == 0:
            return b""
        with self._lock:
            try:
                self.fileobj.seek(off)
                parts = []
                while n > 0:
                    chunk = self.fileobj.read(n)
                    if not chunk:
                        break
                    parts.append(chunk)
                    n -= len(chunk)
            except OSError:
                raise
            except Exception as e:  # a decoder's own error on a damaged container is an I/O error here
                raise OSError(errno.EIO, f"{self.name}: damaged {self.kind} image at byte {off} "
                                         f"({type(e).__name__}: {e})") from None
        return b"".join(parts)

    def pwrite(self, off: int, data: bytes | bytearray | memoryview) -> None:
        if self.readonly:
            super().pwrite(off, data)
        with self._lock:
            self.fileobj.seek(off)
            self.fileobj.write(bytes(data))
            self._size = None

    def flush(self) -> None:
        if not self.readonly:
            with self._lock:
                self.fileobj.flush()

    def add_closer(self, obj: object) -> None:
        """Close ``obj`` too when this backend closes (a backing image, an underlying file)."""
        self._closers.append(obj)

    def attach_mem(self, mem: MemAccount) -> None:
        """Charge ``resident`` once; a backing image among the closers is charged too. What a
        library holds cannot be given back on demand, so it is no reclaimer: when it cannot fit,
        the image is refused (ENOMEM) rather than the limit broken."""
        if self._mem is not None:
            return
        if self.fit is not None and mem.limit is not None:
            from p2k.hyper.libmem import READER_SHARE

            self.resident = self.fit(mem.limit // READER_SHARE)
        if self.resident and not mem.try_charge(self.resident):
            raise OSError(errno.ENOMEM, f"{self.name}: the {self.kind} reader keeps about "
                                        f"{_mib(self.resident)} while the image is open, more than the memory "
                                        f"limit of {_mib(mem.limit or 0)} leaves; raise memlimit")
        self._mem = mem
        for obj in self._closers:
            if isinstance(obj, Backend) and obj is not self:
                obj.attach_mem(mem)

    def close(self) -> None:
        mem, self._mem = self._mem, None
        if mem is not None:
            mem.uncharge(self.resident)
        closers, self._closers = self._closers, []
        for obj in closers:
            close = getattr(obj, "close", None)
            if close is not None:
                close()


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def _writable(fileobj: object) -> bool:
    try:
        return bool(getattr(fileobj, "writable", lambda: False)())
    except (OSError, ValueError):
        return False


class BackendIO(io.RawIOBase):
    """A backend as a read-only Python file object, for libraries that want one (a qcow2's
    backing file may itself be any backend)."""

    def __init__(self, backend: Backend) -> None:
        super().__init__()
        self.backend = backend
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, off: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.backend.size()}[whence]
        self.pos = max(0, base + off)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        view = memoryview(buf).cast("B")
        n = max(0, min(len(view), self.backend.size() - self.pos))
        got = self.backend.preadinto(self.pos, view[:n]) if n else 0
        self.pos += got
        return got


class Window:
    """I/O confined to ``[offset, offset + size)`` of a backend; offsets given to it are
    window-relative. Reads past the backend's end (inside the window) return zeros, as on a
    sparse image. The window owns its backend and closes it."""

    def __init__(self, backend: Backend, *, offset: int = 0, size: int | None = None) -> None:
        if offset < 0:
            backend.close()
            raise OSError(errno.EINVAL, f"{backend.name}: negative offset {offset}")
        self.backend = backend
        self.path = backend.name
        self.readonly = backend.readonly
        self.is_regular = backend.is_regular
        self.offset = offset
        if size is None:
            size = max(backend.size() - offset, 0)
        self.size = size
        self.reads = 0
        self.writes = 0
        self.bytes_read = 0
        self.bytes_written = 0

    def host_size(self) -> int:
        return self.backend.size()

    def extend_to_window(self) -> None:
        """Grow a too-short regular file to cover the window, as rump_server does."""
        end = self.offset + self.size
        if self.is_regular and not self.readonly and self.backend.size() < end:
            self.backend.grow(end)

    def _check(self, off: int, n: int) -> None:
        if off < 0 or n < 0 or off + n > self.size:
            raise OSError(errno.EIO, f"I/O at {off}+{n} outside the {self.size}-byte window of {self.path}")

    def pread(self, off: int, n: int) -> bytes:
        self._check(off, n)
        data = self.backend.pread(self.offset + off, n)
        self.reads += 1
        self.bytes_read += len(data)
        if len(data) < n:
            data += bytes(n - len(data))
        return data

    def preadinto(self, off: int, buf: memoryview) -> None:
        n = len(buf)
        self._check(off, n)
        got = self.backend.preadinto(self.offset + off, buf)
        self.reads += 1
        self.bytes_read += got
        if got < n:
            buf[got:] = bytes(n - got)

    def pwrite(self, off: int, data: bytes | bytearray | memoryview) -> None:
        if self.readonly:
            raise OSError(errno.EROFS, f"{self.path} is mapped read-only")
        n = len(data)
        self._check(off, n)
        self.backend.pwrite(self.offset + off, data)
        self.writes += 1
        self.bytes_written += n

    def fsync(self) -> None:
        if not self.readonly:
            self.backend.flush()

    def close(self) -> None:
        self.backend.close()
