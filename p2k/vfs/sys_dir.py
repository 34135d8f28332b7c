"""``scandir``: a directory's entries with their attributes in one call (getdents plus stat, what
NetBSD's fts and Linux's readdirplus give a tree walker).

A walk that lstat()s every name pays a whole path lookup per entry; here the directory is looked
up once, its search permission checked once, and the entries' attributes are asked of the file
system in one batch (``Mount.vfs_stat_inodes``), so FFS decodes each inode block once for all the
entries it holds. Inodes in the vnode cache answer from the cache instead (they may hold changes
not yet written, and a mount point shows the mounted root); the others are read without entering
the cache, so a walk over a big tree neither evicts what is in use nor pays a reclaim per entry.
The results are a snapshot taken under the kernel lock: like ``os.DirEntry.stat()``'s cache, they
do not follow later changes.

``scandir(path, stat=False)`` is the other half of what fts offers: names and the types the
directory records, no inode read per entry (fts's FTS_NOSTAT, which BSD find uses unless a
primary needs a stat). Its entries stat lazily on first ``stat()``, as ``os.DirEntry`` does.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod

from p2k.vfs.perm import R_OK, X_OK, check_access
from p2k.vfs.sysbase import SysBase, syscall
from p2k.vfs.vattr import DT_UNKNOWN, VDIR, stat_result

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from collections.abc import Sequence

    from p2k.vfs.mount import Mount
    from p2k.vfs.vnode import Vnode


class DirEntry:
    """``os.DirEntry``'s interface over a stat taken with the listing. ``stat()`` never follows a
    symlink (a link's ``stat(follow_symlinks=True)`` is refused rather than answered wrongly);
    without search permission on the directory only the name and type are known, as with
    ``os.scandir`` (whose ``stat()`` then fails with EACCES). ``_st`` is the lstat result, the
    error that lstat of this entry met (a damaged inode: ``stat()`` raises it), or None."""

    __slots__ = ("name", "path", "_st", "_dtype")

    def __init__(self, name: str | bytes, path: str | bytes, st: os.stat_result | OSError | None,
                 dtype: int) -> None:
        self.name = name
        self.path = path
        self._st = st
        self._dtype = dtype

    def _mode(self) -> int:
        st = self._st
        return self._dtype << 12 if st is None or isinstance(st, OSError) else st.st_mode

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
        st = self._st
        if st is None:
            raise PermissionError(errno.EACCES, "search permission denied", self.path)
        if isinstance(st, OSError):
            raise OSError(st.errno, st.strerror, self.path)
        if follow_symlinks and stat_mod.S_ISLNK(st.st_mode):
            raise OSError(errno.EOPNOTSUPP, "scandir entries carry lstat results only", self.path)
        return st

    def __repr__(self) -> str:
        return f"<DirEntry {self.name!r}>"


class LazyDirEntry(DirEntry):
    """An entry of ``scandir(path, stat=False)``: the lstat is taken on first ``stat()`` through
    the calling process's syscalls (as ``os.DirEntry`` does), so a walker that only needs names
    and types never reads an inode; its lstat is a plain one of the path, with every check that
    implies, and a failure is kept as a stat result would be. ``inode()`` is the entry's d_ino, as
    ``os.DirEntry``'s; an entry without d_type (4.2BSD directories) asks the lstat for its type."""

    __slots__ = ("_sys", "_ino")

    def __init__(self, name: str | bytes, path: str | bytes, dtype: int, ino: int, sys: DirCalls) -> None:
        super().__init__(name, path, None, dtype)
        self._ino = ino
        self._sys = sys

    def inode(self) -> int:
        return self._ino

    def _mode(self) -> int:
        if self._st is None and self._dtype == DT_UNKNOWN:
            try:
                self.stat(follow_symlinks=False)
            except OSError:
                return 0  # no type known
        return super()._mode()

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        if self._st is None:
            try:
                self._st = self._sys.lstat(self.path)
            except OSError as e:
                self._st = e
        return super().stat(follow_symlinks=follow_symlinks)


class DirCalls(SysBase):
    if TYPE_CHECKING:  # the lstat an entry listed without its stat takes (Syscalls has both)
        def lstat(self, path: str | bytes, *, dir_fd: int | Vnode | None = None) -> os.stat_result: ...

    @syscall
    def scandir(self, path: str | bytes = ".", *, stat: bool = True) -> list[DirEntry]:
        """The entries of ``path`` (without ``.`` and ``..``), each with its lstat result
        (``stat=False``: names and types only, see ``LazyDirEntry``)."""
        vc = self.kernel.vcache
        cred = self.proc.cred
        vp = self._lookup(path)
        try:
            if vp.type != VDIR:
                raise OSError(errno.ENOTDIR, "not a directory")
            va = self._getattr(vp)
            check_access(cred, va, R_OK, "read directory")
            try:
                check_access(cred, va, X_OK, "search")  # what lstat(dir/name) would check
                searchable = True
            except PermissionError:
                searchable = False
            mp = vp.mount
            vc.defer += 1
            try:
                ents = [d for batch in mp.vop_readdir(vp, 0) for d in batch if d.name != b"." and d.name != b".."]
                sts = self._entry_stats(mp, [d.ino for d in ents]) if stat and searchable else None
            finally:
                vc.end_deferral()
        finally:
            self._rele(vp)
        names: list[str] | list[bytes] = [d.name for d in ents]
        if isinstance(path, bytes):
            base: str | bytes = path if path[-1:] == b"/" else path + b"/"
        else:
            base = path if path[-1:] == "/" else path + "/"
            if names:  # one decode for the whole directory: a name holds neither NUL nor "/"
                names = b"\0".join(names).decode("utf-8", "surrogateescape").split("\0")  # type: ignore[arg-type]
        paths = [base + n for n in names]  # type: ignore[operator]
        if not stat:
            return [LazyDirEntry(n, p, d.type, d.ino, self)  # type: ignore[arg-type]
                    for n, p, d in zip(names, paths, ents, strict=True)]
        return list(map(DirEntry, names, paths, sts if sts is not None else [None] * len(ents),
                        [d.type for d in ents]))

    def _entry_stats(self, mp: Mount, inos: Sequence[int]) -> list[os.stat_result | OSError]:
        """lstat of each inode of ``mp``: cached vnodes from the cache, the rest in one batch."""
        table = self.kernel.vcache._table  # noqa: SLF001 - a probe, not a reference: nothing enters the cache
        mid = id(mp)
        cached = [table.get((mid, ino)) for ino in inos]
        if not any(cached):
            return _stat_uncached(mp, inos)
        missing = iter(_stat_uncached(mp, [ino for ino, vp in zip(inos, cached, strict=True) if vp is None]))
        out: list[os.stat_result | OSError] = []
        for vp in cached:
            if vp is None:
                out.append(next(missing))
                continue
            try:
                out.append(self._entry_stat(vp))
            except OSError as e:
                out.append(e)
        return out

    def _entry_stat(self, vp: Vnode) -> os.stat_result:
        """lstat of a cached vnode (it may hold changes not yet written). Only a cached vnode can
        be a mount point (the covered vnode stays referenced)."""
        vc = self.kernel.vcache
        while vp.mountedhere is not None:  # a mount point shows the mounted root
            emp = vp.mountedhere
            vp = vc.peek(emp, emp.vfs_root_ino())
        return stat_result(vp.mount.vop_getattr(vp), vp.mount.fsid)


def _stat_uncached(mp: Mount, inos: Sequence[int]) -> list[os.stat_result | OSError]:
    try:
        return mp.vfs_stat_inodes(inos)
    except OSError:
        # The batch failed as a whole (an internal error, EIO from the VOP guard): ask again one
        # inode at a time, so that only the entry at fault fails.
        out: list[os.stat_result | OSError] = []
        for ino in inos:
            try:
                out.extend(mp.vfs_stat_inodes([ino]))
            except OSError as e:
                out.append(e)
        return out
