"""The calls on an open file that the local and the remote port make the same way.

A FUSE file handle is a descriptor of one process (``fdsys``: the port's root process locally,
the connection's process remotely), and each handle remembers the caller that opened it, so that a
write runs as that caller: a write by anyone but root clears set-user-id and set-group-id.
"""

from __future__ import annotations

from typing import Any


class OpenFiles:
    fdsys: Any  # the process whose descriptors the handles are
    openers: dict[int, Any]  # fh → the caller that opened it

    def read(self, fh: int, off: int, size: int) -> bytes:
        return self.fdsys.pread(fh, size, off)  # type: ignore[no-any-return]

    def write(self, fh: int, off: int, buf: bytes) -> int:
        return self.openers.get(fh, self.fdsys).fwrite(fh, buf, off)  # type: ignore[no-any-return]

    def release(self, fh: int) -> None:
        self.openers.pop(fh, None)
        self.fdsys.close(fh)

    def fsync(self, fh: int, datasync: bool) -> None:
        (self.fdsys.fdatasync if datasync else self.fdsys.fsync)(fh)
