"""The Berkeley Fast File System (UFS1, UFS2, NetBSD's UFS2EA), both byte orders.

Public surface: ``FfsMount`` (the VFS/VOP vector the kernel mounts: read-write, or read-only
under MNT_RDONLY), ``Superblock`` and ``find_superblock`` (for dumpfs-style tools), ``Inode`` (the
in-core inode).

The component names its mount class by path and the package imports the driver only when it is
asked for: fsck, newfs, makefs and dumpfs import ``p2k.fs.ffs.*`` for their libraries, and
loading every vnode operation and the journal writer at their start-up cost them a fifth of a
small image's check.
"""

from __future__ import annotations

from p2k.vfs.component import Component, register

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from typing import Any

    from p2k.fs.ffs.ffs_vfsops import FfsMount
    from p2k.fs.ffs.fs import Superblock, find_superblock
    from p2k.fs.ffs.inode import Inode

component = register(Component(name="ffs", mount_class="p2k.fs.ffs.ffs_vfsops:FfsMount",
                               description="Berkeley FFS: UFS1, UFS2, UFS2EA, either byte order"))

_LAZY = {"FfsMount": "p2k.fs.ffs.ffs_vfsops", "Superblock": "p2k.fs.ffs.fs",
         "find_superblock": "p2k.fs.ffs.fs", "Inode": "p2k.fs.ffs.inode"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'p2k.fs.ffs' has no attribute {name!r}")


__all__ = ["FfsMount", "Inode", "Superblock", "component", "find_superblock"]
