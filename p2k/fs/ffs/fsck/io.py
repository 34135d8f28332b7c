"""Raw block access for fsck: reads through a small cache, writes only when repairing.

fsck does not go through the buffer cache of a mounted file system: it reads metadata straight from
the device (a ``p2k.etfs.Device``) and writes back exactly what it repairs. ``-n`` opens the device
read-only, and ``write`` refuses before touching it, so a check that is not allowed to repair
cannot change a byte of the image.
"""

from __future__ import annotations

import errno
from collections import OrderedDict

from p2k.etfs import Device

CACHE_BLOCKS = 256


class FsckIO:
    """Byte-addressed device I/O with an LRU of recently read metadata blocks."""

    def __init__(self, device: Device, readonly: bool) -> None:
        self.device = device
        self.readonly = readonly or device.readonly
        self.size = device.size
        self.modified = False
        self._cache: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self.reads = 0

    def read(self, off: int, n: int) -> bytes:
        """Uncached read (inode tables, cg blocks: each read once per phase)."""
        self.reads += 1
        if off < 0 or off + n > self.size:
            raise OSError(errno.EIO, f"read of {n} bytes at {off} outside the device ({self.size})")
        return self.device.pread(off, n)

    def bread(self, off: int, n: int) -> bytes:
        """Cached read of a metadata block (indirect and directory blocks)."""
        key = (off, n)
        data = self._cache.get(key)
        if data is not None:
            self._cache.move_to_end(key)
            return data
        data = self.read(off, n)
        self._cache[key] = data
        if len(self._cache) > CACHE_BLOCKS:
            self._cache.popitem(last=False)
        return data

    def write(self, off: int, data: bytes | bytearray) -> None:
        """Write repaired metadata; EROFS when the check may not write (-n)."""
        if self.readonly:
            raise OSError(errno.EROFS, "fsck: write attempted on a read-only check")
        self.device.pwrite(off, bytes(data))
        self.modified = True
        if self._cache:
            end = off + len(data)
            for key in [k for k in self._cache if k[0] < end and off < k[0] + k[1]]:
                del self._cache[key]

    def invalidate(self) -> None:
        """Forget cached blocks (the device's contents changed under us: a journal replay)."""
        self._cache.clear()

    def flush(self) -> None:
        if not self.readonly:
            self.device.fsync()
