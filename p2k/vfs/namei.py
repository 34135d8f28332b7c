"""Name lookup (NetBSD ``vfs_lookup.c``): a path to referenced vnodes.

The walk checks search permission on every directory it passes, crosses mount points both ways
(down through ``mountedhere``, up through ``covered`` at a file system's root), never climbs above
the process's root, follows symbolic links (ELOOP after MAXSYMLINKS) and applies the trailing-slash
rule: a path ending in ``/`` must name a directory. A device key registered with etfs is found here,
when a whole absolute path equals it, before the root file system's own entries, as rumpfs does.
"""

from __future__ import annotations

import errno

from p2k.slotted import Slotted
from p2k.vfs.perm import X_OK, check_access
from p2k.vfs.vattr import VDIR, VLNK

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from p2k.kernel import Kernel
    from p2k.vfs.lwproc import Proc
    from p2k.vfs.mount import Mount
    from p2k.vfs.vnode import Vnode

MAXSYMLINKS = 32
PATH_MAX = 1024

LOOKUP, CREATE, DELETE, RENAME = 0, 1, 2, 3


class NameiResult(Slotted):
    """``dvp`` (when a parent was asked for) and ``vp`` are referenced; ``release`` drops both.
    ``uncached`` is set instead of ``vp`` for a ``stat_only`` lookup whose last component is not
    in the vnode cache: its mount and inode number, for ``Mount.vfs_stat_inodes``."""

    __slots__ = ("dvp", "vp", "name", "trailing_slash", "uncached")
    dvp: Vnode | None
    vp: Vnode | None
    name: bytes
    trailing_slash: bool
    uncached: tuple[Mount, int] | None

    def __init__(self, dvp: Vnode | None, vp: Vnode | None, name: bytes, trailing_slash: bool,
                 uncached: tuple[Mount, int] | None = None) -> None:
        self.dvp = dvp
        self.vp = vp
        self.name = name
        self.trailing_slash = trailing_slash
        self.uncached = uncached

    def release(self, kernel: Kernel) -> None:
        rele = kernel.vcache.vrele
        if self.vp is not None:
            rele(self.vp)
            self.vp = None
        if self.dvp is not None:
            rele(self.dvp)
            self.dvp = None


def fspath(path: str | bytes | object) -> bytes:
    if isinstance(path, bytes):
        return path
    if isinstance(path, str):
        return path.encode("utf-8", "surrogateescape")
    import os

    return fspath(os.fspath(path))  # type: ignore[call-overload]


