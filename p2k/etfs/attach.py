"""Register ``IMAGE[:NAME]`` — a host path or an open file object — as a device, in one call.

Thin glue over ``p2k.etfs.resolve`` for the callers that want a registered device rather than a
window: the commands, ``open_image`` and the fsspec file system. ``NAME`` is anything ``p2k parts``
prints (``p2``, ``s1a``, ``a``, ``@OFFSET[,SIZE]``); a trailing ``:NAME`` is split off only when the
whole text does not name an existing file, so an image whose file name ends in ``:a`` opens as
itself. ``partition=""`` asks for the whole image; ``detect`` (e.g. ``p2k.fs.ffs.fs.probe``)
enables the no-name rule (the image if it is a file system, else its only one).
"""

from __future__ import annotations

import os
from typing import IO, Any

from p2k.etfs.device import ETFS_BLK, Device
from p2k.etfs.registry import EtfsRegistry
from p2k.etfs.resolve import Target, resolve, split_image_arg
from p2k.hyper import Backend, open_fileobj
from p2k.hyper.hostio import host_path_exists

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from p2k.etfs.resolve import Detect
    from p2k.hyper.containers import SiblingOpener


def _register(registry: EtfsRegistry, key: str, target: Target, readonly: bool) -> Device:
    return registry.register(key, target.backend, ETFS_BLK, size=target.size, offset=target.offset,
                             readonly=readonly)


def attach_path(registry: EtfsRegistry, key: str, path: str | os.PathLike[str], *, readonly: bool,
                partition: str | None = None, detect: Detect | None = None) -> Device:
    """Register host image ``path`` (``IMAGE`` or ``IMAGE:NAME``, any container) as ``key``."""
    text = os.fspath(path)
    if partition is None:
        text, partition = split_image_arg(text)
    if not host_path_exists(text):
        raise FileNotFoundError(2, "No such file or directory", text)
    target = resolve(text, partition or None, readonly=readonly, detect=None if partition == "" else detect)
    return _register(registry, key, target, readonly)


def attach_fileobj(registry: EtfsRegistry, key: str, fileobj: IO[bytes] | Any, *, name: str = "<file object>",
                   readonly: bool = True, partition: str | None = None, close_fileobj: bool = True,
                   detect: Detect | None = None, open_sibling: SiblingOpener | None = None) -> Device:
    """Register an open binary file object as ``key`` (a container in it is decoded, read-only);
    with ``partition``, only that partition's window of it. With ``close_fileobj`` the file object
    is closed with the device; ``open_sibling`` opens a qcow2 overlay's backing file by its name."""
    backend: Backend = open_fileobj(fileobj, name, readonly=readonly, close_fileobj=close_fileobj,
                                    open_sibling=open_sibling)
    target = resolve(backend, partition or None, readonly=readonly, detect=None if partition == "" else detect)
    return _register(registry, key, target, readonly)
