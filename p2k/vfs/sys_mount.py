"""Mount, unmount, sync and reboot: the calls that change or flush the mount table."""

from __future__ import annotations

import errno

from p2k.vfs.component import lookup as lookup_component
from p2k.vfs.mount import MNT_FORCE, MNT_RDONLY, Mount
from p2k.vfs.sysbase import SysBase, syscall
from p2k.vfs.vattr import VDIR

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from typing import Any

RB_AUTOBOOT = 0
RB_HALT = 0x08
RB_NOSYNC = 0x04
RB_DUMP = 0x100


class MountCalls(SysBase):
    @syscall
    def mount(self, fstype: str, path: str | bytes, flags: int = 0, data: dict[str, Any] | None = None) -> None:
        """Mount a ``fstype`` file system on directory ``path``. ``data["fspec"]`` names the etfs
        key of the device for disk file systems; the rest of ``data`` are the driver's options."""
        self.check_privilege("mount")
        comp = lookup_component(fstype)
        data = dict(data or {})
        vp = self._lookup(path)
        dev = None
        mp: Mount | None = None
        try:
            if vp.type != VDIR:
                raise OSError(errno.ENOTDIR, "mount point is not a directory")
            if vp.mountedhere is not None or (vp.ino == vp.mount.vfs_root_ino()
                                              and vp.mount is not self.kernel.rootmount):
                raise OSError(errno.EBUSY, "mount point busy")
            fspec = data.get("fspec")
            if fspec is not None:
                found = self.kernel.etfs.lookup(str(fspec))
                if found is None:
                    raise OSError(errno.ENOENT, f"{fspec}: no such device (not registered with etfs)")
                if any(getattr(m.data.get("device"), "dev_id", None) == found.dev_id for m in self.kernel.mounts):
                    raise OSError(errno.EBUSY, f"{fspec} is already mounted")
                if found.readonly and not flags & MNT_RDONLY:
                    raise OSError(errno.EROFS, f"{fspec} is read-only")
                data["device"] = found
                found.acquire()
                dev = found  # released below if the mount fails; not before it was acquired
            mp = comp.mounter()(self.kernel, flags, data)
            mp.mountpoint_path = self._path_of(vp).decode("utf-8", "surrogateescape")  # type: ignore[attr-defined]
            mp.vfs_start()
            _check_root(mp)
        except BaseException:
            self._undo_mount(mp, dev)
            self._rele(vp)
            raise
        mp.covered = vp  # keeps the reference namei gave us
        vp.mountedhere = mp
        self.kernel.mounts.append(mp)

    def _undo_mount(self, mp: Mount | None, dev: Any) -> None:
        """A failed mount leaves nothing behind: no vnode of the half-made file system in the
        cache, no buffer of its device, the device free for the next mount."""
        k = self.kernel
        if mp is not None:
            k.vcache.vflush(mp, force=True)
        if dev is not None:
            k.bufcache.invalidate_dev(dev)
            dev.release()

    @syscall
    def unmount(self, path: str | bytes, flags: int = 0) -> None:
        self.check_privilege("unmount")
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
        """Sync (unless RB_NOSYNC) and unmount everything, as rump.halt needs. Root only, as
        reboot(2) (kauth's KAUTH_SYSTEM_REBOOT)."""
        self.check_privilege("reboot")
        self.kernel.shutdown(sync=not howto & RB_NOSYNC)

    @syscall
    def sysctl(self, name: str, value: int | None = None) -> int:
        """Read node ``name`` of the kernel's sysctl tree, or set it first (root only); returns
        the value it has afterwards."""
        import p2k.vfs.sysctl as sysctl_tree  # the node table, built when first asked for

        if value is not None:
            self.check_privilege(f"set {name}")
            sysctl_tree.write(self.kernel, name, value)
        return sysctl_tree.read(self.kernel, name)

    @syscall
    def sysctl_list(self, prefix: str = "") -> list[tuple[str, int]]:
        """(name, value) of every node at or below ``prefix`` (sysctl -a for "")."""
        import p2k.vfs.sysctl as sysctl_tree

        return sysctl_tree.listing(self.kernel, prefix)

    def check_privilege(self, what: str) -> None:
        """EPERM unless the caller is root in the kernel: the one check behind every privileged
        call (mount, unmount, reboot, sysctl writes, device nodes), local or remote alike."""
        if not self.proc.cred.is_root:
            raise OSError(errno.EPERM, f"{what}: operation not permitted (not root)")

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
