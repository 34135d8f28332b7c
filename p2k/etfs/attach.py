"""``IMAGE[:NAME]`` to a registered device: the one resolver the commands, ``open_image`` and the
fsspec file system share.

An image is a host path or an already opened file object (what fsspec gives for a remote URL).
``NAME`` picks a partition of a NetBSD disklabel found in the image; a trailing ``:x`` is a
partition only when the whole text does not name an existing file, so an image file whose name ends
in ``:a`` still opens as itself.
"""

from __future__ import annotations

import errno
import os
import re
from typing import IO, Any

from p2k.etfs.device import ETFS_BLK, Device
from p2k.etfs.disklabel import LABEL_SCAN_BYTES, scan_disklabel
from p2k.etfs.drivespec import DriveSpec
from p2k.etfs.registry import EtfsRegistry
from p2k.hyper import FileObjectBackend
from p2k.hyper.hostio import host_path_exists

_PART = re.compile(r"^(?P<path>.+):(?P<part>[a-z])$")


def split_partition(text: str, exists: Any = host_path_exists) -> tuple[str, str | None]:
    """``disk.img:a`` → (``disk.img``, ``a``) unless ``exists(text)``; ``exists`` lets a remote
    file system answer for a URL."""
    m = _PART.match(text)
    if m and not exists(text):
        return m.group("path"), m.group("part")
    return text, None


def attach_path(registry: EtfsRegistry, key: str, path: str | os.PathLike[str], *, readonly: bool,
                partition: str | None = None) -> Device:
    """Register host image ``path`` (``IMAGE`` or ``IMAGE:a``) as ``key``."""
    text = os.fspath(path)
    if partition is None:
        text, partition = split_partition(text)
    if partition:
        # Built directly, not as text: a host path may hold commas that a drivespec cannot.
        return DriveSpec(key=key, hostpath=text, disklabel=partition, readonly=readonly).register(registry)
    if not host_path_exists(text):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", text)
    return registry.register(key, text, ETFS_BLK, readonly=readonly)


def attach_fileobj(registry: EtfsRegistry, key: str, fileobj: IO[bytes] | Any, *, name: str = "<file object>",
                   readonly: bool = True, partition: str | None = None, close_fileobj: bool = True) -> Device:
    """Register an open binary file object as ``key``; with ``partition``, only that disklabel
    partition's window of it. With ``close_fileobj`` the file object is closed with the device."""
    backend = FileObjectBackend(fileobj, name=name, readonly=readonly, close_fileobj=close_fileobj)
    if partition:
        try:
            label = scan_disklabel(backend.pread(0, min(LABEL_SCAN_BYTES, backend.size)))
            if label is None:
                raise OSError(errno.ENOENT, "disklabel not found", name)
            offset, size = label.window(partition)
            if offset + size > backend.size:
                raise OSError(errno.EINVAL, f"partition {partition} reaches past the image's end", name)
        except BaseException:
            if close_fileobj:
                backend.close()
            raise
        backend = backend.window(offset, size, close_fileobj=close_fileobj)
    return registry.register_backend(key, backend, ETFS_BLK)
