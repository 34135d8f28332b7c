"""The file-system-independent kernel: vnodes, name lookup, buffer cache, syscalls."""

from p2k.vfs.component import Component, register

component = register(Component(name="vfs", deps=(), description="virtual file system layer"))

__all__ = ["component"]
