"""Mount, unmount, sync and reboot: the calls that change or flush the mount table."""

from __future__ import annotations

import errno
from typing import Any

from p2k.vfs.component import lookup as lookup_component
from p2k.vfs.mount import MNT_FORCE, MNT_RDONLY, Mount
from p2k.vfs.sysbase import SysBase, syscall
from p2k.vfs.vattr import VDIR

RB_AUTOBOOT = 0
RB_HALT = 0x08
RB_NOSYNC = 0x04
RB_DUMP = 0x100


class MountCalls(SysBase):
    @syscall
    def mount(self, fstype: str, path: str | bytes, flags: int = 0, data: dict[str, Any] | None = None) -> None:
        """Mount a ``fstype`` file system on directory ``path``. ``data["fspec"]`` names the etfs
        key of the device for disk file systems; the rest of ``data`` are the driver's options."""
        if not self.proc.cred.is_root:
            raise OSError(errno.EPERM, "only root may mount")
        comp = lookup_component(fstype)
        data = dict(data or {})
        vp = self._lookup(path)
        dev = None
        try:
            if vp.type != VDIR:
                raise OSError(errno.ENOTDIR, "mount point is not a directory")
            if vp.mountedhere is not None or (vp.ino == vp.mount.vfs_root_ino()
                                              and vp.mount is not self.kernel.rootmount):
                raise OSError(errno.EBUSY, "mount point busy")
            fspec = data.get("fspec")
            if fspec is not None:
                dev = self.kernel.etfs.lookup(str(fspec))
                if dev is None:
                    raise OSError(errno.ENOENT, f"{fspec}: no such device (not registered with etfs)")
                if any(getattr(m.data.get("device"), "dev_id", None) == dev.dev_id for m in self.kernel.mounts):
                    raise OSError(errno.EBUSY, f"{fspec} is already mounted")
                if dev.readonly and not flags & MNT_RDONLY:
                    raise OSError(errno.EROFS, f"{fspec} is read-only")
                data["device"] = dev
                dev.acquire()
            assert comp.mount_class is not None
            mp: Mount = comp.mount_class(self.kernel, flags, data)
            mp.mountpoint_path = self._path_of(vp).decode("utf-8", "surrogateescape")
            mp.vfs_start()
            _check_root(mp)
        except BaseException:
            if dev is not None:
                dev.release()
            self._rele(vp)
            raise
        mp.covered = vp  # keeps the reference namei gave us
        vp.mountedhere = mp
        self.kernel.mounts.append(mp)

    @syscall
    def unmount(self, path: str | bytes, flags: int = 0) -> None:
        if not self.proc.cred.is_root:
            raise OSError(errno.EPERM, "only root may unmount")
        vp = self._lookup(path)
        mp = vp.mount
        try:
            if mp is self.kernel.rootmount:
                raise OSError(errno.EINVAL, "cannot unmount the root file system")
            if vp.ino != mp.vfs_root_ino():
                raise OSError(errno.EINVAL, "not a mount point")
        finally:
            self._rele(vp)
        self.kernel.unmount_mp(mp, force=bool(flags & MNT_FORCE))

    @syscall
    def sync(self) -> None:
        self.kernel.sync_all()

    @syscall
    def reboot(self, howto: int = RB_AUTOBOOT) -> None:
        """Sync (unless RB_NOSYNC) and unmount everything, as rump.halt needs."""
        self.kernel.shutdown(sync=not howto & RB_NOSYNC)


def _check_root(mp: Mount) -> None:
    """Refuse a file system whose root is not a readable directory: mounted, it would make the
    mount point itself fail (stat EIO), and even unmounting it by path would need that root."""
    ino = mp.vfs_root_ino()
    try:
        _data, vtype = mp.vfs_loadvnode(ino)
        why = None if vtype == VDIR else "is not a directory"
    except OSError as e:
        why = f"cannot be read ({e.strerror})"
    if why is None:
        return
    try:
        mp.vfs_unmount(force=True)
    except OSError:
        pass
    raise OSError(errno.ENOTDIR if why.startswith("is not") else errno.EIO,
                  f"root inode {ino} {why}; run fsck")
