"""``k.sys``: the rump_sys_* calls with the ``os`` module's conventions, for one process context.

The groups are named after the NetBSD source file that holds the same syscalls (``vfs_syscalls.c``,
``sys_generic.c``, ``kern_descrip.c``, ``kern_prot.c``, ``vfs_xattr.c``, ``vfs_acl.c``); the ``sys_*``
groups are p2k's own calls with no NetBSD counterpart (scandir, calls by vnode and by handle for
the FUSE bridge and the server) and mount/sync/reboot/sysctl.
"""

from __future__ import annotations

from p2k.vfs.kern_descrip import DescripCalls
from p2k.vfs.kern_prot import ProtCalls
from p2k.vfs.sys_dir import DirCalls
from p2k.vfs.sys_generic import GenericCalls
from p2k.vfs.sys_handle import HandleCalls
from p2k.vfs.sys_mount import MountCalls
from p2k.vfs.sys_vnode import VnodeCalls
from p2k.vfs.vfs_acl import AclCalls
from p2k.vfs.vfs_syscalls import RENAME_EXCHANGE, RENAME_NOREPLACE, VfsCalls
from p2k.vfs.vfs_syscalls_attr import AttrCalls
from p2k.vfs.vfs_xattr import ExtattrCalls


class Syscalls(VfsCalls, AttrCalls, GenericCalls, DescripCalls, ProtCalls, DirCalls, ExtattrCalls, AclCalls,
               MountCalls, VnodeCalls, HandleCalls):
    """Every syscall the kernel offers, acting as ``self.proc``."""


__all__ = ["RENAME_EXCHANGE", "RENAME_NOREPLACE", "Syscalls"]
