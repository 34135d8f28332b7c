"""``k.sys``: the rump_sys_* calls with the ``os`` module's conventions, for one process context."""

from __future__ import annotations

from p2k.vfs.sys_acl import AclCalls
from p2k.vfs.sys_attr import AttrCalls
from p2k.vfs.sys_dir import DirCalls
from p2k.vfs.sys_extattr import ExtattrCalls
from p2k.vfs.sys_file import FileCalls
from p2k.vfs.sys_handle import HandleCalls
from p2k.vfs.sys_mount import MountCalls
from p2k.vfs.sys_path import RENAME_EXCHANGE, RENAME_NOREPLACE, PathCalls
from p2k.vfs.sys_vnode import VnodeCalls


class Syscalls(PathCalls, FileCalls, AttrCalls, DirCalls, ExtattrCalls, AclCalls, MountCalls, VnodeCalls,
               HandleCalls):
    """Every syscall the kernel offers, acting as ``self.proc``."""


__all__ = ["RENAME_EXCHANGE", "RENAME_NOREPLACE", "Syscalls"]
