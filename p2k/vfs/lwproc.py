"""Process contexts in the manner of rump_lwproc(3).

Every caller of the syscall layer acts as some process: it has credentials, a current and a root
directory, a umask and a file-descriptor table. The FUSE bridge gives each request the host
caller's credentials; the server gives each connection a process of its own. A new process can
share its parent's fd table (RUMP_RFFDG clear), copy it (RUMP_RFFDG) or start empty (RUMP_RFCFDG).
"""

from __future__ import annotations

import sys

from p2k.slotted import Frozen
from p2k.vfs.file import FdTable

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from p2k.vfs.vnode import Vnode, VnodeCache

RFFDG = 0x04  # copy the fd table
RFCFDG = 0x1000  # start with an empty fd table
RFSHARE = 0  # neither: share the parent's table

_pids = iter(range(1, sys.maxsize))
"""itertools.count(1) without importing itertools into every command: a range iterator's next()
is as atomic under the GIL (server and FUSE threads fork processes) and never runs out."""


class Cred(Frozen):
    """Credentials a permission check is made with; immutable so a check never sees a half-change."""

    __slots__ = ("uid", "gid", "groups")
    uid: int
    gid: int
    groups: tuple[int, ...]

    def __init__(self, uid: int = 0, gid: int = 0, groups: tuple[int, ...] = ()) -> None:
        self._set(uid=uid, gid=gid, groups=groups)

    @property
    def is_root(self) -> bool:
        return self.uid == 0

    def in_group(self, gid: int) -> bool:
        return gid == self.gid or gid in self.groups

    def may_become(self, other: Cred) -> bool:
        """Whether a process with these credentials may act as ``other``: root may be anyone;
        anyone else may only keep its uid and gid and drop supplementary groups (privileges are
        only ever lowered, as setuid(2) by a non-root process allows nothing else)."""
        if self.uid == 0:
            return True
        return other.uid == self.uid and other.gid == self.gid and set(other.groups) <= set(self.groups)


ROOT_CRED = Cred()


class Proc:
    def __init__(self, vcache: VnodeCache, root: Vnode, cwd: Vnode, cred: Cred = ROOT_CRED,
                 umask: int = 0o022, fdt: FdTable | None = None) -> None:
        self.pid = next(_pids)
        self.vcache = vcache
        self.cred = cred
        self.umask = umask
        self.root = vcache.vref(root)
        self.cwd = vcache.vref(cwd)
        self.fdt = fdt if fdt is not None else FdTable(vcache)
        self.fdt.users += 1
        self.exited = False

    def fork(self, flags: int = RFFDG, cred: Cred | None = None) -> Proc:
        if flags & RFCFDG:
            fdt = FdTable(self.vcache)
        elif flags & RFFDG:
            fdt = self.fdt.copy()
        else:
            fdt = self.fdt
        return Proc(self.vcache, self.root, self.cwd, cred or self.cred, self.umask, fdt)

    def set_cwd(self, vp: Vnode) -> None:
        old = self.cwd
        self.cwd = self.vcache.vref(vp)
        self.vcache.vrele(old)

    def set_root(self, vp: Vnode) -> None:
        old = self.root
        self.root = self.vcache.vref(vp)
        self.vcache.vrele(old)

    def exit(self) -> None:
        """Release everything the process holds: fds (closing files last referenced here), dirs."""
        if self.exited:
            return
        self.exited = True
        self.fdt.users -= 1
        if self.fdt.users == 0:
            self.fdt.close_all()
        self.vcache.vrele(self.cwd)
        self.vcache.vrele(self.root)
