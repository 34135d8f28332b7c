"""tmpfs: NetBSD's memory file system, with hashed directories."""

from p2k.fs.tmpfs.vfsops import TmpfsMount
from p2k.vfs.component import Component, register

component = register(Component(name="tmpfs", mount_class=TmpfsMount, description="memory file system"))

__all__ = ["TmpfsMount", "component"]
