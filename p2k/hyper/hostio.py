"""Host file I/O at byte offsets, confined to a window of a raw host file.

The window check itself lives in ``p2k.hyper.backend.Window``, shared by every backend; this module
keeps the raw-file shorthand that most of p2k uses and the host-path helpers rump_server needs.
"""

from __future__ import annotations

import os

from p2k.hyper.backend import RawFileBackend, Window


class HostFile(Window):
    """A raw host file seen through a window; offsets given to it are window-relative."""

    def __init__(self, path: str, *, offset: int = 0, size: int | None = None, readonly: bool = False,
                 create: bool = False) -> None:
        super().__init__(RawFileBackend(path, readonly=readonly, create=create), offset=offset, size=size)


def create_host_file(path: str, mode: int = 0o644) -> None:
    """Create ``path`` as an empty regular file if it does not exist; leave an existing one alone.

    rump_server creates a missing drive image with mode 0644; going through ``O_CREAT`` (rather than
    a chmod afterwards) lets the kernel apply the process umask, exactly as the C open(2) does.
    ``O_RDWR`` is asked for, as rump_server does, so that an existing image the user cannot write
    fails here with EACCES instead of later, in the middle of a mount.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), mode)
    os.close(fd)


def host_path_exists(path: str) -> bool:
    """Whether ``path`` names something on the host (following symlinks)."""
    return os.path.exists(path)


class HostSide:
    """The host's end of a copy between the host and an image (``p2k.fscopy``'s ``Side``): the
    ``os`` calls the copy makes, here because only p2k/hyper calls the host."""

    lstat = staticmethod(os.lstat)
    listdir = staticmethod(os.listdir)
    open = staticmethod(os.open)
    read = staticmethod(os.read)
    close = staticmethod(os.close)
    mkdir = staticmethod(os.mkdir)
    symlink = staticmethod(os.symlink)
    readlink = staticmethod(os.readlink)
    mknod = staticmethod(os.mknod)
    chmod = staticmethod(os.chmod)

    @staticmethod
    def write(fd: int, data: bytes) -> int:
        view = memoryview(data)
        done = 0
        while done < len(view):
            done += os.write(fd, view[done:])
        return done

    @staticmethod
    def utime(p: str, *, ns: tuple[int, int]) -> None:
        os.utime(p, ns=ns, follow_symlinks=False) if os.utime in os.supports_follow_symlinks else os.utime(p, ns=ns)

    @staticmethod
    def listxattr(p: str) -> list[bytes]:
        return [os.fsencode(n) for n in os.listxattr(p, follow_symlinks=False)]

    @staticmethod
    def getxattr(p: str, name: bytes) -> bytes:
        return os.getxattr(p, name, follow_symlinks=False)

    @staticmethod
    def setxattr(p: str, name: bytes, value: bytes) -> None:
        os.setxattr(p, name, value, follow_symlinks=False)
