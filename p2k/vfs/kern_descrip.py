"""The descriptor-table calls: close, dup, dup2 and fstat (NetBSD ``kern_descrip.c``).

They act on the process's table (``p2k.vfs.file``) and the open file, never on a path.
"""

from __future__ import annotations

import os

from p2k.vfs.sysbase import SysBase, syscall


class DescripCalls(SysBase):
    @syscall
    def close(self, fd: int) -> None:
        self.proc.fdt.close(fd)

    @syscall
    def dup(self, fd: int) -> int:
        return self.proc.fdt.dup(fd)

    @syscall
    def dup2(self, fd: int, fd2: int) -> int:
        return self.proc.fdt.dup2(fd, fd2)

    @syscall
    def fstat(self, fd: int) -> os.stat_result:
        return self._stat_vp(self.proc.fdt.get(fd).vp)
