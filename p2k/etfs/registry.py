"""The etfs table: device keys in the kernel's namespace mapped to windows of host files.

This is rump_etfs(3) (``rump_pub_etfs_register``, ``_register_withsize``, ``_remove``) with the
checks of NetBSD's ``etfsregister``: the key must be absolute, repeated leading slashes count as one,
the window must lie inside the host file as it is now, and a key can be registered once.
rump_server's creation and extension of image files is not done here but in ``DriveSpec.register``,
because a plain registration in NetBSD does neither.
"""

from __future__ import annotations

import _thread
import errno

from p2k.etfs.device import ETFS_BLK, ETFS_CHR, ETFS_REG, Device
from p2k.hyper import Backend, HostFile, Window

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from p2k.hyper import MemAccount

_ETFS_TYPES = (ETFS_REG, ETFS_BLK, ETFS_CHR)
_READONLY_FALLBACK = (errno.EACCES, errno.EPERM, errno.EROFS)


def normalize_key(key: str) -> str:
    """``//dev/dk`` → ``/dev/dk``; EINVAL for a key that is not absolute.

    NetBSD strips every leading slash before storing a key; keeping exactly one gives the same
    equality while the key still reads as the path a user types.
    """
    if not key.startswith("/"):
        raise OSError(errno.EINVAL, f"etfs key {key!r} must begin with /")
    stripped = key.lstrip("/")
    if not stripped:
        raise OSError(errno.EINVAL, f"etfs key {key!r} names the root directory")
    return "/" + stripped


class EtfsRegistry:
    """One kernel's etfs table. Thread-safe: registration, removal and lookup take a lock.

    ``mem`` is the kernel's memory account: each registered backend is attached to it, so what a
    container's reader keeps (qcow2 L2 tables, a gzip index) counts toward RUMP_MEMLIMIT beside the
    buffer cache. A table without a kernel (fsck, dumpfs) has none, and the readers keep to their
    own fixed caps."""

    def __init__(self, mem: MemAccount | None = None) -> None:
        self.mem = mem
        self._devices: dict[str, Device] = {}
        self._lock = _thread.allocate_lock()  # threading.Lock, without importing threading

    def register(self, key: str, hostpath: str | Backend, type: int, size: int | None = None, offset: int = 0,
                 readonly: bool = False) -> Device:
        """Map ``[offset, offset + size)`` of ``hostpath`` as ``key``; ``size=None`` means up to EOF.

        ``hostpath`` may instead be an open ``Backend`` (a container, a file-like object), which the
        device then owns; ``readonly`` cannot make it writable.

        Errors (``OSError``): EINVAL for a relative key, an unknown type, a negative offset or size,
        or a window reaching past the host file's end (NetBSD refuses those at registration; grow
        the file first, as ``DriveSpec.register`` does); the host's errno if the file cannot be
        opened; EEXIST if the key is taken. A host file that may only be read is opened read-only
        and the device marked ``readonly``, so that a read-only image can be registered, as in
        NetBSD (which opens lazily); mounting such a device read-write is the driver's EROFS.
        """
        norm = normalize_key(key)
        if type not in _ETFS_TYPES:
            raise OSError(errno.EINVAL, f"{norm}: invalid etfs type {type}")
        if offset < 0 or (size is not None and size < 0):
            raise OSError(errno.EINVAL, f"{norm}: negative offset or size")
        host = self._open(hostpath, offset, size, readonly)
        try:
            fsize = host.host_size()
            if offset > fsize or offset + host.size > fsize:
                raise OSError(errno.EINVAL, f"{norm}: window [{offset}, {offset + host.size}) is not inside "
                                            f"{host.path} ({fsize} bytes)")
            if self.mem is not None:
                host.backend.attach_mem(self.mem)
            device = Device(norm, host.path, type, host)
            with self._lock:
                if norm in self._devices:
                    raise OSError(errno.EEXIST, f"{norm}: etfs key already registered")
                self._devices[norm] = device
        except BaseException:
            host.close()
            raise
        return device

    @staticmethod
    def _open(hostpath: str | Backend, offset: int, size: int | None, readonly: bool) -> Window:
        if isinstance(hostpath, Backend):
            if readonly:
                hostpath.readonly = True
            return Window(hostpath, offset=offset, size=size)
        try:
            return HostFile(hostpath, offset=offset, size=size, readonly=readonly)
        except OSError as e:
            if readonly or e.errno not in _READONLY_FALLBACK:
                raise
        return HostFile(hostpath, offset=offset, size=size, readonly=True)

    def remove(self, key: str) -> None:
        """Unregister ``key`` and close its host file: ENOENT if unknown, EBUSY while in use."""
        norm = normalize_key(key)
        with self._lock:
            device = self._devices.get(norm)
            if device is None:
                raise OSError(errno.ENOENT, f"{norm}: no such etfs key")
            if not device.close_if_idle():
                raise OSError(errno.EBUSY, f"{norm}: device in use ({device.opencount} users)")
            del self._devices[norm]

    def lookup(self, key: str) -> Device | None:
        """The device registered as ``key`` (normalised), or None; None also for a relative key."""
        try:
            norm = normalize_key(key)
        except OSError:
            return None
        with self._lock:
            return self._devices.get(norm)

    def keys(self) -> list[str]:
        """Registered keys, in registration order."""
        with self._lock:
            return list(self._devices)

    def __contains__(self, key: str) -> bool:
        return self.lookup(key) is not None

    def __len__(self) -> int:
        return len(self._devices)

    def close_all(self) -> None:
        """Close and forget every device, in use or not: the last step of a kernel's halt."""
        with self._lock:
            devices = list(self._devices.values())
            self._devices.clear()
        for device in devices:
            device.close()
