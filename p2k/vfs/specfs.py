"""Vnodes for etfs device keys (NetBSD keeps these in rumpfs; here they form a tiny mount of their
own so that the root file system never lists them, as rump_etfs(3) requires).

A key registered as ETFS_REG looks like a regular file, ETFS_BLK/ETFS_CHR like block/character
devices; reads and writes go straight to the device window.
"""

from __future__ import annotations

import errno
import stat as stat_mod

from p2k.vfs.mount import Mount
from p2k.vfs.vattr import StatVFS, Vattr

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from typing import Any

    from p2k.etfs import Device
    from p2k.kernel import Kernel
    from p2k.vfs.vnode import Vnode

_TYPES = {0: stat_mod.S_IFREG | 0o644, 1: stat_mod.S_IFBLK | 0o600, 2: stat_mod.S_IFCHR | 0o600}


class SpecMount(Mount):
    fstype = "etfs"

    def __init__(self, kernel: Kernel, flags: int = 0, data: dict[str, Any] | None = None) -> None:
        super().__init__(kernel, flags, data or {})
        self.devices: dict[int, Device] = {}

    def vfs_root_ino(self) -> int:
        return 0

    def vfs_loadvnode(self, ino: int) -> tuple[object, int]:
        dev = self.devices.get(ino)
        if dev is None:
            raise OSError(errno.ENXIO, "device no longer registered")
        return dev, stat_mod.S_IFMT(_TYPES[dev.type])

    def vop_getattr(self, vp: Vnode) -> Vattr:
        dev: Device = vp.data  # type: ignore[assignment]
        return Vattr(mode=_TYPES[dev.type], nlink=1, uid=0, gid=0, size=dev.size, ino=vp.ino,
                     rdev=dev.dev_id if dev.type else 0, blocks=(dev.size + 511) >> 9, fsid=self.fsid)

    def vop_inactive(self, vp: Vnode) -> bool:
        return vp.ino not in self.devices

    def vop_read(self, vp: Vnode, offset: int, size: int) -> bytes:
        dev: Device = vp.data  # type: ignore[assignment]
        if offset >= dev.size:
            return b""
        return dev.pread(offset, min(size, dev.size - offset))

    def vop_readinto(self, vp: Vnode, offset: int, buf: memoryview) -> int:
        """Straight from the host file into ``buf`` (one copy, where ``vop_read`` plus a copy
        into the caller's buffer would make two)."""
        dev: Device = vp.data  # type: ignore[assignment]
        if offset >= dev.size:
            return 0
        n = min(len(buf), dev.size - offset)
        dev.preadinto(offset, buf[:n])
        return n

    def vop_write(self, vp: Vnode, offset: int, data: bytes | bytearray | memoryview) -> int:
        dev: Device = vp.data  # type: ignore[assignment]
        if offset + len(data) > dev.size:
            if offset >= dev.size:
                raise OSError(errno.ENOSPC, "write past the end of the device window")
            data = data[: dev.size - offset]
        self.kernel.bufcache.invalidate(dev, offset - offset % 512, len(data) + 512)
        dev.pwrite(offset, data)
        return len(data)

    def vop_fsync(self, vp: Vnode, dataonly: bool = False) -> None:
        vp.data.fsync()  # type: ignore[attr-defined]

    def vfs_statvfs(self) -> StatVFS:
        return StatVFS(512, 512, 0, 0, 0, 0, 0, 0, self.fsid, 0, 255)
