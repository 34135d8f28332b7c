"""``scandir``: a directory's entries with their attributes in one call (getdents plus stat, what
NetBSD's fts and Linux's readdirplus give a tree walker).

A walk that lstat()s every name pays a whole path lookup per entry; here the directory is looked
up once, its search permission checked once, and each entry's attributes come from its inode
through the vnode cache, as the kernel's own readdirplus would. The results are a snapshot taken
under the kernel lock: like ``os.DirEntry.stat()``'s cache, they do not follow later changes.
Inodes not in the vnode cache are read without entering it (see ``_entry_stat``).

``scandir(path, stat=False)`` is the other half of what fts offers: names and the types the
directory records, no inode read per entry (fts's FTS_NOSTAT, which BSD find uses unless a
primary needs a stat). Its entries stat lazily on first ``stat()``, as ``os.DirEntry`` does.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
from collections.abc import Callable
from typing import TYPE_CHECKING

from p2k.vfs.perm import R_OK, X_OK, check_access
from p2k.vfs.sysbase import SysBase, stat_result, syscall
from p2k.vfs.vattr import VDIR
from p2k.vfs.vnode import Vnode

DT_UNKNOWN = 0  # dirent.h: the directory does not record the entry's type


class DirEntry:
    """``os.DirEntry``'s interface over a stat taken with the listing. ``stat()`` never follows a
    symlink (a link's ``stat(follow_symlinks=True)`` is refused rather than answered wrongly);
    without search permission on the directory only the name and type are known, as with
    ``os.scandir`` (whose ``stat()`` then fails with EACCES)."""

    __slots__ = ("name", "path", "_st", "_dtype", "_err", "_lstat")

    def __init__(self, name: str | bytes, path: str | bytes, st: os.stat_result | None, dtype: int,
                 err: OSError | None = None,
                 lstat: Callable[[str | bytes], os.stat_result] | None = None) -> None:
        self.name = name
        self.path = path
        self._st = st
        self._dtype = dtype
        self._err = err  # the lstat of this entry failed (a damaged inode): stat() raises it
        self._lstat = lstat  # set for an entry listed without its stat: taken on first use

    def _mode(self) -> int:
        if self._st is None and self._dtype == DT_UNKNOWN and self._lstat is not None:
            try:  # a directory in the old format records no types: only the inode knows
                return self.stat(follow_symlinks=False).st_mode
            except OSError:
                return 0
        return self._st.st_mode if self._st is not None else self._dtype << 12

    @property
    def d_type(self) -> int:
        """The type the directory records (DT_*; DT_UNKNOWN in the 4.2BSD format): what a walker
        that reads no inodes goes by, as fts does under FTS_NOSTAT."""
        return self._dtype

    def inode(self) -> int:
        return self.stat(follow_symlinks=False).st_ino

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        return stat_mod.S_ISDIR(self._mode())

    def is_file(self, *, follow_symlinks: bool = True) -> bool:
        return stat_mod.S_ISREG(self._mode())

    def is_symlink(self) -> bool:
        return stat_mod.S_ISLNK(self._mode())

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        if self._err is not None:
            raise OSError(self._err.errno, self._err.strerror, self.path)
        if self._st is None:
            if self._lstat is None:
                raise PermissionError(errno.EACCES, "search permission denied", self.path)
            try:
                self._st = self._lstat(self.path)
            except OSError as e:
                self._err = e
                raise
            self._lstat = None
        if follow_symlinks and stat_mod.S_ISLNK(self._st.st_mode):
            raise OSError(errno.EOPNOTSUPP, "scandir entries carry lstat results only", self.path)
        return self._st

    def __repr__(self) -> str:
        return f"<DirEntry {self.name!r}>"


class DirCalls(SysBase):
    if TYPE_CHECKING:  # the lstat an entry listed without its stat takes (Syscalls has both)
        def lstat(self, path: str | bytes, *, dir_fd: int | Vnode | None = None) -> os.stat_result: ...

    @syscall
    def scandir(self, path: str | bytes = ".", *, stat: bool = True) -> list[DirEntry]:
        """The entries of ``path`` (without ``.`` and ``..``), each with its lstat result, or with
        ``stat=False`` only its name and recorded type (each entry stats itself when asked)."""
        vc = self.kernel.vcache
        cred = self.proc.cred
        vp = self._lookup(path)
        try:
            if vp.type != VDIR:
                raise OSError(errno.ENOTDIR, "not a directory")
            va = self._getattr(vp)
            check_access(cred, va, R_OK, "read directory")
            if not stat:
                return self._names(vp, path)
            try:
                check_access(cred, va, X_OK, "search")  # what lstat(dir/name) would check
                searchable = True
            except PermissionError:
                searchable = False
            mp = vp.mount
            text = not isinstance(path, bytes)
            sep = "/" if text else b"/"
            base = path if path[-1:] == sep else path + sep  # type: ignore[operator]
            out: list[DirEntry] = []
            append = out.append
            table = vc._table
            mid = id(mp)
            load = mp.vfs_loadvnode
            getattr_ = mp.vop_getattr
            fsid = mp.fsid
            vc.defer += 1
            try:
                for d in mp.vop_readdir(vp, 0):
                    name = d.name
                    if name == b"." or name == b"..":
                        continue
                    st = None
                    err = None
                    if searchable:
                        # lstat of the entry's inode; the common case, an inode not in the vnode
                        # cache, is inlined here (see _entry_stat for why it stays uncached)
                        try:
                            evp = table.get((mid, d.ino))
                            if evp is None:
                                data, vtype = load(d.ino)
                                st = stat_result(getattr_(Vnode(mp, d.ino, data, vtype)), fsid)
                            else:
                                st = self._entry_stat(evp)
                        except OSError as e:  # one unreadable inode fails its entry, not the listing
                            err = e
                    if text:
                        name = name.decode("utf-8", "surrogateescape")  # type: ignore[assignment]
                    append(DirEntry(name, base + name, st, d.type, err))  # type: ignore[operator]
            finally:
                vc.end_deferral()
            return out
        finally:
            self._rele(vp)

    def _names(self, vp: Vnode, path: str | bytes) -> list[DirEntry]:
        """``scandir(stat=False)``: the directory's records alone; an entry's later ``stat()`` is a
        plain lstat of its path, with every check that implies."""
        text = not isinstance(path, bytes)
        sep = "/" if text else b"/"
        base = path if path[-1:] == sep else path + sep  # type: ignore[operator]
        lstat = self.lstat
        out: list[DirEntry] = []
        append = out.append
        for d in vp.mount.vop_readdir(vp, 0):
            name = d.name
            if name == b"." or name == b"..":
                continue
            if text:
                name = name.decode("utf-8", "surrogateescape")  # type: ignore[assignment]
            append(DirEntry(name, base + name, None, d.type, None, lstat))  # type: ignore[operator]
        return out

    def _entry_stat(self, vp: Vnode) -> os.stat_result:
        """lstat of a cached vnode (it may hold changes not yet written). An uncached inode is
        read by ``scandir`` itself into a transient vnode that never enters the cache, so a walk
        over a big tree neither evicts what is in use nor pays a reclaim per entry. Only a cached
        vnode can be a mount point (the covered vnode stays referenced)."""
        vc = self.kernel.vcache
        while vp.mountedhere is not None:  # a mount point shows the mounted root
            emp = vp.mountedhere
            vp = vc.peek(emp, emp.vfs_root_ino())
        return stat_result(vp.mount.vop_getattr(vp), vp.mount.fsid)
