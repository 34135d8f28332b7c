"""The calls of NetBSD's ``vfs_syscalls.c`` that name files: open, stat, create and remove names,
rename, the working directory and umask, and the fd calls that act on a file's place in the tree or
on its directory stream (lseek, fsync, getdents, fchdir, fstatvfs). Attribute changes live in
``vfs_syscalls_attr.py``, mount and sync in ``sys_mount.py`` (NetBSD's single file is 5,000 lines).

Argument checks follow POSIX and, where BSD and Linux differ, what Linux programs expect through the
FUSE bridge (unlink of a directory is EISDIR; a new file takes its group from a set-gid directory,
otherwise from the caller).
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod

from p2k.vfs.file import File
from p2k.vfs.namei import CREATE, DELETE, RENAME, NameiResult, _dotdot, fspath
from p2k.vfs.perm import R_OK, W_OK, X_OK, check_access, check_sticky, killpriv_mode
from p2k.vfs.sysbase import SysBase, statvfs_result, syscall
from p2k.vfs.vattr import VDIR, VLNK, VREG, Dirent, SetAttr, Vattr
from p2k.vfs.vnode import Vnode

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from collections.abc import Callable

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2

_CREATABLE = {stat_mod.S_IFREG, stat_mod.S_IFIFO, stat_mod.S_IFSOCK, stat_mod.S_IFCHR, stat_mod.S_IFBLK}


def _check_not_removed(dva: Vattr) -> None:
    """A directory that has been removed (still someone's cwd) takes no new entries."""
    if dva.nlink == 0:
        raise OSError(errno.ENOENT, "directory has been removed")


def _strip_slashes(p: bytes) -> bytes:
    stripped = p.rstrip(b"/")
    return stripped or p[:1]


def _as_input(value: bytes, like: str | bytes | object) -> str | bytes:
    return value if isinstance(like, bytes) else value.decode("utf-8", "surrogateescape")


class VfsCalls(SysBase):
    # ---- creation helpers ------------------------------------------------------------------------
    def _new_owner(self, dvp: Vnode, mode: int, isdir: bool) -> tuple[int, int, int]:
        """uid, gid and mode of a new node in ``dvp``: umask applied, set-gid directories honoured."""
        cred = self.proc.cred
        dva = self._getattr(dvp)
        check_access(cred, dva, W_OK | X_OK, "create")
        _check_not_removed(dva)
        self._check_writable_fs(dvp.mount)
        # mkdir keeps only the permission and sticky bits, as Linux does (NetBSD drops sticky too);
        # set-gid comes from the parent below.
        mode &= ~self.proc.umask & (0o1777 if isdir else 0o7777)
        gid = cred.gid
        if dva.mode & stat_mod.S_ISGID:
            gid = dva.gid
            if isdir:
                mode |= stat_mod.S_ISGID
        if not isdir and mode & stat_mod.S_ISGID and cred.uid != 0 and not cred.in_group(gid):
            mode &= ~stat_mod.S_ISGID
        return cred.uid, gid, mode

    def _check_remove(self, dvp: Vnode, vp: Vnode) -> None:
        cred = self.proc.cred
        dva = self._getattr(dvp)
        check_access(cred, dva, W_OK | X_OK, "remove")
        if not cred.is_root:
            check_sticky(cred, dva, self._getattr(vp))
        self._check_writable_fs(dvp.mount)
        if vp.mount is not dvp.mount or vp.mountedhere is not None or vp is self.proc.root:
            raise OSError(errno.EBUSY, "mount point or root is busy")

    # ---- open ------------------------------------------------------------------------------------
    @syscall
    def open(self, path: str | bytes, flags: int, mode: int = 0o777, *, dir_fd: int | Vnode | None = None) -> int:
        acc = flags & os.O_ACCMODE
        if acc == os.O_ACCMODE:
            raise OSError(errno.EINVAL, "bad access mode")
        if flags & os.O_CREAT and flags & os.O_DIRECTORY:
            raise OSError(errno.EINVAL, "O_CREAT with O_DIRECTORY")  # NetBSD's vn_open, Linux ≥ 6.4
        created = False
        if flags & os.O_CREAT and fspath(path).endswith(b"/"):
            # Linux: only the parent is resolved; the name itself, whatever it is, cannot be
            # created as a file.
            stripped = fspath(path).rstrip(b"/")
            if stripped:
                self._namei(stripped, want_parent=True, op=CREATE, follow=False,
                            dir_fd=dir_fd).release(self.kernel)
            raise OSError(errno.EISDIR, "cannot create a file with a trailing slash")
        if flags & os.O_CREAT:
            r = self._namei(path, want_parent=True, op=CREATE, dir_fd=dir_fd,
                            follow=not flags & (os.O_EXCL | os.O_NOFOLLOW))
            dvp, vp = r.dvp, r.vp
            try:
                if r.trailing_slash:
                    raise OSError(errno.EISDIR, "cannot create a file with a trailing slash")
                if vp is None:
                    assert dvp is not None
                    uid, gid, m = self._new_owner(dvp, mode, isdir=False)
                    ino = dvp.mount.vop_create(dvp, r.name, stat_mod.S_IFREG | m, uid, gid)
                    vp = self.kernel.vcache.vget(dvp.mount, ino)
                    flags &= ~os.O_TRUNC
                    created = True
                elif flags & os.O_EXCL:
                    raise OSError(errno.EEXIST, "file exists")
                elif vp.type == VDIR:
                    raise OSError(errno.EISDIR, "O_CREAT on a directory")
            except BaseException:
                r.release(self.kernel)
                raise
            self._rele(dvp)
        else:
            vp = self._lookup(path, follow=not flags & os.O_NOFOLLOW, dir_fd=dir_fd)
        try:
            return self._open_vp(vp, flags, created=created)
        except BaseException:
            self._rele(vp)
            raise

    def _open_vp(self, vp: Vnode, flags: int, *, created: bool = False) -> int:
        """Check and open a referenced vnode; the reference passes to the new file. The creator of
        a file gets the access it asked for whatever mode it gave the file (POSIX open(2))."""
        acc = flags & os.O_ACCMODE
        writable = acc in (os.O_WRONLY, os.O_RDWR)
        if flags & os.O_DIRECTORY and vp.type != VDIR:
            raise OSError(errno.ENOTDIR, "not a directory")
        if vp.type == VLNK:
            raise OSError(errno.ELOOP, "symbolic link (O_NOFOLLOW)")
        if vp.type == VDIR and (writable or flags & os.O_TRUNC):
            raise OSError(errno.EISDIR, "is a directory")
        want = (R_OK if acc in (os.O_RDONLY, os.O_RDWR) else 0) | (W_OK if writable else 0)
        if flags & os.O_TRUNC and not writable:
            want |= W_OK
        if not created and (not self.proc.cred.is_root or want & W_OK):
            check_access(self.proc.cred, self._getattr(vp), want)
        if (writable or flags & os.O_TRUNC) and vp.type in (VREG, VDIR):
            self._check_writable_fs(vp.mount)
        fp = File(vp, flags)
        if self.kernel.is_device(vp):
            dev = vp.data
            dev.acquire()  # type: ignore[attr-defined]
            fp.on_close = dev.release  # type: ignore[attr-defined]
        # O_TRUNC truncates whatever the access mode once write permission was granted, as in
        # NetBSD's vn_open and Linux.
        if flags & os.O_TRUNC and vp.type == VREG:
            sa = SetAttr(size=0)
            if not created:
                sa.mode = killpriv_mode(self.proc.cred, self._getattr(vp))
            vp.mount.vop_setattr(vp, sa)
        return self.proc.fdt.alloc(fp)

    # ---- stat ------------------------------------------------------------------------------------
    @syscall
    def stat(self, path: str | bytes, *, dir_fd: int | Vnode | None = None,
             follow_symlinks: bool = True) -> os.stat_result:
        """A file not in the vnode cache is stat'ed from the file system without entering it
        (namei's ``stat_only``), unless it is a symbolic link to follow."""
        r = self._namei(path, follow=follow_symlinks, dir_fd=dir_fd, stat_only=True)
        if r.uncached is not None:
            mp, ino = r.uncached
            (st,) = mp.vfs_stat_inodes((ino,))
            if isinstance(st, OSError):
                raise st
            if not (follow_symlinks and stat_mod.S_ISLNK(st.st_mode)):
                return st
            r = self._namei(path, follow=True, dir_fd=dir_fd)
        vp = r.vp
        assert vp is not None
        try:
            return self._stat_vp(vp)
        finally:
            self.kernel.vcache.vrele(vp)

    def lstat(self, path: str | bytes, *, dir_fd: int | Vnode | None = None) -> os.stat_result:
        return self.stat(path, dir_fd=dir_fd, follow_symlinks=False)

    @syscall
    def statvfs(self, path: str | bytes) -> os.statvfs_result:
        vp = self._lookup(path)
        try:
            return statvfs_result(vp.mount.vfs_statvfs())
        finally:
            self._rele(vp)

    # ---- making names ----------------------------------------------------------------------------
    @syscall
    def mkdir(self, path: str | bytes, mode: int = 0o777, *, dir_fd: int | Vnode | None = None) -> None:
        r = self._namei(path, want_parent=True, op=CREATE, follow=False, dir_fd=dir_fd)
        try:
            if r.vp is not None:
                raise OSError(errno.EEXIST, "file exists")
            assert r.dvp is not None
            uid, gid, m = self._new_owner(r.dvp, mode, isdir=True)
            r.dvp.mount.vop_mkdir(r.dvp, r.name, m, uid, gid)
        finally:
            r.release(self.kernel)

    @syscall
    def mknod(self, path: str | bytes, mode: int = 0o600, device: int = 0, *,
              dir_fd: int | Vnode | None = None) -> None:
        ftype = stat_mod.S_IFMT(mode) or stat_mod.S_IFREG
        if ftype not in _CREATABLE:
            raise OSError(errno.EINVAL if ftype != VDIR else errno.EPERM, "bad file type for mknod")
        if ftype in (stat_mod.S_IFCHR, stat_mod.S_IFBLK) and not self.proc.cred.is_root:
            raise OSError(errno.EPERM, "only root may make device nodes")
        r = self._namei_new(path, dir_fd)
        try:
            assert r.dvp is not None
            uid, gid, m = self._new_owner(r.dvp, mode, isdir=False)
            r.dvp.mount.vop_create(r.dvp, r.name, ftype | m, uid, gid, device)
        finally:
            r.release(self.kernel)

    def mkfifo(self, path: str | bytes, mode: int = 0o666, *, dir_fd: int | Vnode | None = None) -> None:
        self.mknod(path, stat_mod.S_IFIFO | (mode & 0o7777), dir_fd=dir_fd)

    @syscall
    def symlink(self, target: str | bytes, path: str | bytes, *, dir_fd: int | Vnode | None = None) -> None:
        tgt = fspath(target)
        if not tgt:
            raise OSError(errno.ENOENT, "empty symlink target")
        if len(tgt) >= 1024:
            raise OSError(errno.ENAMETOOLONG, "symlink target too long")
        r = self._namei_new(path, dir_fd)
        try:
            assert r.dvp is not None
            uid, gid, _ = self._new_owner(r.dvp, 0o777, isdir=False)
            r.dvp.mount.vop_symlink(r.dvp, r.name, tgt, 0o777, uid, gid)
        finally:
            r.release(self.kernel)

    @syscall
    def link(self, src: str | bytes, dst: str | bytes, *, src_dir_fd: int | Vnode | None = None,
             dst_dir_fd: int | Vnode | None = None, follow_symlinks: bool = False) -> None:
        vp = self._lookup(src, follow=follow_symlinks, dir_fd=src_dir_fd)
        try:
            self._link_vp(vp, dst, dst_dir_fd)
        finally:
            self._rele(vp)

    @syscall
    def vlink(self, vp: Vnode, dst: str | bytes, dir_fd: int | Vnode | None = None) -> None:
        """link(2) of a file known by handle (the FUSE bridge's link)."""
        if vp.reclaimed:
            raise OSError(errno.ESTALE, "stale file handle")
        self._link_vp(vp, dst, dir_fd)

    def _link_vp(self, vp: Vnode, dst: str | bytes, dir_fd: int | Vnode | None) -> None:
        r = self._namei_new(dst, dir_fd)  # EEXIST before EPERM for a directory, as Linux
        try:
            assert r.dvp is not None
            if r.dvp.mount is not vp.mount:
                raise OSError(errno.EXDEV, "cross-device link")
            dva = self._getattr(r.dvp)
            check_access(self.proc.cred, dva, W_OK | X_OK, "link")
            _check_not_removed(dva)
            if vp.type == VDIR:
                raise OSError(errno.EPERM, "cannot hard-link a directory")
            self._check_writable_fs(vp.mount)
            vp.mount.vop_link(r.dvp, r.name, vp)
        finally:
            r.release(self.kernel)

    def _namei_new(self, path: str | bytes, dir_fd: int | Vnode | None) -> NameiResult:
        """The parent of a name about to be made that is not a directory: EEXIST if it exists,
        ENOENT with a trailing slash. The caller releases the result."""
        r = self._namei(path, want_parent=True, op=CREATE, follow=False, dir_fd=dir_fd)
        try:
            if r.vp is not None:
                raise OSError(errno.EEXIST, "file exists")
            if r.trailing_slash:
                raise OSError(errno.ENOENT, "trailing slash on a non-directory")
        except BaseException:
            r.release(self.kernel)
            raise
        return r

    @syscall
    def readlink(self, path: str | bytes, *, dir_fd: int | Vnode | None = None) -> str | bytes:
        vp = self._lookup(path, follow=False, dir_fd=dir_fd)
        try:
            if vp.type != VLNK:
                raise OSError(errno.EINVAL, "not a symbolic link")
            return _as_input(vp.mount.vop_readlink(vp), path)
        finally:
            self._rele(vp)

    # ---- removing names --------------------------------------------------------------------------
    @syscall
    def unlink(self, path: str | bytes, *, dir_fd: int | Vnode | None = None) -> None:
        r = self._namei(path, want_parent=True, op=DELETE, follow=False, dir_fd=dir_fd)
        try:
            if r.vp is None:
                raise OSError(errno.ENOENT, "no such file or directory")
            assert r.dvp is not None
            if r.vp.type == VDIR:
                raise OSError(errno.EISDIR, "is a directory")
            self._check_remove(r.dvp, r.vp)
            r.dvp.mount.vop_remove(r.dvp, r.name, r.vp)
        finally:
            r.release(self.kernel)

    remove = unlink

    @syscall
    def rmdir(self, path: str | bytes, *, dir_fd: int | Vnode | None = None) -> None:
        last = fspath(path).rstrip(b"/").rsplit(b"/", 1)[-1]
        if last in (b".", b".."):
            self._rele(self._lookup(path, dir_fd=dir_fd))
            raise OSError(errno.EINVAL if last == b"." else errno.ENOTEMPTY, "cannot remove . or ..")
        r = self._namei(path, want_parent=True, op=DELETE, follow=False, dir_fd=dir_fd)
        try:
            if r.vp is None:
                raise OSError(errno.ENOENT, "no such file or directory")
            assert r.dvp is not None
            if r.vp.type != VDIR:
                raise OSError(errno.ENOTDIR, "not a directory")
            self._check_remove(r.dvp, r.vp)
            if not r.vp.mount.vop_isempty(r.vp):
                raise OSError(errno.ENOTEMPTY, "directory not empty")
            r.dvp.mount.vop_rmdir(r.dvp, r.name, r.vp)
        finally:
            r.release(self.kernel)

    # ---- rename ----------------------------------------------------------------------------------
    @syscall
    def rename(self, src: str | bytes, dst: str | bytes, flags: int = 0, *,
               src_dir_fd: int | Vnode | None = None, dst_dir_fd: int | Vnode | None = None) -> None:
        if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) or flags == RENAME_NOREPLACE | RENAME_EXCHANGE:
            raise OSError(errno.EINVAL, "bad rename flags")
        sp, dp = fspath(src), fspath(dst)
        for p in (sp, dp):
            if p.rstrip(b"/").rsplit(b"/", 1)[-1] in (b".", b".."):
                raise OSError(errno.EINVAL, "cannot rename . or ..")
        # Trailing slashes are taken off and checked by _rename, once both names are resolved: a
        # symlink is renamed itself, never its target, and a missing target directory is ENOENT
        # before a non-directory source is ENOTDIR (Linux's order).
        trailing = sp.endswith(b"/") and sp.strip(b"/") != b"" or dp.endswith(b"/") and dp.strip(b"/") != b""
        f = self._namei(_strip_slashes(sp), want_parent=True, op=DELETE, follow=False, dir_fd=src_dir_fd)
        try:
            t = self._namei(_strip_slashes(dp), want_parent=True, op=RENAME, follow=False, dir_fd=dst_dir_fd)
            try:
                if f.vp is None:
                    raise OSError(errno.ENOENT, "no such file or directory")
                self._rename(f.dvp, f.name, f.vp, t.dvp, t.name, t.vp, flags,  # type: ignore[arg-type]
                             trailing)
            finally:
                t.release(self.kernel)
        finally:
            f.release(self.kernel)

    def _rename(self, fdvp: Vnode, fname: bytes, fvp: Vnode, tdvp: Vnode, tname: bytes,
                tvp: Vnode | None, flags: int, trailing: bool) -> None:
        mp = fdvp.mount
        if tdvp.mount is not mp or fvp.mount is not mp:
            raise OSError(errno.EXDEV, "cross-device rename")
        isdir = fvp.type == VDIR
        if trailing and not isdir:
            raise OSError(errno.ENOTDIR, "not a directory (trailing slash)")
        if flags & RENAME_EXCHANGE and tvp is None:
            raise OSError(errno.ENOENT, "exchange target does not exist")
        if tvp is not None and flags & RENAME_NOREPLACE:
            raise OSError(errno.EEXIST, "target exists")
        cred = self.proc.cred
        for d, v in ((fdvp, fvp), (tdvp, tvp)):
            check_access(cred, self._getattr(d), W_OK | X_OK, "rename")
            if v is not None and not cred.is_root:
                check_sticky(cred, self._getattr(d), self._getattr(v))
        if tvp is None:
            _check_not_removed(self._getattr(tdvp))
        self._check_writable_fs(mp)
        for v in (fvp, tvp):
            if v is not None and (v.mountedhere is not None or v.ino == v.mount.vfs_root_ino()
                                  or v is self.proc.root):
                raise OSError(errno.EBUSY, "mount point or root is busy")
        if tvp is fvp:
            return  # two names of one file: POSIX says do nothing
        moving_dir = fdvp is not tdvp
        if flags & RENAME_EXCHANGE:
            assert tvp is not None
            for a, b in ((fvp, tdvp), (tvp, fdvp)):
                if a.type == VDIR and moving_dir:
                    self._check_not_ancestor(a, b)
                    if not cred.is_root:
                        check_access(cred, self._getattr(a), W_OK, "move directory")
            if not mp.supports_exchange:
                raise OSError(errno.EINVAL, "RENAME_EXCHANGE not supported by this file system")
            mp.vop_exchange(fdvp, fname, fvp, tdvp, tname, tvp)
            return
        if isdir and moving_dir:
            # Before the target checks: Linux and NetBSD (genfs_rename_lock) both answer EINVAL for
            # a move into the directory's own subtree even when the target is a non-empty directory.
            self._check_not_ancestor(fvp, tdvp)
        if tvp is not None:
            if isdir and tvp.type != VDIR:
                raise OSError(errno.ENOTDIR, "cannot replace a non-directory with a directory")
            if not isdir and tvp.type == VDIR:
                raise OSError(errno.EISDIR, "cannot replace a directory with a non-directory")
            if tvp.type == VDIR and not mp.vop_isempty(tvp):
                raise OSError(errno.ENOTEMPTY, "target directory not empty")
        if isdir and moving_dir:
            if not cred.is_root:
                check_access(cred, self._getattr(fvp), W_OK, "move directory to a new parent")
        mp.vop_rename(fdvp, fname, fvp, tdvp, tname, tvp)

    def _check_not_ancestor(self, dirvp: Vnode, tdvp: Vnode) -> None:
        """EINVAL when ``tdvp`` is ``dirvp`` or inside it: a directory cannot move into itself."""
        vc = self.kernel.vcache
        cur = vc.vref(tdvp)
        try:
            for _ in range(1 << 16):
                if cur is dirvp:
                    raise OSError(errno.EINVAL, "cannot move a directory into itself")
                if cur.ino == cur.mount.vfs_root_ino() or cur is self.proc.root:
                    return
                nxt = _dotdot(self.kernel, self.proc, cur)
                vc.vrele(cur)
                cur = nxt
            raise OSError(errno.ELOOP, "directory cycle")
        finally:
            vc.vrele(cur)

    # ---- directories and cwd ---------------------------------------------------------------------
    @syscall
    def listdir(self, path: str | bytes = ".") -> list[str] | list[bytes]:
        vp = self._lookup(path)
        try:
            if vp.type != VDIR:
                raise OSError(errno.ENOTDIR, "not a directory")
            check_access(self.proc.cred, self._getattr(vp), R_OK, "read directory")
            names = [d.name for batch in vp.mount.vop_readdir(vp, 0) for d in batch if d.name not in (b".", b"..")]
        finally:
            self._rele(vp)
        if isinstance(path, bytes):
            return names
        return [n.decode("utf-8", "surrogateescape") for n in names]

    def _enter_dir(self, path: str | bytes, what: str, make_it: Callable[[Vnode], None]) -> None:
        """chdir and chroot: the path must be a directory its caller may search."""
        vp = self._lookup(path)
        try:
            if vp.type != VDIR:
                raise OSError(errno.ENOTDIR, "not a directory")
            check_access(self.proc.cred, self._getattr(vp), X_OK, what)
            make_it(vp)
        finally:
            self._rele(vp)

    @syscall
    def chdir(self, path: str | bytes) -> None:
        self._enter_dir(path, "chdir", self.proc.set_cwd)

    @syscall
    def chroot(self, path: str | bytes) -> None:
        """chroot(2): absolute paths, absolute symlinks and ``..`` stop at ``path`` from now on
        (the current directory is left alone, as in NetBSD). ``open_image`` uses it so that an
        image's own absolute symlinks (``/etc/localtime -> /usr/share/zoneinfo/...``) resolve
        inside the image."""
        if self.proc.cred.uid != 0:
            raise OSError(errno.EPERM, "chroot: not the superuser")
        self._enter_dir(path, "chroot", self.proc.set_root)

    @syscall
    def getcwd(self) -> str:
        return self._path_of(self.proc.cwd).decode("utf-8", "surrogateescape")

    def _path_of(self, vp: Vnode) -> bytes:
        """Walk ``..`` up to the root, finding each directory's name in its parent by inode."""
        vc = self.kernel.vcache
        parts: list[bytes] = []
        cur = vc.vref(vp)
        try:
            for _ in range(4096):
                if cur is self.proc.root or (cur.mount is self.proc.root.mount and cur.ino == self.proc.root.ino):
                    break
                child = cur
                while child.ino == child.mount.vfs_root_ino() and child.mount.covered is not None:
                    child = child.mount.covered
                parent = _dotdot(self.kernel, self.proc, cur)
                name = next((d.name for d in parent.mount.readdir_entries(parent, 0)
                             if d.ino == child.ino and d.name not in (b".", b"..")), None)
                vc.vrele(cur)
                cur = parent
                if name is None:
                    raise OSError(errno.ENOENT, "current directory was removed")
                parts.append(name)
        finally:
            vc.vrele(cur)
        return b"/" + b"/".join(reversed(parts))

    # ---- calls on an open file's place in the tree -------------------------------------------
    @syscall
    def lseek(self, fd: int, offset: int, whence: int) -> int:
        fp = self.proc.fdt.get(fd)
        if fp.vp.type == VDIR:
            if whence != os.SEEK_SET or offset < 0:
                raise OSError(errno.EINVAL, "directories seek only to a saved position")
            fp.dir_cookie = fp.offset = offset
            return offset
        if whence == os.SEEK_SET:
            new = offset
        elif whence == os.SEEK_CUR:
            new = fp.offset + offset
        elif whence == os.SEEK_END:
            new = fp.vp.mount.vop_getattr(fp.vp).size + offset
        else:
            raise OSError(errno.EINVAL, "bad whence")
        if new < 0:
            raise OSError(errno.EINVAL, "negative resulting offset")
        fp.offset = new
        return new

    @syscall
    def fstatvfs(self, fd: int) -> os.statvfs_result:
        return statvfs_result(self.proc.fdt.get(fd).vp.mount.vfs_statvfs())

    @syscall
    def getdents(self, fd: int, count: int = 256) -> list[Dirent]:
        """Up to ``count`` entries from the fd's position; an empty list at the end."""
        fp = self.proc.fdt.get(fd)
        if fp.vp.type != VDIR:
            raise OSError(errno.ENOTDIR, "not a directory")
        out: list[Dirent] = []
        if count > 0:
            for batch in fp.vp.mount.vop_readdir(fp.vp, fp.dir_cookie):
                out += batch
                if len(out) >= count:
                    del out[count:]
                    break
        if out:
            fp.dir_cookie = fp.offset = out[-1].cookie
        return out

    @syscall
    def fsync(self, fd: int) -> None:
        fp = self.proc.fdt.get(fd)
        fp.vp.mount.vop_fsync(fp.vp)

    @syscall
    def fdatasync(self, fd: int) -> None:
        fp = self.proc.fdt.get(fd)
        fp.vp.mount.vop_fsync(fp.vp, dataonly=True)

    @syscall
    def fchdir(self, fd: int) -> None:
        vp = self.proc.fdt.get(fd).vp
        if vp.type != VDIR:
            raise OSError(errno.ENOTDIR, "not a directory")
        check_access(self.proc.cred, self._getattr(vp), X_OK, "fchdir")
        self.proc.set_cwd(vp)

    @syscall
    def umask(self, mask: int) -> int:
        old = self.proc.umask
        self.proc.umask = mask & 0o777
        return old
