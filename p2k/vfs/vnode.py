"""Vnodes and the vnode cache bounded by kern.maxvnodes (NetBSD ``vfs_vnode.c``).

A vnode is the kernel's handle on one file of one mount. It is referenced by whatever uses it
(an fd, a cwd, a namei in progress, a FUSE inode handle, a covered mount point). Unreferenced
vnodes stay cached on an LRU list so that a repeated lookup does not reread the inode; when the
cache grows past ``maxvnodes`` the least recently used free vnodes are reclaimed: inactive first,
then reclaim, which writes back a dirty inode. A vnode in use is never reclaimed.
"""

from __future__ import annotations

import errno

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from typing import Any

    from p2k.vfs.mount import Mount
    from p2k.vfs.vattr import Vattr


class Vnode:
    __slots__ = ("mount", "ino", "data", "type", "usecount", "mountedhere", "reclaimed", "__weakref__")

    def __init__(self, mount: Mount, ino: int, data: object, vtype: int) -> None:
        self.mount = mount
        self.ino = ino
        self.data = data
        self.type = vtype  # S_IFMT bits
        self.usecount = 0
        self.mountedhere: Mount | None = None
        self.reclaimed = False

    def __repr__(self) -> str:
        return f"<Vnode {self.mount.fstype}:{self.ino} use={self.usecount}>"


class VnodeCache:
    """All vnodes of a kernel, keyed by (mount, inode number)."""

    def __init__(self, maxvnodes: int) -> None:
        self.maxvnodes = maxvnodes
        self._table: dict[tuple[int, int], Vnode] = {}
        # LRU, oldest first: a plain dict in insertion order until the cache first fills, then
        # an OrderedDict (``reclaim_lru`` says why); a command that never fills it does not
        # import the collections package (1.1 ms of its start-up).
        self._free: dict[tuple[int, int], Vnode] = {}
        self.reclaims = 0
        # While > 0 (a name lookup in progress) the cache is not trimmed, so the unreferenced
        # directories a lookup walks through stay valid until it ends; see ``deferred_reclaim``.
        self.defer = 0

    # ---- statistics ------------------------------------------------------------------------------
    @property
    def total(self) -> int:
        return len(self._table)

    @property
    def free(self) -> int:
        return len(self._free)

    @property
    def inuse(self) -> int:
        return len(self._table) - len(self._free)

    # ---- references ------------------------------------------------------------------------------
    def vget(self, mp: Mount, ino: int) -> Vnode:
        """A referenced vnode for ``ino`` of ``mp``, loading the inode on a cache miss."""
        key = (id(mp), ino)
        vp = self._table.get(key)
        if vp is not None:
            if vp.usecount == 0:
                del self._free[key]
            vp.usecount += 1
            return vp
        data, vtype = mp.vfs_loadvnode(ino)
        vp = Vnode(mp, ino, data, vtype)
        vp.usecount = 1
        self._table[key] = vp
        mp.busy += 1
        if not self.defer:
            self.reclaim_lru()
        return vp

    def peek(self, mp: Mount, ino: int) -> Vnode:
        """An *unreferenced* vnode for ``ino`` of ``mp`` (loaded and cached as free on a miss),
        for a walk that only passes through it. Valid only while reclaim is deferred (or until
        the next vget/vrele); the caller takes ``vref`` to keep it."""
        key = (id(mp), ino)
        vp = self._table.get(key)
        if vp is not None:
            if not vp.usecount:
                self._free[key] = self._free.pop(key)
            return vp
        data, vtype = mp.vfs_loadvnode(ino)
        vp = Vnode(mp, ino, data, vtype)
        self._table[key] = vp
        self._free[key] = vp
        mp.busy += 1
        return vp

    def end_deferral(self) -> None:
        self.defer -= 1
        if not self.defer:
            self.reclaim_lru()

    def vref(self, vp: Vnode) -> Vnode:
        if vp.reclaimed:
            raise OSError(errno.ENOENT, "vnode was reclaimed")
        if vp.usecount == 0:
            del self._free[(id(vp.mount), vp.ino)]
        vp.usecount += 1
        return vp

    def vrele(self, vp: Vnode) -> None:
        if vp.usecount <= 0:
            raise AssertionError(f"vrele of unreferenced {vp!r}")
        vp.usecount -= 1
        if vp.usecount or vp.reclaimed:  # a dead vnode (forced unmount) is no longer cached
            return
        key = (id(vp.mount), vp.ino)
        try:
            recycle = vp.mount.vop_inactive(vp)
        except BaseException:
            # A failed inactive (EIO on a damaged image) leaves the vnode unreferenced: it must
            # be on the free list like any other, or the next vget of it finds the cache torn.
            if not vp.usecount and not vp.reclaimed:
                self._free[key] = vp
            raise
        if vp.usecount:  # inactive took a reference of its own and kept it
            return
        if recycle:
            self._reclaim(key, vp)
            return
        self._free[key] = vp
        if not self.defer:
            self.reclaim_lru()

    # ---- reclaim ---------------------------------------------------------------------------------
    def _reclaim(self, key: tuple[int, int], vp: Vnode) -> None:
        self._free.pop(key, None)
        del self._table[key]
        try:
            vp.mount.vop_reclaim(vp)
        finally:
            vp.reclaimed = True
            vp.data = None
            vp.mount.busy -= 1
            self.reclaims += 1

    def reclaim_lru(self) -> None:
        """Bring the cache back to ``maxvnodes`` by reclaiming free vnodes, oldest first.

        The first time it has to, the free list becomes an OrderedDict, whose oldest entry is at
        hand: a plain dict that has lost its first entries finds its oldest by stepping over
        every slot they left until it next resizes (an eviction 1.7 us with 10,000 vnodes and
        4.3 us with 50,000, against 0.16 us: a cost that grows with RUMP_NVNODES). Reclaim never
        runs inside a lookup (``defer``), so namei's reference to the list stays the list."""
        if len(self._table) <= self.maxvnodes or not self._free:
            return
        free = self._free
        if type(free) is dict:
            from collections import OrderedDict

            free = self._free = OrderedDict(free)
        while len(self._table) > self.maxvnodes and free:
            key, vp = next(iter(free.items()))
            self._reclaim(key, vp)

    def set_maxvnodes(self, n: int) -> None:
        if n < 1:
            raise OSError(errno.EINVAL, f"kern.maxvnodes: invalid value {n}")
        self.maxvnodes = n
        if not self.defer:
            self.reclaim_lru()

    def vnodes_of(self, mp: Mount) -> list[Vnode]:
        """Every cached vnode of ``mp`` (in use or not)."""
        return [v for v in self._table.values() if v.mount is mp]

    def lookup_cached(self, mp: Mount, ino: int) -> Vnode | None:
        return self._table.get((id(mp), ino))

    def vflush(self, mp: Mount, *, force: bool = False, keep: tuple[Vnode, ...] = ()) -> None:
        """Reclaim every vnode of ``mp``; EBUSY if one is in use (besides ``keep``) and not forced."""
        mine = [(k, v) for k, v in self._table.items() if v.mount is mp]
        busy = [v for _, v in mine if v.usecount and v not in keep]
        if busy and not force:
            raise OSError(errno.EBUSY, f"{len(busy)} vnode(s) of {mp.mountpoint_path} in use")
        for key, vp in mine:
            if not vp.usecount:
                vp.mount.vop_inactive(vp)
            self._reclaim(key, vp)
            if vp.usecount:
                # Forced: the holders keep their references to a dead vnode (NetBSD's deadfs),
                # whose every operation fails, and release them as usual.
                vp.mount = DEAD_MOUNT


