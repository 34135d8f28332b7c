"""The handle-based interface of puffs: what a file server that names files by vnode asks of a kernel.

The FUSE bridge (local: ``p2k/puffs/port.py``; remote: ``p2k/puffs/remote.py`` through the
server) and the server's own clients make these calls. Each combines what a path syscall does in
several steps into one, with the same rules — search permission, NAME_MAX, no following of a final
symlink, set-id clearing — so that neither the bridge nor the server writes a rule of its own, and
the local and the remote mounts cannot drift apart. Every vnode returned is referenced for the
caller, who gives it back with ``vrele``.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod

from p2k.vfs.perm import R_OK, W_OK, X_OK, can_access, check_access
from p2k.vfs.sysbase import SysBase, syscall
from p2k.vfs.vattr import UTIME_NOW, UTIME_OMIT, VDIR, Dirent, SetAttr, Vattr
from p2k.vfs.vnode import Vnode

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    R = TypeVar("R")  # annotations' only

MAX_READDIRPLUS = 1024
"""Most entries one ``vreaddirplus`` returns (and references)."""


class HandleCalls(SysBase):
    @syscall
    def vget_ino(self, mp_of: Vnode, ino: int) -> Vnode:
        """A referenced vnode for inode ``ino`` of ``mp_of``'s file system (VFS_VGET): from the
        cache, or loaded again if it was reclaimed since the caller learnt the number. A number that
        no longer names a file is ESTALE, the answer NFS gives for a file handle that outlived it."""
        return self._vget_ino(mp_of, ino)

    @syscall
    def on_ino(self, mp_of: Vnode, ino: int, fn: Callable[..., R], *args: Any) -> R:
        """``fn(vp, *args)`` with inode ``ino``'s vnode referenced for the call, in one kernel
        entry: the FUSE bridge names files by inode number and holds no vnode between requests,
        and a vget, the call and a vrele made as three syscalls cost a third of a LOOKUP."""
        vp = self._vget_ino(mp_of, ino)
        try:
            return fn(vp, *args)
        finally:
            self.kernel.vcache.vrele(vp)

    @syscall
    def vlookup_ino(self, mp_of: Vnode, dino: int, name: str | bytes) -> Vattr:
        """``vlookup`` in the directory with inode number ``dino``, returning only the attributes:
        nothing stays referenced (the vnode found stays in the cache for the open that may follow).
        FUSE's LOOKUP, its most frequent request, in one kernel entry instead of four."""
        vc = self.kernel.vcache
        dvp = self._vget_ino(mp_of, dino)
        try:
            vp, va = self._vlookup(dvp, name)
            vc.vrele(vp)
            return va
        finally:
            vc.vrele(dvp)

    def _vget_ino(self, mp_of: Vnode, ino: int) -> Vnode:
        try:
            return self.kernel.vcache.vget(mp_of.mount, ino)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.EINVAL):
                raise OSError(errno.ESTALE, f"inode {ino} no longer exists") from None
            raise

    @syscall
    def vlookup(self, dvp: Vnode, name: str | bytes) -> tuple[Vnode, Vattr]:
        """``name`` in ``dvp`` and its attributes, no final symlink followed — the one-component
        case of namei without its path machinery, since FUSE asks one name at a time and this is
        its most frequent request. ``.``, ``..`` and mount points take namei's general path."""
        return self._vlookup(dvp, name)

    def _vlookup(self, dvp: Vnode, name: str | bytes) -> tuple[Vnode, Vattr]:
        b = name.encode("utf-8", "surrogateescape") if type(name) is str else bytes(name)  # type: ignore[arg-type]
        vp = self._one_component(dvp, b)
        try:
            return vp, vp.mount.vop_getattr(vp)
        except BaseException:
            self.kernel.vcache.vrele(vp)
            raise

    def _one_component(self, dvp: Vnode, name: bytes) -> Vnode:
        mp = dvp.mount
        if name in (b".", b"..") or b"/" in name or not name or b"\0" in name:
            return self._lookup(name, follow=False, dir_fd=dvp)
        if dvp.reclaimed:
            raise OSError(errno.ESTALE, "stale file handle")
        if dvp.type != VDIR:
            raise OSError(errno.ENOTDIR, "not a directory")
        if not self.proc.cred.is_root:
            check_access(self.proc.cred, mp.vop_getattr(dvp), X_OK, "search")
        if len(name) > mp.namemax:
            raise OSError(errno.ENAMETOOLONG, "file name too long")
        vc = self.kernel.vcache
        vp = vc.vget(mp, mp.vop_lookup(dvp, name))
        if vp.mountedhere is not None:
            vc.vrele(vp)
            vp = self._lookup(name, follow=False, dir_fd=dvp)
        return vp

    @syscall
    def vreaddirplus(self, dir: int | Vnode, cookie: int, count: int = MAX_READDIRPLUS,
                     ) -> list[tuple[Dirent, Vnode | None, Vattr | None]]:
        """Up to ``count`` entries after ``cookie``, each with a referenced vnode and its
        attributes (FUSE's READDIRPLUS). ``dir`` is an open directory (already checked for reading
        when opened) or a held vnode (checked here, as ``vreaddir``). ``.`` and ``..`` carry
        nothing: the host ignores them. An entry that vanished, cannot be loaded or may not be
        searched (no search permission on the directory) is listed without, rather than hidden,
        so that a damaged directory still shows what it names."""
        if isinstance(dir, Vnode):
            dvp = dir
            self._alive(dvp)
            if dvp.type == VDIR and not self.proc.cred.is_root:
                check_access(self.proc.cred, dvp.mount.vop_getattr(dvp), R_OK, "read directory")
        else:
            dvp = self.proc.fdt.get(dir).vp
        if dvp.type != VDIR:
            raise OSError(errno.ENOTDIR, "not a directory")
        mp = dvp.mount
        cred = self.proc.cred
        search = cred.is_root or can_access(cred, mp.vop_getattr(dvp), X_OK)
        vc = self.kernel.vcache
        out: list[tuple[Dirent, Vnode | None, Vattr | None]] = []
        limit = max(1, min(count, MAX_READDIRPLUS))
        for d in mp.readdir_entries(dvp, cookie):
            if len(out) >= limit:
                break
            if d.name in (b".", b"..") or not search:
                out.append((d, None, None))
                continue
            try:
                vp = vc.vget(mp, d.ino)
                if vp.mountedhere is not None:
                    vc.vrele(vp)
                    vp = self._lookup(d.name, follow=False, dir_fd=dvp)
            except OSError:
                out.append((d, None, None))
                continue
            try:
                out.append((d, vp, vp.mount.vop_getattr(vp)))
            except OSError:
                vc.vrele(vp)
                out.append((d, None, None))
        return out

    @syscall
    def vcreate(self, dvp: Vnode, name: str | bytes, flags: int, mode: int) -> tuple[int, Vnode, Vattr]:
        """open(2) with O_CREAT in ``dvp``, plus a reference on the very vnode the new descriptor
        refers to (a lookup after the open could race a rename) and its attributes. The file is
        made with the caller's credentials, so its owner and group are right from the start."""
        fd = self.open(name, flags | os.O_CREAT, mode, dir_fd=dvp)  # type: ignore[attr-defined]
        vc = self.kernel.vcache
        try:
            vp = vc.vref(self.proc.fdt.get(fd).vp)
        except BaseException:
            self.proc.fdt.close(fd)
            raise
        try:
            return fd, vp, vp.mount.vop_getattr(vp)
        except BaseException:
            vc.vrele(vp)
            self.proc.fdt.close(fd)
            raise

    @syscall
    def vmake(self, dvp: Vnode, name: str | bytes, kind: str, mode: int = 0o777, rdev: int = 0,
              target: str | bytes = b"", link: Vnode | None = None) -> tuple[Vnode, Vattr]:
        """mkdir (``kind`` "dir"), mknod ("node"), symlink ("symlink", to ``target``) or link
        ("link", of ``link``) in ``dvp``, each with its own call's rules, and the new entry held
        with its attributes — in one step, so no rename can come between the making and the
        finding (FUSE's MKDIR, MKNOD, SYMLINK and LINK all answer with the new entry)."""
        if kind == "dir":
            self.mkdir(name, mode, dir_fd=dvp)  # type: ignore[attr-defined]
        elif kind == "node":
            self.mknod(name, mode, rdev, dir_fd=dvp)  # type: ignore[attr-defined]
        elif kind == "symlink":
            self.symlink(target, name, dir_fd=dvp)  # type: ignore[attr-defined]
        elif kind == "link" and link is not None:
            self.vlink(link, name, dvp)  # type: ignore[attr-defined]
        else:
            raise OSError(errno.EINVAL, f"vmake: no kind {kind!r}")
        return self.vlookup(dvp, name)

    @syscall
    def vsetattr(self, vp: Vnode, *, uid: int | None = None, gid: int | None = None, size: int | None = None,
                 mode: int | None = None, atime_ns: int | None = None, mtime_ns: int | None = None,
                 fd: int | None = None, host_times: bool = False) -> Vattr:
        """One FUSE setattr, each part with its syscall's rules, in chown, truncate, chmod, utimes
        order; returns the new attributes. ``fd`` is the open file the change came with: a
        truncate through a descriptor open for writing needs no permission (ftruncate).

        ``mode`` that only clears set-uid/set-gid is the host kernel's way of killing privileges
        after a non-owner's write (it sends a chmod in the writer's name): the writer may not
        chmod but may write, so it is done as a write would do it. ``host_times``: the host turned
        UTIME_NOW into a time of day, and lets a non-owner set times only to now, so from a
        non-owner a given time means now."""
        self._alive(vp)
        if uid is not None or gid is not None:
            self._chown_vp(vp, -1 if uid is None else uid, -1 if gid is None else gid)  # type: ignore[attr-defined]
        if size is not None:
            through_fd = fd is not None and fd in self.proc.fdt.files and self.proc.fdt.get(fd).writable
            if not through_fd and vp.type != VDIR:
                check_access(self.proc.cred, vp.mount.vop_getattr(vp), W_OK, "truncate")
            self._truncate_vp(vp, size)  # type: ignore[attr-defined]
        if mode is not None and not self._kill_setid(vp, mode):
            self._chmod_vp(vp, mode)  # type: ignore[attr-defined]
        if atime_ns is not None or mtime_ns is not None:
            if host_times and self.proc.cred.uid not in (0, vp.mount.vop_getattr(vp).uid):
                atime_ns = UTIME_NOW if atime_ns is not None else None
                mtime_ns = UTIME_NOW if mtime_ns is not None else None
            self._utimens_vp(vp, UTIME_OMIT if atime_ns is None else atime_ns,  # type: ignore[attr-defined]
                             UTIME_OMIT if mtime_ns is None else mtime_ns)
        return vp.mount.vop_getattr(vp)

    def _kill_setid(self, vp: Vnode, newmode: int) -> bool:
        va = vp.mount.vop_getattr(vp)
        cur = stat_mod.S_IMODE(va.mode)
        if newmode == cur or newmode != cur & ~(stat_mod.S_ISUID | stat_mod.S_ISGID):
            return False
        cred = self.proc.cred
        if cred.uid in (0, va.uid) or not can_access(cred, va, W_OK):
            return False
        self._check_writable_fs(vp.mount)
        vp.mount.vop_setattr(vp, SetAttr(mode=newmode))
        return True

    @syscall
    def vaccess(self, vp: Vnode, mode: int) -> None:
        """access(2) by handle: EACCES from the shared check, EROFS for writing a read-only mount."""
        self._alive(vp)
        va = vp.mount.vop_getattr(vp)
        if mode & 7:
            check_access(self.proc.cred, va, mode & 7, "access")
        if mode & W_OK and vp.mount.readonly and stat_mod.S_IFMT(va.mode) in (stat_mod.S_IFREG, VDIR):
            raise OSError(errno.EROFS, "read-only file system")

    @syscall
    def fwrite(self, fd: int, data: bytes | bytearray | memoryview, offset: int) -> int:
        """A write as FUSE sends it: at ``offset``, or at the end, atomically, when the file was
        opened with O_APPEND (the host's offset is only its guess of the end)."""
        if self.proc.fdt.get(fd).flags & os.O_APPEND:
            return self.write(fd, data)  # type: ignore[attr-defined, no-any-return]
        return self.pwrite(fd, data, offset)  # type: ignore[attr-defined, no-any-return]

    @syscall
    def fvnode_ino(self, fd: int) -> int:
        """The inode number behind an open descriptor (the FUSE node of an open directory)."""
        return self.proc.fdt.get(fd).vp.ino

    @syscall
    def vextattr(self, vp: Vnode, op: str, *args: Any) -> Any:
        """``extattr_{op}_fd(vp, namespace, ...)`` by handle (vfs_xattr.py: the same checks)."""
        self._alive(vp)
        if op not in ("get", "set", "list", "delete"):
            raise OSError(errno.EINVAL, f"no extended-attribute operation {op!r}")
        return getattr(self, f"extattr_{op}_fd")(vp, *args)

    @staticmethod
    def _alive(vp: Vnode) -> None:
        if vp.reclaimed:
            raise OSError(errno.ESTALE, "stale file handle (file system unmounted)")
