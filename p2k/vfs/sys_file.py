"""Syscalls on open files: read, write, seek, stat, getdents, fsync, dup, and the fd-table calls."""

from __future__ import annotations

import errno
import os

from p2k.vfs.file import File
from p2k.vfs.lwproc import Cred
from p2k.vfs.perm import X_OK, check_access, killpriv_mode
from p2k.vfs.sysbase import SysBase, statvfs_result, syscall
from p2k.vfs.vattr import VDIR, Dirent, SetAttr


class FileCalls(SysBase):
    def _readable(self, fd: int) -> File:
        fp = self.proc.fdt.get(fd)
        if not fp.readable:
            raise OSError(errno.EBADF, "file not open for reading")
        if fp.vp.type == VDIR:
            raise OSError(errno.EISDIR, "is a directory")
        return fp

    def _writable(self, fd: int) -> File:
        fp = self.proc.fdt.get(fd)
        if not fp.writable:
            raise OSError(errno.EBADF, "file not open for writing")
        return fp

    def _write_at(self, fp: File, offset: int, data: bytes | bytearray | memoryview) -> int:
        vp = fp.vp
        mp = vp.mount
        if not self.proc.cred.is_root and len(data):
            mode = killpriv_mode(self.proc.cred, mp.vop_getattr(vp))
            if mode is not None:
                mp.vop_setattr(vp, SetAttr(mode=mode))
        return mp.vop_write(vp, offset, data)

    @syscall
    def close(self, fd: int) -> None:
        self.proc.fdt.close(fd)

    @syscall
    def read(self, fd: int, n: int) -> bytes:
        fp = self._readable(fd)
        if n < 0:
            raise OSError(errno.EINVAL, "negative count")
        data = fp.vp.mount.vop_read(fp.vp, fp.offset, n)
        fp.offset += len(data)
        return data

    @syscall
    def pread(self, fd: int, n: int, offset: int) -> bytes:
        fp = self._readable(fd)
        if offset < 0 or n < 0:
            raise OSError(errno.EINVAL, "negative offset or count")
        return fp.vp.mount.vop_read(fp.vp, offset, n)

    @syscall
    def write(self, fd: int, data: bytes | bytearray | memoryview) -> int:
        fp = self._writable(fd)
        if fp.flags & os.O_APPEND:
            fp.offset = fp.vp.mount.vop_getattr(fp.vp).size
        n = self._write_at(fp, fp.offset, data)
        fp.offset += n
        return n

    @syscall
    def pwrite(self, fd: int, data: bytes | bytearray | memoryview, offset: int) -> int:
        fp = self._writable(fd)
        if offset < 0:
            raise OSError(errno.EINVAL, "negative offset")
        return self._write_at(fp, offset, data)

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
    def fstat(self, fd: int) -> os.stat_result:
        return self._stat_vp(self.proc.fdt.get(fd).vp)

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
        for d in fp.vp.mount.vop_readdir(fp.vp, fp.dir_cookie):
            out.append(d)
            if len(out) >= count:
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
    def dup(self, fd: int) -> int:
        return self.proc.fdt.dup(fd)

    @syscall
    def dup2(self, fd: int, fd2: int) -> int:
        return self.proc.fdt.dup2(fd, fd2)

    @syscall
    def umask(self, mask: int) -> int:
        old = self.proc.umask
        self.proc.umask = mask & 0o777
        return old

    @syscall
    def setcred(self, uid: int, gid: int, groups: tuple[int, ...] = ()) -> None:
        """setuid/setgid/setgroups in one: the process becomes ``uid``/``gid``/``groups`` if its
        credentials allow (``Cred.may_become``: root may become anyone, others may only drop
        supplementary groups), else EPERM. Privileges only ever go down."""
        want = Cred(uid, gid, tuple(sorted(set(groups))))
        if not all(0 <= x < 1 << 32 for x in (uid, gid, *groups)):
            raise OSError(errno.EINVAL, "credentials out of range")
        if not self.proc.cred.may_become(want):
            raise OSError(errno.EPERM, "credentials may only be lowered")
        self.proc.cred = want
