"""The kernel: one isolated instance of the rump file-system stack.

Everything a kernel knows — mount table, vnode cache, buffer cache, devices, processes — hangs off
this object, so several kernels in one Python process share nothing, as several rump kernels in
several host processes share nothing. The root file system is a small writable memory file
system (rumpfs in NetBSD; here tmpfs, which is the same thing with hashed directories), so
``k.sys.mkdir("/mnt")`` followed by a mount works at once.
"""

from __future__ import annotations

import _thread

from p2k.etfs import ETFS_BLK, Device, EtfsRegistry
from p2k.fs.tmpfs import TmpfsMount
from p2k.hyper import Backend, KernelParams, MemAccount
from p2k.vfs.bufcache import BufCache
from p2k.vfs.lwproc import RFFDG, Cred, Proc
from p2k.vfs.mount import Mount
from p2k.vfs.syscalls import Syscalls
from p2k.vfs.vnode import Vnode, VnodeCache

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Mapping
    from typing import Any

    from p2k.vfs.specfs import SpecMount


class Kernel:
    def __init__(self, *, ncpu: int | str | None = None, memlimit: int | str | None = None,
                 nvnodes: int | str | None = None, verbose: bool | int | str | None = None,
                 threads: bool | int | str | None = None, env: Mapping[str, str] | None = None) -> None:
        self.params: KernelParams = KernelParams.from_env(env, ncpu=ncpu, memlimit=memlimit, nvnodes=nvnodes,
                                            verbose=verbose, threads=threads)
        # threading's RLock is _thread's; the threading module (0.5 ms) is imported by what runs
        # threads (the FUSE daemon, rump_server), which asks for ``cpus``
        self.lock = _thread.RLock()
        self._cpus: threading.BoundedSemaphore | None = None
        self.mem: MemAccount = MemAccount(self.params.memlimit)
        self.bufcache: BufCache = BufCache(self.mem)
        self.vcache: VnodeCache = VnodeCache(self.params.nvnodes)
        self.etfs = EtfsRegistry(self.mem)
        self._specmount: SpecMount | None = None
        self.rootmount: Mount = TmpfsMount(self, 0, {"mode": "755"})
        self.rootmount.mountpoint_path = "/"
        self.mounts: list[Mount] = []
        # Called when an outermost system call has completed (no operation is half done): where a
        # journaling mount may commit a transaction without splitting one operation over two.
        self.op_end_hooks: list[Callable[[], None]] = []
        self.sysdepth = 0
        self.halted = False
        self.vop_internal_errors = 0  # non-OSError exceptions turned into EIO (p2k.vfs.vopguard)
        root = self.vcache.vget(self.rootmount, self.rootmount.vfs_root_ino())
        self.rootvnode = root  # held for the kernel's life, so the root is never reclaimed
        self.proc0 = Proc(self.vcache, root, root)
        self.sys = Syscalls(self, self.proc0)

    @property
    def cpus(self) -> threading.BoundedSemaphore:
        """The virtual CPUs (RUMP_NCPU) a request must hold one of, as rump_server's threads do."""
        if self._cpus is None:
            with self.lock:
                if self._cpus is None:
                    import threading

                    self._cpus = threading.BoundedSemaphore(self.params.ncpu)
        return self._cpus

    # ---- rump_pub_etfs_* -------------------------------------------------------------------------
    def etfs_register(self, key: str, hostpath: str | Backend, type: int = ETFS_BLK, size: int | None = None,
                      offset: int = 0, readonly: bool = False) -> Device:
        with self.lock:
            return self.etfs.register(key, hostpath, type, size=size, offset=offset, readonly=readonly)

    def etfs_remove(self, key: str) -> None:
        with self.lock:
            dev = self.etfs.lookup(key)
            self.etfs.remove(key)
            if dev is not None:
                self.bufcache.invalidate_dev(dev)
            spec = self._specmount
            if dev is not None and spec is not None:
                spec.devices.pop(dev.dev_id, None)
                cached = self.vcache.lookup_cached(spec, dev.dev_id)
                if cached is not None and cached.usecount == 0:
                    self.vcache.vflush(spec, keep=())

    @property
    def etfs_keys(self) -> bool:
        return len(self.etfs) > 0

    @property
    def specmount(self) -> SpecMount:
        """The mount of the device vnodes (specfs), made when a registered key is first looked
        up by name (rump_etfs(3)). Mounting an image names its key in the mount's data and never
        needs it, so an image command does not load the module (0.2 ms of its start-up)."""
        if self._specmount is None:
            with self.lock:
                if self._specmount is None:
                    from p2k.vfs.specfs import SpecMount

                    self._specmount = SpecMount(self)
        return self._specmount

    def is_device(self, vp: Vnode) -> bool:
        """Whether ``vp`` is a registered key's device vnode."""
        return vp.mount is self._specmount

    def etfs_vnode(self, dev: Device) -> Vnode:
        """The vnode of a registered key; the device table of the spec mount fills on demand, so a
        key registered straight with ``self.etfs`` (a drivespec) is found too."""
        self.specmount.devices[dev.dev_id] = dev
        return self.vcache.vget(self.specmount, dev.dev_id)

    # ---- processes (rump_lwproc) -----------------------------------------------------------------
    def newproc(self, flags: int = RFFDG, cred: Cred | None = None, parent: Proc | None = None) -> Syscalls:
        """A new process context; its ``Syscalls`` act with ``cred``. ``.proc.exit()`` frees it."""
        with self.lock:
            proc = (parent or self.proc0).fork(flags, cred)
            return Syscalls(self, proc)

    def release_proc(self, sys: Syscalls) -> None:
        with self.lock:
            sys.proc.exit()

    # ---- sysctl and statistics -------------------------------------------------------------------
    def sysctl(self, name: str, value: int | None = None) -> int:
        """Read (or, as the kernel itself, write) a node of ``p2k.vfs.sysctl``; the new value."""
        import p2k.vfs.sysctl as sysctl_tree  # the node table is built for the first sysctl only

        with self.lock:
            if value is not None:
                sysctl_tree.write(self, name, int(value))
            return sysctl_tree.read(self, name)

    def stats(self) -> dict[str, int]:
        with self.lock:
            vc, bc = self.vcache, self.bufcache
            return {
                "vnodes": vc.total, "vnodes_inuse": vc.inuse, "vnodes_free": vc.free,
                "maxvnodes": vc.maxvnodes, "reclaims": vc.reclaims,
                "buf_hits": bc.hits, "buf_misses": bc.misses, "buf_bytes": bc.bytes,
                "buf_dirty_bytes": bc.dirty_bytes, "buf_writes": bc.writes, "lost_writes": bc.lost_writes,
                "mem_used": self.mem.used, "mem_peak": self.mem.peak, "mem_limit": self.mem.limit or 0,
                "mounts": len(self.mounts),
                "vop_internal_errors": self.vop_internal_errors,
            }

    # ---- mount table -----------------------------------------------------------------------------
    def sync_all(self) -> None:
        with self.lock:
            for mp in list(self.mounts):
                mp.vfs_sync(True)
            self.bufcache.sync_all()

    def unmount_mp(self, mp: Mount, force: bool = False) -> None:
        with self.lock:
            for other in self.mounts:
                if other is not mp and other.covered is not None and other.covered.mount is mp:
                    if not force:
                        raise OSError(16, f"{mp.mountpoint_path}: a file system is mounted below it")
                    self.unmount_mp(other, force=True)
            self.vcache.vflush(mp, force=force)
            dev: Any = mp.data.get("device")
            lost_before = self.bufcache.lost_writes
            error: OSError | None = None
            try:
                mp.vfs_sync(True)
                mp.vfs_unmount(force)
                if dev is not None:
                    self.bufcache.flush_dev(dev)
            except OSError as e:
                if not force and self.bufcache.lost_writes == lost_before:
                    raise  # nothing lost: refuse the unmount and keep the file system
                error = e
            if dev is not None:
                self.bufcache.invalidate_dev(dev)
                dev.release()
            covered = mp.covered
            self.mounts.remove(mp)
            if covered is not None:
                covered.mountedhere = None
                mp.covered = None
                self.vcache.vrele(covered)
            if error is not None:
                lost = self.bufcache.lost_writes - lost_before
                raise OSError(error.errno, f"{mp.mountpoint_path} unmounted, but {lost} write(s) were lost: "
                              f"{error.strerror}")

    def shutdown(self, sync: bool = True) -> None:
        """Unmount everything, newest first; with ``sync`` write everything back first."""
        with self.lock:
            if sync:
                self.sync_all()
            for mp in reversed(list(self.mounts)):
                if mp in self.mounts:
                    try:
                        self.unmount_mp(mp, force=True)
                    except OSError:
                        if sync:
                            raise

    def halt(self, sync: bool = True) -> None:
        """rump_sys_reboot: sync, unmount all, release devices. The kernel is unusable after."""
        with self.lock:
            if self.halted:
                return
            self.shutdown(sync=sync)
            self.proc0.exit()
            self.etfs.close_all()
            self.halted = True

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.halt()


def rump_init(**kwargs: Any) -> Kernel:
    """A kernel configured from the RUMP_* environment variables (rump_init(3))."""
    return Kernel(**kwargs)
