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
