"""What the local and the remote port do the same way: the calls on an open file, and the three
kinds of node made by one ``_make`` each port provides.

A FUSE file handle is a descriptor of one process (``fdsys``: the port's root process locally,
the connection's process remotely), and each handle remembers the caller that opened it, so that a
write runs as that caller: a write by anyone but root clears set-user-id and set-group-id.
"""

from __future__ import annotations

import errno

from p2k.vfs.vattr import Vattr

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from typing import Any


class PortBase:
    fdsys: Any  # the process whose descriptors the handles are
    openers: dict[int, Any]  # fh → the caller that opened it

    def _make(self, who: Any, parent: int, name: bytes, kind: str, *args: Any, **kw: Any) -> Vattr:
        raise NotImplementedError  # each port's: vmake in the kernel, or over the connection

    def mknod(self, who: Any, parent: int, name: bytes, mode: int, rdev: int) -> Vattr:
        return self._make(who, parent, name, "node", mode, rdev)

    def mkdir(self, who: Any, parent: int, name: bytes, mode: int) -> Vattr:
        return self._make(who, parent, name, "dir", mode)

    def symlink(self, who: Any, parent: int, name: bytes, target: bytes) -> Vattr:
        return self._make(who, parent, name, "symlink", target=target)

    def opens_matter(self) -> bool:
        return True  # a port that can tell otherwise says so (LocalPort)

    def read_node(self, fino: int, off: int, size: int) -> bytes:
        raise OSError(errno.EBADF, "no open file")  # only asked of a port whose opens do not matter

    def read(self, fh: int, off: int, size: int) -> bytes:
        return self.fdsys.pread(fh, size, off)  # type: ignore[no-any-return]

    def write(self, fh: int, off: int, buf: bytes) -> int:
        return self.openers.get(fh, self.fdsys).fwrite(fh, buf, off)  # type: ignore[no-any-return]

    def release(self, fh: int) -> None:
        self.openers.pop(fh, None)
        self.fdsys.close(fh)

    def fsync(self, fh: int, datasync: bool) -> None:
        (self.fdsys.fdatasync if datasync else self.fdsys.fsync)(fh)
