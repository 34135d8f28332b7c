"""The Berkeley Fast File System (UFS1, UFS2, NetBSD's UFS2EA), both byte orders.

Public surface: ``FfsMount`` (the VFS/VOP vector the kernel mounts: read-write, or read-only
under MNT_RDONLY), ``Superblock`` and ``find_superblock`` (for dumpfs-style tools), ``Inode`` (the
in-core inode).
"""

from p2k.fs.ffs.ffs_vfsops import FfsMount
from p2k.fs.ffs.fs import Superblock, find_superblock
from p2k.fs.ffs.inode import Inode
from p2k.vfs.component import Component, register

component = register(Component(name="ffs", mount_class=FfsMount,
                               description="Berkeley FFS: UFS1, UFS2, UFS2EA, either byte order"))

__all__ = ["FfsMount", "Inode", "Superblock", "component", "find_superblock"]
