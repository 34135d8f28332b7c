"""A registered host file seen as a device: rump_etfs(3)'s node plus rumpblk's I/O path.

All I/O goes through a ``p2k.hyper.Window`` opened on the device's window, so the bound check
happens at the lowest level: whatever a file system above asks, nothing outside
``[offset, offset + size)`` of the host file can be read or written.
"""

from __future__ import annotations

import _thread
import errno
import sys

from p2k.hyper import Window

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from p2k.etfs.fault import FaultInjector, FaultPlan

ETFS_REG = 0
ETFS_BLK = 1
ETFS_CHR = 2
"""The values of NetBSD's ``enum rump_etfs_type`` (RUMP_ETFS_DIR 3 and DIR_SUBDIRS 4 are not
provided: p2k exposes host files, not host directories)."""

ETFS_TYPE_NAMES = {ETFS_REG: "reg", ETFS_BLK: "blk", ETFS_CHR: "chr"}

_dev_ids = iter(range(1, sys.maxsize))  # itertools.count(1), as p2k.vfs.lwproc's pids are


class Device:
    """One registration. ``opencount`` counts users (mounts, open descriptors); while it is
    positive the registry refuses to remove the device, which is the promise rump_etfs(3) leaves to
    the caller ("caller's responsibility to make sure it's not in use") made into a check."""

    def __init__(self, key: str, hostpath: str, type: int, host: Window) -> None:
        self.dev_id = next(_dev_ids)
        self.key = key
        self.type = type
        self.hostpath = hostpath
        self.offset = host.offset
        self.size = host.size
        self.readonly = host.readonly
        self.opencount = 0
        self._host: Window | None = host
        self._lock = _thread.allocate_lock()  # threading.Lock, without importing threading
        self._final_stats = (0, 0, 0, 0)
        self.faults: FaultInjector | None = None

    def __repr__(self) -> str:
        ro = ", ro" if self.readonly else ""
        return (f"Device({self.key!r}, {self.hostpath!r}, {ETFS_TYPE_NAMES[self.type]}, "
                f"offset={self.offset}, size={self.size}{ro}, opencount={self.opencount})")

    @property
    def closed(self) -> bool:
        return self._host is None

    def _hostfile(self) -> Window:
        host = self._host
        if host is None:
            # What a driver sees when its device has been removed under it: NetBSD's vdevgone.
            raise OSError(errno.ENXIO, f"{self.key}: device not configured")
        return host

    def acquire(self) -> None:
        """Take a use reference (a mount, an open descriptor); ENXIO once the device is gone."""
        with self._lock:
            self._hostfile()
            self.opencount += 1

    def release(self) -> None:
        with self._lock:
            if self.opencount <= 0:
                raise OSError(errno.EINVAL, f"{self.key}: release without acquire")
            self.opencount -= 1

    def set_faults(self, plan: FaultPlan | None) -> FaultInjector | None:
        """Put a fault plan between this device and its host file (None removes it)."""
        from p2k.etfs.fault import FaultInjector  # only a test or a drivespec with fault options gets here

        with self._lock:
            self.faults = FaultInjector(self._hostfile(), plan) if plan is not None and plan.active else None
            return self.faults

    def pread(self, off: int, n: int) -> bytes:
        """Read ``n`` bytes at device offset ``off``; EIO if any of them lies outside the window."""
        if self.faults is not None:
            return self.faults.pread(off, n)
        return self._hostfile().pread(off, n)

    def preadinto(self, off: int, buf: memoryview) -> None:
        if self.faults is not None:
            buf[:] = self.faults.pread(off, len(buf))
            return
        self._hostfile().preadinto(off, buf)

    def pwrite(self, off: int, data: bytes | bytearray | memoryview) -> None:
        """Write at device offset ``off``; EROFS on a read-only device, EIO outside the window."""
        if self.faults is not None:
            self._hostfile()
            self.faults.pwrite(off, data)
            return
        self._hostfile().pwrite(off, data)

    def fsync(self) -> None:
        if self.faults is not None:
            self._hostfile()
            self.faults.fsync()
            return
        self._hostfile().fsync()

    def close_if_idle(self) -> bool:
        """Close unless in use, atomically with respect to ``acquire``; False if it is in use."""
        with self._lock:
            if self.opencount > 0:
                return False
            host, self._host = self._host, None
        if host is not None:
            self._retire(host)
        return True

    def _retire(self, host: Window) -> None:
        self._final_stats = (host.reads, host.writes, host.bytes_read, host.bytes_written)
        host.close()

    def close(self) -> None:
        """Close the host file; later I/O fails with ENXIO. The registry calls this on remove."""
        with self._lock:
            host, self._host = self._host, None
        if host is not None:
            self._retire(host)

    def _stat(self, index: int) -> int:
        host = self._host
        if host is None:
            return self._final_stats[index]
        return (host.reads, host.writes, host.bytes_read, host.bytes_written)[index]

    @property
    def reads(self) -> int:
        return self._stat(0)

    @property
    def writes(self) -> int:
        return self._stat(1)

    @property
    def bytes_read(self) -> int:
        return self._stat(2)

    @property
    def bytes_written(self) -> int:
        return self._stat(3)
