"""The puffs-to-kernel bridge: a mounted kernel tree exported to the host through FUSE.

NetBSD's p2k library turns puffs requests into vnode operations of a rump kernel; here pyfuse3
requests become calls of the kernel's vnode-handle syscalls, made with each caller's credentials.

The names below are imported on first use: ``p2k cp`` and ``p2k stat`` need only
``p2k.puffs.xattrnames``, and importing the bridge brings pyfuse3 and trio (80 ms, 17 MiB).
"""

from __future__ import annotations

from p2k.lazy import exports

__getattr__ = exports(__name__, {"Bridge": "p2k.puffs.bridge", "MountDaemon": "p2k.puffs.daemon",
                                 "RunDir": "p2k.puffs.daemon"})

__all__ = ["Bridge", "MountDaemon", "RunDir"]
