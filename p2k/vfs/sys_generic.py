"""read, write, pread and pwrite: moving bytes through an open file (NetBSD ``sys_generic.c``;
``pread``/``pwrite`` sit here as in FreeBSD's, since they share the checks, where NetBSD keeps them in
``vfs_syscalls.c``).

A write by anyone but root clears set-user-id and set-group-id first (``killpriv_mode``), before the
data lands: a file cannot be changed and still run with its owner's rights.
"""

from __future__ import annotations

import errno
import os

from p2k.vfs.file import File
from p2k.vfs.perm import killpriv_mode
from p2k.vfs.sysbase import SysBase, syscall
from p2k.vfs.vattr import VDIR, SetAttr


class GenericCalls(SysBase):
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
    def readinto(self, fd: int, buf: memoryview) -> int:
        """``read`` into a buffer the caller owns and reuses (the server's shared-memory arena),
        so a bulk read allocates no new object and the driver may copy its data only once."""
        fp = self._readable(fd)
        n = fp.vp.mount.vop_readinto(fp.vp, fp.offset, buf)
        fp.offset += n
        return n

    @syscall
    def preadinto(self, fd: int, buf: memoryview, offset: int) -> int:
        fp = self._readable(fd)
        if offset < 0:
            raise OSError(errno.EINVAL, "negative offset")
        return fp.vp.mount.vop_readinto(fp.vp, offset, buf)

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