def namei(kernel: Kernel, proc: Proc, path: str | bytes, *, follow: bool = True, op: int = LOOKUP,
          want_parent: bool = False, start: Vnode | None = None, stat_only: bool = False) -> NameiResult:
    """Resolve ``path`` for ``proc``. With ``want_parent`` the last component need not exist
    (``vp`` is None then) and ``dvp`` is its directory. ``start`` is a dirfd's vnode.

    ``stat_only`` (stat, lstat): a last component that is not in the vnode cache is not loaded
    into it; the result names its inode (``uncached``) and the caller asks the file system for
    its attributes alone. Such an inode cannot be a mount point (a covered vnode stays cached),
    and the caller that must follow a symbolic link looks again without ``stat_only``. A walk
    that stats every file of a big tree then neither loads a vnode per file nor reclaims one.

    The walk holds no references on the directories it passes through: the vnode cache defers
    its trimming until the walk ends (the kernel lock keeps everything else out), so a cached
    path costs a dict lookup per component and only the result is referenced. The per-component
    step is written out in the loop rather than called, which is why this function is long: it is
    the hot path of every path system call, and a call per component is measurable there."""
    p = path.encode("utf-8", "surrogateescape") if type(path) is str else fspath(path)
    if not p:
        raise OSError(errno.ENOENT, "empty path")
    if len(p) >= PATH_MAX:
        raise OSError(errno.ENAMETOOLONG, "path too long")
    if b"\0" in p:
        raise OSError(errno.EINVAL, "NUL byte in path")
    vc = kernel.vcache
    cred = proc.cred
    root_cred = cred.uid == 0
    links = 0
    vp: Vnode | None
    absolute = p[:1] == b"/"
    if absolute and kernel.etfs_keys and proc.root is kernel.rootvnode:
        # rumpfs answers a registered key at the root, whole, before walking (rump_etfs(3)).
        dev = kernel.etfs.lookup("/" + p.strip(b"/").decode("utf-8", "surrogateescape"))
        if dev is not None:
            vp = kernel.etfs_vnode(dev)
            if want_parent and op != LOOKUP:
                vc.vrele(vp)
                raise OSError(errno.EBUSY if op != CREATE else errno.EEXIST, "etfs key")
            return NameiResult(None, vp, p.rstrip(b"/").rsplit(b"/", 1)[-1], False)
    cur = proc.root if absolute else (start or proc.cwd)
    if cur.reclaimed:
        raise OSError(errno.ENOENT, "directory was reclaimed (file system unmounted)")
    comps = [c for c in p.split(b"/") if c]
    comps.reverse()  # popped from the end
    trailing = p[-1:] == b"/"
    table, free = vc._table, vc._free
    vc.defer += 1
    try:
        while True:
            if not comps:
                # "/" or "a/." etc.: the path names the current directory itself.
                if want_parent and op != LOOKUP:
                    raise OSError(errno.EBUSY if op != CREATE else errno.EEXIST, "path names a root")
                return NameiResult(None, vc.vref(cur), b".", trailing)
            name = comps.pop()
            last = not comps
            mp = cur.mount
            if cur.type != VDIR:
                raise OSError(errno.ENOTDIR, f"not a directory before {name!r}")
            if not root_cred:
                check_access(cred, mp.vop_getattr(cur), X_OK, "search")
            if len(name) > mp.namemax:
                raise OSError(errno.ENAMETOOLONG, "file name too long")
            if name == b".":
                if last:
                    return _finish(kernel, cur, None, name, trailing, want_parent, op, dot=True)
                continue
            if name == b"..":
                cur = _dotdot_peek(kernel, proc, cur)
                if last:
                    return _finish(kernel, cur, None, name, trailing, want_parent, op, dot=True)
                continue
            # One component, inlined: this is the hot path of every path syscall.
            try:
                ino = mp.vop_lookup(cur, name)
            except FileNotFoundError:
                vp = None
            else:
                key = (id(mp), ino)
                vp = table.get(key)
                if vp is None:
                    if stat_only and last and not trailing:
                        return NameiResult(None, None, name, trailing, (mp, ino))
                    vp = vc.peek(mp, ino)
                elif not vp.usecount:
                    free[key] = free.pop(key)  # to the LRU end (p2k.vfs.vnode)
                if vp.mountedhere is not None:
                    vp = _cross_down_peek(kernel, vp)
            if vp is None:
                if last and want_parent:
                    return NameiResult(vc.vref(cur), None, name, trailing)
                raise OSError(errno.ENOENT, f"no such file or directory: {name!r}")
            # A trailing slash makes a lookup follow a final symlink; a name that is about to be
            # created, removed or renamed is the link itself (Linux: rmdir("l/") is ENOTDIR).
            if vp.type == VLNK and (not last or follow or (trailing and op == LOOKUP)):
                links += 1
                if links > MAXSYMLINKS:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links")
                target = vp.mount.vop_readlink(vp)
                if not target:
                    raise OSError(errno.ENOENT, "empty symbolic link")
                more = [c for c in target.split(b"/") if c]
                more.reverse()
                comps.extend(more)
                if target.endswith(b"/") and last:
                    trailing = True
                if target.startswith(b"/"):
                    cur = proc.root
                continue
            if last:
                if trailing and vp.type != VDIR and op != CREATE:  # creating: the caller's EEXIST
                    raise OSError(errno.ENOTDIR, "not a directory (trailing slash)")
                if want_parent:
                    return NameiResult(vc.vref(cur), vc.vref(vp), name, trailing)
                return NameiResult(None, vc.vref(vp), name, trailing)
            cur = vp
    finally:
        vc.end_deferral()


def _finish(kernel: Kernel, cur: Vnode, _unused: object, name: bytes, trailing: bool,
            want_parent: bool, op: int, dot: bool) -> NameiResult:
    """The last component was ``.`` or ``..``: fine to look up, never to remove. For a create it
    names an existing directory, which the caller reports (EEXIST for mkdir, EISDIR for open)."""
    if want_parent and op not in (LOOKUP, CREATE):
        raise OSError(errno.EINVAL, f"{name!r} cannot be removed or renamed")
    return NameiResult(None, kernel.vcache.vref(cur), name, trailing)


def _dotdot_peek(kernel: Kernel, proc: Proc, cur: Vnode) -> Vnode:
    """The parent of ``cur``, crossing up out of mounted file systems; never above proc.root.
    Unreferenced: see ``VnodeCache.peek``."""
    root = proc.root
    while True:
        if cur is root or (cur.mount is root.mount and cur.ino == root.ino):
            return cur
        mp = cur.mount
        if mp.covered is not None and cur.ino == mp.vfs_root_ino():
            cur = mp.covered
            continue
        break
    ino = cur.mount.vop_lookup(cur, b"..")
    return _cross_down_peek(kernel, kernel.vcache.peek(cur.mount, ino))


def _dotdot(kernel: Kernel, proc: Proc, cur: Vnode) -> Vnode:
    """``_dotdot_peek`` with a reference taken (for callers outside a lookup)."""
    vc = kernel.vcache
    vc.defer += 1
    try:
        return vc.vref(_dotdot_peek(kernel, proc, cur))
    finally:
        vc.end_deferral()


def _cross_down_peek(kernel: Kernel, vp: Vnode) -> Vnode:
    while vp.mountedhere is not None:
        mp = vp.mountedhere
        vp = kernel.vcache.peek(mp, mp.vfs_root_ino())
    return vp
