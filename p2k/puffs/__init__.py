"""The puffs-to-kernel bridge: a mounted kernel tree exported to the host through FUSE.

NetBSD's p2k library turns puffs requests into vnode operations of a rump kernel; here pyfuse3
requests become calls of the kernel's vnode-handle syscalls, made with each caller's credentials.
"""

from p2k.puffs.bridge import Bridge
from p2k.puffs.daemon import MountDaemon, RunDir

__all__ = ["Bridge", "MountDaemon", "RunDir"]
