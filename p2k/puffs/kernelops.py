"""Vnode-level calls the bridge needs that the syscall layer does not offer by handle.

Each takes the kernel lock (an RLock, so it nests with the syscalls it makes) and uses only the
mechanisms of ``p2k.vfs``: the vnode cache, the fd table, namei and the shared permission checks,
so no rule is written twice.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
from itertools import islice
from typing import TYPE_CHECKING

from p2k.puffs.xattrnames import getxattr, listxattr, removexattr, setxattr
from p2k.vfs.perm import W_OK, X_OK, can_access, check_access
from p2k.vfs.vattr import VDIR, Dirent, SetAttr, Vattr

if TYPE_CHECKING:
    from p2k.kernel import Kernel
    from p2k.vfs.mount import Mount
    from p2k.vfs.syscalls import Syscalls
    from p2k.vfs.vnode import Vnode


def vget(k: Kernel, mp: Mount, ino: int) -> Vnode:
    """A referenced vnode for inode ``ino`` (VFS_VGET): from the cache, or loaded again if it was
    reclaimed since the host learnt the number. A number that no longer names a file is ESTALE,
    the answer NFS gives for a file handle that outlived its file."""
    with k.lock:
        try:
            return k.vcache.vget(mp, ino)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.EINVAL):
                raise OSError(errno.ESTALE, f"inode {ino} no longer exists") from None
            raise


def getattr_ino(k: Kernel, mp: Mount, ino: int) -> Vattr:
    with k.lock:
        vp = vget(k, mp, ino)
        try:
            return vp.mount.vop_getattr(vp)
        finally:
            k.vcache.vrele(vp)


def fd_vnode(k: Kernel, fd: int) -> Vnode:
    """The vnode behind a FUSE file handle (not referenced: the open file holds it)."""
    with k.lock:
        return k.sys.proc.fdt.get(fd).vp


def fd_writable(k: Kernel, fd: int) -> bool:
    with k.lock:
        fp = k.sys.proc.fdt.files.get(fd)
        return fp is not None and fp.writable


def fd_append(k: Kernel, fd: int) -> bool:
    with k.lock:
        return bool(k.sys.proc.fdt.get(fd).flags & os.O_APPEND)


def readdir_plus(k: Kernel, fd: int, cookie: int, limit: int) -> list[tuple[Dirent, Vattr | None]]:
    """Up to ``limit`` entries after ``cookie`` of the directory open as ``fd``, each with its
    attributes (pyfuse3 always answers READDIRPLUS). ``.`` and ``..`` carry none: the host ignores
    them. An entry whose inode cannot be loaded is listed without attributes rather than hiding
    it, so that a damaged directory still shows what it names."""
    out: list[tuple[Dirent, Vattr | None]] = []
    with k.lock:
        dvp = k.sys.proc.fdt.get(fd).vp
        if dvp.type != VDIR:
            raise OSError(errno.ENOTDIR, "not a directory")
        mp = dvp.mount
        for d in islice(mp.vop_readdir(dvp, cookie), limit):
            if d.name in (b".", b".."):
                out.append((d, None))
                continue
            try:
                vp = k.vcache.vget(mp, d.ino)
            except OSError:
                out.append((d, None))
                continue
            try:
                out.append((d, mp.vop_getattr(vp)))
            finally:
                k.vcache.vrele(vp)
    return out


def clear_setid(s: Syscalls, vp: Vnode, newmode: int) -> bool:
    """The host kernel drops set-uid/set-gid after a write or truncate by a non-owner by sending a
    chmod in the writer's name. The writer may not chmod, but may write: when the change only
    clears those bits and the caller can write the file, make it as the kernel would on write.
    True if handled."""
    k = s.kernel
    with k.lock:
        va = vp.mount.vop_getattr(vp)
        cur = stat_mod.S_IMODE(va.mode)
        if newmode == cur or newmode != cur & ~(stat_mod.S_ISUID | stat_mod.S_ISGID):
            return False
        if s.proc.cred.uid in (0, va.uid) or not can_access(s.proc.cred, va, W_OK):
            return False
        s._check_writable_fs(vp.mount)
        vp.mount.vop_setattr(vp, SetAttr(mode=newmode))
        return True


def access_vp(s: Syscalls, vp: Vnode, mode: int) -> None:
    """access(2) by handle: EACCES from the shared check, EROFS for writing a read-only mount."""
    with s.kernel.lock:
        va = vp.mount.vop_getattr(vp)
        if mode & 7:
            check_access(s.proc.cred, va, mode & 7, "access")
        if mode & W_OK and vp.mount.readonly and stat_mod.S_IFMT(va.mode) in (stat_mod.S_IFREG, VDIR):
            raise OSError(errno.EROFS, "read-only file system")


def xattr_call(s: Syscalls, vp: Vnode, op: str, *args: bytes) -> object:
    """A Linux xattr call on ``vp`` as ``s``'s process: the extattr and ACL syscalls do the checks."""
    if op == "list":
        return listxattr(s, vp, s.proc.cred.is_root)
    fn = {"get": getxattr, "set": setxattr, "remove": removexattr}[op]
    return fn(s, vp, *args)


def lookup_attr(s: Syscalls, dvp: Vnode, name: bytes) -> Vattr:
    """Attributes of ``name`` in ``dvp`` — the one-component case of namei without its path
    machinery, since FUSE asks one name at a time and this is its most frequent request. The
    rules are namei's, through the same helpers: search permission on ``dvp``, NAME_MAX, no
    following of a final symlink. ``.``, ``..`` and mount points take the general path."""
    k = s.kernel
    with k.lock:
        mp = dvp.mount
        if name in (b".", b"..") or b"/" in name or not name:
            vp = s.lookup(name, dir_fd=dvp, follow=False)
        else:
            if dvp.reclaimed:
                raise OSError(errno.ESTALE, "stale file handle")
            if dvp.type != VDIR:
                raise OSError(errno.ENOTDIR, "not a directory")
            if not s.proc.cred.is_root:
                check_access(s.proc.cred, mp.vop_getattr(dvp), X_OK, "search")
            if len(name) > mp.namemax:
                raise OSError(errno.ENAMETOOLONG, "file name too long")
            vp = k.vcache.vget(mp, mp.vop_lookup(dvp, name))
            if vp.mountedhere is not None:
                k.vcache.vrele(vp)
                vp = s.lookup(name, dir_fd=dvp, follow=False)
        try:
            return vp.mount.vop_getattr(vp)
        finally:
            k.vcache.vrele(vp)