class _DeadMount:
    """deadfs: what a vnode still referenced after a forced unmount answers. Reads and writes are
    EIO, everything else EBADF; releasing the last reference does nothing."""

    fstype = "dead"
    namemax = 255
    maxfilesize = 0
    supports_exchange = False
    flags = 0
    readonly = False
    busy = 0
    covered = None
    mountpoint_path = "(dead)"
    fsid = 0
    kernel: Any = None

    def vfs_root_ino(self) -> int:
        return -1

    def vop_inactive(self, vp: Vnode) -> bool:
        return False

    def vop_reclaim(self, vp: Vnode) -> None:
        pass

    def vop_getattr(self, vp: Vnode) -> Vattr:
        raise OSError(errno.EBADF, "file system was forcibly unmounted")

    def vop_read(self, vp: Vnode, offset: int, size: int) -> bytes:
        raise OSError(errno.EIO, "file system was forcibly unmounted")

    vop_write = vop_read

    def vop_readinto(self, vp: Vnode, offset: int, buf: memoryview) -> int:
        raise OSError(errno.EIO, "file system was forcibly unmounted")

    def __getattr__(self, name: str) -> Any:
        if name.startswith(("vop_", "vfs_")):
            return _ebadf
        raise AttributeError(name)


def _ebadf(*_: object, **__: object) -> Any:
    raise OSError(errno.EBADF, "file system was forcibly unmounted")


DEAD_MOUNT: Mount = _DeadMount()  # type: ignore[assignment]
